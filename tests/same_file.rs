//! One file in two roles (issue 20): any two of input, cache, failures file and stdout that
//! are the same regular file are refused at start, whatever the path; a last line is cut off
//! the cache or the failures file only when it does not parse; one nesting limit for JSON.

use std::fs::{File, OpenOptions};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{Cmd, TestEnv};

const QUICK: Duration = Duration::from_secs(10);

/// A child that leaves a mark, so that a test can tell that none ran.
const MARK_AND_FAIL: &str = "touch ran; exit 1";
const MARK_AND_ANSWER: &str = "touch ran; echo '{}'";

fn items(n: usize) -> String {
    (1..=n).map(|i| format!("{{\"id\":{i}}}\n")).collect()
}

/// Runs `cmd` with stdout appending to `stdout` (as `>>` opens it) and stdin from `stdin` (or
/// /dev/null). Fails the test, after killing pararun, if it runs past [`QUICK`] or `watched`
/// grows past 1 MB: a run that feeds on its own output never ends by itself.
fn run(mut cmd: Cmd, stdout: &Path, stdin: Option<&Path>, watched: &Path) -> (i32, String) {
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(stdout)
        .unwrap();
    let input = match stdin {
        Some(path) => Stdio::from(File::open(path).unwrap()),
        None => Stdio::null(),
    };
    let mut child = cmd
        .command
        .stdin(input)
        .stdout(out)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        let size = std::fs::metadata(watched).map_or(0, |m| m.len());
        if start.elapsed() > QUICK || size > 1 << 20 {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "pararun ran for {:?} and {} grew to {size} bytes: it feeds on its own output",
                start.elapsed(),
                watched.display()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let code = out
        .status
        .code()
        .unwrap_or_else(|| panic!("pararun died: {:?}\n{stderr}", out.status));
    (code, stderr)
}

/// Asserts a refusal at start: exit 2, the message, no child ran, and `file` unchanged.
#[track_caller]
fn refused(env: &TestEnv, (code, stderr): (i32, String), says: &str, file: &str, was: &[u8]) {
    assert_eq!(code, 2, "expected a refusal (exit 2)\n{stderr}");
    assert!(stderr.contains(says), "stderr lacks {says:?}\n{stderr}");
    assert!(stderr.contains("give each its own file"), "{stderr}");
    assert!(!env.path("ran").exists(), "a child ran\n{stderr}");
    assert_eq!(
        std::fs::read(env.path(file)).unwrap(),
        was,
        "{file} changed"
    );
}

/// Every line of a file parses as JSON on its own, as `jq` reads it.
#[track_caller]
fn every_line_parses(env: &TestEnv, name: &str) -> Vec<Value> {
    let text = env.read(name);
    assert!(
        text.ends_with('\n'),
        "{name} ends without a newline: {text:?}"
    );
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{name}: {e}: {l:?}\n{text}")))
        .collect()
}

#[test]
fn input_as_failures_file_is_refused_not_fed_for_ever() {
    let env = TestEnv::new();
    let was = items(3);
    env.write("F", &was);
    std::os::unix::fs::symlink("F", env.path("link")).unwrap();
    for input in ["F", "link"] {
        let cmd = env
            .cmd()
            .args(["-i", input, "--failures", "F", "--shell", MARK_AND_FAIL]);
        let out = run(cmd, &env.path("out"), None, &env.path("F"));
        let says = format!("input {input} and failures file F are the same file");
        refused(&env, out, &says, "F", was.as_bytes());
    }
    // Stdin is the failures file (`< F`).
    let cmd = env
        .cmd()
        .args(["--failures", "F", "--shell", MARK_AND_FAIL]);
    let out = run(cmd, &env.path("out"), Some(&env.path("F")), &env.path("F"));
    refused(
        &env,
        out,
        "and failures file F are the same file",
        "F",
        was.as_bytes(),
    );
}

#[test]
fn cache_as_failures_file_is_refused_so_failures_never_count_as_done() {
    let env = TestEnv::new();
    env.write("in.jsonl", "{\"key\":1}\n{\"key\":2}\n");
    let was = b"{\"key\":0,\"v\":1}\n";
    env.write("X", was);
    std::fs::hard_link(env.path("X"), env.path("also-X")).unwrap();
    for failures in ["X", "also-X"] {
        let args = ["-i", "in.jsonl", "--key-field", "key", "--cache", "X"];
        let cmd = env.cmd().args(args).args(["--failures", failures]);
        let cmd = cmd.args(["--shell", MARK_AND_FAIL]);
        let out = run(cmd, &env.path("out"), None, &env.path("X"));
        let says = format!("cache X and failures file {failures} are the same file");
        refused(&env, out, &says, "X", was);
    }
}

#[test]
fn stdout_as_cache_input_or_failures_file_is_refused() {
    let env = TestEnv::new();
    env.write("in.jsonl", items(2));
    let was = b"{\"id\":0}\n";
    env.write("out.jsonl", was);
    // `--cache out.jsonl >> out.jsonl`: every record would be there twice.
    let cmd = env.cmd().args(["-i", "in.jsonl", "--cache", "out.jsonl"]);
    let out = run(
        cmd.args(["--shell", MARK_AND_ANSWER]),
        &env.path("out.jsonl"),
        None,
        &env.path("out.jsonl"),
    );
    refused(
        &env,
        out,
        "and cache out.jsonl are the same file",
        "out.jsonl",
        was,
    );
    // `--failures out.jsonl >> out.jsonl`, and a dry run into its own cache.
    let cmd = env
        .cmd()
        .args(["-i", "in.jsonl", "--failures", "out.jsonl"]);
    let out = run(
        cmd.args(["--shell", MARK_AND_FAIL]),
        &env.path("out.jsonl"),
        None,
        &env.path("out.jsonl"),
    );
    refused(
        &env,
        out,
        "and failures file out.jsonl are the same file",
        "out.jsonl",
        was,
    );
    let cmd = env
        .cmd()
        .args(["--dry-run", "-i", "in.jsonl", "--cache", "out.jsonl"]);
    let out = run(
        cmd.args(["--shell", MARK_AND_ANSWER]),
        &env.path("out.jsonl"),
        None,
        &env.path("out.jsonl"),
    );
    refused(
        &env,
        out,
        "and cache out.jsonl are the same file",
        "out.jsonl",
        was,
    );
    // `-i in.jsonl >> in.jsonl`: records printed would come back as items.
    let cmd = env
        .cmd()
        .args(["-i", "in.jsonl", "--shell", MARK_AND_ANSWER]);
    let out = run(cmd, &env.path("in.jsonl"), None, &env.path("in.jsonl"));
    refused(
        &env,
        out,
        "and input in.jsonl are the same file",
        "in.jsonl",
        items(2).as_bytes(),
    );
}

#[test]
fn stdin_as_cache_is_refused() {
    let env = TestEnv::new();
    let was = items(2);
    env.write("out.jsonl", &was);
    let cmd = env
        .cmd()
        .args(["--cache", "out.jsonl", "--shell", MARK_AND_ANSWER]);
    let path = env.path("out.jsonl");
    let out = run(cmd, &env.path("stdout"), Some(&path), &path);
    refused(
        &env,
        out,
        "and cache out.jsonl are the same file",
        "out.jsonl",
        was.as_bytes(),
    );
}

#[test]
fn devices_and_distinct_files_are_no_conflict() {
    let env = TestEnv::new();
    env.write("in.jsonl", items(2));
    // /dev/null as input and as stdout: a device holds nothing to corrupt or read back.
    let cmd = env
        .cmd()
        .args(["-i", "/dev/null", "--shell", MARK_AND_ANSWER]);
    let (code, stderr) = run(cmd, Path::new("/dev/null"), None, &env.path("in.jsonl"));
    assert_eq!(code, 0, "{stderr}");
    // A cache that does not exist yet is no other file; a file's copy is another file.
    std::fs::copy(env.path("in.jsonl"), env.path("copy.jsonl")).unwrap();
    let cmd = env
        .cmd()
        .args(["-i", "in.jsonl", "--cache", "new.jsonl", "--failures", "f"]);
    let cmd = cmd.args(["--shell", MARK_AND_ANSWER]);
    let (code, stderr) = run(cmd, &env.path("copy.jsonl"), None, &env.path("copy.jsonl"));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(every_line_parses(&env, "new.jsonl").len(), 2);
    assert_eq!(every_line_parses(&env, "copy.jsonl").len(), 4);
}

#[test]
fn a_whole_last_record_of_another_key_field_is_kept() {
    let env = TestEnv::new();
    // Written with --key-field url; the last record is whole, only its newline is missing.
    let was = b"{\"url\":\"a\",\"r\":1}\n{\"url\":\"b\",\"r\":2}";
    env.write("c.jsonl", was);
    env.write("empty", "");
    let out = env
        .cmd()
        .args(["-i", "empty", "--cache", "c.jsonl", "true"])
        .run();
    out.success();
    let left = String::from_utf8_lossy(&std::fs::read(env.path("c.jsonl")).unwrap()).into_owned();
    assert_eq!(
        left.as_bytes(),
        was,
        "the whole last record was cut\n{}",
        out.report()
    );
    assert!(!out.stderr.contains("cut off"), "{}", out.report());
    out.stderr_has("no \"id\" field: a record of another --key-field? it is kept");
    // The next record goes on a line of its own, after the newline the last one lacked.
    env.write("in.jsonl", items(1));
    let args = ["-i", "in.jsonl", "--cache", "c.jsonl", "echo {}"];
    env.cmd().args(args).run().success();
    let lines = every_line_parses(&env, "c.jsonl");
    assert_eq!(lines[1], serde_json::json!({"url": "b", "r": 2}));
    assert_eq!(lines[2], serde_json::json!({"id": 1}));
}

#[test]
fn a_torn_failures_file_is_repaired_before_the_next_failure() {
    let env = TestEnv::new();
    env.write("in.jsonl", items(3));
    // A whole record, then one a kill cut short.
    let whole = "{\"key\":1,\"reason\":\"exit\",\"attempts\":1}\n";
    env.write("f.jsonl", format!("{whole}{{\"key\":2,\"rea"));
    let args = ["-i", "in.jsonl", "--failures", "f.jsonl", "exit 1"];
    env.cmd().args(args).run().code(1);
    let lines = every_line_parses(&env, "f.jsonl");
    assert_eq!(
        lines.len(),
        4,
        "the torn line was cut and 3 failures appended"
    );
    // So every attempt counts: with the limit at 2, key 1 (2 attempts) is given up, and keys
    // 2 and 3 (one attempt each) run once more.
    let out = env
        .cmd()
        .args([
            "-i",
            "in.jsonl",
            "--failures",
            "f.jsonl",
            "--give-up-after",
            "2",
        ])
        .args(["echo '<id>' >> ran; exit 1"])
        .run();
    out.code(1);
    let ran: Vec<Value> = every_line_parses(&env, "ran");
    assert_eq!(ran.len(), 2, "{}", out.report());
    assert!(!ran.contains(&serde_json::json!(1)), "{}", out.report());
    // A whole last line without its newline gets one before the next record.
    env.write("g.jsonl", whole.trim_end());
    let args = ["-i", "in.jsonl", "--failures", "g.jsonl", "exit 1"];
    env.cmd().args(args).run().code(1);
    assert_eq!(every_line_parses(&env, "g.jsonl").len(), 4);
}

/// A JSON object nested `depth` levels deep, the object itself counted.
fn nested(depth: usize, field: &str) -> String {
    let inner = depth - 1;
    format!(
        "{{{field},\"v\":{}{}}}",
        "[".repeat(inner),
        "]".repeat(inner)
    )
}

#[test]
fn one_nesting_limit_for_input_results_and_cache() {
    let env = TestEnv::new();
    env.write("one.jsonl", items(1));
    let limit = "nested deeper than 127 levels of arrays and objects";
    for depth in [127, 128, 200, 100_000] {
        let accepted = depth <= 127;
        let line = nested(depth, "\"id\":1");
        // Input, without and with a field of it in the command.
        env.write("in.jsonl", format!("{line}\n"));
        for command in [
            &["--stdin", "cat >/dev/null; echo 1"][..],
            &[": '<v>'; echo 1"],
        ] {
            let out = env.cmd().args(["-i", "in.jsonl"]).args(command).run();
            match accepted {
                true => out.success(),
                false => out.code(1).stderr_has(limit),
            };
        }
        // A result.
        env.write("result.json", nested(depth, "\"r\":1"));
        let out = env
            .cmd()
            .args(["-i", "one.jsonl", "--stdin", "cat result.json"])
            .run();
        match accepted {
            true => out.success(),
            false => out.code(1).stderr_has(limit),
        };
        // A cache line: its item is done only if the line is within the limit.
        env.write("c.jsonl", format!("{line}\n"));
        let args = [
            "-i",
            "one.jsonl",
            "--cache",
            "c.jsonl",
            "touch ran; echo {}",
        ];
        let _ = std::fs::remove_file(env.path("ran"));
        let out = env.cmd().args(args).run();
        out.success();
        assert_eq!(
            env.path("ran").exists(),
            !accepted,
            "{depth}\n{}",
            out.report()
        );
        if !accepted {
            out.stderr_has(limit);
        }
    }
}

#[test]
fn stderr_as_the_cache_is_refused_and_stdout_with_stderr_is_fine() {
    let env = TestEnv::new();
    let cache = env.write("c.jsonl", "");
    let log = std::fs::OpenOptions::new()
        .append(true)
        .open(&cache)
        .unwrap();
    let out = std::process::Command::new(crate::util::BIN)
        .args(["--cache", "c.jsonl", "--", "echo", "{}"])
        .current_dir(env.path("."))
        .stdin(std::process::Stdio::null())
        .stderr(log)
        .status()
        .unwrap();
    assert_eq!(out.code(), Some(2));
    let text = env.read("c.jsonl");
    assert!(
        text.contains("stderr") && text.contains("the same file"),
        "{text}"
    );
    assert!(!text.contains("\"id\""), "a record was written: {text}");
    // `> log 2>&1`: stdout and stderr on one file is an ordinary log.
    let log = std::fs::File::create(env.path("log.txt")).unwrap();
    let both = log.try_clone().unwrap();
    let status = std::process::Command::new(crate::util::BIN)
        .args(["--capture", "text", "--", "echo"])
        .current_dir(env.path("."))
        .stdin(std::fs::File::open(env.write("in.txt", "a\n")).unwrap())
        .stdout(log)
        .stderr(both)
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(0), "{}", env.read("log.txt"));
}

#[test]
fn an_item_that_is_its_own_key_at_the_depth_limit_is_refused_before_it_runs() {
    let env = TestEnv::new();
    let deep = format!("{}{}\n", "[".repeat(127), "]".repeat(127));
    env.write("in.jsonl", deep);
    let out = env
        .cmd()
        .args([
            "--format",
            "jsonl",
            "-i",
            "in.jsonl",
            "--",
            "sh",
            "-c",
            "touch ran; echo '{}'",
        ])
        .run();
    out.code(1).stderr_has("bad-input");
    assert!(
        !env.path("ran").exists(),
        "the child ran: its result could never be cached"
    );
}
