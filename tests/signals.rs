//! Signals (issue 4): clean stops on SIGINT and SIGTERM, double Ctrl-C, broken pipes, and no
//! child left behind even when pararun is killed with SIGKILL.

use std::time::Duration;

use crate::util::{alive, keys, wait_until, TestEnv};

/// Starts `-j 3` children that record their pids and sleep; returns the run and the pids.
fn start_sleepers(
    env: &TestEnv,
    child_body: &str,
    extra: &[&str],
) -> (crate::util::Running, Vec<i32>) {
    let child = env.script("child.sh", child_body);
    let input: String = (1..=20).map(|i| format!("{i}\n")).collect();
    let running = env
        .cmd()
        .args(["-j", "3", "--cache", "c.jsonl"])
        .args(extra)
        .args(["--", child.as_str()])
        .stdin(input)
        .spawn();
    let pids = || -> Vec<i32> {
        env.read("pids")
            .lines()
            .filter_map(|l| l.parse().ok())
            .collect()
    };
    wait_until(Duration::from_secs(10), "three children", || {
        pids().len() >= 3
    });
    (running, pids())
}

const SLEEPER: &str = "echo $$ >> pids; sleep 300 & wait";

#[test]
fn sigterm_stops_children_and_exits_143() {
    let env = TestEnv::new();
    let (running, pids) = start_sleepers(&env, SLEEPER, &["--kill-after", "2s"]);
    running.signal(libc::SIGTERM);
    let out = running.wait();
    out.code(143)
        .stderr_has("SIGTERM: starting nothing new")
        .stderr_has("3 unfinished");
    for pid in pids {
        assert!(!alive(pid), "child {pid} outlived pararun");
    }
    // The sleeps were grandchildren in the children's groups: none may be left.
    let left = std::process::Command::new("pgrep")
        .args(["-f", "sleep 300"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&left.stdout)
            .lines()
            .all(|p| !is_ours(p, &env)),
        "a grandchild survived"
    );
}

/// Whether a pid's working directory is the test's (so parallel tests don't confuse us).
fn is_ours(pid: &str, env: &TestEnv) -> bool {
    std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd == env.path("."))
        || std::fs::read_link(format!("/proc/{pid}/cwd"))
            .is_ok_and(|cwd| cwd == env.path(".").canonicalize().unwrap())
}

#[test]
fn sigint_lets_finishing_children_record_and_exits_130() {
    let env = TestEnv::new();
    // Children that finish their item when asked to stop: their results must be cached.
    let body =
        "trap 'echo \"{\\\"graceful\\\":true}\"; exit 0' TERM; echo $$ >> pids; sleep 300 & wait";
    let (running, _) = start_sleepers(&env, body, &[]);
    running.signal(libc::SIGINT);
    let out = running.wait();
    out.code(130).stderr_has("SIGINT: starting nothing new");
    assert_eq!(
        keys(&env.json_lines("c.jsonl")).len(),
        3,
        "{}",
        out.report()
    );
    assert!(env
        .json_lines("c.jsonl")
        .iter()
        .all(|r| r["graceful"] == true));
}

/// Sends `first`, waits until every child has seen its SIGTERM (and, by trapping it, carried
/// on), then sends SIGINT: the children must be killed at once, not after `--kill-after`.
fn sigint_while_stopping_kills_at_once(first: i32, expected_code: i32) {
    let env = TestEnv::new();
    // Children that note SIGTERM and carry on: only SIGKILL ends them.
    let body = "trap 'echo $$ >> termed' TERM; echo $$ >> pids; while :; do sleep 0.05; done";
    let (running, pids) = start_sleepers(&env, body, &["--kill-after", "60s"]);
    running.signal(first);
    wait_until(
        Duration::from_secs(10),
        "SIGTERM to reach the children",
        || env.read("termed").lines().count() >= 3,
    );
    running.signal(libc::SIGINT);
    // "At once": well inside --kill-after's 60 s, which is what the run would take otherwise.
    let out = running.wait_within(Duration::from_secs(10));
    out.code(expected_code)
        .stderr_has("SIGINT while stopping: killing");
    for pid in pids {
        assert!(!alive(pid));
    }
}

