//! Faults (issue 4): retries, timeouts, failure limits, locks, unwritable caches, full disks,
//! children that die or flood their output.

use std::time::Duration;

use serde_json::json;

use crate::util::{alive, keys, wait_until, SmallDisk, TestEnv};

#[test]
fn retries_succeed_on_a_later_attempt_with_attempt_counting_up() {
    let env = TestEnv::new();
    let child = env.script(
        "child.sh",
        r#"echo "$PARARUN_KEY $PARARUN_ATTEMPT" >> attempts.log
if [ "$PARARUN_ATTEMPT" -lt 3 ]; then echo "flaky $PARARUN_ATTEMPT" >&2; exit 1; fi
echo "{\"attempt\": $PARARUN_ATTEMPT}""#,
    );
    let out = env
        .cmd()
        .args([
            "--retries",
            "2",
            "--retry-delay",
            "10ms",
            "--cache",
            "c.jsonl",
            "--",
            child.as_str(),
        ])
        .stdin("a\n")
        .run();
    out.success();
    assert_eq!(env.read("attempts.log"), "a 1\na 2\na 3\n");
    assert_eq!(
        env.json_lines("c.jsonl"),
        [json!({"id": "a", "attempt": 3})]
    );
}

#[test]
fn a_waiting_retry_holds_no_slot() {
    let env = TestEnv::new();
    // One slot: while `a` waits for its retry, `b` runs in it.
    let child = env.script(
        "child.sh",
        r#"echo "$PARARUN_KEY $PARARUN_ATTEMPT" >> attempts.log
[ "$PARARUN_KEY" = a ] && [ "$PARARUN_ATTEMPT" = 1 ] && exit 1
echo {}"#,
    );
    env.cmd()
        .args([
            "-j",
            "1",
            "--retries",
            "1",
            "--retry-delay",
            "300ms",
            "--",
            child.as_str(),
        ])
        .stdin("a\nb\n")
        .run()
        .success();
    assert_eq!(env.read("attempts.log"), "a 1\nb 1\na 2\n");
}

#[test]
fn retries_run_out_and_the_failures_file_says_why() {
    let env = TestEnv::new();
    let out = env
        .cmd()
        .args([
            "--retries",
            "1",
            "--retry-delay",
            "1ms",
            "--failures",
            "failed.jsonl",
            "--",
        ])
        .args([
            "sh",
            "-c",
            "echo line1 >&2; echo \"last words $PARARUN_ATTEMPT\" >&2; exit 3",
            "sh",
        ])
        .stdin("{\"id\":7,\"x\":\"y\"}\nnot json\n")
        .run();
    out.code(1)
        .stderr_has("item 7 (<stdin>:1) failed: exit: exit code 3 (after 2 attempts); stderr ends: \"last words 2\"")
        .stderr_has("failures in failed.jsonl");
    let failures = env.json_lines("failed.jsonl");
    assert_eq!(failures.len(), 2, "{failures:?}");
    let exit = failures.iter().find(|f| f["reason"] == "exit").unwrap();
    assert_eq!(exit["key"], json!(7));
    assert_eq!(exit["line"], json!(1));
    assert_eq!(exit["item"], json!("{\"id\":7,\"x\":\"y\"}"));
    assert_eq!(exit["exit_code"], json!(3));
    assert_eq!(exit["attempts"], json!(2));
    assert_eq!(exit["stderr_tail"], json!("line1\nlast words 2\n"));
    let bad = failures
        .iter()
        .find(|f| f["reason"] == "bad-input")
        .unwrap();
    assert_eq!(bad["line"], json!(2));
    assert_eq!(bad["attempts"], json!(0), "bad input is never retried");
}

#[test]
fn timeout_kills_the_whole_process_group() {
    let env = TestEnv::new();
    // The shell starts a grandchild that would outlive a kill of the shell's pid alone.
    let child = env.script("child.sh", "sleep 300 & echo $! > grandchild.pid; wait");
    let out = env
        .cmd()
        .args([
            "--timeout",
            "300ms",
            "--kill-after",
            "200ms",
            "--failures",
            "f.jsonl",
            "--",
            child.as_str(),
        ])
        .stdin("a\n")
        .run();
    out.code(1)
        .stderr_has("failed: timeout: timed out after 300ms");
    let pid: i32 = env.read("grandchild.pid").trim().parse().unwrap();
    wait_until(Duration::from_secs(5), "the grandchild to die", || {
        !alive(pid)
    });
    assert_eq!(env.json_lines("f.jsonl")[0]["reason"], json!("timeout"));
}

