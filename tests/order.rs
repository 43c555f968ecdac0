//! `--keep-order` (issue 5): records in input order under random child durations, with a
//! bounded window behind a stuck item.

use crate::util::TestEnv;

#[test]
fn keep_order_prints_in_input_order() {
    let env = TestEnv::new();
    // Durations scrambled by a multiplicative hash of the key, and item 1 waits until item 2
    // has finished (at most 20 s), so the children surely finish out of input order.
    let input: String = (1..=60)
        .map(|i| format!("{{\"id\":{i},\"ms\":{}}}\n", (i * 37) % 50))
        .collect();
    let child = env.script(
        "child.sh",
        "if [ \"$PARARUN_SEQ\" = 1 ]; then n=0; while [ ! -e 2.done ] && [ $n -lt 400 ]; do \
         sleep 0.05; n=$((n+1)); done; fi; sleep 0.0$(printf %02d $1); \
         touch \"$PARARUN_SEQ.done\"; echo \"$2\"",
    );
    let out = env
        .cmd()
        .args(["-j", "8", "--keep-order", "--cache", "c.jsonl", "--"])
        .args([child.as_str(), "<ms>", "{}"])
        .stdin(input)
        .run();
    out.success();
    let ids: Vec<i64> = out
        .records()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, (1..=60).collect::<Vec<_>>());
    // The cache got them in completion order: item 2 before item 1, and the same set.
    let cached: Vec<i64> = env
        .json_lines("c.jsonl")
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    let at = |id| cached.iter().position(|&c| c == id).unwrap();
    assert!(at(2) < at(1), "cache order {cached:?}");
    let mut sorted = cached.clone();
    sorted.sort();
    assert_eq!(sorted, ids);
}

#[test]
fn keep_order_skips_failed_items_and_keeps_going() {
    let env = TestEnv::new();
    let out = env
        .cmd()
        .args([
            "-j",
            "3",
            "-k",
            "--",
            "sh",
            "-c",
            "[ $1 != 2 ] && echo {}",
            "sh",
        ])
        .stdin("1\n2\n3\n4\n")
        .run();
    out.code(1);
    let ids: Vec<String> = out
        .records()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["1", "3", "4"]);
}

#[test]
fn a_stuck_item_holds_back_only_a_window() {
    let env = TestEnv::new();
    // Item 1 is slow; the others are instant. With -j 2 the window is 8 items: while item 1 runs,
    // no more than 8 further items may start. (The records are printed: with -q nothing is
    // held back, so nothing waits.)
    let input: String = (1..=100).map(|i| format!("{i}\n")).collect();
    let child = env.script(
        "child.sh",
        "echo $1 >> starts.log; if [ $1 = 1 ]; then sleep 2; wc -l < starts.log > seen; fi; echo {}",
    );
    let out = env
        .cmd()
        .args(["-j", "2", "-k", "--", child.as_str()])
        .stdin(input)
        .run();
    out.success();
    assert_eq!(out.records().len(), 100);
    let seen: usize = env.read("seen").trim().parse().unwrap();
    assert!(
        seen <= 9,
        "{seen} items had started while the first was stuck"
    );
    assert_eq!(env.read("starts.log").lines().count(), 100);
}
