//! The process lifecycle at its edges (issue 10): an item ends within --timeout + --kill-after
//! whatever its child does, a descendant that escaped the group holds neither the item nor the
//! run, nothing an item started outlives the run, SIGHUP and Ctrl-Z, and capped output.

use std::time::{Duration, Instant};

use crate::util::{alive, wait_until, TestEnv};

/// The pids written one per line to `name` by the children.
fn pids(env: &TestEnv, name: &str) -> Vec<i32> {
    env.read(name)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Waits (up to 3 s) until none of `pids` is alive.
#[track_caller]
fn all_gone(pids: &[i32], what: &str) {
    assert!(!pids.is_empty(), "no pid of {what} was recorded");
    wait_until(Duration::from_secs(3), what, || {
        pids.iter().all(|&p| !alive(p))
    });
}

/// A daemon that leaves the child's group (`setsid`), records its pid, and sleeps.
const DAEMON: &str = "setsid sh -c 'echo $$ >> daemons; exec sleep 60'";

#[test]
fn a_setsid_daemon_holding_stdout_does_not_hold_a_timed_out_item() {
    let env = TestEnv::new();
    let started = Instant::now();
    let script = format!("{DAEMON} & sleep 60");
    let out = env
        .cmd()
        .args(["--timeout", "1s", "--kill-after", "1s", "--capture", "text"])
        .args(["--", "sh", "-c", &script])
        .stdin("1\n")
        .run();
    let took = started.elapsed();
    out.code(1).stderr_has("timeout");
    // --timeout + --kill-after + the drain is ~2.5 s; the daemon would hold it for 60.
    assert!(
        took < Duration::from_secs(15),
        "took {took:?}\n{}",
        out.report()
    );
    all_gone(&pids(&env, "daemons"), "the escaped daemon");
}

#[test]
fn an_escaped_holder_of_the_pipes_does_not_hold_a_finished_item() {
    let env = TestEnv::new();
    let started = Instant::now();
    let script = format!(
        "{DAEMON} & while [ ! -s daemons ]; do sleep 0.01; done; echo '{{\"done\": true}}'"
    );
    let out = env
        .cmd()
        .args(["--cache", "c.jsonl", "--", "sh", "-c", &script])
        .stdin("1\n2\n")
        .run();
    out.success();
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{}",
        out.report()
    );
    assert_eq!(env.json_lines("c.jsonl").len(), 2);
    all_gone(&pids(&env, "daemons"), "the escaped daemons");
}

#[test]
fn a_daemon_with_its_descriptors_closed_does_not_outlive_the_run() {
    let env = TestEnv::new();
    // The child waits for the daemon's pid, so the daemon surely ran before the run ends.
    let script = format!(
        "{DAEMON} </dev/null >/dev/null 2>&1 & while [ ! -s daemons ]; do sleep 0.01; done; \
         echo '{{}}'"
    );
    env.cmd()
        .args(["-q", "--", "sh", "-c", &script])
        .stdin("1\n")
        .run()
        .success();
    all_gone(&pids(&env, "daemons"), "the daemon");
}

#[test]
fn children_that_ignore_sigterm_or_stop_themselves_still_time_out() {
    for body in [
        "trap '' TERM; echo $$ >> kids; sleep 60 & wait; sleep 60",
        "echo $$ >> kids; kill -STOP $$; echo '{}'",
    ] {
        let env = TestEnv::new();
        let started = Instant::now();
        let out = env
            .cmd()
            .args([
                "--timeout",
                "1s",
                "--kill-after",
                "1s",
                "--",
                "sh",
                "-c",
                body,
            ])
            .stdin("1\n")
            .run();
        out.code(1).stderr_has("timeout");
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{body}\n{}",
            out.report()
        );
        all_gone(&pids(&env, "kids"), body);
    }
}

