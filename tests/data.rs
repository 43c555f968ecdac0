//! Data kept exactly: numbers, byte order marks, over-long lines, output that is not UTF-8, and
//! an input that cannot be read to its end.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::util::{keys, TestEnv};

/// What a child prints: a float with more digits than a double holds, and a 98-bit integer.
const EXACT: &str =
    r#"{"x": 0.1000000000000000055511151231257827, "big": 123456789012345678901234567890}"#;

/// Keys that a double or a 64-bit integer cannot hold, and two spellings of one.
const NUMBER_KEYS: [&str; 7] = [
    "0.1",
    "1e400",
    "3.141592653589793238",
    "123456789012345678901234567890",
    "1",
    "1.0",
    "-0",
];

#[test]
fn numbers_reach_the_cache_exactly_and_resume_without_reruns() {
    let env = TestEnv::new();
    let input: String = NUMBER_KEYS
        .iter()
        .map(|k| format!("{{\"id\":{k}}}\n"))
        .collect();
    env.write("in.jsonl", input);
    let child = env.script(
        "child.sh",
        &format!("echo \"$PARARUN_KEY\" >> ran.log; echo '{EXACT}'"),
    );
    let run = || {
        env.cmd()
            .args(["-i", "in.jsonl", "--cache", "c.jsonl", "--", child.as_str()])
            .run()
    };
    let out = run();
    out.success().stderr_has("ran 7 (7 succeeded, 0 failed)");
    // Every digit survives; only the exponent is spelled the one way serde_json writes it.
    let mut expected: Vec<String> = NUMBER_KEYS
        .iter()
        .map(|k| {
            let k = if *k == "1e400" { "1e+400" } else { k };
            format!(
                "{{\"id\":{k},\"x\":0.1000000000000000055511151231257827,\
                 \"big\":123456789012345678901234567890}}"
            )
        })
        .collect();
    expected.sort();
    let sorted = |text: &str| {
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        lines.sort();
        lines
    };
    assert_eq!(sorted(&env.read("c.jsonl")), expected, "{}", out.report());
    assert_eq!(sorted(&out.stdout), expected);

    // The keys read back from the cache are the input's keys: nothing runs, nothing is added.
    let again = run();
    again
        .success()
        .stderr_has("ran 0 (0 succeeded, 0 failed), 7 cached");
    assert_eq!(env.read("ran.log").lines().count(), 7);
    assert_eq!(sorted(&env.read("c.jsonl")), expected);
}

#[test]
fn a_worker_that_reads_numbers_as_doubles_is_not_out_of_step() {
    // Python reads 3.141592653589793238 as a float and echoes 3.141592653589793: the same
    // item, though not the same text.
    let env = TestEnv::new();
    let worker = env.write(
        "w.py",
        "import json, sys\n\
         for line in sys.stdin:\n    \
             item = json.loads(line)\n    \
             print(json.dumps({'id': item['id'], 'ok': 1}), flush=True)\n",
    );
    env.write(
        "in.jsonl",
        "{\"id\":3.141592653589793238}\n{\"id\":123456789012345678901234567890}\n",
    );
    let out = env
        .cmd()
        .args([
            "--persistent",
            "-j",
            "1",
            "-i",
            "in.jsonl",
            "--cache",
            "c.jsonl",
        ])
        .args(["--", "python3", worker.to_str().unwrap()])
        .run();
    out.success();
    let cache = env.read("c.jsonl");
    assert!(
        cache.contains("{\"id\":3.141592653589793238,\"ok\":1}"),
        "{cache}"
    );
    assert!(cache.contains("{\"id\":123456789012345678901234567890,\"ok\":1}"));
}

