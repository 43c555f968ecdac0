//! Persistent workers (issue 6): one process per slot, one line in and one line out per item,
//! restarted when they die, time out or answer nonsense.

use serde_json::json;

use crate::util::{keys, TestEnv};

/// A worker that logs its start, answers `{"double": 2*n}` for `{"id":..,"n":n}` items (or the
/// length of a string item), and misbehaves on request.
const WORKER: &str = r#"
import json, os, sys, time
with open("starts.log", "a") as f:
    f.write(os.environ["PARARUN_SLOT"] + "\n")
for line in sys.stdin:
    item = json.loads(line)
    if isinstance(item, str):
        print(json.dumps({"len": len(item), "slot": os.environ["PARARUN_SLOT"]}), flush=True)
        continue
    action = item.get("do")
    if action == "crash" and not os.path.exists("crashed"):
        open("crashed", "w").close()
        print("crashing", file=sys.stderr, flush=True)
        os._exit(7)
    if action == "hang" and not os.path.exists("hung"):
        open("hung", "w").close()
        time.sleep(60)
    if action == "garbage":
        print("this is not json", flush=True)
        continue
    print(json.dumps({"double": 2 * item.get("n", 0)}), flush=True)
"#;

fn worker(env: &TestEnv) -> String {
    env.write("worker.py", WORKER).to_str().unwrap().to_owned()
}

#[test]
fn items_go_to_long_lived_workers() {
    let env = TestEnv::new();
    let w = worker(&env);
    let input: String = (1..=50)
        .map(|i| format!("{{\"id\":{i},\"n\":{i}}}\n"))
        .collect();
    let out = env
        .cmd()
        .args([
            "--persistent",
            "-j",
            "3",
            "--cache",
            "c.jsonl",
            "--",
            "python3",
            &w,
        ])
        .stdin(input)
        .run();
    out.success().stderr_has("ran 50 (50 succeeded, 0 failed)");
    let mut records = env.json_lines("c.jsonl");
    records.sort_by_key(|r| r["id"].as_i64());
    assert_eq!(records.len(), 50);
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r["double"], json!(2 * (i as i64 + 1)));
    }
    // Three workers for fifty items, one per slot.
    let mut starts: Vec<String> = env.read("starts.log").lines().map(str::to_owned).collect();
    starts.sort();
    assert_eq!(starts, ["1", "2", "3"]);
}

#[test]
fn lines_input_arrives_as_json_strings() {
    let env = TestEnv::new();
    let w = worker(&env);
    let out = env
        .cmd()
        .args(["--persistent", "-j", "1", "--", "python3", &w])
        .stdin("héllo \"world\"\n$(x) `y`\n")
        .run();
    out.success();
    let mut records = out.records();
    records.sort_by_key(|r| r["id"].to_string());
    assert_eq!(
        records,
        [
            json!({"id": "$(x) `y`", "len": 8, "slot": "1"}),
            json!({"id": "héllo \"world\"", "len": 13, "slot": "1"})
        ]
    );
}

#[test]
fn a_worker_that_dies_mid_item_fails_it_and_is_restarted() {
    let env = TestEnv::new();
    let w = worker(&env);
    let input =
        "{\"id\":1,\"n\":1}\n{\"id\":2,\"do\":\"crash\"}\n{\"id\":3,\"n\":3}\n{\"id\":4,\"n\":4}\n";
    let out = env
        .cmd()
        .args([
            "--persistent",
            "-j",
            "1",
            "--cache",
            "c.jsonl",
            "--failures",
            "f.jsonl",
            "--",
            "python3",
            &w,
        ])
        .stdin(input)
        .run();
    out.code(1).stderr_has("crashing\n").stderr_has(
        "item 2 (<stdin>:2) failed: exit: the worker ended before answering (exit code 7)",
    );
    assert_eq!(keys(&env.json_lines("c.jsonl")), ["1", "3", "4"]);
    assert_eq!(
        env.read("starts.log").lines().count(),
        2,
        "the worker was not restarted once"
    );
    let failure = &env.json_lines("f.jsonl")[0];
    assert_eq!(failure["exit_code"], json!(7));
    assert_eq!(failure["stderr_tail"], json!("crashing\n"));
}

