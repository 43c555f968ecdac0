//! The throttle signal (issue 24): a child that exits 75, or a worker's error answer with
//! `"reason": "throttled"`, sends its item back to the queue without using up `--retries`, up
//! to `--max-throttled`, and pauses every start for the `retry_after` it gave.

use serde_json::json;

use crate::util::TestEnv;

/// A child that is throttled on its first `n` runs of each item, asking for `after` seconds,
/// then prints its key and attempt.
fn throttled_child(env: &TestEnv, n: u32, after: &str) -> String {
    env.script(
        "child.sh",
        &format!(
            r#"echo "$PARARUN_KEY $PARARUN_ATTEMPT" >> runs.log
c=$(cat "n.$PARARUN_KEY" 2>/dev/null || echo 0); echo $((c + 1)) > "n.$PARARUN_KEY"
if [ "$c" -lt {n} ]; then echo '{{"retry_after": {after}}}'; exit 75; fi
echo "{{\"attempt\": $PARARUN_ATTEMPT}}""#
        ),
    )
}

#[test]
fn a_throttled_item_runs_again_without_using_up_a_retry() {
    let env = TestEnv::new();
    let child = throttled_child(&env, 2, "0.1");
    let out = env
        .cmd()
        .args([
            "--retries",
            "0",
            "--cache",
            "c.jsonl",
            "--failures",
            "f.jsonl",
        ])
        .args(["--", child.as_str()])
        .stdin("a\n")
        .run();
    out.success()
        .stderr_has("throttled: exit code 75 (throttled); new starts paused for 100ms")
        .stderr_has(", 2 throttled");
    // Every run was the first attempt: a throttle is not a failure.
    assert_eq!(env.read("runs.log"), "a 1\na 1\na 1\n");
    assert_eq!(
        env.json_lines("c.jsonl"),
        [json!({"id": "a", "attempt": 1})]
    );
    assert_eq!(
        env.read("f.jsonl"),
        "",
        "a throttle is not written as a failure"
    );
}

#[test]
fn max_throttled_fails_the_item_as_throttled() {
    let env = TestEnv::new();
    let child = throttled_child(&env, 1000, "0.02");
    let out = env
        .cmd()
        .args([
            "--max-throttled",
            "2",
            "--retries",
            "3",
            "--failures",
            "f.jsonl",
        ])
        .args(["--throttle-exit-code", "75", "--", child.as_str()])
        .stdin("a\n")
        .run();
    out.code(1).stderr_has("past --max-throttled 2");
    // The first run and two more: the third throttle is one too many; retries do not apply.
    assert_eq!(env.read("runs.log").lines().count(), 3);
    let failures = env.json_lines("f.jsonl");
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0]["reason"], "throttled");
}

#[test]
fn another_throttle_exit_code_is_an_ordinary_failure_of_75() {
    let env = TestEnv::new();
    let child = throttled_child(&env, 1, "0.01");
    env.cmd()
        .args(["--throttle-exit-code", "99", "--", child.as_str()])
        .stdin("a\n")
        .run()
        .code(1)
        .stderr_has("exit code 75");
}

#[test]
fn one_shared_pause_holds_every_slot_for_retry_after() {
    let env = TestEnv::new();
    // Item 2 is throttled once and asks for 1.5 s; every start is logged with its time.
    let child = env.script(
        "child.sh",
        r#"echo "start $PARARUN_KEY $(date +%s.%N)" >> times.log
if [ "$PARARUN_KEY" = 2 ] && [ ! -e throttled ]; then
  : > throttled; echo "throttle $(date +%s.%N)" >> times.log
  echo '{"retry_after": 1.5}'; exit 75
fi
sleep 0.2; echo '{}'"#,
    );
    let items: String = (0..16).map(|i| format!("{i}\n")).collect();
    let out = env
        .cmd()
        .args(["-j", "4", "--retries", "0", "--", child.as_str()])
        .stdin(items)
        .run();
    out.success().stderr_has("new starts paused for 1.5s");
    let log = env.read("times.log");
    let time = |line: &str| line.rsplit(' ').next().unwrap().parse::<f64>().unwrap();
    let throttle = log
        .lines()
        .find(|l| l.starts_with("throttle"))
        .map(time)
        .expect("item 2 was throttled");
    // Items 0 to 3 are the first wave, started before the throttle (a loaded machine may run
    // their first line after it); every other start, and item 2's second, came after.
    let mut first_wave = std::collections::HashSet::new();
    let after: Vec<f64> = log
        .lines()
        .filter(|l| l.starts_with("start"))
        .filter(|l| {
            let key: u32 = l.split(' ').nth(1).unwrap().parse().unwrap();
            !(key < 4 && first_wave.insert(key))
        })
        .map(time)
        .collect();
    assert_eq!(after.len(), 13, "items started after the pause:\n{log}");
    for t in &after {
        assert!(
            *t >= throttle + 1.45,
            "a start {:.3}s after the throttle, inside its 1.5s pause:\n{log}",
            t - throttle
        );
    }
    assert_eq!(out.records().len(), 16);
}

/// A worker (ordered protocol) that answers each key throttled once, then its result.
const ORDERED_WORKER: &str = r#"
import json, sys
seen = set()
for line in sys.stdin:
    item = json.loads(line)
    key = item["id"]
    if key in seen:
        answer = {"id": key, "ok": True}
    else:
        seen.add(key)
        answer = {"id": key, "error": "429 from the API", "reason": "throttled", "retry_after": 0.1}
    print(json.dumps(answer), flush=True)
