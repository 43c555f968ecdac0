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

#[test]
fn merge_over_a_cache_a_run_holds_is_refused_and_loses_nothing() {
    let env = TestEnv::new();
    env.write("extra.jsonl", "{\"id\":\"x\"}\n");
    let run = env
        .cmd()
        .args(["-j", "2", "--cache", "live.jsonl", "-q", "--"])
        .args(["sh", "-c", "[ \"$1\" = 1 ] || sleep 30; echo '{}'", "sh"])
        .stdin("1\n2\n")
        .spawn();
    crate::util::wait_until(
        std::time::Duration::from_secs(10),
        "the first record",
        || env.read("live.jsonl").contains("\"1\""),
    );
    let out = env
        .cmd()
        .args(["merge", "-o", "live.jsonl", "live.jsonl", "extra.jsonl"])
        .run();
    out.code(2)
        .stderr_has("live.jsonl is in use by a running pararun");
    run.signal(libc::SIGTERM);
    run.wait();
    assert!(env.read("live.jsonl").contains("\"1\""));
}

#[test]
fn a_run_waiting_for_the_lock_writes_into_the_file_that_replaced_the_cache() {
    let env = TestEnv::new();
    env.write("c.jsonl", "{\"id\":\"old\"}\n");
    env.write("new.jsonl", "{\"id\":\"old\"}\n");
    // Holds the cache's lock, replaces the file under it (as check --repair and merge -o do),
    // then lets go.
    let holder = std::process::Command::new("flock")
        .args(["c.jsonl", "sh", "-c", "sleep 1; mv new.jsonl c.jsonl"])
        .current_dir(env.path("."))
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    env.cmd()
        .args([
            "--cache",
            "c.jsonl",
            "--lock-wait",
            "20s",
            "-q",
            "--capture",
            "text",
            "--",
            "echo",
        ])
        .stdin("fresh\n")
        .run()
        .success();
    let mut holder = holder;
    holder.wait().unwrap();
    let cache = env.read("c.jsonl");
    assert!(
        cache.contains("fresh"),
        "the record went to the unlinked file: {cache:?}"
    );
}

#[test]
fn check_and_merge_read_the_cache_with_the_runs_key_field() {
    let env = TestEnv::new();
    env.write("items.jsonl", "{\"name\":\"a\"}\n{\"name\":\"b\"}\n");
    // Each child prints its item back (--stdin, cat): the records are keyed by "name".
    env.cmd()
        .args([
            "-i",
            "items.jsonl",
            "--key-field",
            "name",
            "--cache",
            "c.jsonl",
            "-q",
        ])
        .args(["--stdin", "--", "cat"])
        .run()
        .success();
    assert_eq!(env.read("c.jsonl").lines().count(), 2);
    let out = env.cmd().args(["check", "c.jsonl"]).run();
    assert!(out.success().stdout.contains("clean"), "{}", out.report());
    env.cmd()
        .args(["check", "--repair", "c.jsonl"])
        .run()
        .success();
    assert_eq!(
        env.read("c.jsonl").lines().count(),
        2,
        "repair kept the records"
    );
    let out = env.cmd().args(["merge", "-o", "m.jsonl", "c.jsonl"]).run();
    out.success().stderr_has("merged 2 records");
}

#[test]
fn repair_and_merge_keep_the_files_mode_and_field_order_is_no_conflict() {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::new();
    let cache = env.write(
        "c.jsonl",
        "{\"id\":1,\"a\":1,\"b\":2}\n{\"id\":1,\"a\":1,\"b\":2}\n",
    );
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o600)).unwrap();
    env.cmd()
        .args(["check", "--repair", "c.jsonl"])
        .run()
        .success();
    let mode = std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode, 0o600,
        "repair made a private cache readable: {mode:o}"
    );
    env.write("d.jsonl", "{\"id\":1,\"b\":2,\"a\":1}\n");
    env.cmd()
        .args(["merge", "-o", "c.jsonl", "c.jsonl", "d.jsonl"])
        .run()
        .success()
        .stderr_has("1 duplicate records with the same content dropped");
    let mode = std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "merge made a private cache readable: {mode:o}");
}

#[test]
fn a_cache_named_like_a_glob_is_itself() {
    let env = TestEnv::new();
    env.write("out[1].jsonl", "{\"id\":1}\n");
    env.write("out[1].jsonl.state", "");
    let out = env
        .cmd()
        .args(["status", "--json", "out[1].jsonl", "--total", "1"])
        .run();
    out.success();
    env.cmd()
        .args(["merge", "-o", "m.jsonl", "out[1].jsonl"])
        .run()
        .success();
}
