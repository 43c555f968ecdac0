//! Real fault injection: the binary runs under libfiu's POSIX preload (`fiu-run -x`, Debian's
//! fiu-utils), whose failpoints make libc calls fail with a chosen errno.
//!
//! A failpoint fires for every caller in the process, so each test makes sure the failing
//! call is the one meant: failpoints that pararun's setup or its runtime would also hit
//! (`write`) are enabled once the run is under way and idle, with `fiu-ctrl`, for one call
//! only (`onetime`); the others (`fdatasync`, `open`, `fork`) are enabled from the start,
//! where the cache (or the watchdog) is their first and only caller. Children run without
//! the preload (`env -u LD_PRELOAD`).
//!
//! Skipped, with a note, where `fiu-run` is not installed; CI installs it.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::util::{keys, parse_lines, skipped, wait_until, Cmd, Output, TestEnv, BIN};

const LIMIT: Duration = Duration::from_secs(20);

/// Whether `fiu-run` is here; where it is not, `test` is reported as skipped.
fn fiu_installed(test: &str) -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("fiu-run").is_file()));
    if !found {
        skipped(test, "fiu-run is not installed (apt-get install fiu-utils)");
    }
    found
}

/// The remote control FIFOs' prefix, in the test's directory.
fn control(env: &TestEnv) -> PathBuf {
    env.path("fiu")
}

/// pararun under `fiu-run -x`, with `enable` commands applied before it starts, and remote
/// control over FIFOs in the test's directory.
fn under_fiu(env: &TestEnv, enable: &[&str]) -> Cmd {
    let mut cmd = env.cmd();
    cmd.command = Command::new("fiu-run");
    cmd.command
        .current_dir(env.path("."))
        .arg("-x")
        .arg("-f")
        .arg(control(env));
    for command in enable {
        cmd.command.args(["-c", command]);
    }
    cmd.command.arg(BIN);
    cmd
}

/// Runs a libfiu command in the running pararun `pid` (fiu-run execs it: same pid).
fn fiu_ctrl(env: &TestEnv, pid: i32, command: &str) {
    let status = Command::new("fiu-ctrl")
        .arg("-f")
        .arg(control(env))
        .args(["-c", command, &pid.to_string()])
        .status()
        .expect("run fiu-ctrl");
    assert!(status.success(), "fiu-ctrl -c {command:?} failed");
}

/// The child: prints a result; item `b` first says it started, then waits for the file `go`.
fn child(env: &TestEnv) -> String {
    env.script(
        "child.sh",
        r#"if [ "$1" = b ]; then touch b.started; while [ ! -e go ]; do sleep 0.01; done; fi
echo '{"v":1}'"#,
    )
}

/// What the run left is sound: the cache is whole JSON records only, and every record the
/// run reported as done (printed) is in it. Returns its keys.
#[track_caller]
fn cache_is_sound(env: &TestEnv, out: &Output) -> Vec<String> {
    let text = env.read("c.jsonl");
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "torn last line\n{}",
        out.report()
    );
    let cached = keys(&parse_lines(&text, "cache"));
    for key in keys(&out.records()) {
        assert!(
            cached.contains(&key),
            "{key} was printed but is not in the cache\n{}",
            out.report()
        );
    }
    cached
}

#[test]
fn a_cache_write_failing_with_eio_or_enospc_stops_the_run_losing_nothing() {
    if !fiu_installed("fiu::a_cache_write_failing_with_eio_or_enospc_stops_the_run_losing_nothing")
    {
        return;
    }
    for (errno, text) in [(5, "Input/output error"), (28, "No space left on device")] {
        let env = TestEnv::new();
        env.write("items.txt", "a\nb\nc\n");
        let child = child(&env);
        let running = under_fiu(&env, &[])
            .args([
                "-j",
                "1",
                "--no-progress",
                "-i",
                "items.txt",
                "--cache",
                "c.jsonl",
            ])
            .args(["--", "env", "-u", "LD_PRELOAD", &child, "<>"])
            .spawn();
        // With -j 1, b starts once a's record went to the cache and stdout; pararun then waits
        // for b's child, and nothing writes meanwhile: the next write(2) is b's cache record.
        wait_until(LIMIT, "b to start", || env.path("b.started").exists());
        let failpoint = format!("enable name=posix/io/rw/write,failinfo={errno},onetime");
        fiu_ctrl(&env, running.pid(), &failpoint);
        env.write("go", "");
        let out = running.wait_within(LIMIT);
        // The writer thread reports b's failed write while c may already have started: c is
        // then not written either (nothing is, after a failed write) and runs next time.
        out.code(2)
            .stderr_has(" (1 succeeded, 0 failed)")
            .stderr_has("item \"b\" (items.txt:2) is not done: its record could not be written")
            .stderr_has(&format!(
                "cannot append to cache c.jsonl (disk full or file too large?): {text}"
            ));
        assert_eq!(cache_is_sound(&env, &out), ["\"a\""], "{errno}");
        // The next run, without faults, does what is left.
        let out = env
            .cmd()
            .args(["-i", "items.txt", "--cache", "c.jsonl", "--", &child, "<>"])
            .run();
        out.success()
            .stderr_has("ran 2 (2 succeeded, 0 failed), 1 cached");
        assert_eq!(cache_is_sound(&env, &out), ["\"a\"", "\"b\"", "\"c\""]);
    }
}

