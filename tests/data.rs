//! Data kept exactly: numbers with every digit they were written with, as keys and as results.

use crate::util::TestEnv;

/// What a child prints: a float with more digits than a double holds, and a 98-bit integer.
const EXACT: &str =
    r#"{"x": 0.1000000000000000055511151231257827, "big": 123456789012345678901234567890}"#;

/// Keys that a double or a 64-bit integer cannot hold, and two spellings of one.
const NUMBER_KEYS: [&str; 7] = [
    "0.1",
    "1e400",
    "3.141592653589793238",
    "123456789012345678901234567890",
    "1",
    "1.0",
    "-0",
];

#[test]
fn numbers_reach_the_cache_exactly_and_resume_without_reruns() {
    let env = TestEnv::new();
    let input: String = NUMBER_KEYS
        .iter()
        .map(|k| format!("{{\"id\":{k}}}\n"))
        .collect();
    env.write("in.jsonl", input);
    let child = env.script(
        "child.sh",
        &format!("echo \"$PARARUN_KEY\" >> ran.log; echo '{EXACT}'"),
    );
    let run = || {
        env.cmd()
            .args(["-i", "in.jsonl", "--cache", "c.jsonl", "--", child.as_str()])
            .run()
    };
    let out = run();
    out.success().stderr_has("ran 7 (7 succeeded, 0 failed)");
    // Every digit survives; only the exponent is spelled the one way serde_json writes it.
    let mut expected: Vec<String> = NUMBER_KEYS
        .iter()
        .map(|k| {
            let k = if *k == "1e400" { "1e+400" } else { k };
            format!(
                "{{\"id\":{k},\"x\":0.1000000000000000055511151231257827,\
                 \"big\":123456789012345678901234567890}}"
            )
        })
        .collect();
    expected.sort();
    let sorted = |text: &str| {
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        lines.sort();
        lines
    };
    assert_eq!(sorted(&env.read("c.jsonl")), expected, "{}", out.report());
    assert_eq!(sorted(&out.stdout), expected);

    // The keys read back from the cache are the input's keys: nothing runs, nothing is added.
    let again = run();
    again
        .success()
        .stderr_has("ran 0 (0 succeeded, 0 failed), 7 cached");
    assert_eq!(env.read("ran.log").lines().count(), 7);
    assert_eq!(sorted(&env.read("c.jsonl")), expected);
}

#[test]
fn a_worker_that_reads_numbers_as_doubles_is_not_out_of_step() {
    // Python reads 3.141592653589793238 as a float and echoes 3.141592653589793: the same
    // item, though not the same text.
    let env = TestEnv::new();
    let worker = env.write(
        "w.py",
        "import json, sys\n\
         for line in sys.stdin:\n    \
             item = json.loads(line)\n    \
             print(json.dumps({'id': item['id'], 'ok': 1}), flush=True)\n",
    );
    env.write(
        "in.jsonl",
        "{\"id\":3.141592653589793238}\n{\"id\":123456789012345678901234567890}\n",
    );
    let out = env
        .cmd()
        .args([
            "--persistent",
            "-j",
            "1",
            "-i",
            "in.jsonl",
            "--cache",
            "c.jsonl",
        ])
        .args(["--", "python3", worker.to_str().unwrap()])
        .run();
    out.success();
    let cache = env.read("c.jsonl");
    assert!(
        cache.contains("{\"id\":3.141592653589793238,\"ok\":1}"),
        "{cache}"
    );
    assert!(cache.contains("{\"id\":123456789012345678901234567890,\"ok\":1}"));
}
