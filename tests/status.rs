//! Seeing a job from outside (issue 22): `pararun status` on a live run from a second process,
//! on a killed run and on shards; `pararun failures --items` piped back into a run.

use std::time::Duration;

use serde_json::Value;

use crate::util::{wait_until, TestEnv};

/// Items that each wait for the file `go` (at most 30 s), then answer; item ids divisible by 5
/// fail with a message.
fn gated_worker(env: &TestEnv) -> String {
    env.script(
        "work.sh",
        "echo \"$PARARUN_KEY\" >> ran.log\n\
         n=0; while [ ! -e go ] && [ $n -lt 600 ]; do sleep 0.05; n=$((n+1)); done\n\
         if [ $(( $PARARUN_KEY % 5 )) = 0 ]; then echo \"no luck for $PARARUN_KEY\" >&2; exit 3; fi\n\
         echo '{\"ok\":true}'",
    )
}

fn items(env: &TestEnv, n: u64) {
    let text: String = (1..=n).map(|i| format!("{{\"id\":{i}}}\n")).collect();
    env.write("items.jsonl", text);
}

fn status_json(env: &TestEnv, args: &[&str]) -> (Option<i32>, Value) {
    let out = env.cmd().args(["status", "--json"]).args(args).run();
    let json = serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("status --json printed no JSON ({e})\n{}", out.report()));
    (out.code, json)
}

#[test]
fn status_sees_a_live_run_from_another_process_and_its_end() {
    let env = TestEnv::new();
    items(&env, 20);
    let work = gated_worker(&env);
    let run = env
        .cmd()
        .args(["-j", "4", "-i", "items.jsonl", "--cache", "c.jsonl"])
        .args(["--failures", "f.jsonl", "-q", "--", work.as_str()])
        .spawn();
    // Four items are held at the gate: the run is live, with 4 in flight, nothing done.
    wait_until(
        Duration::from_secs(20),
        "4 items in flight in the state file",
        || {
            let (_, s) = status_json(&env, &["c.jsonl", "-i", "items.jsonl"]);
            s["running"] == true && s["in_flight"] == 4
        },
    );
    let (code, s) = status_json(&env, &["c.jsonl", "-i", "items.jsonl"]);
    assert_eq!(code, Some(1), "a running job is not complete: {s}");
    assert_eq!(
        (s["done"].as_u64(), s["remaining"].as_u64()),
        (Some(0), Some(20)),
        "{s}"
    );
    assert_eq!(s["shards"].as_array().map(Vec::len), Some(1), "{s}");
    let text = env.cmd().args(["status", "c.jsonl"]).run();
    assert!(
        text.stdout.contains(&format!("running: pid {}", run.pid())),
        "{}",
        text.report()
    );
    assert!(text.stdout.contains("-j 4"), "{}", text.report());
    env.write("go", "");
    run.wait_within(Duration::from_secs(30)).code(1);
    // Ended: 16 done, 4 failing (5, 10, 15, 20) with their reason, nothing remaining.
    let (code, s) = status_json(&env, &["c.jsonl", "-i", "items.jsonl"]);
    assert_eq!(code, Some(1), "{s}");
    assert_eq!(s["running"], false, "{s}");
    let counts: Vec<u64> = ["done", "failed", "given_up", "remaining", "in_flight"]
        .iter()
        .map(|f| s[f].as_u64().unwrap())
        .collect();
    assert_eq!(counts, [16, 4, 0, 0, 0], "{s}");
    assert_eq!(s["reasons"][0]["reason"], "exit", "{s}");
    assert_eq!(s["reasons"][0]["count"], 4, "{s}");
    // Without -i, the run's own input file counts what remains.
    let (_, s) = status_json(&env, &["c.jsonl"]);
    assert_eq!(s["remaining"], 0, "{s}");
    let (_, s) = status_json(&env, &["c.jsonl", "--total", "25"]);
    assert_eq!(s["remaining"], 5, "{s}");
    assert_eq!(
        s["shards"][0]["remaining"], 5,
        "one cache is the whole job: {s}"
    );
}

