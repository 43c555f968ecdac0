//! First contact (issue 12): the usage line works as typed, and every error names the fix.
//! Placeholders that survive an unquoted shell line, a stdin the shell took from a `<>`,
//! collapsed bad-input lines, hints for non-JSON output and unrunnable scripts, the note for a
//! terminal stdin, and the `-j` aliases.

use std::process::Command;

use crate::util::{TestEnv, BIN};

/// Runs `line` with bash in the test dir, `pararun` standing for the binary under test.
fn bash(env: &TestEnv, line: &str) -> (i32, String, String) {
    let out = Command::new("bash")
        .args(["-c", &format!("pararun() {{ {BIN} \"$@\"; }}\n{line}")])
        .current_dir(env.path("."))
        .output()
        .expect("run bash");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn braces_survive_an_unquoted_shell_line() {
    let env = TestEnv::new();
    // The same line with <> is a bash syntax error (issue 12, stumble 1).
    let line = "printf 'a b\\nc\\n' | pararun -j 1 --capture text -- echo {} {#} {%}";
    let (code, stdout, stderr) = bash(&env, line);
    assert_eq!(code, 0, "{line}\n{stderr}");
    assert_eq!(
        stdout,
        "{\"id\":\"a b\",\"result\":\"a b 1 1\"}\n{\"id\":\"c\",\"result\":\"c 2 1\"}\n"
    );
    let (code, _, stderr) = bash(&env, "printf 'a\\n' | pararun -- echo <>");
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("syntax error"), "{stderr}");
}

#[test]
fn braces_in_shell_mode_are_as_safe_as_angles() {
    let env = TestEnv::new();
    let value = "x $(touch pwned) 'q' \"d\" `touch pwned`";
    let out = env
        .cmd()
        .args([
            "--capture",
            "text",
            "--",
            "printf '%s|' {} \"{}\" '{}' {#}; echo ${#}",
        ])
        .stdin(format!("{value}\n"))
        .run();
    out.success();
    assert_eq!(
        out.records()[0]["result"],
        format!("{value}|{value}|{value}|1|0")
    );
    assert!(!env.path("pwned").exists(), "a value ran");
    // Where no reference is safe, {} is refused as <> is, and the hint shows {}.
    env.cmd()
        .args(["--", "echo $(({} + 1))"])
        .stdin("1\n")
        .run()
        .code(2)
        .stderr_has("{} at byte 8 of the command stands inside arithmetic")
        .stderr_has("n={};");
}

#[test]
fn braces_that_are_not_placeholders_are_left_alone() {
    let env = TestEnv::new();
    std::fs::create_dir(env.path("d")).unwrap();
    env.write("d/a.txt", "");
    // Beside a <…> placeholder, {} is find's: the item is the directory.
    let out = env
        .cmd()
        .args(["--capture", "text", "--", "find", "<>", "-name", "a.txt"])
        .args(["-exec", "echo", "found", "{}", ";"])
        .stdin("d\n")
        .run();
    out.success();
    assert_eq!(out.records()[0]["result"], "found d/a.txt");
    // ${…}, brace groups, brace expansion and awk programs are the shell's and awk's.
    let out = env
        .cmd()
        .args([
            "--stdin",
            "--capture",
            "text",
            "--",
            "set -- a b; read -r line; { printf '%s ' ${#} \"${1}\" \"$line\"; }; \
             echo x | awk '{print}'; echo {a,b}",
        ])
        .stdin("item\n")
        .run();
    out.success();
    assert_eq!(out.records()[0]["result"], "2 a item x\n{a,b}");
    // In a direct-mode argument with a blank, {} is JSON's empty object: `sh -c 'echo {}'`
    // prints {} and gets the item as $0, never as code.
    let out = env
        .cmd()
        .args(["--", "sh", "-c", "echo {}"])
        .stdin("$(touch pwned)\n")
        .run();
    out.success();
    assert_eq!(
        out.records()[0],
        serde_json::json!({"id": "$(touch pwned)"})
    );
    assert!(!env.path("pwned").exists(), "a value ran");
}