#[test]
fn a_second_sigint_kills_at_once() {
    sigint_while_stopping_kills_at_once(libc::SIGINT, 130);
}

#[test]
fn sigint_after_sigterm_kills_at_once() {
    sigint_while_stopping_kills_at_once(libc::SIGTERM, 143);
}

#[test]
fn what_a_finished_child_left_running_is_killed() {
    // Regression (QA): a backgrounded grandchild with its output redirected outlived pararun.
    let env = TestEnv::new();
    let out = env
        .cmd()
        .args([
            "--",
            "sh",
            "-c",
            "sleep 300 >/dev/null 2>&1 & echo $! > bg.pid; echo {}",
        ])
        .stdin("a\n")
        .run();
    out.success();
    let pid: i32 = env.read("bg.pid").trim().parse().unwrap();
    wait_until(
        Duration::from_secs(5),
        "the background process to die",
        || !alive(pid),
    );
    // One that keeps the output pipe open does not hold the item up either.
    let started = std::time::Instant::now();
    env.cmd()
        .args(["--timeout", "20s", "--", "sh", "-c", "sleep 300 & echo {}"])
        .stdin("b\n")
        .run()
        .success();
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "waited for the background sleep"
    );
}

#[test]
fn sigkill_of_pararun_takes_its_children_along() {
    let env = TestEnv::new();
    let (running, pids) = start_sleepers(&env, "echo $$ >> pids; exec sleep 300", &[]);
    running.signal(libc::SIGKILL);
    running.wait();
    for pid in pids {
        wait_until(Duration::from_secs(5), "the orphaned child to die", || {
            !alive(pid)
        });
    }
}

#[test]
fn sigkill_of_pararun_reaches_descendants_that_left_the_group() {
    let env = TestEnv::new();
    // `setsid` puts the grandchild in a session (and group) of its own: the group kill misses
    // it, the watchdog's search by environment does not.
    let body = "setsid sleep 300 & echo $! >> escaped; echo $$ >> pids; exec sleep 300";
    let (running, pids) = start_sleepers(&env, body, &[]);
    wait_until(Duration::from_secs(10), "the escapees", || {
        env.read("escaped").lines().count() >= 3
    });
    running.signal(libc::SIGKILL);
    running.wait();
    let escaped: Vec<i32> = env
        .read("escaped")
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect();
    for pid in pids.into_iter().chain(escaped) {
        wait_until(Duration::from_secs(5), "a descendant to die", || {
            !alive(pid)
        });
    }
}

#[test]
fn a_closed_stdout_stops_the_run_cleanly() {
    let env = TestEnv::new();
    let input: String = (1..=2000).map(|i| format!("{i}\n")).collect();
    env.write("in.txt", input);
    let bin = crate::util::BIN;
    let mut cmd = env.cmd();
    cmd.command = std::process::Command::new("bash");
    cmd.command.current_dir(env.path(".")).args([
        "-c",
        &format!("set -o pipefail; {bin} -j 4 -i in.txt --cache c.jsonl -- sh -c 'echo {{}}' | head -n 5; echo \"status ${{PIPESTATUS[0]}}\" >&2"),
    ]);
    let out = cmd.run();
    out.success().stderr_has("status 141");
    assert_eq!(out.stdout.lines().count(), 5);
    let cached = env.json_lines("c.jsonl");
    assert!(cached.len() >= 5 && cached.len() < 2000, "{}", cached.len());
    // Everything cached is whole and skipped next time.
    let out = env
        .cmd()
        .args([
            "-q", "-i", "in.txt", "--cache", "c.jsonl", "--", "sh", "-c", "echo {}",
        ])
        .run();
    out.success();
    assert_eq!(env.json_lines("c.jsonl").len(), 2000);
}
