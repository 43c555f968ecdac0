//! The core runner (issue 3): items, keys, templates, results, exit codes.

use serde_json::{json, Value};

use crate::util::{keys, TestEnv};

/// A child that prints its arguments as a JSON array, one per element.
const ARGV_JSON: &str =
    r#"python3 -c 'import json,sys; print(json.dumps({"argv": sys.argv[1:]}))'"#;

fn argv_echo(env: &TestEnv) -> String {
    env.script("argv.sh", &format!("exec {ARGV_JSON} \"$@\""))
}

#[test]
fn jsonl_items_become_records_keyed_by_id() {
    let env = TestEnv::new();
    env.write("in.jsonl", "{\"id\":1,\"n\":2}\n{\"id\":\"b\",\"n\":3}\n");
    let out = env
        .cmd()
        .args(["-j", "2", "-i", "in.jsonl", "--cache", "c.jsonl", "--"])
        .args([
            "sh",
            "-c",
            "echo \"{\\\"sq\\\": $(($1 * $1)), \\\"id\\\": \\\"ignored\\\"}\"",
            "sh",
            "<n>",
        ])
        .run();
    out.success();
    let mut records = out.records();
    records.sort_by_key(|r| r["sq"].as_i64());
    assert_eq!(
        records,
        [json!({"id": 1, "sq": 4}), json!({"id": "b", "sq": 9})]
    );
    let mut cached = env.json_lines("c.jsonl");
    cached.sort_by_key(|r| r["sq"].as_i64());
    assert_eq!(cached, records);
    // the key comes first in each line
    assert!(env
        .read("c.jsonl")
        .lines()
        .all(|l| l.starts_with("{\"id\":")));
}

#[test]
fn hostile_items_pass_through_direct_mode_untouched() {
    let env = TestEnv::new();
    let argv = argv_echo(&env);
    let nasty = [
        "$(touch pwned)",
        "`touch pwned2`; rm -rf ~",
        "a \"quoted\" 'word'",
        "line\nbreak",
        "héllo wörld ✓",
        "  spaced  ",
        "*",
        "-n",
    ];
    let input: String = nasty
        .iter()
        .enumerate()
        .map(|(i, s)| json!({"id": i, "s": s}).to_string() + "\n")
        .collect();
    let out = env
        .cmd()
        .args(["-i", "-", "--", argv.as_str(), "<s>", "x<s>y"])
        .stdin(input)
        .run();
    out.success();
    let records = out.records();
    assert_eq!(records.len(), nasty.len());
    for r in &records {
        let s = nasty[r["id"].as_u64().unwrap() as usize];
        assert_eq!(r["argv"], json!([s, format!("x{s}y")]), "{}", out.report());
    }
    assert!(!env.path("pwned").exists() && !env.path("pwned2").exists());
}

#[test]
fn hostile_items_are_quoted_in_shell_mode() {
    let env = TestEnv::new();
    let nasty = [
        "$(touch pwned)",
        "`touch pwned2`",
        "'; touch pwned3; '",
        "a\\nb \"q\"",
        "日本語 ✓",
        "x\ny",
    ];
    let input: String = nasty
        .iter()
        .map(|s| json!({"id": s, "s": s}).to_string() + "\n")
        .collect();
    let out = env
        .cmd()
        .args(["--capture", "text", "--", "printf %s <s>"])
        .stdin(input)
        .run();
    out.success();
    for r in out.records() {
        assert_eq!(r["result"], r["id"], "{}", out.report());
    }
    for f in ["pwned", "pwned2", "pwned3"] {
        assert!(
            !env.path(f).exists(),
            "{f} was created: the item was executed"
        );
    }
}

#[test]
fn placeholders_item_line_number_and_slot() {
    let env = TestEnv::new();
    let argv = argv_echo(&env);
    let out = env
        .cmd()
        .args([
            "-j",
            "1",
            "--",
            argv.as_str(),
            "<>",
            "<#>",
            "<%>",
            "2>&1",
            "<<EOF",
            "<a.b>",
        ])
        .stdin("\nfirst line\n")
        .run();
    out.success();
    assert_eq!(
        out.records(),
        [json!({"id": "first line", "argv": ["first line", "2", "1", "2>&1", "<<EOF", "<a.b>"]})]
    );
}

