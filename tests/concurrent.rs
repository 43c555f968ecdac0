//! The concurrent protocol (issue 13): one worker holds many items at once and answers them
//! in any order, each answer naming its request's `pararun_id`.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::util::TestEnv;

fn async_worker() -> String {
    format!("{}/examples/async_worker.py", env!("CARGO_MANIFEST_DIR"))
}

fn concurrent(env: &TestEnv, pipeline: &str) -> crate::util::Cmd {
    env.cmd()
        .args([
            "--persistent",
            "--protocol",
            "concurrent",
            "--pipeline",
            pipeline,
        ])
        .args(["--cache", "c.jsonl", "--failures", "f.jsonl"])
}

/// Every record holds the item its answer echoed, so none landed on another key.
fn assert_own_items(env: &TestEnv) -> Vec<serde_json::Value> {
    let records = env.json_lines("c.jsonl");
    for record in &records {
        assert_eq!(record["item"]["id"], record["id"], "{record}");
    }
    records
}

fn failed_keys(env: &TestEnv) -> Vec<serde_json::Value> {
    let failures = env.json_lines("f.jsonl");
    failures.iter().map(|f| f["key"].clone()).collect()
}

#[test]
fn answers_out_of_order_land_on_their_own_items() {
    let env = TestEnv::new();
    // Later items wait less, so they are answered before earlier ones.
    let items: String = (0..600)
        .map(|i| {
            format!(
                "{{\"id\":{i},\"sleep\":{}}}\n",
                f64::from(9 - i % 10) / 100.0
            )
        })
        .collect();
    let out = concurrent(&env, "200")
        .args(["-j", "2", "--", "python3", &async_worker()])
        .stdin(items)
        .run();
    out.success();
    let records = assert_own_items(&env);
    let ids: Vec<i64> = records.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..600).collect::<Vec<_>>());
    assert_ne!(
        ids, sorted,
        "the answers came in input order; nothing was concurrent"
    );
}

#[test]
fn an_error_answer_fails_only_its_item() {
    let env = TestEnv::new();
    let items: String = (0..50)
        .map(|i| match i {
            17 => "{\"id\":17,\"sleep\":0.01,\"fail\":\"no such page\"}\n".to_owned(),
            _ => format!("{{\"id\":{i},\"sleep\":0.01}}\n"),
        })
        .collect();
    let out = concurrent(&env, "50")
        .args(["-j", "1", "--", "python3", &async_worker()])
        .stdin(items)
        .run();
    out.code(1)
        .stderr_has("the worker answered with an error: \"no such page\"")
        .stderr_has("ran 50 (49 succeeded, 1 failed)");
    assert_eq!(assert_own_items(&env).len(), 49);
    assert_eq!(failed_keys(&env), [json!(17)]);
}

/// A worker that answers item 10 with an id it was never sent, once (a file marks that it
/// did, so the worker that replaces it behaves).
const STRAY: &str = r#"
import json, os, sys
with open("starts.log", "a") as f:
    f.write("start\n")
for line in sys.stdin:
    request = json.loads(line)
    id = request["pararun_id"]
    if request["item"]["id"] == 10 and not os.path.exists("strayed"):
        open("strayed", "w").close()
        id += 1000
    print(json.dumps({"pararun_id": id, "result": {"item": request["item"]}}), flush=True)
"#;

/// Runs 40 items through `worker`, which gets out of step once: the run goes on with a new
/// worker, and one item fails.
fn out_of_step_once(env: &TestEnv, worker: &str) {
    let worker = env.write("worker.py", worker);
    let items: String = (0..40).map(|i| format!("{{\"id\":{i}}}\n")).collect();
    let out = concurrent(env, "4")
        .args(["-j", "1", "--", "python3", worker.to_str().unwrap()])
        .stdin(items)
        .run();
    out.code(1)
        .stderr_has("which is not in flight, so the worker is out of step")
        .stderr_has("ran 40 (39 succeeded, 1 failed)");
}

#[test]
fn an_unknown_id_is_caught_and_the_worker_replaced() {
    let env = TestEnv::new();
    out_of_step_once(&env, STRAY);
    assert_eq!(assert_own_items(&env).len(), 39);
    assert_eq!(failed_keys(&env), [json!(10)]);
    assert_eq!(env.read("starts.log").lines().count(), 2);
}

#[test]
fn a_timeout_counts_per_item_from_its_request() {
    let env = TestEnv::new();
    // Twenty items of 0.8 s sent at once all finish within the 8 s timeout (which leaves a
    // busy machine time to start Python: 4 s was not enough for a loaded 2-core runner),
    // though one at a time they would take 16 s; the one that waits 60 s fails alone.
    let items: String = (0..21)
        .map(|i| match i {
            5 => "{\"id\":5,\"sleep\":60}\n".to_owned(),
            _ => format!("{{\"id\":{i},\"sleep\":0.8}}\n"),
        })
        .collect();
    let started = Instant::now();
    let out = concurrent(&env, "21")
        .args(["-j", "1", "--timeout", "8s", "--kill-after", "100ms"])
        .args(["--", "python3", &async_worker()])
        .stdin(items)
        .run();
    out.code(1)
        .stderr_has("item 5 (<stdin>:6) failed: timeout")
        .stderr_has("ran 21 (20 succeeded, 1 failed)");
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(assert_own_items(&env).len(), 20);
    assert_eq!(failed_keys(&env), [json!(5)]);
}

/// A worker that answers item 10 twice, once (a file marks that it did, so the worker that
/// replaces it behaves).
const TWICE: &str = r#"
import json, os, sys
with open("starts.log", "a") as f:
    f.write("start\n")
for line in sys.stdin:
    request = json.loads(line)
    answer = json.dumps({"pararun_id": request["pararun_id"], "result": {"item": request["item"]}})
    print(answer, flush=True)
    if request["item"]["id"] == 10 and not os.path.exists("twice"):
        open("twice", "w").close()
        print(answer, flush=True)
"#;

#[test]
fn an_id_answered_twice_is_caught_and_the_worker_replaced() {
    let env = TestEnv::new();
    // Item 10's first answer stands; the repeat shows the worker out of step, which costs
    // the item it then owed (its oldest in flight) one attempt.
    out_of_step_once(&env, TWICE);
    let records = assert_own_items(&env);
    assert_eq!(records.len(), 39);
    assert!(records.iter().any(|r| r["id"] == 10));
    assert_eq!(failed_keys(&env).len(), 1);
    assert_ne!(failed_keys(&env)[0], json!(10));
    assert_eq!(env.read("starts.log").lines().count(), 2);
}