#[test]
fn without_an_input_file_remaining_is_unknown_and_the_job_not_complete() {
    let env = TestEnv::new();
    env.cmd()
        .args([
            "--cache",
            "c.jsonl",
            "--capture",
            "text",
            "-q",
            "--",
            "echo",
        ])
        .stdin("a\nb\n")
        .run()
        .success();
    // The run read stdin: nothing says how much there was. Unknown, never a guess; not 0.
    let (code, s) = status_json(&env, &["c.jsonl"]);
    assert_eq!((code, s["done"].as_u64()), (Some(1), Some(2)), "{s}");
    assert_eq!(s["remaining"], Value::Null, "{s}");
    let (code, _) = status_json(&env, &["c.jsonl", "--total", "2"]);
    assert_eq!(code, Some(0));
}

#[test]
fn failures_items_piped_back_runs_exactly_the_failed_items() {
    let env = TestEnv::new();
    items(&env, 20);
    env.write("go", "");
    let work = gated_worker(&env);
    env.cmd()
        .args([
            "-i",
            "items.jsonl",
            "--cache",
            "c.jsonl",
            "--failures",
            "f.jsonl",
            "-q",
        ])
        .args(["--", work.as_str()])
        .run()
        .code(1);
    let listed = env.cmd().args(["failures", "c.jsonl"]).run();
    listed.code(1);
    assert_eq!(listed.stdout.lines().count(), 4, "{}", listed.report());
    assert!(
        listed
            .stdout
            .contains("item 5: exit after 1 attempt: exit code 3; stderr ends: \"no luck for 5\""),
        "{}",
        listed.report()
    );
    let items = env.cmd().args(["failures", "--items", "c.jsonl"]).run();
    assert_eq!(
        items.stdout,
        "{\"id\":5}\n{\"id\":10}\n{\"id\":15}\n{\"id\":20}\n"
    );
    std::fs::remove_file(env.path("ran.log")).unwrap();
    let fixed = env.script(
        "fixed.sh",
        "echo \"$PARARUN_KEY\" >> ran.log; echo '{\"fixed\":true}'",
    );
    env.cmd()
        .args([
            "--cache",
            "c.jsonl",
            "--failures",
            "f.jsonl",
            "-q",
            "--",
            fixed.as_str(),
        ])
        .stdin(items.stdout)
        .run()
        .success();
    let mut ran: Vec<String> = env.read("ran.log").lines().map(str::to_owned).collect();
    ran.sort();
    assert_eq!(ran, ["10", "15", "20", "5"]);
    // The failures file still holds their history; none of them fails now.
    let none = env.cmd().args(["failures", "c.jsonl"]).run();
    none.success();
    assert_eq!(none.stdout, "");
    let (code, s) = status_json(&env, &["c.jsonl", "-i", "items.jsonl"]);
    assert_eq!(
        (code, s["done"].as_u64(), s["failed"].as_u64()),
        (Some(0), Some(20), Some(0)),
        "{s}"
    );
    // The retry read stdin; the job's input is still the file the first run read, so status
    // needs no -i to say the job is complete.
    let (code, s) = status_json(&env, &["c.jsonl"]);
    assert_eq!((code, s["remaining"].as_u64()), (Some(0), Some(0)), "{s}");
}

#[test]
fn a_killed_run_is_not_running() {
    let env = TestEnv::new();
    items(&env, 8);
    let work = gated_worker(&env);
    let run = env
        .cmd()
        .args([
            "-j",
            "2",
            "-i",
            "items.jsonl",
            "--cache",
            "c.jsonl",
            "--",
            work.as_str(),
        ])
        .spawn();
    // Live, with its state written: the lock is held and the state says it has not finished.
    wait_until(Duration::from_secs(20), "the run to be live", || {
        status_json(&env, &["c.jsonl"]).1["running"] == true
            && env.read("c.jsonl.state").contains("\"finished\":false")
    });
    run.signal(libc::SIGKILL);
    run.wait();
    let (code, s) = status_json(&env, &["c.jsonl", "-i", "items.jsonl"]);
    assert_eq!(s["running"], false, "{s}");
    assert_eq!(
        (code, s["in_flight"].as_u64(), s["remaining"].as_u64()),
        (Some(1), Some(0), Some(8)),
        "{s}"
    );
    let text = env.cmd().args(["status", "c.jsonl"]).run();
    assert!(
        text.stdout.contains("the last run did not finish"),
        "{}",
        text.report()
    );
}

