//! Putting caches together and checking them (issue 22): `pararun merge` with conflicts, damage
//! and missing keys; `pararun check` and `--repair` on a damaged cache.

use std::collections::BTreeMap;

use crate::util::{parse_lines, TestEnv};

#[test]
fn merge_keeps_one_record_per_key_and_reports_conflicts_damage_and_missing_keys() {
    let env = TestEnv::new();
    env.write(
        "a.jsonl",
        "{\"id\":1,\"v\":\"a\"}\n{\"id\":2,\"v\":\"same\"}\ngarbage\n{\"id\":3,\"v\":\"first\"}\n",
    );
    // 2 again with the same content (spaced otherwise), 3 with other content, a torn tail.
    env.write(
        "b.jsonl",
        "{\"id\":4}\n{ \"id\": 2, \"v\": \"same\" }\n{\"id\":3,\"v\":\"second\"}\n{\"x\":1}\n{\"id\":5,\"v\":",
    );
    env.write(
        "items.jsonl",
        "{\"id\":1}\n{\"id\":2}\n{\"id\":3}\n{\"id\":4}\n{\"id\":6}\n",
    );
    let out = env
        .cmd()
        .args([
            "merge",
            "-o",
            "all.jsonl",
            "-i",
            "items.jsonl",
            "a.jsonl",
            "b.jsonl",
        ])
        .run();
    out.code(1);
    let records = parse_lines(&env.read("all.jsonl"), "all.jsonl");
    let by_id: BTreeMap<i64, String> = records
        .iter()
        .map(|r| {
            (
                r["id"].as_i64().unwrap(),
                r["v"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(records.len(), 4, "one record per key: {records:?}");
    assert_eq!(
        by_id[&3], "first",
        "the first record of a conflicting key is kept"
    );
    out.stderr_has("merged 4 records from 2 caches into all.jsonl; 1 duplicate records")
        .stderr_has("skipped 2 damaged lines")
        .stderr_has("a.jsonl:3")
        .stderr_has("b.jsonl:5")
        .stderr_has("1 keys have records with different content; kept the first one: 3 (b.jsonl:3)")
        .stderr_has("skipped 1 records without the \"id\" field")
        .stderr_has("1 keys of the input are in no cache: 6");
    let last = env
        .cmd()
        .args([
            "merge",
            "--prefer",
            "last",
            "-o",
            "all.jsonl",
            "a.jsonl",
            "b.jsonl",
        ])
        .run();
    last.code(1);
    let records = parse_lines(&env.read("all.jsonl"), "all.jsonl");
    assert!(
        records.iter().any(|r| r["id"] == 3 && r["v"] == "second"),
        "{records:?}"
    );
    // No temporary file is left beside OUT.
    let left: Vec<String> = std::fs::read_dir(env.path("."))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn merged_shards_are_exactly_the_union() {
    let env = TestEnv::new();
    let input: String = (0..60).map(|i| format!("{i}\n")).collect();
    env.write("items.txt", &input);
    for i in 0..4 {
        env.cmd()
            .args([
                "-i",
                "items.txt",
                "--shard",
                &format!("{i}/4"),
                "--cache",
                &format!("s{i}.jsonl"),
            ])
            .args(["-q", "--capture", "text", "--", "echo"])
            .run()
            .success();
    }
    env.cmd()
        .args(["merge", "-o", "all.jsonl", "-i", "items.txt", "s*.jsonl"])
        .run()
        .success();
    let mut keys: Vec<String> = parse_lines(&env.read("all.jsonl"), "all.jsonl")
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    keys.sort_by_key(|k| k.parse::<u32>().unwrap());
    let want: Vec<String> = (0..60).map(|i| i.to_string()).collect();
    assert_eq!(keys, want);
    // The merge is a cache of the whole: a run over it runs nothing.
    env.cmd()
        .args([
            "-i",
            "items.txt",
            "--cache",
            "all.jsonl",
            "--capture",
            "text",
            "--",
            "echo",
        ])
        .run()
        .success()
        .stderr_has("ran 0 (0 succeeded, 0 failed), 60 cached");
}

#[test]
fn check_reports_damage_and_repair_cleans_it_keeping_a_backup() {
    let env = TestEnv::new();
    let damaged =
        "{\"id\":1}\n{\"id\":2}\nnot json\n{\"id\":1}\n{\"other\":3}\n\0\0\0\n{\"id\":4,\"v\":";
    env.write("c.jsonl", damaged);
    let out = env.cmd().args(["check", "c.jsonl"]).run();
    out.code(1);
    for line in [
        "c.jsonl:3: damaged: not JSON",
        "c.jsonl:6: damaged: a line of NUL bytes",
        "c.jsonl:7: damaged: a torn last line",
        "c.jsonl: 1 records without the \"id\" field (--key-field), lines 5",
        "c.jsonl:4: duplicate key 1 (first at line 1): the same record",
    ] {
        assert!(out.stdout.contains(line), "no {line:?}\n{}", out.report());
    }
    assert_eq!(env.read("c.jsonl"), damaged, "check alone changes nothing");
    env.cmd()
        .args(["check", "--repair", "c.jsonl"])
        .run()
        .success();
    assert_eq!(env.read("c.jsonl.bak"), damaged);
    assert_eq!(env.read("c.jsonl"), "{\"id\":1}\n{\"id\":2}\n");
    env.cmd().args(["check", "c.jsonl"]).run().success();
}

#[test]
fn repair_refuses_while_a_run_holds_the_cache() {
    let env = TestEnv::new();
    env.write("c.jsonl", "{\"id\":1}\n{\"id\":1}\n");
    let run = env
        .cmd()
        .args(["--cache", "c.jsonl", "--", "sh", "-c", "sleep 30"])
        .stdin("2\n")
        .spawn();
    crate::util::wait_until(
        std::time::Duration::from_secs(10),
        "the run's state file",
        || env.path("c.jsonl.state").exists(),
    );
    let out = env.cmd().args(["check", "--repair", "c.jsonl"]).run();
    out.code(2).stderr_has("is in use by a running pararun");
    assert_eq!(env.read("c.jsonl"), "{\"id\":1}\n{\"id\":1}\n");
    run.signal(libc::SIGTERM);
    run.wait();
}
