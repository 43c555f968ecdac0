//! Pipelined persistent workers (issue 13): up to `--pipeline` items in flight per worker,
//! answered in order, none recorded against another item's key.

use serde_json::json;

use std::time::Duration;

use crate::util::{keys, wait_until, TestEnv};

/// A worker that echoes the key with `{"double": 2*n}`, and misbehaves once on request (a file
/// marks that it did, so the worker that replaces it behaves).
const WORKER: &str = r#"
import json, os, sys, time
with open("starts.log", "a") as f:
    f.write(os.environ["PARARUN_SLOT"] + "\n")
for line in sys.stdin:
    item = json.loads(line)
    action = item.get("do")
    once = action and not os.path.exists(action)
    if once:
        open(action, "w").close()
    if action == "crash" and once:
        os._exit(7)
    if action == "skip" and once:
        continue
    if action == "hang" and once:
        time.sleep(60)
    time.sleep(item.get("sleep", 0))
    print(json.dumps({"id": item["id"], "double": 2 * item.get("n", 0)}), flush=True)
"#;

fn worker(env: &TestEnv) -> String {
    env.write("worker.py", WORKER).to_str().unwrap().to_owned()
}

fn items(count: u32, special: &[(u32, &str)]) -> String {
    (1..=count)
        .map(|i| match special.iter().find(|(at, _)| *at == i) {
            Some((_, extra)) => format!("{{\"id\":{i},\"n\":{i},{extra}}}\n"),
            None => format!("{{\"id\":{i},\"n\":{i}}}\n"),
        })
        .collect()
}

/// Every record belongs to its key: the worker's answer for item n doubles n.
fn assert_in_step(env: &TestEnv) -> Vec<serde_json::Value> {
    let records = env.json_lines("c.jsonl");
    for record in &records {
        assert_eq!(record["double"], json!(2 * record["id"].as_i64().unwrap()));
    }
    records
}

fn failed_keys(env: &TestEnv) -> Vec<serde_json::Value> {
    let failures = env.json_lines("f.jsonl");
    failures.iter().map(|f| f["key"].clone()).collect()
}

#[test]
fn many_items_through_a_pipeline_give_one_correct_record_each() {
    let env = TestEnv::new();
    let w = worker(&env);
    let out = env
        .cmd()
        .args(["--persistent", "-j", "2", "--cache", "c.jsonl", "-q"])
        .args(["--", "python3", &w])
        .stdin(items(3000, &[]))
        .run();
    out.success();
    let mut ids: Vec<i64> = assert_in_step(&env)
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, (1..=3000).collect::<Vec<_>>());
    assert_eq!(env.read("starts.log").lines().count(), 2);
}

#[test]
fn a_worker_dying_mid_pipeline_loses_nothing() {
    let env = TestEnv::new();
    let w = worker(&env);
    let out = env
        .cmd()
        .args(["--persistent", "-j", "1", "--pipeline", "16"])
        .args(["--cache", "c.jsonl", "--failures", "f.jsonl"])
        .args(["--", "python3", &w])
        .stdin(items(200, &[(50, "\"do\":\"crash\"")]))
        .run();
    // Only the item the worker owed an answer fails; the ones behind it go to a new worker
    // without using up an attempt.
    out.code(1)
        .stderr_has("item 50 (<stdin>:50) failed: exit: the worker ended before answering")
        .stderr_has("ran 200 (199 succeeded, 1 failed)");
    let records = assert_in_step(&env);
    assert_eq!(records.len(), 199);
    assert!(!keys(&records).contains(&"50".to_owned()));
    assert_eq!(failed_keys(&env), [json!(50)]);
    assert_eq!(env.read("starts.log").lines().count(), 2);
}

#[test]
fn a_worker_out_of_step_in_a_pipeline_is_caught() {
    let env = TestEnv::new();
    let w = worker(&env);
    // Item 30 gets no answer: item 31's answer comes in its place.
    let out = env
        .cmd()
        .args(["--persistent", "-j", "1", "--pipeline", "8"])
        .args(["--cache", "c.jsonl", "--failures", "f.jsonl"])
        .args(["--", "python3", &w])
        .stdin(items(100, &[(30, "\"do\":\"skip\"")]))
        .run();
    out.code(1)
        .stderr_has("item 30 (<stdin>:30) failed: bad-output")
        .stderr_has("it is out of step")
        .stderr_has("ran 100 (99 succeeded, 1 failed)");
    assert_eq!(assert_in_step(&env).len(), 99);
    assert_eq!(failed_keys(&env), [json!(30)]);
}

