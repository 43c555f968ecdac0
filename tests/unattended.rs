//! Unattended runs (issue 12): cron jobs that overlap, items that always fail, logs with
//! timestamps, and only the summary when the cache keeps the records.

use std::time::Duration;

use crate::util::{keys, wait_until, Running, TestEnv, BIN};

/// Starts a run of `item` that holds `c.jsonl` until the file `go` appears.
fn holder(env: &TestEnv, item: &str) -> Running {
    let wait = "touch started; while [ ! -e go ]; do sleep 0.05; done; echo {}";
    let running = env
        .cmd()
        .args(["--cache", "c.jsonl", "--", "sh", "-c", wait])
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
    assert_eq!(
        out.stderr,
        "pararun: cache c.jsonl is in use by another pararun (it holds the file's lock); \
         skipping this run (--conflict-exit-code 0)\n",
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
