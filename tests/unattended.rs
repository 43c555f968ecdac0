//! Unattended runs (issue 12): cron jobs that overlap, items that always fail, logs with
//! timestamps, and only the summary when the cache keeps the records.

use std::time::Duration;

use crate::util::{keys, wait_until, Running, TestEnv, BIN};

/// `text` without the timestamp that starts each line (panics on a line without one).
fn unstamped(text: &str) -> String {
    text.lines()
        .map(|line| match stamp_of(line) {
            Some(stamp) => format!("{}\n", &line[stamp.len() + 1..]),
            None => panic!("no timestamp at the start of {line:?}"),
        })
        .collect()
}

/// The RFC 3339 timestamp at the start of `line` (`2026-11-25T13:34:56+01:00`), if any.
fn stamp_of(line: &str) -> Option<&str> {
    let stamp = line.get(..25)?;
    let shape = stamp.bytes().enumerate().all(|(i, b)| match i {
        4 | 7 => b == b'-',
        10 => b == b'T',
        13 | 16 | 22 => b == b':',
        19 => b == b'+' || b == b'-',
        _ => b.is_ascii_digit(),
    });
    (shape && line[25..].starts_with(' ')).then_some(stamp)
}

/// Starts a run of `item` that holds `c.jsonl` until the file `go` appears.
fn holder(env: &TestEnv, item: &str) -> Running {
    holder_of(env, "c.jsonl", item)
}

/// Starts a run of `item` that holds `cache` until the file `go` appears.
fn holder_of(env: &TestEnv, cache: &str, item: &str) -> Running {
    let wait = "touch started; while [ ! -e go ]; do sleep 0.05; done; echo {}";
    let running = env
        .cmd()
        .args(["--cache", cache, "--", "sh", "-c", wait])
        .stdin(format!("{item}\n"))
        .spawn();
    wait_until(Duration::from_secs(10), "the first run to start", || {
        env.path("started").exists()
    });
    running
}

#[test]
fn an_overlapping_run_can_skip_quietly() {
    let env = TestEnv::new();
    let first = holder(&env, "a");
    let skip = ["--cache", "c.jsonl", "--conflict-exit-code", "0"];
    let out = env
        .cmd()
        .args(skip)
        .args(["--", "touch", "second"])
        .stdin("b\n")
        .run();
    out.success();
    // One line; it names the holder (pid, host, start) once the holder's state file is there.
    let note = unstamped(&out.stderr);
    assert!(
        note.starts_with(
            "pararun: cache c.jsonl is in use by another pararun (it holds the file's lock)"
        ) && note.ends_with("; skipping this run (--conflict-exit-code 0)\n")
            && note.lines().count() == 1,
        "{}",
        out.report()
    );
    assert_eq!(out.stdout, "");
    // -q: not even the note, so cron has nothing to mail.
    let out = env
        .cmd()
        .args(["-q"])
        .args(skip)
        .args(["--", "touch", "second"])
        .stdin("b\n")
        .run();
    out.success();
    assert_eq!(out.stderr, "", "{}", out.report());
    // Any other code is an error that says what to do, -q or not.
    let out = env
        .cmd()
        .args(["-q", "--cache", "c.jsonl", "--conflict-exit-code", "75"])
        .args(["--", "touch", "second"])
        .stdin("b\n")
        .run();
    out.code(75)
        .stderr_has("cache c.jsonl is in use by another pararun")
        .stderr_has("--conflict-exit-code 0 skips quietly");
    assert!(!env.path("second").exists());
    env.write("go", "");
    first.wait().success();
    assert_eq!(keys(&env.json_lines("c.jsonl")), ["\"a\""]);
}

