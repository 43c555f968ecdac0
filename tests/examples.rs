//! The README's set-up command and its recipes, run as documented (issue 5).

use crate::util::TestEnv;

fn repo(path: &str) -> String {
    format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_bundled_example_runs_and_resumes() {
    let env = TestEnv::new();
    let work = repo("examples/work.py");
    let items = repo("examples/items.jsonl");
    let args = [
        "-j",
        "4",
        "-i",
        &items,
        "--cache",
        "out.jsonl",
        "--",
        "python3",
        &work,
        "<>",
    ];
    let out = env.cmd().args(args).run();
    out.success().stderr_has("ran 20 (20 succeeded, 0 failed)");
    let records = env.json_lines("out.jsonl");
    assert_eq!(records.len(), 20);
    let first = records.iter().find(|r| r["id"] == 1).unwrap();
    assert_eq!(first["words"], 4);
    assert_eq!(first["upper"], "THE QUICK BROWN FOX");
    env.cmd()
        .args(args)
        .run()
        .success()
        .stderr_has("ran 0 (0 succeeded, 0 failed), 20 cached");
}

#[test]
fn readme_quick_start_squares() {
    let env = TestEnv::new();
    let input: String = (1..=20).map(|i| format!("{i}\n")).collect();
    env.cmd()
        .args([
            "-j",
            "8",
            "--cache",
            "squares.jsonl",
            "--",
            "sh",
            "-c",
            "echo \"{\\\"sq\\\": $(($1*$1))}\"",
            "sh",
            "<>",
        ])
        .stdin(input)
        .run()
        .success();
    let records = env.json_lines("squares.jsonl");
    assert!(records.iter().any(|r| r["id"] == "7" && r["sq"] == 49));
    assert_eq!(records.len(), 20);
}

#[test]
fn readme_rerun_failed_items_from_the_failures_file() {
    let env = TestEnv::new();
    env.write("in.jsonl", "{\"id\":1}\n{\"id\":2}\n{\"id\":3}\n");
    env.write("broken", "");
    let child = env.script(
        "work.sh",
        "if [ -e broken ] && [ $PARARUN_KEY = 2 ]; then exit 1; fi; echo {}",
    );
    env.cmd()
        .args([
            "-i",
            "in.jsonl",
            "--cache",
            "out.jsonl",
            "--failures",
            "failed.jsonl",
            "--",
            child.as_str(),
        ])
        .run()
        .code(1);
    std::fs::remove_file(env.path("broken")).unwrap();
    // jq -r .item failed.jsonl | pararun --cache out.jsonl -- ...
    let items: String = env
        .json_lines("failed.jsonl")
        .iter()
        .map(|f| f["item"].as_str().unwrap().to_owned() + "\n")
        .collect();
    env.cmd()
        .args(["--cache", "out.jsonl", "--", child.as_str()])
        .stdin(items)
        .run()
        .success()
        .stderr_has("ran 1 (1 succeeded, 0 failed)");
    assert_eq!(env.json_lines("out.jsonl").len(), 3);
}