#[test]
fn retries_run_on_a_fresh_worker() {
    let env = TestEnv::new();
    let w = worker(&env);
    let out = env
        .cmd()
        .args([
            "--persistent",
            "-j",
            "1",
            "--retries",
            "1",
            "--retry-delay",
            "1ms",
            "--cache",
            "c.jsonl",
        ])
        .args(["--", "python3", &w])
        .stdin("{\"id\":1,\"do\":\"crash\",\"n\":5}\n")
        .run();
    out.success();
    assert_eq!(env.json_lines("c.jsonl"), [json!({"id": 1, "double": 10})]);
}

#[test]
fn a_timeout_kills_and_restarts_the_worker() {
    let env = TestEnv::new();
    let w = worker(&env);
    let input = "{\"id\":1,\"do\":\"hang\"}\n{\"id\":2,\"n\":2}\n";
    let out = env
        .cmd()
        .args([
            "--persistent",
            "-j",
            "1",
            "--timeout",
            "1s",
            "--kill-after",
            "100ms",
            "--cache",
            "c.jsonl",
        ])
        .args(["--", "python3", &w])
        .stdin(input)
        .run();
    out.code(1)
        .stderr_has("item 1 (<stdin>:1) failed: timeout: timed out after 1.0s");
    assert_eq!(keys(&env.json_lines("c.jsonl")), ["2"]);
    assert_eq!(env.read("starts.log").lines().count(), 2);
}

#[test]
fn a_worker_answering_garbage_is_replaced() {
    let env = TestEnv::new();
    let w = worker(&env);
    let input = "{\"id\":1,\"do\":\"garbage\"}\n{\"id\":2,\"n\":2}\n";
    let out = env
        .cmd()
        .args(["--persistent", "-j", "1", "--", "python3", &w])
        .stdin(input)
        .run();
    out.code(1)
        .stderr_has("failed: bad-output: the worker's answer is unusable");
    assert_eq!(out.records(), [json!({"id": 2, "double": 4})]);
    assert_eq!(env.read("starts.log").lines().count(), 2);
}

#[test]
fn dry_run_shows_what_each_worker_would_read() {
    let env = TestEnv::new();
    let out = env
        .cmd()
        .args([
            "--dry-run",
            "--persistent",
            "--",
            "python3",
            "w.py",
            "--slot=<%>",
        ])
        .stdin("{\"id\":1,\"t\":\"it's\"}\n")
        .run();
    out.success();
    assert_eq!(
        out.stdout,
        "printf '%s\\n' '{\"id\":1,\"t\":\"it'\\''s\"}' | python3 w.py '--slot=1'\n"
    );
}

#[test]
fn a_worker_printing_two_lines_per_item_never_misattributes_results() {
    // Regression (QA): the second line became the next item's result. The worker echoes the
    // key, as most do, so an answer for another item is recognised whenever it comes.
    let env = TestEnv::new();
    let w = env.write(
        "two.py",
        "import json, sys\nfor l in sys.stdin:\n    v = json.loads(l)\n    print(json.dumps({'id': v, 'v': v}), flush=True)\n    print(json.dumps({'id': v, 'extra': True}), flush=True)\n",
    );
    let input: String = (1..=30).map(|i| format!("{i}\n")).collect();
    let out = env
        .cmd()
        .args([
            "--persistent",
            "-j",
            "1",
            "--cache",
            "c.jsonl",
            "--",
            "python3",
            w.to_str().unwrap(),
        ])
        .stdin(input)
        .run();
    for record in env.json_lines("c.jsonl") {
        assert_eq!(
            record["v"],
            record["id"],
            "a result landed on the wrong item\n{}",
            out.report()
        );
    }
    assert!(
        out.stderr.contains("out of step") || out.stderr.contains("more than one line"),
        "{}",
        out.report()
    );
}