#[test]
fn sighup_stops_cleanly_with_a_summary_and_exit_129() {
    let env = TestEnv::new();
    let input: String = (1..=10).map(|i| format!("{i}\n")).collect();
    let running = env
        .cmd()
        .args(["-j", "2", "--cache", "c.jsonl", "--kill-after", "1s", "--"])
        .args([
            "sh",
            "-c",
            "echo $$ >> kids; case $1 in 1|2) echo '{}';; *) sleep 60;; esac",
            "sh",
        ])
        .stdin(input)
        .spawn();
    wait_until(
        Duration::from_secs(10),
        "two items done, two running",
        || env.read("c.jsonl").lines().count() == 2 && pids(&env, "kids").len() >= 4,
    );
    running.signal(libc::SIGHUP);
    let out = running.wait();
    out.code(129)
        .stderr_has("SIGHUP: starting nothing new")
        .stderr_has("2 unfinished");
    assert_eq!(env.json_lines("c.jsonl").len(), 2);
    all_gone(&pids(&env, "kids"), "the children");
}

/// The state letter of a process (`T` when stopped).
fn state(pid: i32) -> char {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit(')').next()?.trim_start().chars().next())
        .unwrap_or('?')
}

#[test]
fn ctrl_z_pauses_every_child_and_sigcont_resumes_them() {
    let env = TestEnv::new();
    let running = env
        .cmd()
        .args(["-j", "2", "--capture", "text", "--"])
        .args([
            "sh",
            "-c",
            "echo $$ >> kids; while [ ! -e go ]; do sleep 0.05; done; echo ok",
        ])
        .stdin("1\n2\n")
        .spawn();
    wait_until(Duration::from_secs(10), "two children", || {
        pids(&env, "kids").len() == 2
    });
    running.signal(libc::SIGTSTP);
    let kids = pids(&env, "kids");
    let stopped = || state(running.pid()) == 'T' && kids.iter().all(|&k| state(k) == 'T');
    let started = Instant::now();
    while !stopped() && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(10));
    }
    if !stopped() {
        // Nothing is left stopped behind a failed test.
        for &pid in kids.iter().chain([running.pid()].iter()) {
            unsafe {
                libc::kill(pid, libc::SIGCONT);
                libc::kill(pid, libc::SIGKILL);
            }
        }
        panic!("pararun and its children did not all stop within 20 s");
    }
    std::fs::write(env.path("go"), "").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        kids.iter().all(|&k| state(k) == 'T'),
        "a child ran on while paused"
    );
    running.signal(libc::SIGCONT);
    let out = running.wait();
    out.success()
        .stderr_has("SIGTSTP: pausing 2 running children");
    assert_eq!(out.records().len(), 2);
}

#[test]
fn a_child_printing_without_end_fails_as_bad_output_at_the_cap() {
    let env = TestEnv::new();
    let started = Instant::now();
    let out = env
        .cmd()
        .args(["--max-output-bytes", "1M", "--capture", "text", "--", "yes"])
        .stdin("1\n")
        .run();
    out.code(1)
        .stderr_has("bad-output")
        .stderr_has("passed 1 MiB on stdout");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{}",
        out.report()
    );
}

#[test]
fn a_worker_answer_past_the_cap_fails_and_the_worker_restarts() {
    let env = TestEnv::new();
    let worker = "import sys\nfor line in sys.stdin:\n    n = 200000 if 'b' in line else 10\n    print('{\"x\": \"' + 'a' * n + '\"}', flush=True)\n";
    env.write("w.py", worker);
    let out = env
        .cmd()
        .args([
            "--persistent",
            "--max-output-bytes",
            "100K",
            "--",
            "python3",
            "w.py",
        ])
        .stdin("a\nbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\n")
        .run();
    out.code(1).stderr_has("passed 100 KiB on stdout");
    assert_eq!(out.records().len(), 1, "{}", out.report());
}