#[test]
fn a_failing_fdatasync_stops_the_run_losing_nothing() {
    if !fiu_installed("fiu::a_failing_fdatasync_stops_the_run_losing_nothing") {
        return;
    }
    // Only the cache calls fdatasync (a new cache's directory gets fsync, which is not hit).
    for (mode, done) in [("always", 1), ("batch", 3)] {
        let env = TestEnv::new();
        let out = under_fiu(&env, &["enable name=posix/io/sync/fdatasync,failinfo=5"])
            .args(["-j", "1", "--fsync", mode, "--cache", "c.jsonl", "--"])
            .args(["env", "-u", "LD_PRELOAD", "sh", "-c", "echo {}"])
            .stdin("a\nb\nc\n")
            .spawn()
            .wait_within(LIMIT);
        out.code(2).stderr_has(
            "cannot sync cache c.jsonl to disk; records since the last sync may not survive a \
             power cut",
        );
        out.stderr_has("Input/output error")
            .stderr_has(&format!("({done} succeeded, 0 failed)"));
        // With `always` the first record's sync fails: it is in the file, so it is done, and
        // nothing more starts. With `batch` the sync at exit fails, after every record.
        let cached = cache_is_sound(&env, &out);
        assert_eq!(cached.len(), done, "--fsync {mode}\n{}", out.report());
        assert_eq!(out.records().len(), done, "--fsync {mode}");
    }
}

#[test]
fn a_failing_open_of_the_cache_or_failures_file_is_a_setup_error() {
    if !fiu_installed("fiu::a_failing_open_of_the_cache_or_failures_file_is_a_setup_error") {
        return;
    }
    // With -j given, the first open(2) pararun makes is its cache's, or without one its
    // failures file's (the default -j first reads the CPU quota from cgroup files, and a
    // directly run program is opened first to check its #! line: the command is a script).
    for (args, message) in [
        (
            ["--cache", "c.jsonl"],
            "cannot open cache c.jsonl for appending: Input/output error",
        ),
        (
            ["--failures", "f.jsonl"],
            "cannot open failures file f.jsonl for appending: Input/output error",
        ),
    ] {
        let env = TestEnv::new();
        let out = under_fiu(&env, &["enable name=posix/io/oc/open,failinfo=5,onetime"])
            .args(["-j", "1"])
            .args(args)
            .args(["--", "touch ran"])
            .stdin("a\n")
            .spawn()
            .wait_within(LIMIT);
        out.code(2).stderr_has(message);
        assert!(!env.path("ran").exists(), "an item ran");
        assert!(!env.path(args[1]).exists(), "{} was created", args[1]);
    }
}

#[test]
fn a_fork_failing_with_eagain_is_a_setup_error() {
    if !fiu_installed("fiu::a_fork_failing_with_eagain_is_a_setup_error") {
        return;
    }
    // pararun forks once, for its watchdog, before anything runs. Children are started with
    // posix_spawn, which glibc implements with clone(2) inside, out of libfiu's reach.
    let env = TestEnv::new();
    let out = under_fiu(&env, &["enable name=posix/proc/fork,failinfo=11"])
        .args(["--cache", "c.jsonl", "--", "touch", "ran"])
        .stdin("a\n")
        .spawn()
        .wait_within(LIMIT);
    out.code(2).stderr_has(
        "cannot start the watchdog process: Resource temporarily unavailable (os error 11)",
    );
    assert!(!env.path("ran").exists(), "an item ran");
    assert!(!env.path("c.jsonl").exists(), "the cache was created");
}
