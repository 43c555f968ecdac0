//! Why a shell-mode template is refused at start, and what to write instead.
//!
//! A refusal is a usage error (exit 2) raised before any child runs: a placeholder that stands
//! where pararun cannot pass a value whole and inert would otherwise fail, or worse run, on every
//! item.

use std::fmt;

/// A shell-mode command that pararun will not run, with where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    /// The placeholder as written (`<>`, `<name>`), or a description of the item appended to a
    /// command that has no placeholder; `None` when the problem is the script itself.
    pub placeholder: Option<String>,
    /// Byte offset in the command (its words joined with spaces, as `sh -c` gets them).
    pub offset: usize,
    /// What is wrong there.
    pub problem: Problem,
}

/// What makes a spot unsafe or unreadable for pararun.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Inside `` `…` ``, whose text the shell reads twice.
    Backticks,
    /// Inside an arithmetic context (named: `$((…))`, `((…))`, `$[…]`, `${a[…]}`, `${x:…}`,
    /// `let`), where bash evaluates a value as an expression, and `a[$(cmd)]` runs `cmd`.
    Arithmetic(&'static str),
    /// Inside an array subscript that bash evaluates as arithmetic: of an assignment
    /// (`a[…]=`, `a=([…]=…)`, which may take an associative array's key from a variable), or
    /// of a variable name given to a builtin (`unset`, `read`, `printf -v`, …).
    Subscript {
        /// Which subscript, for the message.
        what: &'static str,
        /// In an assignment, where an associative array's key may come from a variable.
        assignment: bool,
    },
    /// In a script that gives a variable the integer or nameref attribute (`declare -i`,
    /// `local -n`), where bash evaluates whatever reaches such a variable.
    Attributes,
    /// Inside `[[ … ]]` next to `-eq`, `-lt` or the like, which bash evaluates as arithmetic.
    ArithmeticTest,
    /// Where `${…}` takes a variable name or an operator.
    VariableName,
    /// Right after a backslash, which would quote the reference rather than the value.
    AfterBackslash,
    /// Right after a `$`, which would join the reference into another expansion.
    AfterDollar,
    /// As the delimiter word of a here-document.
    HeredocDelimiter,
    /// In a here-document with a quoted delimiter that cannot be written unquoted.
    HeredocDelimiterNotPlain,
    /// In the pattern of `${x#…}` (or `%`, `/`, …) inside a here-document.
    HeredocPattern,
    /// A quote or expansion opened and never closed (named).
    Unterminated(&'static str),
    /// A here-document whose delimiter line (given) never comes.
    UnterminatedHeredoc(String),
    /// A name with the prefix of pararun's own variables, which hold the values.
    ReservedName,
    /// A `$'…'` escape that cannot be written as plain text (the reason).
    DollarSingleQuote(&'static str),
    /// Inside the script of `sh -c SCRIPT` written as several words: direct mode pastes the
    /// value into that argument, and the shell runs it as code.
    ShellScriptArgument,
    /// Among the arguments of a command whose name is quoted, escaped or expanded, which may
    /// be a bash builtin that evaluates them (`\\declare -i`, `'let'`, `"$cmd"`).
    HiddenCommand,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let offset = self.offset;
        if let Some(text) = self.problem.about_the_command(offset) {
            return f.write_str(&text);
        }
        // For the examples in hints: the placeholder as written (`<>` for the appended item).
        let ph = match self.placeholder.as_deref() {
            Some(ph) if ph.starts_with(['<', '{']) => ph,
            _ => "<>",
        };
        let (place, hint) = (self.problem.evaluated(ph))
            .or_else(|| self.problem.unreferenced(ph))
            .expect("every problem is worded");
        match &self.placeholder {
            Some(ph) => write!(
                f,
                "{ph} at byte {offset} of the command stands {place}: {hint}"
            ),
            None => write!(f, "byte {offset} of the command is {place}: {hint}"),
        }
    }
}

impl Problem {
    /// The message of a problem with the command as a whole, not with where a placeholder is.
    fn about_the_command(&self, offset: usize) -> Option<String> {
        Some(match self {
            Problem::Unterminated(what) => format!(
                "the command has an unterminated {what} at byte {offset}: close it (pararun \
                 must know where each placeholder stands to pass its value safely)"
            ),
            Problem::UnterminatedHeredoc(delim) => format!(
                "the command has a here-document at byte {offset} whose delimiter line \
                 {delim:?} never comes: end its body with a line that is {delim} alone \
                 (pararun must know where each placeholder stands to pass its value safely)"
            ),
            Problem::ReservedName => format!(
                "the command names a variable that starts with __pararun_ at byte {offset}: \
                 pararun keeps that prefix for the variables that hold the values, and \
                 setting one would change a value; use another name"
            ),
            Problem::DollarSingleQuote(why) => format!(
                "the command has a $'…' escape at byte {offset} that {why}: pararun rewrites \
                 $'…' as plain '…' for sh, which cannot hold it; make such bytes with printf"
            ),
            _ => return None,
        })
    }

    /// Where a placeholder stands whose value bash would evaluate, and what to write instead.
    fn evaluated(&self, ph: &str) -> Option<(String, String)> {
        let evaluates = "where bash evaluates a value as an expression (a[$(cmd)] runs cmd)";
        let check = format!(
            "check that it is a number in a variable first: \
             n={ph}; case $n in ''|*[!0-9]*) exit 2;; esac;"
        );
        Some(match self {
            Problem::Arithmetic(what) => (
                format!("inside {what}, {evaluates}"),
                format!("{check} echo $((n + 1)) (<#> and <%> are numbers and may stand there)"),
            ),
            Problem::Subscript { what, assignment } => {
                let then = match assignment {
                    true => format!(
                        "a[n]=…; an associative array (declare -A m) takes any key from a \
                         variable: k={ph}; m[$k]=…"
                    ),
                    false => "a[n]".to_owned(),
                };
                (
                    format!("inside {what}, {evaluates}"),
                    format!("{check} then write {then}"),
                )
            }
            Problem::Attributes => (
                "in a script that gives a variable the integer or nameref attribute (declare -i, \
                 local -n, …), where bash evaluates whatever reaches such a variable as an \
                 expression or a name (a[$(cmd)] runs cmd)"
                    .to_owned(),
                format!("drop -i and -n, and {check} echo $((n + 1))"),
            ),
            Problem::ArithmeticTest => (
                "inside [[ … ]] next to -eq, -lt or the like, which bash evaluates as expressions \
                 (a[$(cmd)] runs cmd)"
                    .to_owned(),
                format!("compare with [ ] (test), which reads plain integers only: [ {ph} -eq 3 ]"),
            ),
            _ => return None,
        })
    }

    /// Where a placeholder stands that no reference can be written for, and what to write
    /// instead.
    fn unreferenced(&self, ph: &str) -> Option<(String, String)> {
        Some(match self {
            Problem::Backticks => (
                "inside backticks `…`, whose text the shell reads twice".to_owned(),
                "use $(…) instead of backticks".to_owned(),
            ),
            Problem::HiddenCommand => (
                "among the arguments of a command whose name is quoted, escaped or expanded, so \
                 pararun cannot tell whether bash evaluates them (let, declare -i, unset a[…] \
                 written as \\\\let or 'declare')"
                    .to_owned(),
                "write the command's name as plain text (python3, ./work.sh); values then reach \
                 it whole"
                    .to_owned(),
            ),
            Problem::ShellScriptArgument => (
                "inside the script of sh -c, written as its own argument, where the value would \
                 be pasted into code the shell runs"
                    .to_owned(),
                format!(
                    "give the script as pararun's one word after -- (pararun -- 'echo \"{ph}\"'), \
                     where values are passed safely, or pass the value to it as an argument: \
                     sh -c 'echo \"$1\"' sh {ph}"
                ),
            ),
            Problem::VariableName => (
                "where ${…} takes a variable name or an operator".to_owned(),
                format!("a value cannot choose a variable; branch on it instead: case {ph} in …) … ;; esac"),
            ),
            Problem::AfterBackslash => (
                "right after a backslash, which would quote pararun's reference to the value".to_owned(),
                "remove the backslash: the value arrives as written, nothing in it interpreted".to_owned(),
            ),
            Problem::AfterDollar => (
                "right after a $, which would join pararun's reference into another expansion".to_owned(),
                format!("write \\${ph} (or '$'{ph}) for a literal $ before the value"),
            ),
            Problem::HeredocDelimiter => (
                "as a here-document delimiter".to_owned(),
                "use a fixed delimiter such as EOF".to_owned(),
            ),
            Problem::HeredocDelimiterNotPlain => (
                "in a here-document whose quoted delimiter has characters that need quoting".to_owned(),
                "use a plain delimiter such as 'EOF': pararun rewrites a quoted here-document that \
                 holds a placeholder with its delimiter unquoted"
                    .to_owned(),
            ),
            Problem::HeredocPattern => (
                "in the pattern of ${x#…} (or %, /, …) inside a here-document, where dash and bash \
                 quote differently"
                    .to_owned(),
                format!("compute it before the here-document, r=${{x#\"{ph}\"}}, and write $r in it"),
            ),
            _ => return None,
        })
    }
}

impl std::error::Error for TemplateError {}