#[test]
fn a_long_stderr_line_passes_through_whole_and_the_item_succeeds() {
    let env = TestEnv::new();
    let out = env
        .cmd()
        .args(["--", "python3", "-c"])
        .args(["import sys; sys.stderr.write('e' * 5_000_000); sys.stderr.flush(); print('{}')"])
        .stdin("1\n")
        .run();
    out.success();
    assert!(
        out.stderr.contains(&"e".repeat(5_000_000)),
        "stderr was cut"
    );
}

/// Starts a run whose children record their pids and sleep; `nested` runs them through an
/// inner pararun.
fn sleepers(env: &TestEnv, nested: bool) -> crate::util::Running {
    let sleeper = "echo $$ >> kids; setsid sh -c 'echo $$ >> kids; exec sleep 300' & sleep 300";
    let inner = format!(
        "echo $$ >> inner; printf '1\\n2\\n' | {} -j 2 -- sh -c \"{sleeper}\"",
        crate::util::BIN
    );
    let script = if nested { inner } else { sleeper.to_owned() };
    env.cmd()
        .args(["-j", "2", "--", "sh", "-c", &script])
        .stdin("a\nb\n")
        .spawn()
}

#[test]
fn sigkill_of_an_outer_run_kills_the_inner_runs_children_too() {
    let env = TestEnv::new();
    let running = sleepers(&env, true);
    wait_until(Duration::from_secs(10), "eight sleepers", || {
        pids(&env, "kids").len() == 8
    });
    let mut everyone = pids(&env, "kids");
    everyone.extend(pids(&env, "inner"));
    running.signal(libc::SIGKILL);
    let _ = running.wait();
    all_gone(&everyone, "the inner runs and their children");
}

#[test]
fn killing_one_run_never_touches_another_runs_children() {
    let (one, two) = (TestEnv::new(), TestEnv::new());
    let (first, second) = (sleepers(&one, false), sleepers(&two, false));
    wait_until(Duration::from_secs(10), "both runs' sleepers", || {
        pids(&one, "kids").len() == 4 && pids(&two, "kids").len() == 4
    });
    first.signal(libc::SIGKILL);
    let _ = first.wait();
    all_gone(&pids(&one, "kids"), "the killed run's children");
    assert!(
        pids(&two, "kids").iter().all(|&p| alive(p)),
        "the other run lost a child"
    );
    second.signal(libc::SIGTERM);
    let _ = second.wait();
    all_gone(&pids(&two, "kids"), "the second run's children");
}

#[test]
fn a_worker_that_dies_while_a_background_job_holds_its_stdout_does_not_hang_the_run() {
    for worker in [
        "sleep 60 & while read -r l; do [ \"$l\" = '\"2\"' ] && exit 3; echo '{}'; done",
        "setsid sleep 60 & read -r l; echo '{}'; exit 0",
    ] {
        let env = TestEnv::new();
        let started = Instant::now();
        let script = format!("echo $$ >> kids; {worker}");
        let out = env
            .cmd()
            .args(["-j", "1", "--persistent", "--", "bash", "-c", &script])
            .stdin("1\n2\n3\n")
            .run();
        // The second worker may exit before its next item is sent (it is then replaced, and
        // every item succeeds) or after (that item fails): either way, nothing hangs.
        assert!(matches!(out.code, Some(0 | 1)), "{}", out.report());
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{worker}\n{}",
            out.report()
        );
        assert!(out.records().len() >= 2, "{}", out.report());
    }
}

#[test]
fn a_holder_of_the_pipe_with_a_cleared_environment_is_killed_too() {
    let env = TestEnv::new();
    let script = "env -i setsid sh -c 'echo $$ >> daemons; exec sleep 60' & \
                  while [ ! -s daemons ]; do sleep 0.01; done; echo '{}'";
    env.cmd()
        .args(["-q", "--", "sh", "-c", script])
        .stdin("1\n")
        .run()
        .success();
    all_gone(&pids(&env, "daemons"), "the daemon without a marker");
}