#[test]
fn a_timeout_runs_from_when_an_item_is_the_oldest() {
    let env = TestEnv::new();
    let w = worker(&env);
    // Twenty quick items let the worker hold all 8 its pipeline allows; the eight items of
    // 0.4 s behind them are then sent at once. The last is answered 3.2 s after it was sent,
    // yet none waited 2 s as the oldest, except the one that hangs.
    let mut slow: Vec<(u32, &str)> = (21..=28).map(|i| (i, "\"sleep\":0.4")).collect();
    slow[3].1 = "\"do\":\"hang\"";
    let out = env
        .cmd()
        .args(["--persistent", "-j", "1", "--pipeline", "8"])
        .args([
            "--timeout",
            "2s",
            "--kill-after",
            "100ms",
            "--cache",
            "c.jsonl",
        ])
        .args(["--", "python3", &w])
        .stdin(items(28, &slow))
        .run();
    out.code(1)
        .stderr_has("item 24 (<stdin>:24) failed: timeout: timed out after 2.0s")
        .stderr_has("ran 28 (27 succeeded, 1 failed)");
    assert_eq!(assert_in_step(&env).len(), 27);
}

/// A worker that answers each line with how many lines it had been sent and not answered when
/// it read that one (it reads its stdin unbuffered, so it sees exactly what was sent).
const COUNTING: &str = r#"
import json, os, time
buf = b""
while True:
    chunk = os.read(0, 65536)
    if not chunk:
        break
    buf += chunk
    lines = buf.split(b"\n")
    buf = lines.pop()
    for line in lines:
        item = json.loads(line)
        time.sleep(0.001)
        print(json.dumps({"id": item["id"], "pending": len(lines)}), flush=True)
"#;

fn most_pending(env: &TestEnv, pipeline: &str) -> i64 {
    let w = env.write("counting.py", COUNTING);
    env.cmd()
        .args(["--persistent", "-j", "1", "--pipeline", pipeline])
        .args(["--cache", &format!("{pipeline}.jsonl"), "-q"])
        .args(["--", "python3", w.to_str().unwrap()])
        .stdin(items(40, &[]))
        .run()
        .success();
    let records = env.json_lines(&format!("{pipeline}.jsonl"));
    assert_eq!(records.len(), 40);
    records
        .iter()
        .map(|r| r["pending"].as_i64().unwrap())
        .max()
        .unwrap()
}

#[test]
fn pipeline_one_sends_the_next_item_only_after_the_answer() {
    let env = TestEnv::new();
    assert_eq!(most_pending(&env, "1"), 1);
    assert!(most_pending(&env, "8") > 1);
}

#[test]
fn a_worker_that_does_not_echo_keys_gets_one_item_at_a_time() {
    let env = TestEnv::new();
    let w = env.write(
        "noecho.py",
        COUNTING.replace("\"id\": item[\"id\"], ", "\"n\": item[\"id\"], "),
    );
    env.cmd()
        .args(["--persistent", "-j", "1", "--cache", "c.jsonl", "-q"])
        .args(["--", "python3", w.to_str().unwrap()])
        .stdin(items(20, &[]))
        .run()
        .success();
    for record in env.json_lines("c.jsonl") {
        assert_eq!(record["n"], record["id"]);
        assert_eq!(record["pending"], json!(1));
    }
}

#[test]
fn ctrl_c_leaves_the_items_in_flight_for_the_next_run() {
    let env = TestEnv::new();
    let w = worker(&env);
    let slow: Vec<(u32, &str)> = (1..=40).map(|i| (i, "\"sleep\":0.1")).collect();
    let run = || {
        env.cmd()
            .args([
                "--persistent",
                "-j",
                "1",
                "--pipeline",
                "8",
                "--cache",
                "c.jsonl",
            ])
            .args(["--", "python3", &w])
            .stdin(items(40, &slow))
    };
    let running = run().spawn();
    wait_until(Duration::from_secs(10), "a few records", || {
        env.read("c.jsonl").lines().count() >= 3
    });
    running.signal(libc::SIGINT);
    running.wait().code(130);
    let first = assert_in_step(&env).len();
    assert!(first < 40, "the run was not cut short");
    run().run().success();
    let mut ids: Vec<i64> = assert_in_step(&env)
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, (1..=40).collect::<Vec<_>>());
}