#[test]
fn a_byte_order_mark_starts_neither_the_input_nor_the_cache() {
    let env = TestEnv::new();
    env.write("in.jsonl", "\u{FEFF}{\"id\":1}\n{\"id\":2}\n{\"id\":3}\n");
    env.write("c.jsonl", "\u{FEFF}{\"id\":1,\"v\":\"old\"}\n");
    let child = env.script("child.sh", "echo '{\"v\":\"new\"}'");
    let out = env
        .cmd()
        .args(["-i", "in.jsonl", "--cache", "c.jsonl", "--", child.as_str()])
        .run();
    // Read as JSONL (not as three plain lines), and the cached key 1 is found.
    out.success()
        .stderr_has("ran 2 (2 succeeded, 0 failed), 1 cached");
    assert!(!out.stderr.contains("unreadable"), "{}", out.report());
    assert_eq!(keys(&out.records()), ["2", "3"]);
}

#[test]
fn an_over_long_input_line_fails_alone_and_the_run_goes_on() {
    let env = TestEnv::new();
    let pad = "x".repeat(2 << 20);
    env.write(
        "in.jsonl",
        format!("{{\"id\":1}}\n{{\"id\":2,\"pad\":\"{pad}\"}}\n{{\"id\":3}}\n"),
    );
    let child = env.script("child.sh", "echo '{}'");
    let out = env
        .cmd()
        .args([
            "-i",
            "in.jsonl",
            "--cache",
            "c.jsonl",
            "--failures",
            "f.jsonl",
        ])
        .args(["--max-line-bytes", "1M", "--", child.as_str()])
        .run();
    out.code(1)
        .stderr_has("in.jsonl:2: item failed: bad-input: the line is 2 MiB (2097169 bytes), over --max-line-bytes (1 MiB)")
        .stderr_has("ran 3 (2 succeeded, 1 failed)");
    assert_eq!(keys(&env.json_lines("c.jsonl")), ["1", "3"]);
    let failures = env.json_lines("f.jsonl");
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0]["reason"], "bad-input");
    assert_eq!(failures[0]["line"], 2);
}

#[test]
fn an_over_long_cache_line_is_damage_and_its_item_runs_again() {
    let env = TestEnv::new();
    let pad = "x".repeat(2 << 20);
    env.write(
        "c.jsonl",
        format!("{{\"id\":1}}\n{{\"id\":2,\"v\":\"{pad}\"}}\n"),
    );
    env.write("in.jsonl", "{\"id\":1}\n{\"id\":2}\n");
    let child = env.script("child.sh", "echo '{}'");
    let out = env
        .cmd()
        .args([
            "-i",
            "in.jsonl",
            "--cache",
            "c.jsonl",
            "--max-line-bytes",
            "1M",
        ])
        .args(["--", child.as_str()])
        .run();
    out.success()
        .stderr_has("c.jsonl:2: skipped 1 unreadable cache line (a line of 2 MiB, over --max-line-bytes (1 MiB))")
        .stderr_has("ran 1 (1 succeeded, 0 failed), 1 cached");
}

#[test]
fn a_record_too_long_to_read_back_is_not_written() {
    let env = TestEnv::new();
    let child = env.script("child.sh", "head -c 3000 /dev/zero | tr '\\0' x");
    let out = env
        .cmd()
        .args([
            "--cache",
            "c.jsonl",
            "--capture",
            "text",
            "--max-line-bytes",
            "2K",
        ])
        .args(["--", child.as_str()])
        .stdin("a\n")
        .run();
    out.code(1).stderr_has(
        "bad-output: the record would be 3 KiB (3022 bytes), over --max-line-bytes (2 KiB)",
    );
    assert_eq!(env.read("c.jsonl"), "");
}

#[test]
fn max_line_bytes_takes_sizes_and_rejects_the_rest() {
    let env = TestEnv::new();
    for good in ["512K", "64M", "1G", "2048"] {
        env.cmd()
            .args(["--max-line-bytes", good, "--capture", "text", "--", "true"])
            .stdin("a\n")
            .run()
            .success();
    }
    for bad in ["0", "12Q", "1.5M", "1T"] {
        env.cmd()
            .args(["--max-line-bytes", bad, "--", "true"])
            .run()
            .code(2)
            .stderr_has("--max-line-bytes");
    }
}