#[test]
fn an_overlapping_run_can_wait_for_the_lock() {
    let env = TestEnv::new();
    let first = holder(&env, "a");
    // Run through sh so that the waiting note can be watched in a file as it is written.
    let mut second = env.cmd();
    second.command = std::process::Command::new("sh");
    second.command.current_dir(env.path(".")).args([
        "-c",
        &format!("echo b | {BIN} --cache c.jsonl --lock-wait 30s -- sh -c 'echo {{}}' 2> err.log"),
    ]);
    let second = second.spawn();
    wait_until(Duration::from_secs(10), "the second run to wait", || {
        env.read("err.log")
            .contains("waiting up to 30.0s for it (--lock-wait)")
    });
    env.write("go", "");
    first.wait().success();
    second.wait_within(Duration::from_secs(20)).success();
    assert!(env.read("err.log").contains("ran 1 (1 succeeded"));
    assert_eq!(keys(&env.json_lines("c.jsonl")), ["\"a\"", "\"b\""]);
    // A wait that runs out is busy all the same, and says how long it waited.
    std::fs::remove_file(env.path("go")).unwrap();
    std::fs::remove_file(env.path("started")).unwrap();
    let first = holder(&env, "x");
    env.cmd()
        .args([
            "--cache",
            "c.jsonl",
            "--lock-wait",
            "200ms",
            "--",
            "touch",
            "third",
        ])
        .stdin("c\n")
        .run()
        .code(2)
        .stderr_has("after waiting 200ms (--lock-wait)");
    assert!(!env.path("third").exists());
    env.write("go", "");
    first.wait().success();
    // Without a cache there is no lock to wait for: a mistake worth a word.
    env.cmd()
        .args(["--lock-wait", "1s", "--", "true"])
        .run()
        .code(2)
        .stderr_has("--cache <FILE>");
}

#[test]
fn an_item_that_always_fails_is_given_up_after_n_attempts() {
    let env = TestEnv::new();
    env.write("in.jsonl", "{\"id\":1}\n{\"id\":2}\n{\"id\":3}\n");
    let child = env.script(
        "work.sh",
        "echo $PARARUN_KEY >> ran.log; [ $PARARUN_KEY = 2 ] && exit 3; echo {}",
    );
    let run = |extra: &[&str]| {
        env.cmd()
            .args([
                "-i",
                "in.jsonl",
                "--cache",
                "c.jsonl",
                "--failures",
                "f.jsonl",
            ])
            .args(extra)
            .args(["--", child.as_str()])
            .run()
    };
    let give_up = ["--give-up-after", "3"];
    // Two attempts in the first run (one retry), one in the second: three in all.
    run(&[&give_up[..], &["--retries", "1", "--retry-delay", "10ms"]].concat()).code(1);
    run(&give_up).code(1);
    assert_eq!(env.json_lines("f.jsonl").len(), 2);
    std::fs::remove_file(env.path("ran.log")).unwrap();
    let out = run(&give_up);
    out.success()
        .stderr_has("ran 0 (0 succeeded, 0 failed), 2 cached, 0 duplicates, 1 given up in ")
        .stderr_has("; run without --give-up-after to retry those given up");
    assert_eq!(env.read("ran.log"), "", "a given-up item ran");
    // --dry-run skips it too.
    let out = run(&[&give_up[..], &["--dry-run"]].concat());
    assert_eq!(out.success().stdout, "");
    // On request, it runs again: without the option (or after deleting its lines).
    run(&[]).code(1);
    assert_eq!(env.read("ran.log"), "2\n");
    // A larger N gives it more chances.
    run(&["--give-up-after", "5"]).code(1);
    assert_eq!(env.read("ran.log"), "2\n2\n");
    assert_eq!(keys(&env.json_lines("c.jsonl")), ["1", "3"]);
}

#[test]
fn giving_up_needs_a_failures_file() {
    let env = TestEnv::new();
    env.cmd()
        .args(["--give-up-after", "3", "--", "touch", "ran"])
        .stdin("a\n")
        .run()
        .code(2)
        .stderr_has("--give-up-after needs --failures FILE: failed attempts are counted");
    assert!(!env.path("ran").exists());
}