#[test]
fn workers_crashing_in_several_slots_fail_only_their_own_items() {
    let env = TestEnv::new();
    // Every 40th item crashes its worker, in four slots at once: a new worker starting in
    // one slot while another slot's dead worker is cleaned up must not be taken for what
    // held the dead one's pipe (it was, a few times in 8,000 items).
    let script = env.write(
        "crashy.py",
        "import json, os, sys\n\
         for line in sys.stdin:\n\
         \x20   item = json.loads(line)\n\
         \x20   if item['id'] % 40 == 0:\n\
         \x20       os._exit(3)\n\
         \x20   os.write(1, (json.dumps({'id': item['id'], 'double': 2 * item['id']}) + '\\n').encode())\n",
    );
    let input: String = (1..=4000).map(|i| format!("{{\"id\":{i}}}\n")).collect();
    let out = env
        .cmd()
        .args([
            "--persistent",
            "-j",
            "4",
            "-q",
            "--cache",
            "c.jsonl",
            "--failures",
            "f.jsonl",
        ])
        .args(["--", "python3", script.to_str().unwrap()])
        .stdin(input)
        .run();
    out.code(1);
    let failed = failed_keys(&env);
    assert_eq!(failed.len(), 100, "{failed:?}");
    assert!(
        failed.iter().all(|k| k.as_i64().unwrap() % 40 == 0),
        "{failed:?}"
    );
    assert_eq!(assert_in_step(&env).len(), 3900);
}

#[test]
fn loosely_equal_keys_in_flight_need_an_exact_echo() {
    let env = TestEnv::new();
    // 0.1 and 0.1000000000000000055511151231257827 are one double, "5" and 5 one text: a
    // worker that swaps their answers is out of step, and neither is recorded under the
    // other's key.
    // The first worker swaps the two answers; the one that replaces it answers in step.
    let script = env.write(
        "swap.py",
        "import sys, json, os\n\
         pending = []\n\
         for line in sys.stdin:\n\
         \x20   key = line.strip()[6:-1]\n\
         \x20   if key.isdigit() and int(key) >= 100 or os.path.exists('swapped'):\n\
         \x20       print('{\"id\":%s,\"for\":%s}' % (key, json.dumps(key)), flush=True)\n\
         \x20       continue\n\
         \x20   pending.append(key)\n\
         \x20   if len(pending) == 2:\n\
         \x20       open('swapped', 'w').close()\n\
         \x20       a, b = pending\n\
         \x20       print('{\"id\":%s,\"for\":%s}' % (b, json.dumps(b)), flush=True)\n\
         \x20       print('{\"id\":%s,\"for\":%s}' % (a, json.dumps(a)), flush=True)\n",
    );
    for pair in [
        ["0.1", "0.1000000000000000055511151231257827"],
        ["5", "\"5\""],
    ] {
        let env = TestEnv::new();
        // Twenty answers in step first: the worker then holds several items at once.
        let mut input: String = (100..120).map(|i| format!("{{\"id\":{i}}}\n")).collect();
        input += &format!("{{\"id\":{}}}\n{{\"id\":{}}}\n", pair[0], pair[1]);
        let out = env
            .cmd()
            .args(["--persistent", "-j", "1", "--cache", "c.jsonl"])
            .args(["--", "python3", script.to_str().unwrap()])
            .stdin(input)
            .run();
        out.stderr_has("the key of another item in flight");
        // Each record holds the key text its answer was computed for.
        for record in env.json_lines("c.jsonl") {
            assert_eq!(
                record["for"].as_str().unwrap(),
                record["id"].to_string(),
                "{record}"
            );
        }
    }
}