"#;

/// A worker (concurrent protocol) that answers each key throttled once (with no
/// `retry_after`: the backoff), then its result.
const CONCURRENT_WORKER: &str = r#"
import json, sys
seen = set()
for line in sys.stdin:
    request = json.loads(line)
    rid, key = request["pararun_id"], request["item"]["id"]
    if key in seen:
        answer = {"pararun_id": rid, "result": {"ok": True}}
    else:
        seen.add(key)
        answer = {"pararun_id": rid, "error": "slow down", "reason": "throttled"}
    print(json.dumps(answer), flush=True)
"#;

#[test]
fn a_workers_throttled_answer_is_a_throttle_in_both_protocols() {
    for (protocol, worker) in [
        ("ordered", ORDERED_WORKER),
        ("concurrent", CONCURRENT_WORKER),
    ] {
        let env = TestEnv::new();
        env.write("worker.py", worker);
        let out = env
            .cmd()
            .args(["--persistent", "--protocol", protocol, "-j", "1"])
            .args(["--retries", "0", "--cache", "c.jsonl", "--"])
            .args(["python3", "worker.py"])
            .stdin("{\"id\": 1}\n{\"id\": 2}\n")
            .run();
        out.success()
            .stderr_has("throttled: the worker answered throttled")
            .stderr_has(", 2 throttled");
        let mut records = env.json_lines("c.jsonl");
        records.sort_by_key(|r| r["id"].as_i64());
        assert_eq!(
            records,
            [json!({"id": 1, "ok": true}), json!({"id": 2, "ok": true})],
            "{protocol}"
        );
    }
}

/// An HTTP server on 127.0.0.1 that answers each item's first request 429 with
/// `Retry-After: 1`, and the next one 200 with the item back; it prints its port.
const SERVER: &str = r#"
import http.server, json, sys
seen = set()
class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        key = json.loads(body)["id"]
        if key in seen:
            self.send_response(200); out = json.dumps({"id": key, "served": True}).encode()
        else:
            seen.add(key); self.send_response(429); self.send_header("Retry-After", "1")
            out = b"too many requests"
        self.send_header("Content-Length", str(len(out))); self.end_headers(); self.wfile.write(out)
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

#[test]
fn the_curl_wrapper_turns_a_429_and_its_retry_after_into_a_throttle() {
    use std::io::BufRead;
    let env = TestEnv::new();
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_err()
    {
        return crate::util::skipped("the curl wrapper", "no curl");
    }
    env.write("server.py", SERVER);
    let mut server = std::process::Command::new("python3")
        .arg(env.path("server.py"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut port = String::new();
    std::io::BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut port)
        .unwrap();
    let wrapper = format!("{}/examples/call_api.sh", env!("CARGO_MANIFEST_DIR"));
    let started = std::time::Instant::now();
    let out = env
        .cmd()
        .env("API_URL", &format!("http://127.0.0.1:{}/", port.trim()))
        .args(["-j", "2", "--retries", "0", "--cache", "c.jsonl"])
        .args(["--", "sh", wrapper.as_str(), "<>"])
        .stdin("{\"id\": 1}\n{\"id\": 2}\n")
        .run();
    let _ = server.kill();
    let _ = server.wait();
    out.success()
        .stderr_has("new starts paused for 1.0s (the retry_after it gave)");
    let mut records = env.json_lines("c.jsonl");
    records.sort_by_key(|r| r["id"].as_i64());
    assert_eq!(
        records,
        [
            json!({"id": 1, "served": true}),
            json!({"id": 2, "served": true})
        ]
    );
    assert!(started.elapsed().as_secs_f64() >= 1.0, "the pause was kept");
}

#[test]
fn the_adaptive_limit_goes_down_on_a_throttle_and_back_up_after_successes() {
    let env = TestEnv::new();
    // Items 0 to 3 are throttled once, in the first wave; the rest succeed.
    let child = env.script(
        "child.sh",
        r#"if [ "$PARARUN_KEY" -lt 4 ] && [ ! -e "t.$PARARUN_KEY" ]; then
  : > "t.$PARARUN_KEY"; echo '{"retry_after": 0.05}'; exit 75
fi
sleep 0.05; echo '{}'"#,
    );
    let items: String = (0..60).map(|i| format!("{i}\n")).collect();
    let out = env
        .cmd()
        .args([
            "-j",
            "8",
            "--adaptive",
            "--retries",
            "0",
            "--",
            child.as_str(),
        ])
        .stdin(items)
        .run();
    // It starts at 1 and doubles; the throttles of the first items cut it; successes then
    // raise it again.
    out.success()
        .stderr_has("(cut on a throttle)")
        .stderr_has("(raised after successes)")
        .stderr_has("(--adaptive)");
    let at_most: Vec<usize> = out
        .stderr
        .lines()
        .filter_map(|l| l.split("--adaptive: at most ").nth(1))
        .filter_map(|rest| rest.split(' ').next()?.parse().ok())
        .collect();
    let low = at_most.iter().copied().min().unwrap_or(0);
    assert!(
        at_most.iter().all(|&n| (1..=8).contains(&n)),
        "{}",
        out.stderr
    );
    assert!(
        *at_most.last().unwrap() > low,
        "it never grew back: {}",
        out.stderr
    );
    assert_eq!(out.records().len(), 60);
}