#[test]
fn field_values_follow_json_rules() {
    let env = TestEnv::new();
    let argv = argv_echo(&env);
    let out = env
        .cmd()
        .args(["--", argv.as_str(), "<s>", "<n>", "<b>", "<z>", "<o>"])
        .stdin(r#"{"id":1,"s":"str","n":1.5,"b":false,"z":null,"o":{"k":[1, 2]}}"#)
        .run();
    out.success();
    assert_eq!(
        out.records()[0]["argv"],
        json!(["str", "1.5", "false", "", "{\"k\":[1,2]}"])
    );
}

#[test]
fn item_is_appended_when_there_is_no_placeholder() {
    let env = TestEnv::new();
    let argv = argv_echo(&env);
    let out = env
        .cmd()
        .args(["--", argv.as_str(), "fixed"])
        .stdin("a b\n")
        .run();
    out.success();
    assert_eq!(out.records()[0]["argv"], json!(["fixed", "a b"]));
}

#[test]
fn stdin_mode_feeds_the_line_and_others_get_dev_null() {
    let env = TestEnv::new();
    let out = env
        .cmd()
        .args(["--stdin", "--capture", "text", "--", "cat"])
        .stdin("{\"id\":1,\"x\":\"é\"}\n")
        .run();
    out.success();
    assert_eq!(
        out.records(),
        [json!({"id": 1, "result": "{\"id\":1,\"x\":\"é\"}"})]
    );
    // Without --stdin a child reading stdin sees EOF at once, not pararun's input.
    let out = env
        .cmd()
        .args(["--capture", "text", "--", "cat; echo"])
        .stdin("a\nb\n")
        .run();
    out.success();
    let mut results: Vec<Value> = out.records().iter().map(|r| r["result"].clone()).collect();
    results.sort_by_key(|v| v.to_string());
    assert_eq!(results, [json!("a"), json!("b")]);
}

#[test]
fn children_see_their_key_line_slot_and_attempt() {
    let env = TestEnv::new();
    let out = env
        .cmd()
        .args([
            "-j",
            "1",
            "--capture",
            "text",
            "--",
            "echo $PARARUN_KEY/$PARARUN_SEQ/$PARARUN_SLOT/$PARARUN_ATTEMPT #",
        ])
        .stdin("{\"id\":\"k1\"}\n{\"id\":7}\n")
        .run();
    out.success();
    let results: Vec<Value> = out.records().iter().map(|r| r["result"].clone()).collect();
    assert_eq!(results, [json!("k1/1/1/1"), json!("7/2/1/1")]);
}

#[test]
fn result_parsing_takes_a_document_or_the_last_line() {
    let env = TestEnv::new();
    let child = env.script(
        "child.sh",
        r#"case "$1" in
  pretty) printf '{\n  "v": 1\n}\n' ;;
  logs) echo "loading"; echo "still loading"; echo '{"v": 2}' ;;
  scalar) echo 3 ;;
  empty) ;;
  junk) echo '{"v":1}'; echo done ;;
esac"#,
    );
    let out = env
        .cmd()
        .args(["--", child.as_str()])
        .stdin("pretty\nlogs\nscalar\nempty\njunk\n")
        .run();
    out.code(1)
        .stderr_has("item \"empty\" (<stdin>:4) failed: bad-output: empty stdout")
        .stderr_has("item \"junk\" (<stdin>:5) failed: bad-output: stdout's last line is not JSON");
    let mut records = out.records();
    records.sort_by_key(|r| r["id"].to_string());
    assert_eq!(
        records,
        [
            json!({"id": "logs", "v": 2}),
            json!({"id": "pretty", "v": 1}),
            json!({"id": "scalar", "result": 3})
        ]
    );
}