/// Answers read in place (scalars, no escapes) and answers parsed into a value give the same
/// records, byte for byte: the same answers through a worker and through a child per item
/// leave the same cache.
#[test]
fn answers_read_in_place_make_the_same_records_as_parsed_ones() {
    let env = TestEnv::new();
    let answers = [
        r#"{"id": 1, "n": 1E+05, "e": 2e-3, "z": 0e0, "s": "caf\u00e9"}"#,
        r#"{ "x" : "é ü ✓" , "id" : 2 , "t" : true , "f" : false , "n" : null }"#,
        r#"{"id": 3, "nested": {"a": [1, 2.50E3, {"b": "c"}]}, "big": 123456789012345678901234567890}"#,
        r#"{"id": 4, "dup": 1, "dup": 2}"#,
        r#"{"id": 5, "q": "a\"b", "slash": "\/"}"#,
        r#"{"n": -0, "f": 0.1000000000000000055511151231257827}"#,
        r#"{"id": 7.0}"#,
        r#"[8, {"k": 1}]"#,
        r#"{"id": 9, "a": {"x": 1, "x": 2}, "b": [{"y": 1, "y": 3}]}"#,
    ];
    // Past serde_json's nesting limit (128): not a result, on either path.
    let deep = format!(
        "{{{{\"id\": 10, \"deep\": {}{}}}}}",
        "[".repeat(140),
        "]".repeat(140)
    );
    let answers: Vec<&str> = answers.iter().copied().chain([deep.as_str()]).collect();
    let items: String = (1..=answers.len())
        .map(|i| format!("{{\"id\":{i}}}\n"))
        .collect();
    let table = serde_json::to_string(&answers).unwrap();
    let worker = env.write(
        "answers.py",
        format!(
            "import json, sys\nanswers = json.loads({table:?})\n\
             def answer(line):\n    return answers[json.loads(line)['id'] - 1]\n\
             if len(sys.argv) > 1:\n    print(answer(sys.argv[1]))\n    sys.exit(0)\n\
             for line in sys.stdin:\n    print(answer(line), flush=True)\n"
        ),
    );
    let worker = worker.to_str().unwrap();
    env.cmd()
        .args([
            "--persistent",
            "--cache",
            "by-worker.jsonl",
            "-q",
            "--",
            "python3",
            worker,
        ])
        .stdin(&items)
        .run()
        .code(1);
    env.cmd()
        .args([
            "--cache",
            "by-child.jsonl",
            "-q",
            "--",
            "python3",
            worker,
            "{}",
        ])
        .stdin(&items)
        .run()
        .code(1);
    let sorted = |name: &str| {
        let mut lines: Vec<String> = env.read(name).lines().map(str::to_owned).collect();
        lines.sort();
        lines
    };
    let by_worker = sorted("by-worker.jsonl");
    assert_eq!(by_worker.len(), answers.len() - 1);
    assert_eq!(by_worker, sorted("by-child.jsonl"));
    assert!(by_worker.contains(&r#"{"id":9,"a":{"x":2},"b":[{"y":3}]}"#.to_owned()));
    assert!(by_worker.contains(&r#"{"id":1,"n":1e+05,"e":2e-3,"z":0e+0,"s":"café"}"#.to_owned()));
}

/// A worker that records which slot ran each item; the item `{"slow": true}` waits until the
/// other worker has answered every quick item (a file counts them), or 20 s at most.
const SLOTS: &str = r#"
import json, os, sys, time
slot = os.environ["PARARUN_SLOT"]
for line in sys.stdin:
    item = json.loads(line)
    if item.get("slow"):
        deadline = time.time() + 20
        while time.time() < deadline and not os.path.exists("quick-done"):
            time.sleep(0.01)
    else:
        time.sleep(0.005)
        with open("quick.log", "a") as f:
            f.write(f"{item['id']}\n")
        if sum(1 for _ in open("quick.log")) == int(sys.argv[1]):
            open("quick-done", "w").close()
    print(json.dumps({"id": item["id"], "slot": slot}), flush=True)
"#;

#[test]
fn quick_items_are_not_queued_behind_a_slow_one() {
    let env = TestEnv::new();
    let w = env.write("slots.py", SLOTS);
    // The slow item comes first; with a fixed pipeline of 128, half the quick items would be
    // given to its worker and wait for it (20 s, then the test fails on their slot).
    let quick = 60;
    let mut input = String::from("{\"id\":0,\"slow\":true}\n");
    input.extend((1..=quick).map(|i| format!("{{\"id\":{i}}}\n")));
    env.cmd()
        .args(["--persistent", "-j", "2", "--cache", "c.jsonl", "-q"])
        .args(["--", "python3", w.to_str().unwrap(), &quick.to_string()])
        .stdin(input)
        .run()
        .success();
    let records = env.json_lines("c.jsonl");
    assert_eq!(records.len(), quick + 1);
    let slow_slot = &records.iter().find(|r| r["id"] == json!(0)).unwrap()["slot"];
    let behind: Vec<_> = (records.iter())
        .filter(|r| r["id"] != json!(0) && &r["slot"] == slow_slot)
        .map(|r| r["id"].clone())
        .collect();
    assert!(
        behind.is_empty(),
        "quick items given to the slow item's worker: {behind:?}"
    );
    // The slow item was answered after every quick one: it waited for them, not 20 s.
    assert_eq!(records.last().unwrap()["id"], json!(0));
}
