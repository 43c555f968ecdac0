//! Shell-mode quoting (the shell-injection issue): a placeholder may stand unquoted, in "…",
//! '…', $'…' or a here-document, and the child gets the value byte for byte with nothing in it
//! run; where no quoting is safe, pararun refuses the command at start with exit 2.

use serde_json::json;

use crate::util::TestEnv;

/// Items whose text runs commands if pasted into a script, as JSONL with `id` = `s`.
const PAYLOADS: [&str; 7] = [
    "$(touch pwned)",
    "`touch pwned`",
    "'; touch pwned; '",
    "\"; touch pwned; \"",
    "a[$(touch pwned)]",
    "x\nEOF\ntouch pwned",
    "$'\\x41' \\ é",
];

/// The shells `sh` may be, as (name, PATH): the system's, and bash, which is `sh` on Fedora,
/// Arch and macOS, found first on PATH through a link named `sh` (left out where bash is
/// missing).
fn sh_variants(env: &TestEnv) -> Vec<(&'static str, String)> {
    let path = std::env::var("PATH").unwrap_or_default();
    let mut variants = vec![("sh", path.clone())];
    let bash = std::path::Path::new("/bin/bash");
    if bash.exists() {
        let dir = env.path("bash-as-sh");
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::symlink(bash, dir.join("sh")).unwrap();
        variants.push(("bash as sh", format!("{}:{path}", dir.display())));
    }
    variants
}

fn payload_input() -> String {
    PAYLOADS
        .iter()
        .map(|s| json!({"id": s, "s": s}).to_string() + "\n")
        .collect()
}

#[test]
fn the_reported_injections_echo_the_value_and_run_nothing() {
    // The two commands of the issue, with the records shown instead of -q.
    for command in ["echo \"<>\"", "echo '<>'"] {
        let env = TestEnv::new();
        let out = env
            .cmd()
            .args(["--capture", "text", "--", command])
            .stdin("$(touch pwned)\n")
            .run();
        out.success();
        assert_eq!(
            out.records(),
            [json!({"id": "$(touch pwned)", "result": "$(touch pwned)"})],
            "{}",
            out.report()
        );
        assert!(!env.path("pwned").exists(), "{command}: the item ran");
    }
}

#[test]
fn values_arrive_whole_in_every_quoting_context() {
    let contexts = [
        ("printf %s <s>", "{}"),
        ("printf %s \"<s>\"", "{}"),
        ("printf %s '<s>'", "{}"),
        ("printf %s \"[<s>]\"'(<s>)'", "[{}]({})"),
        ("printf %s $'\\t<s>\\x41'", "\t{}A"),
        // bash 5.2 reads \x{…} with any number of digits.
        ("printf %s $'\\x{41}<s>\\x{0000000042}'", "A{}B"),
        ("printf %s \"$(printf %s \"<s>\")\"", "{}"),
        ("printf %s ${UNSET_X:-<s>}", "{}"),
        ("cat <<EOF\n<s>\nEOF", "{}\n"),
        ("cat <<'EOF'\n$HOME `x` \\ <s>\nEOF", "$HOME `x` \\ {}\n"),
    ];
    for (command, expected) in contexts {
        let env = TestEnv::new();
        let out = env
            .cmd()
            .args(["--capture", "text", "--", command])
            .stdin(payload_input())
            .run();
        out.success();
        let records = out.records();
        assert_eq!(records.len(), PAYLOADS.len(), "{}", out.report());
        for r in records {
            let value = r["id"].as_str().unwrap();
            assert_eq!(
                r["result"].as_str(),
                // --capture text drops trailing newlines.
                Some(expected.replace("{}", value).trim_end_matches('\n')),
                "{command:?}\n{}",
                out.report()
            );
        }
        assert!(!env.path("pwned").exists(), "{command:?}: an item ran");
    }
}

