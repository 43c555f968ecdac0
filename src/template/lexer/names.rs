//! Where bash reads a word as a variable name: an array element's subscript there is
//! arithmetic, so a value inside `[…]` is evaluated, and `a[x[$(cmd)]]=1` runs `cmd`.
//!
//! bash evaluates the subscript of `a[…]=v` and `a[…]+=v` (an assignment before the command
//! word), of `[…]=v` in a compound assignment `a=(…)`, and of a name given to `unset`, `read`,
//! `declare` and kin, `printf -v` and `test -v` (also `[ -v` and `[[ -v`), quoted or not. A
//! variable with the integer or nameref attribute (`declare -i`, `local -n`) evaluates whatever
//! is assigned to it, however it gets there. dash has none of this, but pararun's templates must
//! be safe under whichever `sh` runs them, and bash is `sh` on Fedora, Arch and macOS.

/// How far the current word looks like `name[…]=value`, quotes left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum Shape {
    #[default]
    Start,
    Name,
    /// Inside the `[…]` after a name, at this depth.
    Subscript(u32),
    /// `name[…]`
    Element,
    /// `name+` or `name[…]+`
    Plus,
    /// Right after the `=` of an assignment: `(` here opens a compound assignment.
    Eq,
    /// The value of an assignment.
    Value,
    Other,
}

impl Shape {
    /// The shape once `c` is added.
    pub(super) fn next(self, c: char) -> Shape {
        let name_char = c.is_ascii_alphanumeric() || c == '_';
        match (self, c) {
            (Shape::Start, c) if c.is_ascii_alphabetic() || c == '_' => Shape::Name,
            (Shape::Name, _) if name_char => Shape::Name,
            (Shape::Name, '[') => Shape::Subscript(1),
            (Shape::Subscript(depth), '[') => Shape::Subscript(depth + 1),
            (Shape::Subscript(1), ']') => Shape::Element,
            (Shape::Subscript(depth), ']') => Shape::Subscript(depth - 1),
            (Shape::Subscript(depth), _) => Shape::Subscript(depth),
            (Shape::Name | Shape::Element, '+') => Shape::Plus,
            (Shape::Name | Shape::Element | Shape::Plus, '=') => Shape::Eq,
            (Shape::Eq | Shape::Value, _) => Shape::Value,
            _ => Shape::Other,
        }
    }

    /// The shape once a value (text not known yet) is added.
    pub(super) fn value(self) -> Shape {
        match self {
            Shape::Subscript(_) => self,
            Shape::Eq | Shape::Value => Shape::Value,
            _ => Shape::Other,
        }
    }

    /// The word is an assignment (`name=…`, `name[…]+=…`): a command word may still follow.
    pub(super) fn is_assignment(self) -> bool {
        matches!(self, Shape::Eq | Shape::Value)
    }
}

/// What the command's name says about its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum Kind {
    #[default]
    Other,
    /// `let`: every argument is arithmetic.
    Let,
    /// `declare`, `typeset`, `local`: names and assignments, and options that may give the
    /// integer or nameref attribute.
    Declare,
    /// `export`, `readonly`, `unset`, `read`: any argument may be a variable name.
    Names,
    /// `printf`, `test` and `[`: the argument after `-v` is a variable name (`seen`).
    AfterV { printf: bool, seen: bool },
    /// `command` and `builtin`: the next word that is not an option is the command.
    Wrapper,
    /// A command whose name is quoted, escaped or expanded (`\\declare`, `'let'`, `"$cmd"`):
    /// pararun cannot tell whether bash evaluates its arguments, so no value may be one.
    Hidden,
}

impl Kind {
    /// The kind of a command named `word`.
    pub(super) fn of(word: &str) -> Kind {
        match word {
            "let" => Kind::Let,
            "declare" | "typeset" | "local" => Kind::Declare,
            // `wait -p NAME` (bash 5.1) names a variable too.
            "export" | "readonly" | "unset" | "read" | "wait" => Kind::Names,
            "printf" => Kind::AfterV {
                printf: true,
                seen: false,
            },
            "test" | "[" => Kind::AfterV {
                printf: false,
                seen: false,
            },
            "command" | "builtin" => Kind::Wrapper,
            _ => Kind::Other,
        }
    }

    /// Whether the current argument may be a variable name; `word` is its plain start
    /// (`printf -va[…]` names one in the same word as the option).
    pub(super) fn takes_names(self, word: &str) -> bool {
        match self {
            Kind::Declare | Kind::Names => true,
            Kind::AfterV { printf, seen } => seen || (printf && word.starts_with("-v")),
            Kind::Other | Kind::Let | Kind::Wrapper | Kind::Hidden => false,
        }
    }

