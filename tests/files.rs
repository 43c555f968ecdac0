//! The files a run keeps: checked once opened (a FIFO, a device or a directory where a file
//! belongs is refused at start, never waited on or written), FIFO and pipe inputs read once,
//! and writes to stdout or the failures file that fail without losing a result.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::util::{parse_lines, SmallDisk, TestEnv};

const QUICK: Duration = Duration::from_secs(10);

fn mkfifo(path: &Path) {
    assert!(Command::new("mkfifo").arg(path).status().unwrap().success());
}

/// JSONL items of about 1 KB each, so that a few hundred are well past the 64 KiB that the
/// input's line estimate reads.
fn big_items(n: usize) -> String {
    let pad = "x".repeat(1000);
    (0..n)
        .map(|i| format!("{{\"id\":{i},\"pad\":\"{pad}\"}}\n"))
        .collect()
}

#[test]
fn a_fifo_failures_file_is_refused_at_start_without_hanging() {
    let env = TestEnv::new();
    mkfifo(&env.path("f"));
    // Nobody reads the FIFO: a blocking open for writing would wait for ever.
    let out = env
        .cmd()
        .args(["--failures", "f", "--", "touch", "ran"])
        .stdin("1\n")
        .spawn()
        .wait_within(QUICK);
    out.code(2).stderr_has(
        "failures file f is not a regular file (a FIFO); give --failures the path of a regular file",
    );
    // With a reader, the open succeeds: the check of the open file refuses it.
    let _reader = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(env.path("f"))
        .unwrap();
    let out = env
        .cmd()
        .args(["--failures", "f", "--", "touch", "ran"])
        .stdin("1\n")
        .spawn()
        .wait_within(QUICK);
    out.code(2)
        .stderr_has("failures file f is not a regular file (a FIFO)");
    assert!(!env.path("ran").exists());
}

#[test]
fn a_fifo_or_a_device_is_refused_as_cache() {
    let env = TestEnv::new();
    mkfifo(&env.path("c.jsonl"));
    for dry_run in [false, true] {
        let mut args = vec!["--cache", "c.jsonl", "--", "touch", "ran"];
        if dry_run {
            args.insert(0, "--dry-run");
        }
        env.cmd()
            .args(args)
            .stdin("1\n")
            .spawn()
            .wait_within(QUICK)
            .code(2)
            .stderr_has("cache c.jsonl is not a regular file (a FIFO); give --cache the path");
    }
    // /dev/null would take the lock that every other run on /dev/null wants, and would turn on
    // the skipping of duplicate keys: refused, with the way to run without a cache.
    env.cmd()
        .args(["--cache", "/dev/null", "--", "touch", "ran"])
        .stdin("1\n")
        .run()
        .code(2)
        .stderr_has("cache /dev/null is not a regular file (a character device)")
        .stderr_has("or leave --cache out to run without a cache");
    assert!(!env.path("ran").exists());
}

#[test]
fn a_directory_is_refused_as_input() {
    let env = TestEnv::new();
    std::fs::create_dir(env.path("items")).unwrap();
    env.cmd()
        .args(["-i", "items", "--", "touch", "ran"])
        .run()
        .code(2)
        .stderr_has("input items is a directory; give -i a file, a FIFO, or - for stdin");
    assert!(!env.path("ran").exists());
}

#[test]
fn a_fifo_input_is_read_once_and_loses_no_item() {
    let env = TestEnv::new();
    let fifo = env.path("items.fifo");
    mkfifo(&fifo);
    let items = big_items(150);
    let writer = std::thread::spawn(move || std::fs::write(fifo, items));
    // Without -q the progress log is on, which counts a regular file's items in a second read.
    let out = env
        .cmd()
        .args([
            "-i",
            "items.fifo",
            "--cache",
            "c.jsonl",
            "--capture",
            "text",
        ])
        .args(["--", "true"])
        .spawn()
        .wait_within(Duration::from_secs(60));
    writer.join().unwrap().unwrap();
    out.success().stderr_has("ran 150 (150 succeeded");
    assert_eq!(env.json_lines("c.jsonl").len(), 150);
}

#[test]
fn a_pipe_input_from_process_substitution_loses_no_item() {
    let env = TestEnv::new();
    env.write("items.jsonl", big_items(150));
    let bin = crate::util::BIN;
    let mut cmd = env.cmd();
    cmd.command = Command::new("bash");
    cmd.command.current_dir(env.path(".")).args([
        "-c",
        &format!("exec {bin} -i <(cat items.jsonl) --cache c.jsonl --capture text -- true"),
    ]);
    let out = cmd.spawn().wait_within(Duration::from_secs(60));
    out.success().stderr_has("ran 150 (150 succeeded");
    let records = parse_lines(&env.read("c.jsonl"), "cache");
    assert_eq!(records.len(), 150);
}

/// Runs the binary through `sh -c`, for redirections the test harness cannot give.
fn through_sh(env: &TestEnv, args: &str, stdin: String) -> crate::util::Output {
    let mut cmd = env.cmd();
    cmd.command = Command::new("sh");
    cmd.command
        .current_dir(env.path("."))
        .args(["-c", &format!("exec {} {args}", crate::util::BIN)]);
    cmd.stdin(stdin)
        .spawn()
        .wait_within(Duration::from_secs(60))
}

