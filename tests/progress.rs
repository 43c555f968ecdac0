//! Progress (issue 5): a bar on a terminal (run under a real pseudo-terminal with `script`),
//! plain log lines otherwise, stderr lines never torn by the bar.

use crate::util::{TestEnv, BIN};

/// Runs pararun under a pseudo-terminal; returns what the terminal received.
fn under_pty(env: &TestEnv, args: &str, extra_env: &str) -> String {
    let log = env.path("pty.log");
    let status = std::process::Command::new("script")
        .current_dir(env.path("."))
        .env("TERM", "xterm")
        .env_remove("NO_COLOR")
        .args([
            "-qec",
            &format!("{extra_env} {BIN} {args} > out.jsonl"),
            log.to_str().unwrap(),
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run script(1)");
    assert!(
        status.success(),
        "pararun under a pty failed: {status}\n{}",
        env.read("pty.log")
    );
    env.read("pty.log")
}

/// The text after the last carriage return or escape sequence of each line: what stays visible.
fn visible_lines(text: &str) -> Vec<String> {
    text.split('\n')
        .map(|line| {
            let line = line.strip_suffix('\r').unwrap_or(line);
            let after_cr = line.rsplit('\r').next().unwrap_or(line);
            match after_cr.rfind('\u{1b}') {
                Some(esc) => {
                    let rest = &after_cr[esc..];
                    let end = rest
                        .find(|c: char| c.is_ascii_alphabetic())
                        .map_or(rest.len(), |i| i + 1);
                    rest[end..].to_owned()
                }
                None => after_cr.to_owned(),
            }
        })
        .collect()
}

#[test]
fn a_terminal_gets_a_bar_and_whole_stderr_lines() {
    let env = TestEnv::new();
    env.write(
        "in.txt",
        (1..=30).map(|i| format!("{i}\n")).collect::<String>(),
    );
    let child = env.script(
        "child.sh",
        "sleep 0.05; echo \"err-$1-$(printf '%060d' 0)-end\" >&2; echo {}",
    );
    let screen = under_pty(
        &env,
        &format!("-j 3 -i in.txt --cache c.jsonl -- {child} '<>'"),
        "",
    );
    assert!(screen.contains("/30 ("), "no bar with a total:\n{screen}");
    assert!(
        screen.contains("ok, 0 failed, 0 cached)"),
        "no counts:\n{screen}"
    );
    assert!(screen.contains("\u{1b}[36m"), "no colour:\n{screen}");
    let lines = visible_lines(&screen);
    for i in 1..=30 {
        let want = format!("err-{i}-{}-end", "0".repeat(60));
        assert!(
            lines.contains(&want),
            "stderr line {i} torn or missing:\n{screen}"
        );
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("pararun: ran 30 (30 succeeded")),
        "{screen}"
    );
    assert_eq!(env.json_lines("c.jsonl").len(), 30);
}

#[test]
fn no_color_and_no_progress_are_honoured() {
    let env = TestEnv::new();
    env.write("in.txt", "1\n2\n");
    let screen = under_pty(
        &env,
        "-i in.txt -- sh -c 'sleep 0.3; echo {}'",
        "NO_COLOR=1",
    );
    assert!(screen.contains("/2 ("), "no bar:\n{screen}");
    assert!(
        !screen.contains("\u{1b}[36m"),
        "colour despite NO_COLOR:\n{screen}"
    );
    let screen = under_pty(
        &env,
        "--no-progress -i in.txt -- sh -c 'sleep 0.3; echo {}'",
        "",
    );
    assert!(
        !screen.contains("/2 ("),
        "a bar despite --no-progress:\n{screen}"
    );
}

#[test]
fn a_resumed_run_starts_where_the_last_one_stopped() {
    let env = TestEnv::new();
    env.write(
        "in.txt",
        (1..=10).map(|i| format!("{i}\n")).collect::<String>(),
    );
    env.write(
        "c.jsonl",
        (1..=6)
            .map(|i| format!("{{\"id\":\"{i}\"}}\n"))
            .collect::<String>(),
    );
    let screen = under_pty(
        &env,
        "-i in.txt --cache c.jsonl -- sh -c 'sleep 0.3; echo {}'",
        "",
    );
    assert!(
        screen.contains(" 6/10 ("),
        "cached items do not count towards the bar:\n{screen}"
    );
}

#[test]
fn without_a_terminal_there_are_log_lines_and_no_escapes() {
    let env = TestEnv::new();
    let input: String = (1..=8).map(|i| format!("{i}\n")).collect();
    env.write("in.txt", &input);
    let out = env
        .cmd()
        .args([
            "-j",
            "2",
            "-i",
            "in.txt",
            "--log-interval",
            "100ms",
            "--",
            "sh",
            "-c",
            "sleep 0.1; echo {}",
        ])
        .run();
    out.success()
        .stderr_has("pararun: progress ")
        .stderr_has("/8 (");
    assert!(
        !out.stderr.contains('\u{1b}'),
        "escape codes in a log:\n{}",
        out.report()
    );
    assert!(
        !out.stderr.contains('\r'),
        "carriage returns in a log:\n{}",
        out.report()
    );
    // --total overrides the count; stdin input has none unless given.
    let out = env
        .cmd()
        .args([
            "--total",
            "8",
            "--log-interval",
            "100ms",
            "--",
            "sh",
            "-c",
            "sleep 0.1; echo {}",
        ])
        .stdin(input)
        .run();
    out.success().stderr_has("/8 (");
    // --progress forces the bar even into a pipe.
    let out = env
        .cmd()
        .args(["--progress", "--", "sh", "-c", "sleep 0.3; echo {}"])
        .stdin("a\n")
        .run();
    out.success().stderr_has("done (");
}
