//! Resuming from the cache (issues 3 and 4): skipping, damaged caches, kill -9 at random moments.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;

use crate::util::{keys, parse_lines, wait_until, TestEnv};

fn numbered(n: usize) -> String {
    (1..=n).map(|i| format!("{{\"id\":{i}}}\n")).collect()
}

#[test]
fn rerun_skips_exactly_what_is_cached() {
    let env = TestEnv::new();
    env.write("in.jsonl", numbered(10));
    // A previous run finished items 2, 4 and 6.
    env.write(
        "c.jsonl",
        "{\"id\":2,\"v\":\"old\"}\n{\"id\":4,\"v\":\"old\"}\n{\"id\":6,\"v\":\"old\"}\n",
    );
    let log = env.path("ran.log");
    let child = env.script(
        "child.sh",
        &format!(
            "echo $PARARUN_KEY >> {}; echo '{{\"v\":\"new\"}}'",
            log.display()
        ),
    );
    let out = env
        .cmd()
        .args(["-i", "in.jsonl", "--cache", "c.jsonl", "--", child.as_str()])
        .run();
    out.success()
        .stderr_has("ran 7 (7 succeeded, 0 failed), 3 cached");
    let mut ran: Vec<u32> = env
        .read("ran.log")
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    ran.sort();
    assert_eq!(ran, [1, 3, 5, 7, 8, 9, 10]);
    let cache = env.json_lines("c.jsonl");
    assert_eq!(cache.len(), 10);
    assert_eq!(
        &cache[..3],
        [
            json!({"id":2,"v":"old"}),
            json!({"id":4,"v":"old"}),
            json!({"id":6,"v":"old"})
        ]
    );

    // A finished run, re-run, runs nothing and exits 0.
    let out = env
        .cmd()
        .args(["-i", "in.jsonl", "--cache", "c.jsonl", "--", child.as_str()])
        .run();
    out.success()
        .stderr_has("ran 0 (0 succeeded, 0 failed), 10 cached");
    assert_eq!(out.stdout, "");
    assert_eq!(env.read("ran.log").lines().count(), 7);
}

#[test]
fn failed_items_are_not_cached_and_run_again() {
    let env = TestEnv::new();
    env.write("in.jsonl", numbered(4));
    env.write("fail", "");
    let child = env.script(
        "child.sh",
        "if [ -e fail ] && [ $PARARUN_KEY = 3 ]; then exit 1; fi; echo '{}'",
    );
    let run = || {
        env.cmd()
            .args(["-i", "in.jsonl", "--cache", "c.jsonl", "--", child.as_str()])
            .run()
    };
    run().code(1);
    assert_eq!(keys(&env.json_lines("c.jsonl")), ["1", "2", "4"]);
    std::fs::remove_file(env.path("fail")).unwrap();
    run()
        .success()
        .stderr_has("ran 1 (1 succeeded, 0 failed), 3 cached");
    assert_eq!(keys(&env.json_lines("c.jsonl")), ["1", "2", "3", "4"]);
}

/// Runs in.jsonl into c.jsonl, each item's result its own line.
fn echo_items(env: &TestEnv) -> crate::util::Output {
    (env.cmd())
        .args([
            "-i", "in.jsonl", "--cache", "c.jsonl", "--", "sh", "-c", "echo {}",
        ])
        .run()
}

#[test]
fn damaged_cache_lines_are_skipped_with_one_warning() {
    let env = TestEnv::new();
    env.write("in.jsonl", numbered(6));
    let mut cache = Vec::new();
    cache.extend_from_slice(b"{\"id\":1}\n");
    cache.extend_from_slice(b"\0\0\0\0\0\0\0\0\n"); // what ext4 can leave after a power cut
    cache.extend_from_slice(b"garbage\n");
    cache.extend_from_slice(b"{\"no_key\":true}\n");
    cache.extend_from_slice(b"{\"id\":2}\n");
    cache.extend_from_slice(b"{\"id\":3,\"v\":\"tor"); // torn by a crash, no newline
    env.write("c.jsonl", &cache);
    let out = echo_items(&env);
    out.success()
        .stderr_has(
            "c.jsonl:2: skipped 4 unreadable cache lines (a line of NUL bytes); lines 2, 3, 4, 6; \
             the torn last line was cut off",
        )
        .stderr_has("ran 4 (4 succeeded, 0 failed), 2 cached");
    assert_eq!(out.stderr.matches("warning").count(), 1, "{}", out.report());
    let text = std::fs::read(env.path("c.jsonl")).unwrap();
    // The torn line (a write a kill cut short) was cut off before the first append: the file
    // holds the lines before it, then whole records.
    let whole = cache.len() - b"{\"id\":3,\"v\":\"tor".len();
    assert!(text.starts_with(&cache[..whole]));
    let tail = String::from_utf8(text[whole..].to_vec()).unwrap();
    assert!(tail.ends_with('\n') && !tail.contains("tor"), "{tail:?}");
    assert_eq!(keys(&parse_lines(&tail, "appended")), ["3", "4", "5", "6"]);
}