#[test]
fn bad_input_lines_fail_alone_and_the_run_goes_on() {
    let env = TestEnv::new();
    env.write(
        "in.jsonl",
        "{\"id\":1}\n{\"id\":2\n{\"name\":\"x\"}\n\n{\"id\":3}\n",
    );
    let out = env
        .cmd()
        .args([
            "-i", "in.jsonl", "--cache", "c.jsonl", "--", "sh", "-c", "echo {}",
        ])
        .run();
    out.code(1)
        .stderr_has("in.jsonl:2: item failed: bad-input: invalid JSON")
        .stderr_has("in.jsonl:3: item failed: bad-input: the object has no \"id\" field")
        .stderr_has("ran 4 (2 succeeded, 2 failed)");
    assert_eq!(keys(&env.json_lines("c.jsonl")), ["1", "3"]);
}

#[test]
fn missing_field_fails_that_item() {
    let env = TestEnv::new();
    let out = env
        .cmd()
        .args(["--", "sh", "-c", "echo {}", "<name>"])
        .stdin("{\"id\":1,\"name\":\"a\"}\n{\"id\":2}\n")
        .run();
    out.code(1)
        .stderr_has("item 2 (<stdin>:2) failed: bad-input: the item has no \"name\" field");
    assert_eq!(keys(&out.records()), ["1"]);
}

#[test]
fn key_field_and_typed_keys() {
    let env = TestEnv::new();
    let input = "{\"k\":5}\n{\"k\":\"5\"}\n{\"k\":5}\n";
    let out = env
        .cmd()
        .args([
            "--key-field",
            "k",
            "--cache",
            "c.jsonl",
            "--",
            "sh",
            "-c",
            "echo {}",
        ])
        .stdin(input)
        .run();
    out.success().stderr_has("1 duplicates");
    let mut ks: Vec<String> = env
        .json_lines("c.jsonl")
        .iter()
        .map(|r| r["k"].to_string())
        .collect();
    ks.sort();
    assert_eq!(ks, ["\"5\"", "5"]);
}

#[test]
fn without_a_cache_every_line_runs() {
    let env = TestEnv::new();
    let out = env
        .cmd()
        .args(["--capture", "text", "--", "echo"])
        .stdin("a\na\na\n")
        .run();
    out.success();
    assert_eq!(out.records().len(), 3);
}

#[test]
fn text_capture_and_failures_exit_1() {
    let env = TestEnv::new();
    let out = env
        .cmd()
        .args([
            "--capture",
            "text",
            "--",
            // A value may not stand in $((…)) (bash would evaluate it): checked in a variable.
            "echo out <>; echo 'oops <>' >&2; n=<>; case $n in *[!0-9]*) exit 2;; esac; exit $((n % 2))",
        ])
        .stdin("1\n2\n")
        .run();
    out.code(1)
        .stderr_has("oops 1\n")
        .stderr_has("oops 2\n")
        .stderr_has("item \"1\" (<stdin>:1) failed: exit: exit code 1; stderr ends: \"oops 1\"");
    assert_eq!(out.records(), [json!({"id": "2", "result": "out 2"})]);
}

#[test]
fn quiet_prints_nothing_but_still_caches() {
    let env = TestEnv::new();
    let out = env
        .cmd()
        .args(["-q", "--cache", "c.jsonl", "--", "sh", "-c", "echo {}"])
        .stdin("a\n")
        .run();
    out.success();
    assert_eq!(out.stdout, "");
    assert_eq!(out.stderr, "");
    assert_eq!(keys(&env.json_lines("c.jsonl")), ["\"a\""]);
}

#[test]
fn summary_counts_everything() {
    let env = TestEnv::new();
    env.write("c.jsonl", "{\"id\":\"a\"}\n");
    let out = env
        .cmd()
        .args([
            "--cache",
            "c.jsonl",
            "--",
            "sh",
            "-c",
            "[ $1 != c ] && echo {}",
            "sh",
        ])
        .stdin("a\nb\nb\nc\n")
        .run();
    out.code(1)
        .stderr_has("pararun: ran 2 (1 succeeded, 1 failed), 1 cached, 1 duplicates in ");
}