#[test]
fn unsafe_contexts_are_refused_at_start_with_the_fix() {
    let refused = [
        (
            "echo `echo <>`",
            "inside backticks",
            "use $(…) instead of backticks",
        ),
        ("echo $((<> + 1))", "inside arithmetic $((…))", "case $n in"),
        ("[[ <> -eq 1 ]]", "inside [[ … ]]", "[ <> -eq 3 ]"),
        (
            "echo \"\\<>\"",
            "right after a backslash",
            "remove the backslash",
        ),
        ("echo $<>", "right after a $", "write \\$<>"),
        ("echo ${<>}", "variable name", "case <> in"),
        ("echo 'unclosed <>", "unterminated '…'", "close it"),
        (
            "__pararun_1=hacked; printf %s \"<>\"",
            "names a variable that starts with __pararun_ at byte 0",
            "use another name",
        ),
        (
            "cat <<EOF\nx <>",
            "here-document at byte 4",
            "a line that is EOF alone",
        ),
        (
            "cat <<'EOF'\nx <>",
            "here-document at byte 4",
            "a line that is EOF alone",
        ),
    ];
    for (command, place, fix) in refused {
        for dry_run in [false, true] {
            let env = TestEnv::new();
            let mut args = vec!["--", command];
            if dry_run {
                args.insert(0, "--dry-run");
            }
            env.cmd()
                .args(args)
                .stdin("$(touch pwned)\n")
                .run()
                .code(2)
                .stderr_has("pararun: ")
                .stderr_has(place)
                .stderr_has(fix);
            assert!(!env.path("pwned").exists());
        }
    }
    // A byte offset points at the placeholder in the command.
    TestEnv::new()
        .cmd()
        .args(["--", "echo ok; echo `<>`"])
        .stdin("a\n")
        .run()
        .code(2)
        .stderr_has("<> at byte 15 of the command");
}

#[test]
fn the_script_cannot_overwrite_a_value() {
    // pararun's variables were once named __pr1…; that name is now the script's own.
    let env = TestEnv::new();
    let out = env
        .cmd()
        .args(["--capture", "text", "--", "__pr1=hacked; printf %s \"<>\""])
        .stdin("VAL\n")
        .run();
    out.success();
    assert_eq!(out.records(), [json!({"id": "VAL", "result": "VAL"})]);
    // A name with pararun's prefix is refused (unsafe_contexts_are_refused_at_start_…).
}

#[test]
fn numbers_may_stand_where_values_may_not() {
    let env = TestEnv::new();
    let out = env
        .cmd()
        .args(["--capture", "text", "--", "echo $((<#> * 10)) `echo <%>`"])
        .stdin("a\n")
        .run();
    out.success();
    assert_eq!(out.records(), [json!({"id": "a", "result": "10 1"})]);
}

#[test]
fn dry_run_shows_values_after_the_script_and_replays() {
    let env = TestEnv::new();
    let out = env
        .cmd()
        .args(["--dry-run", "--", "printf '%s|' '<>' \"<>\""])
        .stdin("it's $(touch pwned)\n")
        .run();
    out.success();
    assert_eq!(
        out.stdout,
        "sh -c '__pararun_1=${1}; shift 1; printf '\\''%s|'\\'' '\\'''\\''\"${__pararun_1}\"'\\'''\\'' \
         \"${__pararun_1}\"' sh 'it'\\''s $(touch pwned)'\n"
    );
    let replay = std::process::Command::new("sh")
        .args(["-c", out.stdout.trim()])
        .current_dir(env.path(""))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&replay.stdout),
        "it's $(touch pwned)|it's $(touch pwned)|"
    );
    assert!(!env.path("pwned").exists());
}

#[test]
fn direct_mode_passes_a_leading_dash_as_an_argument() {
    // As with xargs: the value is one argument, and the program decides what `-n` means.
    let env = TestEnv::new();
    let out = env
        .cmd()
        .args(["--capture", "text", "--", "printf", "[%s]", "<>"])
        .stdin("-n\n--help\n")
        .run();
    out.success();
    let mut results: Vec<String> = out
        .records()
        .iter()
        .map(|r| r["result"].as_str().unwrap().to_owned())
        .collect();
    results.sort();
    assert_eq!(results, ["[--help]", "[-n]"]);
}

#[test]
fn special_parameters_end_before_the_value() {
    // `$$`, `$?`, `$#`, `$1` are whole expansions; `$a` ends where the reference starts.
    let command = "set -- a b; false; printf %s \"$?<>\" $#<> \"$1<>\" $a<>; p=$$<>; \
                   printf %s \"${p#$$}\"";
    let env = TestEnv::new();
    for (sh, path) in sh_variants(&env) {
        let mut cmd = env
            .cmd()
            .args(["--capture", "text", "--", command])
            .stdin("$(touch pwned)\n");
        cmd.command.env("PATH", &path);
        let out = cmd.run();
        out.success();
        let v = "$(touch pwned)";
        assert_eq!(
            out.records(),
            [json!({"id": v, "result": format!("1{v}2{v}a{v}{v}{v}")})],
            "{sh}: {}",
            out.report()
        );
        assert!(!env.path("pwned").exists(), "{sh}: the item ran");
    }
}