#[test]
fn a_stdin_opened_read_write_is_a_swallowed_placeholder() {
    let env = TestEnv::new();
    // What bash does with `pararun -- echo <> log.txt`: log.txt opened read-write as stdin.
    let log = env.write("log.txt", "");
    let stdin = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&log)
        .unwrap();
    let out = env.cmd().args(["--", "echo"]).stdin_from(stdin).run();
    out.success()
        .stderr_has(&format!(
            "warning: stdin is {}, opened for reading and writing",
            log.display()
        ))
        .stderr_has("Write {} or '<>' for the item, as in: pararun ... -- echo {}");
    // `< file` opens read-only: nothing to say.
    let stdin = std::fs::File::open(&log).unwrap();
    let out = env.cmd().args(["--", "echo"]).stdin_from(stdin).run();
    out.success();
    assert!(!out.stderr.contains("warning"), "{}", out.report());
}

#[test]
fn a_terminal_stdin_says_items_are_read_from_it() {
    let env = TestEnv::new();
    let log = env.path("pty.log");
    // script(1) gives pararun a pseudo-terminal as stdin and passes our bytes to it: one
    // item, then Ctrl-D (end of input in the terminal's line discipline).
    let mut script = Command::new("script")
        .current_dir(env.path("."))
        .env("TERM", "xterm")
        .args([
            "-qec",
            &format!("{BIN} --no-progress --capture text -- echo {{}} > out.jsonl"),
            log.to_str().unwrap(),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("run script(1)");
    let mut input = script.stdin.take().unwrap();
    std::io::Write::write_all(&mut input, b"typed\n\x04").unwrap();
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = script.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > std::time::Duration::from_secs(30) {
            script.kill().unwrap();
            panic!("pararun did not end at Ctrl-D:\n{}", env.read("pty.log"));
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    drop(input);
    let screen = env.read("pty.log");
    assert!(status.success(), "{status}\n{screen}");
    assert!(
        screen.contains("pararun: reading items from the terminal, one per line; end with Ctrl-D"),
        "{screen}"
    );
    assert_eq!(
        env.read("out.jsonl"),
        "{\"id\":\"typed\",\"result\":\"typed\"}\n"
    );
}

#[test]
fn workers_and_n_workers_are_hidden_spellings_of_jobs() {
    let env = TestEnv::new();
    for flag in ["--workers=1", "--n-workers=1"] {
        let out = env
            .cmd()
            .args([flag, "--capture", "text", "--", "echo", "{%}"])
            .stdin("a\nb\n")
            .run();
        out.success();
        let slots: Vec<_> = out.records().iter().map(|r| r["result"].clone()).collect();
        assert_eq!(slots, ["1", "1"], "{flag}: one slot\n{}", out.report());
    }
    let help = env.cmd().args(["--help"]).run();
    assert!(!help.stdout.contains("workers"), "{}", help.stdout);
}

#[test]
fn output_that_is_not_json_points_at_capture_text() {
    let env = TestEnv::new();
    let out = env.cmd().args(["--", "echo", "done"]).stdin("a\n").run();
    out.code(1).stderr_has(
        "bad-output: stdout's last line is not JSON (expected value at line 1 column 1): \
         \"done a\"; if the program prints plain text, add --capture text to keep it as the result",
    );
    env.cmd()
        .args(["--capture", "text", "--", "echo", "done"])
        .stdin("a\n")
        .run()
        .success();
}

#[test]
fn a_script_that_cannot_start_fails_once_at_start_with_the_fix() {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::new();
    let mode = |name: &str, mode: u32| {
        std::fs::set_permissions(env.path(name), std::fs::Permissions::from_mode(mode)).unwrap()
    };
    env.write("noexec.py", "#!/usr/bin/env python3\nprint('{}')\n");
    env.write("bare.sh", "echo {}\n");
    env.write(
        "env.py",
        "#!/usr/bin/env no-such-python-here\nprint('{}')\n",
    );
    mode("bare.sh", 0o755);
    mode("env.py", 0o755);
    for (script, says) in [
        (
            "./noexec.py",
            "pararun: \"./noexec.py\" is not executable (starting it would fail with Permission \
             denied): make it so with chmod +x ./noexec.py, or name its interpreter in the \
             command: -- python3 ./noexec.py",
        ),
        (
            "./bare.sh",
            "pararun: \"./bare.sh\" has no #! line naming its interpreter, so the kernel cannot \
             start it (Exec format error)",
        ),
        (
            "./env.py",
            "its #! line names no-such-python-here (through env), which is not on PATH",
        ),
    ] {
        let out = env.cmd().args(["--", script]).stdin("a\nb\nc\n").run();
        out.code(2).stderr_has(says);
        assert_eq!(out.stderr.lines().count(), 1, "{}", out.report());
    }
    // A program that is only known per item gets the hint with its spawn failure.
    mode("noexec.py", 0o644);
    let out = env
        .cmd()
        .args(["--", "{}", "x"])
        .stdin("./noexec.py\n")
        .run();
    out.code(1).stderr_has(
        "spawn: cannot start \"./noexec.py\": Permission denied (os error 13); if it is a \
         script, make it executable (chmod +x ./noexec.py) or name its interpreter in the \
         command (-- python3 ./noexec.py)",
    );
}

#[test]
fn a_thousand_items_with_the_same_bad_key_make_one_line_with_the_fix() {
    let env = TestEnv::new();
    let items: String = (1..=1000).map(|i| format!("{{\"ID\":{i}}}\n")).collect();
    env.write("items.jsonl", items);
    let reason = "the object has no \"id\" field (--key-field) but has \"ID\": try --key-field ID";
    let out = env
        .cmd()
        .args(["-i", "items.jsonl", "--failures", "failed.jsonl"])
        .args(["--", "echo", "{}"])
        .run();
    out.code(1)
        .stderr_has(&format!(
            "pararun: items.jsonl:3: item failed: bad-input: {reason}\n"
        ))
        .stderr_has(&format!(
            "pararun: 1,000 items failed as bad-input, all for the same reason (3 shown \
             above): {reason}\n"
        ));
    assert!(!out.stderr.contains("items.jsonl:4:"), "{}", out.report());
    // The run's first line (a logged run says how it starts, issue 22), 3 shown, the
    // count of the rest, and the summary.
    assert_eq!(out.stderr.lines().count(), 7, "{}", out.report());
    // Every one is still in the failures file.
    assert_eq!(env.json_lines("failed.jsonl").len(), 1000);
    // --dry-run reports them the same way, and the hint works.
    let dry = env
        .cmd()
        .args(["-i", "items.jsonl", "--dry-run", "--", "echo", "{}"])
        .run();
    dry.code(1)
        .stderr_has("pararun: 1,000 items failed as bad-input");
    // And a dry run's count line at the end (issue 22).
    assert_eq!(dry.stderr.lines().count(), 6, "{}", dry.report());
    dry.stderr_has("pararun: would run 0; 0 cached\n");
    let fixed = env
        .cmd()
        .args([
            "-i",
            "items.jsonl",
            "--key-field",
            "ID",
            "--dry-run",
            "--",
            "echo",
            "{}",
        ])
        .run();
    fixed.success();
    assert_eq!(fixed.stdout.lines().count(), 1000);
}

#[test]
fn a_program_printing_text_fails_every_item_with_one_counted_reason() {
    let env = TestEnv::new();
    let script = env.script("done.sh", "echo done");
    let items: String = (1..=20).map(|i| format!("{i}\n")).collect();
    let out = env.cmd().args(["--", &script]).stdin(items).run();
    out.code(1)
        .stderr_has("20 items failed as bad-output, all for the same reason (3 shown above)")
        .stderr_has("add --capture text");
    assert_eq!(
        out.stderr.matches("failed: bad-output").count(),
        3,
        "{}",
        out.report()
    );
}

#[test]
fn a_dry_run_hands_out_slots_in_turn() {
    let env = TestEnv::new();
    let out = env
        .cmd()
        .args(["--dry-run", "-j", "2", "--", "echo", "{%}", "{}"])
        .stdin("a\nb\nc\n")
        .run();
    out.success();
    assert_eq!(out.stdout, "echo 1 a\necho 2 b\necho 1 c\n");
}
