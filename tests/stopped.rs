//! A pararun that is stopped or waiting (issue 20): a signal ends `--lock-wait` at once with
//! its own status; a SIGSTOPped pararun does not turn what its children finished meanwhile into
//! timeouts; `--rate` does not hold the end of a run back by one interval.

use std::io::{BufRead, BufReader};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{wait_until, Running, TestEnv};

/// How many lines a file the children append to has.
fn count(env: &TestEnv, name: &str) -> usize {
    env.read(name).lines().count()
}

/// SIGSTOPs pararun (its children run on) once `started` lines are in `started.log`, holds it
/// stopped until `finished` lines are in `finished.log` and `held` has passed (past the items'
/// `--timeout`: what the scenario is about, not a synchronisation), then SIGCONTs it.
fn stop_while_children_finish(env: &TestEnv, running: &Running, counts: (usize, usize), held: u64) {
    let (started, finished) = counts;
    let held = Duration::from_secs(held);
    wait_until(Duration::from_secs(15), "the items to start", || {
        count(env, "started.log") >= started
    });
    running.signal(libc::SIGSTOP);
    let stopped = Instant::now();
    wait_until(Duration::from_secs(15), "the items to finish", || {
        count(env, "finished.log") >= finished
    });
    while stopped.elapsed() < held {
        std::thread::sleep(Duration::from_millis(50));
    }
    running.signal(libc::SIGCONT);
}

/// The failures file's reasons, by key.
fn failure_reasons(env: &TestEnv) -> Vec<(String, String)> {
    let mut reasons: Vec<(String, String)> = env
        .json_lines("failures.jsonl")
        .iter()
        .map(|f| (f["key"].to_string(), f["reason"].to_string()))
        .collect();
    reasons.sort();
    reasons
}

#[test]
fn children_that_finished_while_pararun_was_stopped_are_not_timeouts() {
    let env = TestEnv::new();
    // Items 1-3 answer after 1 s, within their 2 s; item 4 is still running past its
    // timeout when pararun is continued, and times out as it should.
    let child = env.script(
        "child.sh",
        "echo \"$1\" >> started.log\n[ \"$1\" = 4 ] && exec sleep 30\nsleep 1\n\
         echo '{\"ok\": true}'\necho \"$1\" >> finished.log",
    );
    let running = env
        .cmd()
        .args(["-j", "4", "--timeout", "2s", "--kill-after", "1s"])
        .args(["--cache", "c.jsonl", "--failures", "failures.jsonl", "--"])
        .args([child.as_str(), "{}"])
        .stdin("1\n2\n3\n4\n")
        .spawn();
    stop_while_children_finish(&env, &running, (4, 3), 3);
    let out = running.wait_within(Duration::from_secs(20));
    // 1: one item failed (item 4), not all four.
    out.code(1);
    assert_eq!(env.json_lines("c.jsonl").len(), 3, "{}", out.report());
    let expected = vec![("\"4\"".to_owned(), "\"timeout\"".to_owned())];
    assert_eq!(failure_reasons(&env), expected, "{}", out.report());
}

/// A worker that logs each item, answers it after 1 s (echoing its key, or with its
/// `pararun_id` under `--protocol concurrent`), then logs that it answered.
const SLOW_WORKER: &str = r#"
import json, sys, time
for line in sys.stdin:
    request = json.loads(line)
    with open("started.log", "a") as f:
        f.write(line)
    time.sleep(1)
    if "pararun_id" in request:
        answer = {"pararun_id": request["pararun_id"], "result": {"ok": True}}
    else:
        answer = {"id": request["id"], "ok": True}
    print(json.dumps(answer), flush=True)
    with open("finished.log", "a") as f:
        f.write(line)
"#;

