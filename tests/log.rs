//! A log that says what happened (issue 22): retries announced with their attempt and delay,
//! children's stderr tagged with their key, the start of a logged run, a lock held by whom,
//! and the count of a dry run.

use std::time::Duration;

use crate::util::{wait_until, TestEnv};

#[test]
fn each_retry_gets_a_line_and_the_summary_counts_them() {
    let env = TestEnv::new();
    let out = env
        .cmd()
        .args(["--retries", "2", "--retry-delay", "10ms", "--"])
        .args([
            "sh",
            "-c",
            "echo 'curl: (22) The requested URL returned error: 429' >&2; exit 22",
        ])
        .stdin("a\n")
        .run();
    out.code(1)
        .stderr_has("item \"a\" (<stdin>:1) attempt 1/3 failed: exit: exit code 22; stderr ends: \"curl: (22) The requested URL returned error: 429\"; retrying in ")
        .stderr_has("item \"a\" (<stdin>:1) attempt 2/3 failed: exit: exit code 22")
        .stderr_has("failed: exit: exit code 22 (after 3 attempts)")
        .stderr_has(", 2 retries; failures: see stderr");
    assert_eq!(
        out.stderr.matches("retrying in").count(),
        2,
        "{}",
        out.report()
    );
}

#[test]
fn tag_puts_the_key_before_every_stderr_line_of_its_child() {
    let env = TestEnv::new();
    let out = env
        .cmd()
        .args([
            "-j",
            "4",
            "--tag",
            "--no-timestamps",
            "--capture",
            "text",
            "--",
        ])
        .args([
            "sh",
            "-c",
            "echo \"first $1\" >&2; printf 'no newline' >&2; echo ok",
            "sh",
        ])
        .stdin("x\ny y\n")
        .run();
    out.success();
    for line in [
        "x\tfirst x\n",
        "x\tno newline\n",
        "y y\tfirst y y\n",
        "y y\tno newline\n",
    ] {
        assert!(out.stderr.contains(line), "no {line:?}\n{}", out.report());
    }
}

#[test]
fn a_logged_run_says_how_it_starts() {
    let env = TestEnv::new();
    env.write("c.jsonl", "{\"id\":\"a\"}\n");
    env.cmd()
        .args([
            "-j",
            "3",
            "--timestamps",
            "--cache",
            "c.jsonl",
            "--capture",
            "text",
            "--",
            "echo",
        ])
        .stdin("a\nb\n")
        .run()
        .success()
        .stderr_has(
            "pararun: starting: items from <stdin>, -j 3, cache c.jsonl (1 records already done)",
        );
}

#[test]
fn a_busy_cache_names_the_run_that_holds_it() {
    let env = TestEnv::new();
    let run = env
        .cmd()
        .args(["--cache", "c.jsonl", "--", "sh", "-c", "sleep 30"])
        .stdin("1\n")
        .spawn();
    wait_until(Duration::from_secs(10), "the run's state file", || {
        env.read("c.jsonl.state").contains("\"finished\":false")
    });
    let out = env
        .cmd()
        .args(["--cache", "c.jsonl", "--", "true"])
        .stdin("2\n")
        .run();
    out.code(2).stderr_has(&format!(
        "cache c.jsonl is in use by another pararun (it holds the file's lock): pid {} on ",
        run.pid()
    ));
    run.signal(libc::SIGTERM);
    run.wait();
}

#[test]
fn a_dry_run_ends_with_its_count() {
    let env = TestEnv::new();
    env.write("c.jsonl", "{\"id\":\"1\"}\n{\"id\":\"2\"}\n");
    let out = env
        .cmd()
        .args(["--dry-run", "--cache", "c.jsonl", "--", "echo"])
        .stdin("1\n2\n3\n3\n4\n")
        .run();
    out.success()
        .stderr_has("pararun: would run 2; 2 cached; 1 duplicates\n");
    assert_eq!(out.stdout, "echo 3\necho 4\n");
}