    /// Takes note of an argument (`plain`: its text when nothing in it is quoted or expanded).
    /// Returns whether it gives a variable the integer or nameref attribute.
    pub(super) fn argument(&mut self, plain: Option<&str>) -> bool {
        match (*self, plain) {
            // A hidden name may be `declare`: its options are read the same way.
            (Kind::Declare | Kind::Hidden, Some(word)) => {
                // Options come first (`declare -i n=1`), and no name starts with - or +.
                let option = word.len() > 1 && word.starts_with(['-', '+']) && word != "--";
                option && word.contains(['i', 'n'])
            }
            (Kind::AfterV { printf, .. }, Some(word)) => {
                if word == "-v" || (printf && word.starts_with("-v")) {
                    *self = Kind::AfterV { printf, seen: true };
                }
                false
            }
            (Kind::Wrapper, Some(word)) if !word.starts_with('-') => {
                *self = Kind::of(word);
                false
            }
            (Kind::Wrapper, None) => {
                *self = Kind::Other;
                false
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Kind, Shape};
    use crate::template::{Problem, Template, TemplateError};

    /// The command as written, and again with `{}` for `<>`.
    fn both_spellings(command: &str) -> [(String, Result<Template, TemplateError>); 2] {
        [command.to_owned(), command.replace("<>", "{}")].map(|c| {
            let parsed = Template::parse(std::slice::from_ref(&c), false, false);
            (c, parsed)
        })
    }

    #[test]
    fn values_in_bash_subscripts_are_refused() {
        let assignments = [
            "a[<>]=1",
            "a=(); a[<>]=1",
            "a[\"<>\"]+=1",
            "a['<>']=1",
            "a[$(printf %s \"<>\")]=1",
            "x=1 a[<>]=1 env",
            "a=([<>]=1)",
            "declare -a a=([<>]=1)",
            "a+=(x [<>]=1)",
            "a=(\n [<>]=1\n)",
        ];
        let names = [
            "unset a[<>]",
            "unset -v \"a[<>]\"",
            "unset \"$n[<>]\"",
            "test -v \"a[<>]\"",
            "[ -v 'a[<>]' ]",
            "[[ -v a[<>] ]]",
            "printf -v \"a[<>]\" x",
            "printf -va[<>] x",
            "read \"a[<>]\" <<< x",
            "declare \"a[<>]=1\"",
            "f() { local \"a[<>]=1\"; }",
            "builtin unset \"a[<>]\"",
            "echo \"$(unset \"a[<>]\")\"",
        ];
        let cases = assignments.map(|c| (c, true)).into_iter();
        for (command, assignment) in cases.chain(names.map(|c| (c, false))) {
            for (command, parsed) in both_spellings(command) {
                let err = parsed.expect_err(&command);
                assert!(
                    matches!(err.problem, Problem::Subscript { assignment: a, .. } if a == assignment),
                    "{command:?}: {err:?}"
                );
                let text = err.to_string();
                assert!(
                    text.contains("case $n in") && text.contains("a[n]"),
                    "{text}"
                );
                assert_eq!(text.contains("m[$k]"), assignment, "{text}");
            }
        }
    }

    #[test]
    fn values_in_scripts_with_integer_or_nameref_variables_are_refused() {
        for command in [
            "declare -i n=<>",
            "typeset -i n=<>",
            "f() { local -i n=<>; }; f",
            "declare -ia n=(<>)",
            "declare -i n; n=<>",
            "f() { n=<>; }; declare -i n; f",
            "r=<>; declare -n r; echo \"$r\"",
            "echo <>; x=$(declare +i n)",
            "command declare -gi n; n=<>",
        ] {
            for (command, parsed) in both_spellings(command) {
                let err = parsed.expect_err(&command);
                assert_eq!(err.problem, Problem::Attributes, "{command:?}");
                assert!(err.to_string().contains("drop -i and -n"), "{err}");
            }
        }
    }

    #[test]
    fn names_and_brackets_elsewhere_are_accepted() {
        for command in [
            "echo \"a[<>]\" a[<>] '[<>]'",
            "a[1]=<> b[i+1]=\"<>\"",
            "x=a[<>]; a=(<> \"<>\" [1]=<>)",
            "declare x=<>; local -r y=<>; export z=<>; readonly w=<>",
            "printf '%s' \"[<>]\"; printf -v out %s \"<>\"",
            "read -r l <<< <>; unset x; echo \"[<>]\"",
            "test -n \"[<>]\" && [ \"<>\" = \"[x]\" ]",
            "[[ <> == a[bc]* ]] && [[ -n <> ]]",
            "declare -A m; k=<>; m[$k]=1",
            "case <> in a[bc]) ;; esac",
            "a[<#>]=<> b[<%>]=1",
            "cat <<EOF\na[<>]\nEOF",
            "echo <> # unset a[<>]",
        ] {
            for (command, parsed) in both_spellings(command) {
                assert!(parsed.is_ok(), "{command:?}: {parsed:?}");
            }
        }
        // An integer variable with no value in the script is none of pararun's business.
        assert!(Template::parse(&["declare -i n=<#>".into()], false, true).is_ok());
    }

    fn shape(word: &str) -> Shape {
        word.chars().fold(Shape::Start, Shape::next)
    }

    #[test]
    fn shapes_follow_bash_assignments() {
        assert_eq!(shape("a"), Shape::Name);
        assert_eq!(shape("a_1[x[0]"), Shape::Subscript(1));
        assert_eq!(shape("a[x]"), Shape::Element);
        assert!(shape("a[1]+=").is_assignment());
        assert!(shape("n=x[1]").is_assignment());
        assert_eq!(shape("1a="), Shape::Other);
        assert_eq!(shape("=a"), Shape::Other);
        assert_eq!(shape("a-b=").value(), Shape::Other);
        assert_eq!(shape("n=").value(), Shape::Value);
    }

    #[test]
    fn kinds_see_name_taking_arguments() {
        let mut printf = Kind::of("printf");
        assert!(!printf.takes_names("%s"));
        assert!(printf.takes_names("-va["));
        printf.argument(Some("-v"));
        assert!(printf.takes_names(""));
        let mut wrapped = Kind::of("builtin");
        assert!(!wrapped.argument(Some("unset")));
        assert_eq!(wrapped, Kind::Names);
        let mut declare = Kind::of("local");
        assert!(!declare.argument(Some("-r")));
        assert!(!declare.argument(Some("--")));
        assert!(declare.argument(Some("-ia")));
        assert!(declare.argument(Some("+n")));
    }
}