#[test]
fn timeout_escalates_to_sigkill_after_the_grace() {
    let env = TestEnv::new();
    let child = env.script(
        "child.sh",
        "trap '' TERM; echo $$ > child.pid; while :; do sleep 0.05; done",
    );
    let out = env
        .cmd()
        .args([
            "--timeout",
            "200ms",
            "--kill-after",
            "300ms",
            "--",
            child.as_str(),
        ])
        .stdin("a\n")
        .run();
    out.code(1).stderr_has("timeout");
    let pid: i32 = env.read("child.pid").trim().parse().unwrap();
    assert!(!alive(pid));
}

#[test]
fn items_too_big_or_with_nul_for_arguments_fail_as_bad_input() {
    let env = TestEnv::new();
    let huge = "x".repeat(300_000);
    let out = env
        .cmd()
        .args(["--capture", "text", "--failures", "f.jsonl", "--", "echo"])
        .stdin(format!("{huge}\na\0b\nok\n"))
        .run();
    out.code(1)
        .stderr_has("bad-input: the command line is too long for the system (E2BIG)")
        .stderr_has("...(300002 bytes)")
        .stderr_has("bad-input: the item holds a NUL byte");
    assert!(out.stderr.len() < 10_000, "the huge item was printed whole");
    assert_eq!(out.records().len(), 1);
    // With --stdin the huge line runs fine: PARARUN_KEY is left out rather than failing.
    let out = env
        .cmd()
        .args(["--stdin", "--capture", "text", "--", "wc", "-c"])
        .stdin(format!("{huge}\n"))
        .run();
    out.success();
    assert_eq!(
        out.records()[0]["result"].as_str().unwrap().trim(),
        "300001"
    );
}

#[test]
fn a_child_killed_by_a_signal_is_a_failure() {
    let env = TestEnv::new();
    let out = env
        .cmd()
        .args(["--failures", "f.jsonl", "--", "kill -SEGV $$"])
        .stdin("a\n")
        .run();
    out.code(1)
        .stderr_has("failed: signal: killed by SIGSEGV (signal 11)");
    assert_eq!(env.json_lines("f.jsonl")[0]["signal"], json!(11));
}

#[test]
fn max_failures_stops_starting_items() {
    let env = TestEnv::new();
    let input: String = (1..=50).map(|i| format!("{i}\n")).collect();
    let out = env
        .cmd()
        .args([
            "-j",
            "2",
            "--max-failures",
            "3",
            "--",
            "echo $PARARUN_KEY >> ran.log; exit 1 #",
        ])
        .stdin(input)
        .run();
    out.code(1)
        .stderr_has("3 failed items: starting nothing new (--max-failures)");
    let ran = env.read("ran.log").lines().count();
    assert!((3..=4).contains(&ran), "{ran} items ran\n{}", out.report());
}

#[test]
fn halt_on_error_with_one_job_never_starts_a_second_item() {
    let env = TestEnv::new();
    let out = env
        .cmd()
        .args([
            "-j",
            "1",
            "--halt-on-error",
            "--",
            "echo $PARARUN_KEY >> ran.log; exit 1 #",
        ])
        .stdin("1\n2\n3\n")
        .run();
    out.code(1);
    assert_eq!(env.read("ran.log"), "1\n");
}

#[test]
fn a_second_run_on_the_same_cache_is_refused() {
    let env = TestEnv::new();
    env.write("c.jsonl", "{\"id\":\"x\"}\n");
    let first = env
        .cmd()
        .args([
            "--cache",
            "c.jsonl",
            "--",
            "touch started; sleep 2; echo '{\"ok\":1}' #",
        ])
        .stdin("a\n")
        .spawn();
    wait_until(Duration::from_secs(10), "the first run to start", || {
        env.path("started").exists()
    });
    let second = env
        .cmd()
        .args(["--cache", "c.jsonl", "--", "touch", "second"])
        .stdin("b\n")
        .run();
    second
        .code(2)
        .stderr_has("cache c.jsonl is in use by another pararun");
    assert!(!env.path("second").exists());
    first.wait().success();
    assert_eq!(keys(&env.json_lines("c.jsonl")), ["\"a\"", "\"x\""]);
}

#[test]
fn an_unwritable_cache_is_a_setup_error() {
    let env = TestEnv::new();
    std::fs::create_dir(env.path("dir")).unwrap();
    env.cmd()
        .args(["--cache", "dir", "--", "touch", "ran"])
        .stdin("a\n")
        .run()
        .code(2)
        .stderr_has("cache dir is not a regular file");
    env.cmd()
        .args(["--cache", "/dev/zero", "--", "touch", "ran"])
        .stdin("a\n")
        .run()
        .code(2)
        .stderr_has("cache /dev/zero is not a regular file");
    env.cmd()
        .args(["--cache", "no/such/dir/c.jsonl", "--", "touch", "ran"])
        .stdin("a\n")
        .run()
        .code(2)
        .stderr_has("cannot open cache no/such/dir/c.jsonl for appending");
    assert!(!env.path("ran").exists());
}