/// Two items on two workers that answer within their `--timeout` while pararun is stopped:
/// both answers stand. (3 s: a loaded machine may take a while to start Python, and the clock
/// runs from the request.)
fn answers_in_the_pipe_stand(protocol: &str) {
    let env = TestEnv::new();
    let worker = env.write("worker.py", SLOW_WORKER);
    let running = env
        .cmd()
        .args(["-j", "2", "--persistent", "--protocol", protocol])
        .args(["--timeout", "3s", "--kill-after", "1s"])
        .args(["--cache", "c.jsonl", "--failures", "failures.jsonl", "--"])
        .args(["python3", worker.to_str().unwrap()])
        .stdin("{\"id\": 1}\n{\"id\": 2}\n")
        .spawn();
    stop_while_children_finish(&env, &running, (2, 2), 4);
    let out = running.wait_within(Duration::from_secs(20));
    out.success();
    let records = env.json_lines("c.jsonl");
    assert_eq!(records.len(), 2, "{}", out.report());
    assert!(
        records.iter().all(|r| r.to_string().contains("true")),
        "{records:?}"
    );
    assert_eq!(failure_reasons(&env), vec![], "{}", out.report());
}

#[test]
fn ordered_answers_written_while_pararun_was_stopped_are_not_timeouts() {
    answers_in_the_pipe_stand("ordered");
}

#[test]
fn concurrent_answers_written_while_pararun_was_stopped_are_not_timeouts() {
    answers_in_the_pipe_stand("concurrent");
}

/// Runs pararun on a cache whose lock this test holds, with `--lock-wait 10m`; once it says
/// it waits, sends `signal` and returns its exit status and how long it took to exit.
fn signal_during_lock_wait(signal: i32) -> (Option<i32>, Duration, TestEnv) {
    let env = TestEnv::new();
    let holder = std::fs::File::create(env.path("c.jsonl")).unwrap();
    holder.lock().unwrap();
    let mut running = env
        .cmd()
        .args(["--cache", "c.jsonl", "--lock-wait", "10m", "--"])
        .args(["sh", "-c", "echo ran >> ran.log; echo '{}'"])
        .stdin("1\n")
        .spawn();
    let (tx, lines) = mpsc::channel();
    let stderr = running.child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let said = lines
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_default();
    assert!(said.contains("--lock-wait"), "no waiting note: {said:?}");
    let signalled = Instant::now();
    running.signal(signal);
    let out = running.wait_within(Duration::from_secs(10));
    let took = signalled.elapsed();
    drop(holder);
    (out.code, took, env)
}

#[test]
fn a_signal_ends_the_lock_wait_at_once_with_its_own_status() {
    for (signal, status) in [
        (libc::SIGINT, 130),
        (libc::SIGTERM, 143),
        (libc::SIGHUP, 129),
    ] {
        let (code, took, env) = signal_during_lock_wait(signal);
        assert_eq!(code, Some(status), "signal {signal}");
        assert!(
            took < Duration::from_secs(3),
            "signal {signal}: exited after {took:?}"
        );
        assert_eq!(count(&env, "ran.log"), 0, "signal {signal}: a child ran");
        assert_eq!(
            env.read("c.jsonl"),
            "",
            "signal {signal}: the cache was written"
        );
    }
}

/// Runs `--rate 1/m` (one start a minute) on `input` with `extra` flags; returns the records
/// cached and how long the run took.
fn rate_run(input: &str, extra: &[&str]) -> (Vec<Value>, Duration) {
    let env = TestEnv::new();
    let started = Instant::now();
    let out = env
        .cmd()
        .args(["--rate", "1/m", "--cache", "c.jsonl"])
        .args(extra)
        .args(["--", "echo", "{}"])
        .stdin(input)
        .spawn()
        .wait_within(Duration::from_secs(30));
    let took = started.elapsed();
    out.success();
    (env.json_lines("c.jsonl"), took)
}

#[test]
fn the_rate_does_not_hold_back_the_end_of_a_run() {
    // One item starts at once; the run ends with it, not a minute later.
    let (records, took) = rate_run("1\n", &[]);
    assert_eq!(records.len(), 1);
    assert!(
        took < Duration::from_secs(10),
        "one item at 1/m took {took:?}"
    );
    // In input order (`-k`), and three at once within a burst of three.
    let (records, took) = rate_run("1\n2\n3\n", &["-k", "--burst", "3"]);
    assert_eq!(records.len(), 3);
    assert!(
        took < Duration::from_secs(10),
        "a burst of 3 at 1/m took {took:?}"
    );
}
