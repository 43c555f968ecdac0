//! What the lexer writes for each quoting context, and what it refuses (with what fix).

use crate::input::{Item, Key};
use crate::template::{Problem, Template, TemplateError};

fn item() -> Item {
    Item {
        seq: 7,
        line: "v".into(),
        key: Key::new(serde_json::Value::Null),
        json: true,
        value: Some(serde_json::json!({"a": "A", "b": "B"})),
    }
}

fn parse(command: &str) -> Result<Template, TemplateError> {
    Template::parse(&[command.to_owned()], false, false)
}

/// The script for a one-word command, without its prologue.
fn script(command: &str) -> String {
    let argv = parse(command).unwrap().render(&item(), 3).unwrap();
    match argv[2].split_once("; ") {
        Some((assigns, rest)) if assigns.starts_with("__pararun_1=") => rest
            .split_once("; ")
            .map_or("", |(_, user)| user)
            .to_owned(),
        _ => argv[2].clone(),
    }
}

fn refused(command: &str) -> TemplateError {
    parse(command).expect_err(command)
}

#[test]
fn each_context_gets_its_reference() {
    let cases = [
        ("echo <>", r#"echo "${__pararun_1}""#),
        ("echo \"a<>b\"", r#"echo "a${__pararun_1}b""#),
        ("echo '<>'", r#"echo ''"${__pararun_1}"''"#),
        (
            "echo <a> \"<b>\" <a>",
            r#"echo "${__pararun_1}" "${__pararun_2}" "${__pararun_1}""#,
        ),
        ("echo $'a\\t<>\\''", "echo 'a\t'\"${__pararun_1}\"''\\'''"),
        ("echo \"$'<>'\"", r#"echo "$'${__pararun_1}'""#),
        (
            "echo $'\\x{41}<>\\x{0000000042}'",
            "echo 'A'\"${__pararun_1}\"'B'",
        ),
        (
            "echo $(printf %s \"<>\" <>)",
            r#"echo $(printf %s "${__pararun_1}" "${__pararun_1}")"#,
        ),
        (
            "echo \"$(echo '<>')\"",
            r#"echo "$(echo ''"${__pararun_1}"'')""#,
        ),
        (
            "echo ${x:-<>} \"${x#<>}\"",
            r#"echo ${x:-"${__pararun_1}"} "${x#"${__pararun_1}"}""#,
        ),
        ("echo \"${x:-'<>'}\"", r#"echo "${x:-'"${__pararun_1}"'}""#),
        ("echo \"${x#'<>'}\"", r#"echo "${x#''"${__pararun_1}"''}""#),
        (
            "cat <<EOF\n<> \"<>\"\nEOF",
            "cat <<EOF\n${__pararun_1} \"${__pararun_1}\"\nEOF",
        ),
        (
            "cat <<'EOF'\n$x \\ `y` <>\nEOF",
            "cat <<EOF\n\\$x \\\\ \\`y\\` ${__pararun_1}\nEOF",
        ),
        ("cat <<\"EOF\"\n<>\nEOF", "cat <<EOF\n${__pararun_1}\nEOF"),
        (
            "x=$(case a in a) echo <>;; esac)",
            r#"x=$(case a in a) echo "${__pararun_1}";; esac)"#,
        ),
        (
            "echo <> # '<>",
            r#"echo "${__pararun_1}" # '${__pararun_1}"#,
        ),
        // A special parameter is a whole expansion: the value follows it.
        (
            "echo $$<> \"$#<>\" $1<> $a<> $'x'$?<>",
            r#"echo $$"${__pararun_1}" "$#${__pararun_1}" $1"${__pararun_1}" $a"${__pararun_1}" 'x'$?"${__pararun_1}""#,
        ),
        // `$$'…'` is `$$` and a plain '…' string, which pararun does not decode.
        ("echo $$'\\t' <>", r#"echo $$'\t' "${__pararun_1}""#),
        ("[[ <> == a* ]]", r#"[[ "${__pararun_1}" == a* ]]"#),
    ];
    for (command, expected) in cases {
        assert_eq!(script(command), expected, "{command:?}");
    }
}

#[test]
fn values_travel_as_arguments_after_the_script() {
    let argv = parse("echo <a> <b>").unwrap().render(&item(), 1).unwrap();
    assert_eq!(
        argv,
        [
            "sh",
            "-c",
            r#"__pararun_1=${1} __pararun_2=${2}; shift 2; echo "${__pararun_1}" "${__pararun_2}""#,
            "sh",
            "A",
            "B"
        ]
    );
}

#[test]
fn numbers_are_pasted_anywhere_and_need_no_prologue() {
    let argv = parse("echo <#> '<%>' $((<#> + 1)) `echo <%>`")
        .unwrap()
        .render(&item(), 3)
        .unwrap();
    assert_eq!(argv, ["sh", "-c", "echo 7 '3' $((7 + 1)) `echo 3`"]);
}

#[test]
fn text_without_values_is_left_as_written() {
    // A quoted here-document with no placeholder, and angle brackets that are not ones.
    let command = "cat <<'EOF' 2>&1 <in.txt\n$x `y`\nEOF\necho <a>";
    assert_eq!(
        script(command),
        "cat <<'EOF' 2>&1 <in.txt\n$x `y`\nEOF\necho \"${__pararun_1}\""
    );
    // With --stdin and no placeholder, even an unterminated quote goes to sh as written.
    let t = Template::parse(&["echo 'abc".to_owned()], false, true).unwrap();
    assert_eq!(t.render(&item(), 1).unwrap()[2], "echo 'abc");
}

#[test]
fn unsafe_contexts_are_refused_with_the_fix() {
    let cases: [(&str, Problem, &str); 17] = [
        ("echo `echo <>`", Problem::Backticks, "use $(…)"),
        ("echo \"`<>`\"", Problem::Backticks, "use $(…)"),
        (
            "echo $((<> + 1))",
            Problem::Arithmetic("arithmetic $((…))"),
            "n=<>",
        ),
        (
            "echo $(( $(echo <>) ))",
            Problem::Arithmetic("arithmetic $((…))"),
            "case $n",
        ),
        (
            "(( <a> > 1 ))",
            Problem::Arithmetic("arithmetic ((…))"),
            "n=<a>",
        ),
        (
            "echo ${x[<>]}",
            Problem::Arithmetic("an array subscript ${a[…]}"),
            "n=<>",
        ),
        (
            "echo ${x:<>}",
            Problem::Arithmetic("the offset or length of ${x:…}"),
            "n=<>",
        ),
        (
            "let x=<>",
            Problem::Arithmetic("the arguments of let"),
            "n=<>",
        ),
        (
            "[[ \"<>\" -eq 1 ]]",
            Problem::ArithmeticTest,
            "[ <> -eq 3 ]",
        ),
        ("echo ${<>}", Problem::VariableName, "case <> in"),
        ("echo \\<>", Problem::AfterBackslash, "remove the backslash"),
        (
            "echo \"a\\<>\"",
            Problem::AfterBackslash,
            "remove the backslash",
        ),
        ("echo $<>", Problem::AfterDollar, "\\$<>"),
        ("echo $$$<>", Problem::AfterDollar, "\\$<>"),
        ("cat <<<>", Problem::HeredocDelimiter, "EOF"),
        (
            "cat <<'E F'\n<>\nE F",
            Problem::HeredocDelimiterNotPlain,
            "'EOF'",
        ),
        (
            "cat <<EOF\n${x#<>}\nEOF",
            Problem::HeredocPattern,
            "r=${x#\"<>\"}",
        ),
    ];
    for (command, problem, fix) in cases {
        let err = refused(command);
        assert_eq!(err.problem, problem, "{command:?}");
        assert!(err.to_string().contains(fix), "{command:?}: {err}");
    }
    let err = refused("echo a `<>`");
    assert_eq!((err.placeholder.as_deref(), err.offset), (Some("<>"), 8));
}

#[test]
fn unterminated_constructs_are_refused_when_values_are_in_play() {
    for (command, what) in [
        ("echo '<>", "'…'"),
        ("echo \"<>", "\"…\""),
        ("echo $(echo <>", "$(…)"),
        ("echo ${x:-<>", "${…}"),
        ("echo <> `x", "`…`"),
        ("echo $'<>", "$'…'"),
    ] {
        let err = refused(command);
        assert_eq!(err.problem, Problem::Unterminated(what), "{command:?}");
        assert!(err.to_string().contains("close it"), "{err}");
    }
    // A here-document whose delimiter line never comes: the error points at its `<<`.
    for (command, delim, offset) in [
        ("cat <<EOF\nx <>", "EOF", 4),
        ("cat <<'EOF'\nx <>\n", "EOF", 4),
        ("cat <<-EOF\n\t<>\n\tEOFX", "EOF", 4),
        ("echo <>; cat <<EOF", "EOF", 13),
        ("cat <<A <<B\n<>\nA\n", "B", 8),
    ] {
        let err = refused(command);
        let problem = Problem::UnterminatedHeredoc(delim.into());
        assert_eq!(
            (&err.problem, err.offset),
            (&problem, offset),
            "{command:?}"
        );
        assert!(err.placeholder.is_none(), "{command:?}");
        let text = err.to_string();
        assert!(
            text.contains(&format!("a line that is {delim} alone")),
            "{text}"
        );
    }
    assert!(parse("cat <<-EOF\n\t<>\n\tEOF").is_ok());
    // With no value placeholder, sh judges the script as written.
    let t = Template::parse(&["cat <<EOF\nabc".to_owned()], false, true).unwrap();
    assert_eq!(t.render(&item(), 1).unwrap()[2], "cat <<EOF\nabc");
    // The item appended to a command without placeholders lands in the open quote.
    let err = refused("wc -c 'x");
    assert_eq!(err.problem, Problem::Unterminated("'…'"));
    let err = refused("wc -c $((1 +");
    assert_eq!(
        err.placeholder.as_deref(),
        Some("the item (appended to a command that has no placeholder)")
    );
    let err = refused("echo `x");
    assert_eq!(err.problem, Problem::Backticks);
}

#[test]
fn names_with_the_prefix_of_the_value_variables_are_refused() {
    for (command, offset) in [
        ("__pararun_1=hacked; echo <>", 0),
        ("echo <>; unset __pararun_1", 15),
        ("read -r __pararun_2 <<< x; echo \"<>\"", 8),
        ("echo \"${__pararun_1}\" <>", 8),
        ("echo {}; : ${__pararun_1:=x}", 13),
    ] {
        let err = refused(command);
        assert_eq!(
            (&err.problem, err.offset),
            (&Problem::ReservedName, offset),
            "{command:?}"
        );
        assert!(err.to_string().contains("use another name"), "{err}");
    }
    // Part of a longer name it is another variable; with no value there is no prologue.
    assert!(parse("x__pararun_1=a; echo <>").is_ok());
    assert!(Template::parse(&["echo $__pararun_1".to_owned()], false, true).is_ok());
}

#[test]
fn dollar_single_quotes_that_cannot_be_plain_text_are_refused() {
    for command in [
        "printf %s $'\\0' <>",
        "printf %s $'\\xff' <>",
        "printf %s $'\\c' <>",
    ] {
        let err = refused(command);
        assert!(
            matches!(err.problem, Problem::DollarSingleQuote(_)),
            "{command:?}: {err:?}"
        );
        assert!(err.to_string().contains("printf"), "{err}");
    }
}

#[test]
fn a_number_after_a_dollar_is_refused_even_alone() {
    // `$<#>` would be `$7`, the seventh positional parameter.
    let err = Template::parse(&["echo $<#>".to_owned()], false, true).unwrap_err();
    assert_eq!(err.problem, Problem::AfterDollar);
}

#[test]
fn hints_for_the_appended_item_show_it_as_written() {
    let err = refused("echo $((1 +");
    let text = err.to_string();
    assert!(text.starts_with("the item (appended"), "{text}");
    assert!(text.contains("n=<>;"), "{text}");
}

#[test]
fn brace_placeholders_get_the_same_references() {
    // Every context above, spelled {} instead of <>: the same script.
    for command in [
        "echo <>",
        "echo \"a<>b\" '<>' $'a\\t<>'",
        "echo $(printf %s \"<>\" <>) ${x:-<>} \"${x#<>}\"",
        "cat <<'EOF'\n$x \\ `y` <>\nEOF",
        "echo <> # '<>",
        "echo $$<> \"$#<>\" $a<>",
        "[[ <> == a* ]]",
        "echo <#> '<%>' $((<#> + 1))",
    ] {
        let braced = command
            .replace("<>", "{}")
            .replace("<#>", "{#}")
            .replace("<%>", "{%}");
        assert_eq!(script(&braced), script(command), "{braced:?}");
    }
}

#[test]
fn shell_braces_that_are_not_placeholders_stay() {
    let cases = [
        // The shell's own: expansions, groups, brace expansion, awk and jq programs.
        (
            "echo ${#} ${HOME} \"${x}\"; { echo {}; }",
            r#"echo ${#} ${HOME} "${x}"; { echo "${__pararun_1}"; }"#,
        ),
        (
            "awk '{print}' <<EOF\n{}\nEOF",
            "awk '{print}' <<EOF\n${__pararun_1}\nEOF",
        ),
        (
            "echo {a,b} | jq -c '{id}' {}",
            r#"echo {a,b} | jq -c '{id}' "${__pararun_1}""#,
        ),
        // Beside a <…> placeholder, {} is find's.
        (
            "find <> -exec wc -c {} \\;",
            r#"find "${__pararun_1}" -exec wc -c {} \;"#,
        ),
    ];
    for (command, expected) in cases {
        assert_eq!(script(command), expected, "{command:?}");
    }
}

#[test]
fn brace_placeholders_are_refused_where_angle_ones_are() {
    for (command, problem, fix) in [
        ("echo `echo {}`", Problem::Backticks, "use $(…)"),
        (
            "echo $(({} + 1))",
            Problem::Arithmetic("arithmetic $((…))"),
            "n={};",
        ),
        ("echo ${{}}", Problem::VariableName, "case {} in"),
        ("echo \\{}", Problem::AfterBackslash, "remove the backslash"),
        ("cat <<{}", Problem::HeredocDelimiter, "EOF"),
    ] {
        let err = refused(command);
        assert_eq!(err.problem, problem, "{command:?}");
        let text = err.to_string();
        assert!(text.starts_with("{} at byte"), "{command:?}: {text}");
        assert!(text.contains(fix), "{command:?}: {text}");
    }
    let err = refused("echo a `{}`");
    assert_eq!((err.placeholder.as_deref(), err.offset), (Some("{}"), 8));
}