#[test]
fn a_signal_while_the_cache_loads_is_a_clean_stop() {
    let env = TestEnv::new();
    let cache: String = (0..1_000_000)
        .map(|i| format!("{{\"id\":{i}}}\n"))
        .collect();
    env.write("c.jsonl", cache);
    let input: String = (0..1_000_010)
        .map(|i| format!("{{\"id\":{i}}}\n"))
        .collect();
    env.write("in.jsonl", input);
    let running = env
        .cmd()
        .args([
            "-i",
            "in.jsonl",
            "--cache",
            "c.jsonl",
            "--kill-after",
            "1s",
            "--",
        ])
        .args(["sh", "-c", "sleep 60"])
        .spawn();
    // Handlers are installed within a few ms of the start; the load takes a second or more.
    // Wait until the kernel shows SIGTERM caught (SigCgt in /proc), then send it.
    let pid = running.pid();
    wait_until(Duration::from_secs(10), "a SIGTERM handler", || {
        catches(pid, libc::SIGTERM)
    });
    running.signal(libc::SIGTERM);
    running
        .wait()
        .code(143)
        .stderr_has("SIGTERM: starting nothing new")
        .stderr_has("pararun: ran ");
}

#[test]
fn chatty_stderr_passes_through_fast_and_whole() {
    let env = TestEnv::new();
    let out = env
        .cmd()
        .args(["--", "sh", "-c", "seq 1 200000 >&2; echo '{}'"])
        .stdin("1\n")
        .run();
    out.success();
    let expected: String = (1..=200_000).map(|i| format!("{i}\n")).collect();
    assert!(
        out.stderr.contains(&expected),
        "stderr lost or reordered lines"
    );
}

#[test]
fn a_stdout_nobody_reads_holds_up_neither_the_cache_nor_a_signal() {
    let env = TestEnv::new();
    let (reader, writer) = std::io::pipe().unwrap();
    let mut command = env.cmd().command;
    command
        .args(["-j", "2", "--cache", "c.jsonl", "--kill-after", "1s", "--"])
        .args([
            "python3",
            "-c",
            "import json; print(json.dumps({'pad': 'x' * 100000}))",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(writer)
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn().unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        let items: String = (1..=10).map(|i| format!("{i}\n")).collect();
        stdin.write_all(items.as_bytes()).unwrap();
    }
    // The first record fills the pipe; every record still reaches the cache.
    wait_until(Duration::from_secs(20), "ten records in the cache", || {
        env.read("c.jsonl").lines().count() == 10
    });
    let started = Instant::now();
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "stuck on stdout"
    );
    assert!(status.code().is_some(), "{status:?}");
    drop(reader);
}

#[test]
fn a_stderr_nobody_reads_holds_up_neither_timeouts_nor_the_end_of_the_run() {
    let env = TestEnv::new();
    let (reader, writer) = std::io::pipe().unwrap();
    let mut input = String::from("hang\n");
    input.extend((2..=3000).map(|i| format!("f{i}\n")));
    env.write("mix.txt", input);
    let mut command = env.cmd().command;
    command
        .args([
            "-j",
            "2",
            "--no-progress",
            "--timeout",
            "1s",
            "--kill-after",
            "1s",
        ])
        .args(["--capture", "text", "-i", "mix.txt", "--", "sh", "-c"])
        .arg("case $1 in hang) echo $$ >> kids; exec sleep 60;; *) exit 1;; esac")
        .args(["sh", "{}"])
        .stdout(std::process::Stdio::null())
        .stderr(writer);
    let started = Instant::now();
    let mut child = command.spawn().unwrap();
    // 2,999 failure lines fill the pipe long before the end; nobody reads it.
    wait_until(Duration::from_secs(30), "pararun to end", || {
        matches!(child.try_wait(), Ok(Some(_)))
    });
    assert!(started.elapsed() < Duration::from_secs(30));
    all_gone(&pids(&env, "kids"), "the timed-out child");
    drop(reader);
}

/// Whether process `pid` has a handler for `signal` (its bit in /proc's `SigCgt` mask).
fn catches(pid: i32, signal: i32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (signal - 1)) != 0)
}