#[test]
fn our_log_lines_carry_the_local_time_and_child_stderr_none() {
    let env = TestEnv::new();
    let child = env.script(
        "work.sh",
        "printf 'child says\\n' >&2; printf 'no newline' >&2; [ $1 = b ] && exit 3; echo {}",
    );
    let run = |extra: &[&str]| {
        let mut cmd = env.cmd();
        // 5:30 east of UTC: a half-hour offset, printed as +05:30.
        cmd.command.env("TZ", "XYZ-5:30");
        cmd.args(["--log-interval", "10ms", "-i", "in.txt"])
            .args(extra)
            .args([
                "--",
                "sh",
                "-c",
                &format!("sleep 0.1; {child} \"$1\""),
                "sh",
                "<>",
            ])
            .run()
    };
    env.write("in.txt", "a\nb\n");
    let out = run(&[]);
    out.code(1);
    let mut ours = 0;
    for line in out.stderr.lines() {
        if line.starts_with("child says") || line.starts_with("no newline") {
            // Passed on as the child wrote it; a last line without a newline is ended with one
            // when the child's stderr closes, so that the next line starts a line of its own.
            assert!(!line.contains("+05:30"), "{}", out.report());
            continue;
        }
        let stamp = stamp_of(line).unwrap_or_else(|| panic!("{line:?}\n{}", out.report()));
        assert!(stamp.ends_with("+05:30"), "{}", out.report());
        assert!(line[26..].starts_with("pararun: "), "{}", out.report());
        ours += 1;
    }
    // The progress lines, the failure and the summary.
    assert!(ours >= 3, "{}", out.report());
    assert_eq!(out.stderr.matches("child says").count(), 2);
    assert_eq!(out.stderr.lines().filter(|&l| l == "no newline").count(), 2);
    let out = run(&["--no-timestamps"]);
    assert!(
        out.stderr.lines().all(|l| stamp_of(l).is_none()),
        "{}",
        out.report()
    );
    out.stderr_has("\npararun: ran 2 (1 succeeded, 1 failed)");
    // An error that stops the run before it starts is a log line like any other.
    let out = run(&["--cache", "no/such/dir/c.jsonl"]);
    let stamp = stamp_of(&out.stderr).unwrap_or_else(|| panic!("{}", out.report()));
    assert!(stamp.ends_with("+05:30"), "{}", out.report());
    out.code(2)
        .stderr_has(" pararun: cannot open cache no/such/dir/c.jsonl");
}

#[test]
fn records_go_to_a_pipe_unless_only_the_summary_is_wanted() {
    let env = TestEnv::new();
    env.write("in.txt", "a\nb\n");
    let run = |extra: &[&str]| {
        env.cmd()
            .args(["--no-timestamps", "-i", "in.txt", "--cache", "c.jsonl"])
            .args(extra)
            .args(["--", "sh", "-c", "echo {}"])
            .run()
    };
    // A pipeline is unchanged: every record on stdout.
    let out = run(&[]);
    assert_eq!(keys(&out.success().records()), ["\"a\"", "\"b\""]);
    assert!(!out.stderr.contains("records in"), "{}", out.report());
    // --no-records: the summary, which says where the records are, and nothing on stdout.
    std::fs::remove_file(env.path("c.jsonl")).unwrap();
    let out = run(&["--no-records", "-k"]);
    out.success()
        .stderr_has("pararun: ran 2 (2 succeeded, 0 failed)")
        .stderr_has("; records in c.jsonl\n");
    assert_eq!(out.stdout, "");
    assert_eq!(env.json_lines("c.jsonl").len(), 2);
}

/// The crontab line of docs/cron.md, with the directory and the binary of this test.
fn readme_cron_line(env: &TestEnv) -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/cron.md"));
    let readme = readme.unwrap();
    let line = readme
        .lines()
        .find(|l| l.starts_with("*/10 * * * * "))
        .expect("a crontab line in docs/cron.md");
    let dir = env.path(".").to_str().unwrap().to_owned();
    assert!(line.contains("$HOME/.cargo/bin/pararun "), "{line}");
    line["*/10 * * * * ".len()..]
        .replace("$HOME/.cargo/bin/pararun", BIN)
        .replace("/data", &dir)
}