#[test]
fn a_full_disk_stops_the_run_and_keeps_written_records_whole() {
    // RLIMIT_FSIZE makes writes past 8 KiB fail with EFBIG, as a full disk fails with ENOSPC.
    let env = TestEnv::new();
    let old: String = (0..100)
        .map(|i| format!("{{\"id\":\"old{i}\",\"pad\":\"{}\"}}\n", "x".repeat(40)))
        .collect();
    env.write("c.jsonl", &old);
    let input: String = (0..200).map(|i| format!("{i}\n")).collect();
    let bin = crate::util::BIN;
    let child = env.script(
        "big.sh",
        &format!("echo '{{\"pad\":\"{}\"}}'", "y".repeat(100)),
    );
    let script = format!("ulimit -f 16; exec {bin} -j 2 --cache c.jsonl -- {child} '<>'");
    let mut cmd = env.cmd();
    cmd.command = std::process::Command::new("sh");
    cmd.command.current_dir(env.path(".")).args(["-c", &script]);
    let out = cmd.stdin(input).run();
    out.code(2)
        .stderr_has("cannot append to cache c.jsonl (disk full or file too large?)")
        .stderr_has("is not done: its record could not be written");
    let text = env.read("c.jsonl");
    assert!(text.starts_with(&old));
    assert!(text.ends_with('\n'), "a partial record was left behind");
    let records = crate::util::parse_lines(&text, "cache");
    assert!(
        records.len() > 100 && records.len() < 300,
        "{}",
        records.len()
    );
    // Whatever made it in is not run again.
    let out = env
        .cmd()
        .args(["-q", "--cache", "c.jsonl", "--", "sh", "-c", "echo {}"])
        .stdin((0..200).map(|i| format!("{i}\n")).collect::<String>())
        .run();
    out.success();
    assert_eq!(env.json_lines("c.jsonl").len(), 300);
}

#[test]
fn a_really_full_disk_keeps_the_cache_whole() {
    let env = TestEnv::new();
    let Some(disk) = SmallDisk::mount(&env, "64k") else {
        crate::util::skipped(
            "faults::a_really_full_disk_keeps_the_cache_whole",
            "cannot mount a tmpfs here (needs root); the RLIMIT_FSIZE test covers the path",
        );
        return;
    };
    let cache = disk.0.join("c.jsonl");
    let input: String = (0..3000).map(|i| format!("{i}\n")).collect();
    let out = env
        .cmd()
        .args(["-q", "-j", "2", "--cache", cache.to_str().unwrap(), "--"])
        .args([
            "sh",
            "-c",
            "echo '{\"pad\":\"yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy\"}'",
        ])
        .stdin(input)
        .run();
    out.code(2)
        .stderr_has("No space left on device")
        .stderr_has("is not done: its record could not be written");
    let text = std::fs::read_to_string(&cache).unwrap();
    assert!(text.ends_with('\n'), "a partial record was left behind");
    let records = crate::util::parse_lines(&text, "cache");
    assert!(records.len() > 100, "{}", records.len());
}

#[test]
fn a_child_that_prints_megabytes() {
    let env = TestEnv::new();
    let out = env
        .cmd()
        .args(["-j", "2", "--cache", "c.jsonl", "--"])
        .args(["python3", "-c", "import sys, json; sys.stderr.write('e' * 3_000_000 + '\\n'); print(json.dumps({'big': 'x' * 5_000_000}))"])
        .stdin("a\nb\n")
        .run();
    out.success();
    let records = env.json_lines("c.jsonl");
    assert_eq!(records.len(), 2);
    assert!(records
        .iter()
        .all(|r| r["big"].as_str().unwrap().len() == 5_000_000));
    assert!(out.stderr.contains(&"e".repeat(3_000_000)));
}

#[test]
fn fsync_modes_all_write_the_same_records() {
    for mode in ["always", "batch", "never"] {
        let env = TestEnv::new();
        env.cmd()
            .args([
                "-q", "--fsync", mode, "--cache", "c.jsonl", "--", "sh", "-c", "echo {}",
            ])
            .stdin("a\nb\nc\n")
            .run()
            .success();
        assert_eq!(
            keys(&env.json_lines("c.jsonl")),
            ["\"a\"", "\"b\"", "\"c\""],
            "{mode}"
        );
    }
}