#[test]
fn dry_run_prints_quoted_commands_and_touches_nothing() {
    let env = TestEnv::new();
    env.write("c.jsonl", "{\"id\":1}\n");
    let out = env
        .cmd()
        .args([
            "--dry-run",
            "--cache",
            "c.jsonl",
            "--",
            "python",
            "work.py",
            "<text>",
        ])
        .stdin("{\"id\":1,\"text\":\"x\"}\n{\"id\":2,\"text\":\"it's $(x)\"}\n")
        .run();
    out.success();
    assert_eq!(out.stdout, "python work.py 'it'\\''s $(x)'\n");
    assert_eq!(env.read("c.jsonl"), "{\"id\":1}\n");
    let out = env
        .cmd()
        .args(["--dry-run", "--cache", "new.jsonl", "--", "echo <>"])
        .stdin("a b\n")
        .run();
    out.success();
    // Shell mode passes the value after the script; the line replays as it would run.
    assert_eq!(
        out.stdout,
        "sh -c '__pararun_1=${1}; shift 1; echo \"${__pararun_1}\"' sh 'a b'\n"
    );
    let replay = std::process::Command::new("sh")
        .args(["-c", out.stdout.trim()])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&replay.stdout), "a b\n");
    assert!(!env.path("new.jsonl").exists());
}

#[test]
fn dry_run_output_is_a_runnable_pipeline_with_stdin() {
    let env = TestEnv::new();
    let out = env
        .cmd()
        .args(["--dry-run", "--stdin", "--", "wc", "-c"])
        .stdin("a b\n")
        .run();
    out.success();
    assert_eq!(out.stdout, "printf '%s\\n' 'a b' | wc -c\n");
    let replay = std::process::Command::new("sh")
        .args(["-c", out.stdout.trim()])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&replay.stdout).trim(), "4");
}

#[test]
fn usage_errors_exit_2_before_anything_runs() {
    let env = TestEnv::new();
    env.cmd()
        .args(["-j", "0", "--", "touch", "ran"])
        .stdin("a\n")
        .run()
        .code(2);
    env.cmd()
        .args(["--", "touch", "<field>"])
        .stdin("plain line\n")
        .run()
        .code(2)
        .stderr_has("the command uses <field>, a field of a JSON item, but the input is read as plain lines");
    env.cmd()
        .args(["-i", "missing.jsonl", "--", "touch", "ran"])
        .run()
        .code(2)
        .stderr_has("cannot open input missing.jsonl");
    env.cmd()
        .args(["--", "no-such-program-xyz", "<>"])
        .stdin("a\n")
        .run()
        .code(2)
        .stderr_has("command not found: \"no-such-program-xyz\"");
    env.cmd()
        .args(["--timeout", "5d", "--", "true"])
        .run()
        .code(2);
    env.cmd()
        .args(["--format", "xml", "--", "true"])
        .run()
        .code(2);
    assert!(!env.path("ran").exists());
}

#[test]
fn format_can_be_forced() {
    let env = TestEnv::new();
    let out = env
        .cmd()
        .args([
            "--format",
            "lines",
            "--capture",
            "text",
            "--",
            "printf %s <>",
        ])
        .stdin("{\"id\":1}\n")
        .run();
    out.success();
    assert_eq!(
        out.records(),
        [json!({"id": "{\"id\":1}", "result": "{\"id\":1}"})]
    );
    let out = env
        .cmd()
        .args(["--format", "jsonl", "--", "sh", "-c", "echo {}"])
        .stdin("5\n\"s\"\n")
        .run();
    out.success();
    assert_eq!(keys(&out.records()), ["\"s\"", "5"]);
}

#[test]
fn halt_on_error_stops_reading_an_endless_input() {
    // `yes` never ends: this run finishes only because pararun reads lazily and stops at the
    // first failure instead of slurping its input.
    let env = TestEnv::new();
    let mut yes = std::process::Command::new("yes")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = env
        .cmd()
        .args([
            "-j",
            "2",
            "--halt-on-error",
            "--",
            "sh",
            "-c",
            "exit 1",
            "sh",
        ])
        .stdin_from(yes.stdout.take().unwrap())
        .run();
    yes.kill().unwrap();
    yes.wait().unwrap();
    out.code(1)
        .stderr_has("starting nothing new (--max-failures)");
}
