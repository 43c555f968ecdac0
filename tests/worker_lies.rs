//! Workers whose answers could be taken for another item's (issue 20): an answer past
//! `--max-output-bytes` that names its item by its leading `pararun_id` fails that item alone,
//! and the worker, still in step, keeps the others.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::util::TestEnv;

/// A concurrent-protocol worker that reads the whole batch of requests (for items 1 to `n`
/// less those already failed: a worker started after one was replaced is not sent those),
/// then answers the item
/// with `id` 4 first with a result of `big` bytes (its id first, as pararun's Python worker
/// writes it), then the others, each naming its pid. `endless` makes the big answer a line
/// that never ends.
const WORKER: &str = r#"
import json, os, sys
n, big, endless = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
last = len(sys.argv) > 4 and sys.argv[4] == "last"
if os.path.exists("f.jsonl"):
    with open("f.jsonl") as f:
        n -= len([line for line in f if line.strip()])
requests = [json.loads(sys.stdin.readline()) for _ in range(n)]
out = sys.stdout
for r in sorted(requests, key=lambda r: r["item"]["id"] != 4):
    if r["item"]["id"] == 4 and last:
        # The id last: JSON's field order is the worker's choice.
        out.write('{"result":{"blob":"' + "x" * big + '"}, "pararun_id": %d}\n' % r["pararun_id"])
    elif r["item"]["id"] == 4:
        out.write('{"pararun_id":%d,"result":{"blob":"' % r["pararun_id"])
        while endless:
            out.write("x" * 65536)
        out.write("x" * big + '"}}\n')
    else:
        out.write(json.dumps({"pararun_id": r["pararun_id"], "result": {"pid": os.getpid()}}) + "\n")
    out.flush()
sys.stdin.read()
"#;

fn run(env: &TestEnv, n: usize, big: usize, endless: bool) -> crate::util::Output {
    run_with(env, n, big, endless, "first")
}

fn run_with(env: &TestEnv, n: usize, big: usize, endless: bool, id: &str) -> crate::util::Output {
    env.write("worker.py", WORKER);
    let items: String = (1..=n).map(|i| format!("{{\"id\":{i}}}\n")).collect();
    env.cmd()
        .args(["--persistent", "--protocol", "concurrent", "-j", "1"])
        .args(["--pipeline", &n.to_string(), "--max-output-bytes", "10K"])
        .args(["--cache", "c.jsonl", "--failures", "f.jsonl", "--"])
        .args(["python3", "worker.py", &n.to_string(), &big.to_string()])
        .args([if endless { "1" } else { "0" }, id])
        .stdin(items)
        .run()
}

fn key(v: &Value) -> i64 {
    v["key"].as_i64().or_else(|| v["id"].as_i64()).unwrap()
}

#[test]
fn an_oversized_answer_fails_its_own_item_and_the_worker_keeps_the_others() {
    let env = TestEnv::new();
    // 1 MiB: many reads past the 10 KiB cap, so the rest of the line is dropped as it comes.
    let out = run(&env, 6, 1 << 20, false);
    out.code(1);
    let records = env.json_lines("c.jsonl");
    let mut done: Vec<i64> = records.iter().map(key).collect();
    done.sort_unstable();
    assert_eq!(done, [1, 2, 3, 5, 6], "{}", out.report());
    let pids: Vec<&Value> = records.iter().map(|r| &r["pid"]).collect();
    assert!(
        pids.windows(2).all(|w| w[0] == w[1]),
        "the worker was replaced (pids {pids:?}); {}",
        out.report()
    );
    let failures = env.json_lines("f.jsonl");
    assert_eq!(failures.len(), 1, "{failures:?}");
    let failure = &failures[0];
    assert_eq!(key(failure), 4);
    assert_eq!(failure["reason"], "bad-output");
    assert_eq!(failure["attempts"], 1);
    let detail = failure["detail"].as_str().unwrap();
    assert!(
        detail.contains("10 KiB") && detail.contains("--max-output-bytes"),
        "{detail}"
    );
}

#[test]
fn an_oversized_answer_with_its_id_last_fails_its_own_item_alone() {
    let env = TestEnv::new();
    let out = run_with(&env, 6, 1 << 14, false, "last");
    out.code(1);
    let records = env.json_lines("c.jsonl");
    let mut done: Vec<i64> = records.iter().map(key).collect();
    done.sort_unstable();
    assert_eq!(done, [1, 2, 3, 5, 6], "{}", out.report());
    let failures = env.json_lines("f.jsonl");
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(
        (key(&failures[0]), &failures[0]["attempts"]),
        (4, &json!(1))
    );
}

#[test]
fn an_oversized_answer_that_never_ends_costs_its_own_item_and_a_new_worker() {
    let env = TestEnv::new();
    let started = Instant::now();
    let out = run(&env, 4, 0, true);
    out.code(1);
    let mut done: Vec<i64> = env.json_lines("c.jsonl").iter().map(key).collect();
    done.sort_unstable();
    // The items in flight beside it went to the new worker, on the same attempt.
    assert_eq!(done, [1, 2, 3], "{}", out.report());
    let failures = env.json_lines("f.jsonl");
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(
        (key(&failures[0]), &failures[0]["attempts"]),
        (4, &json!(1))
    );
    // Reading on until the line ends would never end; waiting for the worker to exit on its
    // own at the end would take --kill-after (5 s).
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}: {}",
        started.elapsed(),
        out.report()
    );
}
