//! The files a run keeps: checked once opened (a FIFO, a device or a directory where a file
//! belongs is refused at start, never waited on or written), FIFO and pipe inputs read once,
//! and writes to stdout or the failures file that fail without losing a result.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::util::{parse_lines, TestEnv};

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
        .args(["-i", "items.fifo", "--cache", "c.jsonl", "--capture", "text"])
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