#[test]
fn status_adds_up_shards_given_as_a_quoted_glob() {
    let env = TestEnv::new();
    items(&env, 30);
    env.write("go", "");
    let work = gated_worker(&env);
    for i in 0..3 {
        let (shard, cache) = (format!("{i}/3"), format!("c.{i}.jsonl"));
        env.cmd()
            .args([
                "-i",
                "items.jsonl",
                "--shard",
                shard.as_str(),
                "--cache",
                cache.as_str(),
            ])
            .args([
                "--failures",
                &format!("f.{i}.jsonl"),
                "-q",
                "--",
                work.as_str(),
            ])
            .run()
            .code(1);
    }
    let (code, s) = status_json(&env, &["c.*.jsonl", "-i", "items.jsonl"]);
    assert_eq!(code, Some(1), "{s}");
    let shards = s["shards"].as_array().unwrap();
    assert_eq!(shards.len(), 3, "{s}");
    let sum = |f: &str| shards.iter().map(|r| r[f].as_u64().unwrap()).sum::<u64>();
    assert_eq!(
        (sum("done"), sum("failed"), sum("remaining")),
        (24, 6, 0),
        "{s}"
    );
    assert_eq!(
        (
            s["done"].as_u64(),
            s["failed"].as_u64(),
            s["remaining"].as_u64()
        ),
        (Some(24), Some(6), Some(0)),
        "{s}"
    );
    // A pattern that matches nothing is an error, not an empty job.
    env.cmd().args(["status", "nothing.*.jsonl"]).run().code(2);
}

#[test]
fn help_names_the_subcommands() {
    let env = TestEnv::new();
    let out = env.cmd().args(["help"]).run();
    out.success();
    for sub in ["status", "failures", "merge", "check"] {
        assert!(
            out.stdout.contains(&format!("  {sub} ")),
            "{}",
            out.report()
        );
    }
    let out = env.cmd().args(["help", "status"]).run();
    out.success();
    assert!(
        out.stdout.contains("Usage: pararun status"),
        "{}",
        out.report()
    );
    // A program of that name still runs after --.
    env.cmd().args(["--", "status"]).stdin("1\n").run().code(2);
}

#[test]
fn failures_files_are_one_per_flag_and_a_missing_one_is_an_error() {
    let env = TestEnv::new();
    env.write(
        "f.jsonl",
        "{\"key\":1,\"item\":\"{\\\"id\\\":1}\",\"reason\":\"exit\",\"attempts\":1}\n\
         {\"key\":2,\"item\":\"{\\\"id\\\":2}\",\"reason\":\"exit\",\"attempts\":1}\n",
    );
    env.write("c.jsonl", "{\"id\":1}\n");
    let out = env
        .cmd()
        .args(["failures", "--items", "--failures", "f.jsonl", "c.jsonl"])
        .run();
    assert_eq!(out.stdout, "{\"id\":2}\n", "{}", out.report());
    let (_, s) = status_json(&env, &["--failures", "f.jsonl", "c.jsonl", "--total", "2"]);
    assert_eq!(
        (s["done"].as_u64(), s["failed"].as_u64()),
        (Some(1), Some(1)),
        "{s}"
    );
    env.cmd()
        .args(["failures", "--failures", "nope.jsonl", "c.jsonl"])
        .run()
        .code(2);
}

#[test]
fn a_fifo_for_a_state_file_does_not_hang_status() {
    let env = TestEnv::new();
    env.write("c.jsonl", "{\"id\":1}\n");
    let fifo = env.path("c.jsonl.state");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    env.cmd()
        .args(["status", "c.jsonl", "--total", "1"])
        .spawn()
        .wait_within(Duration::from_secs(10))
        .success();
}