#[test]
fn values_bash_would_evaluate_as_arithmetic_are_refused_under_any_sh() {
    // Array subscripts and integer or nameref variables: bash, which is sh on Fedora, Arch and
    // macOS, evaluates a value there, and x[$(cmd)] runs cmd.
    let subscript = "where bash evaluates a value as an expression";
    let refused = [
        ("a[<>]=1", "the subscript of an array assignment a[…]="),
        (
            "a=(); a[{}]=1",
            "the subscript of an array assignment a[…]=",
        ),
        ("a=([<>]=1)", "in an array assignment a=(…)"),
        ("declare -a a=([{}]=1)", "in an array assignment a=(…)"),
        ("unset \"a[<>]\"", "a variable name given to unset"),
        ("printf -v 'a[{}]' x", "a variable name given to unset"),
        ("declare -i n=<>", "integer or nameref attribute"),
        ("typeset -i n={}", "integer or nameref attribute"),
        ("declare -i n; n=<>", "integer or nameref attribute"),
    ];
    let env = TestEnv::new();
    for (sh, path) in sh_variants(&env) {
        for (command, place) in refused {
            let mut cmd = env.cmd().args(["--", command]).stdin("x[$(touch pwned)]\n");
            cmd.command.env("PATH", &path);
            let out = cmd.run();
            out.code(2).stderr_has(place).stderr_has("case $n in");
            if !place.starts_with("integer") {
                out.stderr_has(subscript).stderr_has("a[n]");
            }
            assert!(
                !env.path("pwned").exists(),
                "{sh}, {command:?}: the item ran"
            );
        }
    }
}

#[test]
fn brackets_and_names_bash_does_not_evaluate_still_take_values() {
    let v = "x[$(touch pwned)]";
    let env = TestEnv::new();
    for (sh, path) in sh_variants(&env) {
        let mut contexts = vec![
            ("x=a[<>]; printf %s \"$x\" \"[<>]\"", format!("a[{v}][{v}]")),
            ("printf %s a[{}] '[{}]'", format!("a[{v}][{v}]")),
        ];
        if sh != "sh" {
            // Arrays are bash's: an element's value, and an associative array's key.
            contexts.push((
                "a[1]=<>; declare -A m; k=<>; m[$k]=1; printf %s \"${a[1]}\" \"${!m[@]}\"",
                format!("{v}{v}"),
            ));
        }
        for (command, expected) in contexts {
            let mut cmd = env
                .cmd()
                .args(["--capture", "text", "--", command])
                .stdin(format!("{v}\n"));
            cmd.command.env("PATH", &path);
            let out = cmd.run();
            out.success();
            assert_eq!(
                out.records(),
                [json!({"id": v, "result": expected})],
                "{sh}, {command:?}\n{}",
                out.report()
            );
            assert!(
                !env.path("pwned").exists(),
                "{sh}, {command:?}: the item ran"
            );
        }
    }
}

#[test]
fn a_hidden_command_name_or_wait_p_cannot_smuggle_a_value_into_bash_arithmetic() {
    let templates = [
        "\\declare -i n; n=<>",
        "'let' x=<>",
        "a=(1); \\unset \"a[<>]\"",
        "\\printf -v \"a[{}]\" x",
        "\"[\" -v \"a[<>]\" ]",
        "'typeset' -i n; n=<>",
        "\\local -n r=x; r=<>",
        "sleep 0 & wait -p \"a[<>]\" $!",
    ];
    for template in templates {
        let env = TestEnv::new();
        for (shell, path) in sh_variants(&env) {
            let out = env
                .cmd()
                .args(["-q", "--capture", "text", "--", template])
                .stdin("a[$(touch pwned)]\n");
            let mut out = out;
            out.command.env("PATH", &path);
            let out = out.run();
            out.code(2);
            assert!(
                !env.path("pwned").exists(),
                "{template} under {shell}: the value ran"
            );
        }
    }
}

#[test]
fn a_value_in_the_script_of_sh_c_in_direct_mode_is_refused() {
    let env = TestEnv::new();
    env.cmd()
        .args(["-q", "--capture", "text", "--", "sh", "-c", "echo \"<>\""])
        .stdin("$(touch pwned)\n")
        .run()
        .code(2)
        .stderr_has("inside the script of sh -c")
        .stderr_has("sh -c 'echo \"$1\"' sh <>");
    assert!(!env.path("pwned").exists());
    // Passed as an argument, the value reaches the script whole.
    let out = env
        .cmd()
        .args([
            "--capture",
            "text",
            "--",
            "bash",
            "-ec",
            "printf %s \"$1\"",
            "sh",
            "{}",
        ])
        .stdin("$(touch pwned)\n")
        .run();
    out.success();
    assert_eq!(out.records()[0]["result"], "$(touch pwned)");
    assert!(!env.path("pwned").exists());
}
