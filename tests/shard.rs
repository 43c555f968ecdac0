//! Sharding (issue 7): disjoint shards that cover the input, and merged shard caches.

use std::collections::HashSet;

use serde_json::{json, Value};

use crate::util::TestEnv;

/// A few thousand keys of mixed JSON types, some of them textually alike (`5` and `"5"`).
fn mixed_items() -> Vec<Value> {
    let mut items = Vec::new();
    for i in 0..600 {
        items.push(json!({"id": i}));
        items.push(json!({"id": i.to_string()}));
        items.push(json!({"id": -i - 1}));
        items.push(json!({"id": f64::from(i) + 0.5}));
        items.push(json!({"id": format!("ключ-{i}-✓")}));
    }
    items
}

#[test]
fn shards_are_disjoint_and_cover_the_input() {
    let env = TestEnv::new();
    let items = mixed_items();
    let input: String = items.iter().map(|v| v.to_string() + "\n").collect();
    env.write("in.jsonl", &input);
    let all: HashSet<String> = items.iter().map(|v| v["id"].to_string()).collect();
    assert_eq!(all.len(), items.len());

    let n = 4;
    let mut seen = HashSet::new();
    let mut merged = String::new();
    for i in 0..n {
        let cache = format!("shard-{i}.jsonl");
        let out = env
            .cmd()
            .args([
                "-j",
                "4",
                "-i",
                "in.jsonl",
                "--shard",
                &format!("{i}/{n}"),
                "--cache",
                &cache,
            ])
            .args(["--", "sh", "-c", "echo {}"])
            .run();
        out.success().stderr_has(" other shards");
        let records = env.json_lines(&cache);
        assert!(
            !records.is_empty() && records.len() < items.len(),
            "shard {i} got {}",
            records.len()
        );
        for r in records {
            assert!(
                seen.insert(r["id"].to_string()),
                "key {} is in two shards",
                r["id"]
            );
        }
        merged += &env.read(&cache);
    }
    assert_eq!(seen, all, "the shards do not cover the input");

    // `cat shard-*.jsonl > all.jsonl` is a cache of the whole: a full run skips everything.
    env.write("all.jsonl", merged);
    let out = env
        .cmd()
        .args([
            "-i",
            "in.jsonl",
            "--cache",
            "all.jsonl",
            "--",
            "touch",
            "ran",
        ])
        .run();
    out.success().stderr_has(&format!(
        "ran 0 (0 succeeded, 0 failed), {} cached",
        items.len()
    ));
    assert!(!env.path("ran").exists());
}

#[test]
fn bad_shard_specs_are_usage_errors() {
    let env = TestEnv::new();
    for spec in ["4/4", "a/b", "1", "0/0"] {
        env.cmd()
            .args(["--shard", spec, "--", "touch", "ran"])
            .stdin("a\n")
            .run()
            .code(2)
            .stderr_has("is not a shard");
    }
    // A negative index reads as a flag to the parser, which rejects it all the same.
    env.cmd()
        .args(["--shard", "-1/2", "--", "touch", "ran"])
        .stdin("a\n")
        .run()
        .code(2);
    assert!(!env.path("ran").exists());
}

/// `--shard auto` under a scheduler's variables runs the same keys as the explicit shard.
fn auto_keys(env: &TestEnv, vars: &[(&str, &str)], shard: &str) -> crate::util::Output {
    let mut cmd = env.cmd();
    for name in [
        "SLURM_ARRAY_TASK_ID",
        "SLURM_ARRAY_TASK_COUNT",
        "JOB_COMPLETION_INDEX",
    ] {
        cmd = cmd.env_remove(name);
    }
    for (name, value) in vars {
        cmd = cmd.env(name, value);
    }
    cmd.args(["-i", "in.txt", "--shard", shard, "--dry-run", "--", "echo"])
        .run()
}

#[test]
fn shard_auto_reads_slurm_and_kubernetes_variables() {
    let env = TestEnv::new();
    env.write(
        "in.txt",
        (0..200).map(|i| format!("k{i}\n")).collect::<String>(),
    );
    let explicit = |s: &str| auto_keys(&env, &[], s).stdout;
    // --array=1-4: task 3 is the third of four, shard 2/4.
    let slurm = [
        ("SLURM_ARRAY_TASK_ID", "3"),
        ("SLURM_ARRAY_TASK_MIN", "1"),
        ("SLURM_ARRAY_TASK_MAX", "4"),
        ("SLURM_ARRAY_TASK_COUNT", "4"),
    ];
    let out = auto_keys(&env, &slurm, "auto");
    out.success();
    assert_eq!(out.stdout, explicit("2/4"));
    assert!(!out.stdout.is_empty());
    // Kubernetes gives the index; the count comes with the flag.
    let out = auto_keys(&env, &[("JOB_COMPLETION_INDEX", "5")], "auto/8");
    out.success();
    assert_eq!(out.stdout, explicit("5/8"));
    auto_keys(&env, &[("JOB_COMPLETION_INDEX", "5")], "auto")
        .code(2)
        .stderr_has("give it: --shard auto/N");
    // Outside an array it is an error at start, not a run of everything.
    auto_keys(&env, &[], "auto")
        .code(2)
        .stderr_has("neither a Slurm job array");
}