#[test]
fn an_answer_for_another_key_fails_the_item() {
    let env = TestEnv::new();
    let w = env.script(
        "w.sh",
        "while read l; do echo '{\"id\": 99, \"x\": 1}'; done",
    );
    let out = env
        .cmd()
        .args(["--persistent", "-j", "1", "--", w.as_str()])
        .stdin("{\"id\":1}\n")
        .run();
    out.code(1)
        .stderr_has("the worker answered for \"id\" = \"99\", not for this item");
    // A loosely equal key (the line "5", answered as the number 5) is the same item.
    let w = env.script("w5.sh", "while read l; do echo '{\"id\": 5}'; done");
    env.cmd()
        .args(["--persistent", "--", w.as_str()])
        .stdin("5\n")
        .run()
        .success();
}

#[test]
fn a_worker_leaving_a_background_process_does_not_hang_the_end() {
    let env = TestEnv::new();
    let w = env.script(
        "w.sh",
        "sleep 300 & echo $! > bg.pid\nwhile read l; do echo '{\"ok\":1}'; done",
    );
    let started = std::time::Instant::now();
    env.cmd()
        .args([
            "--persistent",
            "-j",
            "1",
            "--kill-after",
            "1s",
            "--",
            w.as_str(),
        ])
        .stdin("1\n2\n")
        .run()
        .success();
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    let pid: i32 = env.read("bg.pid").trim().parse().unwrap();
    crate::util::wait_until(
        std::time::Duration::from_secs(5),
        "the worker's leftover to die",
        || !crate::util::alive(pid),
    );
}

#[test]
fn item_placeholders_are_usage_errors() {
    let env = TestEnv::new();
    env.cmd()
        .args(["--persistent", "--", "python3", "w.py", "<text>"])
        .stdin("{\"id\":1}\n")
        .run()
        .code(2)
        .stderr_has("<text> cannot be used with --persistent");
    env.cmd()
        .args(["--persistent", "--stdin", "--", "cat"])
        .run()
        .code(2)
        .stderr_has("--stdin and --persistent do not go together");
}

#[test]
fn the_bundled_worker_example_works() {
    let env = TestEnv::new();
    let items = format!("{}/examples/items.jsonl", env!("CARGO_MANIFEST_DIR"));
    let w = format!("{}/examples/worker.py", env!("CARGO_MANIFEST_DIR"));
    env.cmd()
        .args([
            "--persistent",
            "-j",
            "4",
            "-i",
            &items,
            "--cache",
            "out.jsonl",
            "--",
            "python3",
            &w,
        ])
        .run()
        .success();
    let records = env.json_lines("out.jsonl");
    assert_eq!(records.len(), 20);
    assert!(records
        .iter()
        .any(|r| r["id"] == 1 && r["upper"] == "THE QUICK BROWN FOX"));
}

/// Output after a worker's last answer, once it has nothing left to answer, answers no item:
/// it is reported when the worker exits at the end of the run, and the answer stands.
#[test]
fn output_after_the_last_answer_is_reported_at_the_end() {
    let env = TestEnv::new();
    let w = env.write(
        "late.py",
        "import sys, time\n\
         for line in sys.stdin:\n\
         \x20   print(line.strip(), flush=True)\n\
         \x20   time.sleep(0.3)\n\
         \x20   print('late news', flush=True)\n",
    );
    let out = env
        .cmd()
        .args(["--persistent", "--cache", "c.jsonl"])
        .args(["--", "python3", w.to_str().unwrap()])
        .stdin("{\"id\":1}\n")
        .run();
    out.success().stderr_has(
        "the worker in slot 1 printed output that answers no item (\"late news\"); \
         after its last answer (which stands)",
    );
    assert_eq!(keys(&env.json_lines("c.jsonl")), ["1"]);
}