#[test]
fn output_that_is_not_utf8_fails_the_item_unaltered() {
    let env = TestEnv::new();
    let child = env.script("child.sh", "printf '{\"a\": \"caf\\351\"}\\n'");
    for capture in ["json", "text"] {
        let out = env
            .cmd()
            .args([
                "--cache",
                "c.jsonl",
                "--capture",
                capture,
                "--",
                child.as_str(),
            ])
            .stdin("1\n")
            .run();
        out.code(1).stderr_has(
            "bad-output: the output is not valid UTF-8: byte offset 10 starts an invalid \
             sequence (e9)",
        );
        assert_eq!(env.read("c.jsonl"), "", "--capture {capture}");
    }
    // A persistent worker's answer is held to the same rule.
    let worker = env.script(
        "w.sh",
        "while read l; do printf '{\"a\": \"\\377\"}\\n'; done",
    );
    env.cmd()
        .args(["--persistent", "--cache", "c.jsonl", "--", worker.as_str()])
        .stdin("1\n")
        .run()
        .code(1)
        .stderr_has("the output is not valid UTF-8: byte offset 7");
    assert_eq!(env.read("c.jsonl"), "");
}

#[test]
fn an_unreadable_input_is_an_error_naming_it() {
    let env = TestEnv::new();
    std::fs::create_dir(env.path("items")).unwrap();
    // Found once the input is opened, before anything is read or run (the reader thread's
    // own errors are covered by the reset socket below).
    for format in ["auto", "jsonl"] {
        env.cmd()
            .args(["-i", "items", "--format", format, "--", "true"])
            .run()
            .code(2)
            .stderr_has("pararun: input items is a directory");
    }
}

/// A loopback TCP connection whose accepted end is pararun's stdin.
fn socket_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    (client, server)
}

/// Closes a TCP connection with a reset (SO_LINGER 0): the peer's next read fails with
/// ECONNRESET, a real I/O error in the middle of an input.
fn reset(stream: TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt reads a plain struct of the given size from our stack.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt: {}", std::io::Error::last_os_error());
}

#[test]
fn a_read_error_mid_input_lets_running_children_finish_then_exits_2() {
    let env = TestEnv::new();
    let (mut client, server) = socket_pair();
    let child = env.script(
        "child.sh",
        "touch started.$PARARUN_KEY\nwhile [ ! -e go ]; do sleep 0.02; done\necho '{\"done\":1}'",
    );
    let mut running = env
        .cmd()
        .args(["-j", "3", "--cache", "c.jsonl", "--", child.as_str()])
        .stdin_from(Stdio::from(OwnedFd::from(server)))
        .spawn();
    let stderr = Arc::new(Mutex::new(String::new()));
    let mut pipe = running.child.stderr.take().unwrap();
    let sink = stderr.clone();
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n @ 1..) = pipe.read(&mut chunk) {
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&chunk[..n]));
        }
    });
    client.write_all(b"{\"id\":1}\n{\"id\":2}\n").unwrap();
    crate::util::wait_until(Duration::from_secs(20), "both children to start", || {
        env.path("started.1").exists() && env.path("started.2").exists()
    });
    reset(client);
    crate::util::wait_until(Duration::from_secs(20), "the input error", || {
        stderr
            .lock()
            .unwrap()
            .contains("letting 2 running children finish")
    });
    env.write("go", "");
    let out = running.wait();
    let stderr = stderr.lock().unwrap().clone();
    assert_eq!(out.code, Some(2), "{stderr}");
    assert!(
        stderr.contains("pararun: cannot read input <stdin> at line 3: Connection reset by peer"),
        "{stderr}"
    );
    // Not an end of input: the children were not stopped, and both results were kept.
    assert_eq!(keys(&env.json_lines("c.jsonl")), ["1", "2"], "{stderr}");
}