#[test]
fn stdout_opened_read_only_is_a_failed_write_not_a_silent_one() {
    let env = TestEnv::new();
    env.write("ro.txt", "");
    let input: String = (0..20).map(|i| format!("{i}\n")).collect();
    // `1<ro.txt`: every write to stdout fails with EBADF.
    let out = through_sh(
        &env,
        "-j 2 --cache c.jsonl -- sh -c 'echo {}' 1<ro.txt",
        input.clone(),
    );
    out.code(2)
        .stderr_has("cannot write to stdout: Bad file descriptor")
        .stderr_has("still go to the cache");
    assert_eq!(env.json_lines("c.jsonl").len(), 20);
    // Without a cache the records that could not be printed went nowhere: their items are
    // not done.
    let out = through_sh(&env, "-j 1 -- sh -c 'echo {}' 1<ro.txt", input.clone());
    out.code(2)
        .stderr_has("cannot write to stdout, the only place results go without --cache")
        .stderr_has("(0 succeeded, 0 failed)");
    // `>&-`: stdout closed at start is a stdout that refuses writes, not /dev/null.
    let out = through_sh(&env, "-j 1 -- sh -c 'echo {}' >&-", input.clone());
    out.code(2)
        .stderr_has("cannot write to stdout, the only place results go without --cache")
        .stderr_has("(0 succeeded, 0 failed)");
    let out = through_sh(&env, "--dry-run -- echo {} >&-", input.clone());
    out.code(2)
        .stderr_has("cannot write to stdout: Bad file descriptor");
    // /dev/null opened read-write (as daemon(3) leaves it) is still /dev/null, not closed.
    through_sh(&env, "-j 1 -- sh -c 'echo {}' 1<>/dev/null", input).success();
}

#[test]
fn stdout_on_a_full_device_loses_no_result() {
    let env = TestEnv::new();
    let input: String = (0..20).map(|i| format!("{i}\n")).collect();
    let out = through_sh(
        &env,
        "-j 2 --cache c.jsonl -- sh -c 'echo {}' > /dev/full",
        input.clone(),
    );
    out.code(2)
        .stderr_has("cannot write to stdout: No space left on device")
        .stderr_has("still go to the cache")
        .stderr_has("ran 20 (20 succeeded, 0 failed)");
    assert_eq!(
        out.stderr.matches("cannot write to stdout").count(),
        1,
        "reported once\n{}",
        out.report()
    );
    assert_eq!(env.json_lines("c.jsonl").len(), 20);
    // Without a cache stdout is where results go: the run stops starting items.
    let out = through_sh(&env, "-j 1 -- sh -c 'echo {}' > /dev/full", input);
    out.code(2)
        .stderr_has("cannot write to stdout, the only place results go without --cache");
    // The stdout thread's report comes back while the next items may already have started;
    // the run stops soon after, not at the end of the input.
    let ran: u32 = out
        .stderr
        .split("ran ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no summary\n{}", out.report()));
    assert!(ran < 10, "ran {ran} of 20\n{}", out.report());
}

#[test]
fn a_full_disk_under_the_failures_file_loses_no_result() {
    let env = TestEnv::new();
    let Some(disk) = SmallDisk::mount(&env, "64k") else {
        crate::util::skipped(
            "files::a_full_disk_under_the_failures_file_loses_no_result",
            "cannot mount a tmpfs here (needs root)",
        );
        return;
    };
    // Fill the disk: the failures file can still be created, but not written.
    let filler = std::fs::write(disk.0.join("filler"), vec![b'x'; 1 << 20]);
    assert!(filler.is_err(), "the 64k disk took 1 MiB");
    let failures = disk.0.join("failed.jsonl");
    let input: String = (0..20).map(|i| format!("{i}\n")).collect();
    let out = env
        .cmd()
        .args(["-j", "2", "--cache", "c.jsonl", "--failures"])
        .args([&failures])
        .args([
            "--",
            "sh",
            "-c",
            "[ $(($1 % 3)) = 0 ] && exit 3; echo {}",
            "sh",
        ])
        .stdin(input)
        .spawn()
        .wait_within(Duration::from_secs(60));
    out.code(2)
        .stderr_has("No space left on device")
        .stderr_has("reported on stderr only), the run goes on and will exit 2")
        .stderr_has("ran 20 (13 succeeded, 7 failed)")
        .stderr_has("failures: see stderr");
    assert_eq!(
        out.stderr.matches("cannot append to failures file").count(),
        1,
        "{}",
        out.report()
    );
    assert_eq!(out.stderr.matches("failed: exit: exit code 3").count(), 7);
    let mut cached: Vec<i64> = env
        .json_lines("c.jsonl")
        .iter()
        .map(|r| r["id"].as_str().unwrap().parse().unwrap())
        .collect();
    cached.sort();
    let expected: Vec<i64> = (0..20).filter(|i| i % 3 != 0).collect();
    assert_eq!(cached, expected);
    assert_eq!(out.records().len(), 13);
}