#[test]
fn a_whole_last_record_without_its_newline_is_kept() {
    let env = TestEnv::new();
    env.write("in.jsonl", numbered(2));
    // Written by hand, or by another tool: whole, only the newline is missing.
    env.write("c.jsonl", b"{\"id\":1,\"v\":\"kept\"}");
    let out = echo_items(&env);
    out.success()
        .stderr_has("ran 1 (1 succeeded, 0 failed), 1 cached");
    let text = env.read("c.jsonl");
    assert!(text.starts_with("{\"id\":1,\"v\":\"kept\"}\n"), "{text:?}");
    assert_eq!(keys(&parse_lines(&text, "cache")), ["1", "2"]);
}

#[test]
fn duplicates_in_the_input_run_once() {
    let env = TestEnv::new();
    let out = env
        .cmd()
        .args(["--cache", "c.jsonl", "--", "sleep 0.2; echo '{\"ok\":1}' #"])
        .stdin("a\nb\na\nc\nb\n")
        .run();
    out.success()
        .stderr_has("ran 3 (3 succeeded, 0 failed), 0 cached, 2 duplicates");
    assert_eq!(
        keys(&env.json_lines("c.jsonl")),
        ["\"a\"", "\"b\"", "\"c\""]
    );
}

/// A tiny deterministic generator, so that a failing run can be repeated from its seed.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

#[test]
fn kill_9_at_random_moments_loses_and_duplicates_nothing() {
    const ITEMS: usize = 400;
    let env = TestEnv::new();
    env.write("in.jsonl", numbered(ITEMS));
    let side = env.path("executions.log");
    let child = env.script(
        "child.sh",
        &format!(
            "sleep 0.0$(( $PARARUN_KEY % 3 ))5; echo $PARARUN_KEY >> {}; echo '{{\"ok\":true}}'",
            side.display()
        ),
    );
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut rng = Lcg(seed);
    let mut cycles = 0;
    loop {
        cycles += 1;
        assert!(
            cycles < 100,
            "seed {seed}: no run finished after 100 cycles"
        );
        // A child that was being started when pararun was killed holds a copy of the cache's
        // descriptor, and so its lock, until it execs: on a loaded machine the next run can
        // find the lock still held for a moment.
        let running = env
            .cmd()
            .args([
                "--lock-wait",
                "10s",
                "-j",
                "8",
                "-q",
                "-i",
                "in.jsonl",
                "--cache",
                "c.jsonl",
                "--",
                child.as_str(),
            ])
            .spawn();
        let before = env.read("c.jsonl").len();
        // Kill once some progress was made, at a random moment after it.
        wait_until(Duration::from_secs(20), "progress", || {
            env.read("c.jsonl").len() > before || !crate::util::alive(running.pid())
        });
        std::thread::sleep(Duration::from_millis(rng.next(120)));
        running.signal(libc::SIGKILL);
        let out = running.wait();
        if out.code == Some(0) {
            break;
        }
        assert_eq!(
            out.code,
            None,
            "seed {seed}: pararun failed on its own\n{}",
            out.report()
        );
    }
    let out = env
        .cmd()
        .args(["-i", "in.jsonl", "--cache", "c.jsonl", "--", child.as_str()])
        .run();
    out.success()
        .stderr_has(&format!("ran 0 (0 succeeded, 0 failed), {ITEMS} cached"));
    let text = env.read("c.jsonl");
    let records = parse_lines(&text, "cache");
    let mut count: HashMap<String, usize> = HashMap::new();
    for r in &records {
        assert_eq!(r["ok"], json!(true), "seed {seed}: bad record {r}");
        *count.entry(r["id"].to_string()).or_default() += 1;
    }
    assert_eq!(count.len(), ITEMS, "seed {seed}: keys lost");
    assert!(
        count.values().all(|&n| n == 1),
        "seed {seed}: keys duplicated"
    );
    let executions = env.read("executions.log").lines().count();
    eprintln!(
        "kill -9 loop: {cycles} cycles, {} items re-executed beyond the first run, 0 lost, 0 duplicated",
        executions - ITEMS
    );
}
