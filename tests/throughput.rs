//! Throughput at scale (issue 13): a stdout nobody reads holds up neither timeouts nor the
//! cache, and a thousand jobs at once run without running out of descriptors.

use std::time::Duration;

use crate::util::{wait_until, TestEnv};

#[test]
fn a_stdout_nobody_reads_stalls_neither_timeouts_nor_the_cache() {
    let env = TestEnv::new();
    // Every item prints 64 KiB, so the records fill stdout's pipe at once; "slow" hangs and
    // must still be killed on time while stdout stays unread.
    let items: String = std::iter::once("slow".to_owned())
        .chain((1..=20).map(|i| i.to_string()))
        .map(|line| line + "\n")
        .collect();
    let script =
        "if [ \"$1\" = slow ]; then exec sleep 60; fi; head -c 65536 /dev/zero | tr '\\0' a";
    let mut running = env
        .cmd()
        .args(["-j", "2", "--timeout", "1s", "--kill-after", "1s"])
        .args([
            "--capture",
            "text",
            "--cache",
            "c.jsonl",
            "--failures",
            "f.jsonl",
        ])
        .args(["--", "sh", "-c", script, "sh", "{}"])
        .stdin(items)
        .spawn();
    // Nobody reads stdout meanwhile.
    wait_until(
        Duration::from_secs(20),
        "the timeout while stdout is unread",
        || std::fs::read_to_string(env.path("f.jsonl")).is_ok_and(|f| f.contains("\"slow\"")),
    );
    wait_until(
        Duration::from_secs(20),
        "records in the cache meanwhile",
        || std::fs::read_to_string(env.path("c.jsonl")).is_ok_and(|c| c.lines().count() >= 3),
    );
    let failure = &env.json_lines("f.jsonl")[0];
    assert_eq!(failure["reason"], "timeout", "{failure}");
    // Now stdout is read, and the run ends with every item.
    let mut stdout = running.child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut text).unwrap();
        text
    });
    let out = running.wait_within(Duration::from_secs(60));
    out.code(1).stderr_has("ran 21 (20 succeeded, 1 failed)");
    assert_eq!(reader.join().unwrap().lines().count(), 20);
    assert_eq!(env.json_lines("c.jsonl").len(), 20);
}

#[test]
fn a_thousand_jobs_at_once_run_without_running_out_of_descriptors() {
    let env = TestEnv::new();
    // Four descriptors a child (three pipes and a pidfd) pass the usual soft limit of 1024
    // long before a thousand children: pararun raises it.
    let items: String = (1..=2000).map(|i| format!("{i}\n")).collect();
    let out = env
        .cmd()
        .args(["-j", "1000", "--stdin", "--capture", "text", "-q"])
        .args(["--cache", "c.jsonl", "--", "sleep", "1"])
        .stdin(items)
        .run();
    out.success();
    assert_eq!(env.json_lines("c.jsonl").len(), 2000);
}

#[test]
fn children_spawned_for_a_high_j_end_as_they_would_at_a_low_one() {
    let env = TestEnv::new();
    // At a high -j exit codes, signals, timeouts and stdin all reach the report as with a low
    // one (0.2.0 spawned these from a thread of its own and reaped them itself).
    let items = "ok\ncode\nsignal\nhang\nstdin\n";
    let script = "read line; case $line in code) exit 3;; signal) kill -9 $$;; \
                  hang) exec sleep 60;; esac; echo \"{\\\"got\\\":\\\"$line\\\"}\"";
    let out = env
        .cmd()
        .args([
            "-j",
            "100",
            "--stdin",
            "--timeout",
            "2s",
            "--kill-after",
            "1s",
        ])
        .args(["--failures", "f.jsonl", "--", "sh", "-c", script])
        .stdin(items)
        .run();
    out.code(1).stderr_has("ran 5 (2 succeeded, 3 failed)");
    let mut got: Vec<String> = out.records().iter().map(|r| r["got"].to_string()).collect();
    got.sort();
    assert_eq!(got, ["\"ok\"", "\"stdin\""]);
    let failures = env.json_lines("f.jsonl");
    let reason = |key: &str| {
        let failure = failures.iter().find(|f| f["key"] == key).unwrap();
        (
            failure["reason"].as_str().unwrap().to_owned(),
            failure.clone(),
        )
    };
    assert_eq!(reason("code").0, "exit");
    assert_eq!(reason("code").1["exit_code"], 3);
    assert_eq!(reason("signal").0, "signal");
    assert_eq!(reason("hang").0, "timeout");
}