/// Runs `command` as cron does: `sh -c`, a bare environment and PATH; what it prints is mailed.
fn as_cron(env: &TestEnv, command: &str) -> crate::util::Output {
    let mut cmd = env.cmd();
    cmd.command = std::process::Command::new("/bin/sh");
    cmd.command
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", env.path("."))
        .env("SHELL", "/bin/sh")
        .args(["-c", command]);
    cmd.run()
}

#[test]
fn the_readme_cron_recipe_mails_only_what_needs_attention() {
    let env = TestEnv::new();
    env.write(
        "todo.jsonl",
        "{\"id\":\"a\"}\n{\"id\":\"bad\"}\n{\"id\":\"c\"}\n",
    );
    env.script(
        "process",
        "case \"$1\" in *bad*) echo 'boom' >&2; exit 1;; esac; echo '{\"ok\":true}'",
    );
    let line = readme_cron_line(&env);
    // The item that always fails mails three times, then is given up: no more mail.
    for run in 1..=4 {
        let mail = as_cron(&env, &line);
        let expected = if run <= 3 {
            "pararun exited 1; see "
        } else {
            ""
        };
        assert!(
            mail.stdout.starts_with(expected) && (run <= 3 || mail.stdout.is_empty()),
            "run {run}\n{}",
            mail.report()
        );
        assert_eq!(
            (mail.code, mail.stderr.as_str()),
            (Some(0), ""),
            "{}",
            mail.report()
        );
    }
    assert_eq!(keys(&env.json_lines("done.jsonl")), ["\"a\"", "\"c\""]);
    // A run that overlaps the previous one is no mail either.
    let first = holder_of(&env, "done.jsonl", "z");
    let mail = as_cron(&env, &line);
    assert_eq!(
        (mail.stdout.as_str(), mail.stderr.as_str()),
        ("", ""),
        "{}",
        mail.report()
    );
    env.write("go", "");
    first.wait().success();
    // The log tells it all, each of pararun's lines with its time.
    let log = env.read("pararun.log");
    for l in log.lines().filter(|l| *l != "boom") {
        assert!(stamp_of(l).is_some(), "no timestamp: {l:?}\n{log}");
    }
    assert_eq!(log.matches("failed: exit: exit code 1").count(), 3, "{log}");
    assert!(
        log.contains("2 cached, 0 duplicates, 1 given up in "),
        "{log}"
    );
    assert!(
        log.contains("skipping this run (--conflict-exit-code 0)"),
        "{log}"
    );
}

/// A cron job's `> /dev/null`: the records stay in the cache and are not written to stdout at
/// all (strace counts pararun's writes to descriptor 1); a file as stdout still gets them.
#[test]
fn records_are_not_written_to_dev_null() {
    let env = TestEnv::new();
    let items: String = (1..=50).map(|i| format!("{{\"id\":{i}}}\n")).collect();
    env.write("items.jsonl", items);
    let run = |stdout: std::fs::File, cache: &str| {
        let status = std::process::Command::new("strace")
            .args(["-f", "-qq", "-e", "trace=write,writev", "-o"])
            .arg(env.path(&format!("{cache}.trace")))
            .args([BIN, "-j", "2", "-i", "items.jsonl", "--cache", cache, "--"])
            .args(["sh", "-c", "cat >/dev/null; echo '{\"ok\":1}'", "--stdin"])
            .current_dir(env.path(""))
            .stdout(stdout)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("strace runs");
        assert!(status.success());
        assert_eq!(env.json_lines(cache).len(), 50);
        let trace = env.read(&format!("{cache}.trace"));
        // strace -f shows the children's writes too: theirs have no key, pararun's records do.
        (trace.lines())
            .filter(|l| l.contains(" write(1,") || l.contains(" writev(1,"))
            .filter(|l| l.contains(r#"\"id\""#))
            .count()
    };
    let null = std::fs::OpenOptions::new().write(true).open("/dev/null");
    assert_eq!(run(null.unwrap(), "null.jsonl"), 0);
    let file = std::fs::File::create(env.path("out.jsonl")).unwrap();
    assert!(run(file, "file.jsonl") > 0);
    assert_eq!(env.read("out.jsonl").lines().count(), 50);
}
