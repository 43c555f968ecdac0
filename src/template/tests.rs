//! Unit tests of the template: parsing, both modes, rendering from items.

use super::*;
use crate::input::Key;

fn words(cmd: &[&str]) -> Vec<String> {
    cmd.iter().map(|s| s.to_string()).collect()
}

fn json_item(line: &str) -> Item {
    let value: Value = serde_json::from_str(line).unwrap();
    Item {
        seq: 7,
        line: line.into(),
        key: Key::new(value["id"].clone()),
        json: true,
        value: Some(value),
    }
}

#[test]
fn parses_placeholders_and_leaves_the_rest() {
    use Spelling::{Angle, Brace};
    let parse = |word: &str| words::parse_word(word, true);
    assert_eq!(
        parse("a<>b"),
        [
            Part::Lit("a".into()),
            Part::Item(Angle),
            Part::Lit("b".into())
        ]
    );
    assert_eq!(
        parse("<#>/<%>"),
        [Part::Seq(Angle), Part::Lit("/".into()), Part::Slot(Angle)]
    );
    assert_eq!(
        parse("--x=<name>"),
        [Part::Lit("--x=".into()), Part::Field("name".into())]
    );
    assert_eq!(
        parse("a{}b{#}{%}"),
        [
            Part::Lit("a".into()),
            Part::Item(Brace),
            Part::Lit("b".into()),
            Part::Seq(Brace),
            Part::Slot(Brace)
        ]
    );
    for literal in [
        "2>&1",
        "<<EOF",
        "<in.txt",
        "a < b > c",
        "<",
        "<1a>",
        "",
        "${x}",
        "${}",
        "${#}",
        "$$${#}",
        "{ cmd; }",
        "{print}",
        "{id}",
        "{a,b}",
        "{1..3}",
        "{",
        "}",
        "{ }",
        "{#",
        "%}",
    ] {
        assert_eq!(parse(literal), [Part::Lit(literal.into())], "{literal:?}");
    }
    // `$$` is a whole expansion (the shell's pid): a brace after it is pararun's.
    assert_eq!(parse("$${#}"), [Part::Lit("$$".into()), Part::Seq(Brace)]);
    // `{}` is the item only when no <…> placeholder claims the command.
    assert_eq!(words::parse_word("{}", false), [Part::Lit("{}".into())]);
}

#[test]
fn braces_are_left_to_the_program_beside_angle_placeholders() {
    let t = Template::parse(
        &words(&["find", "<>", "-exec", "wc", "-c", "{}", "+", "{#}"]),
        false,
        false,
    )
    .unwrap();
    assert_eq!(
        t.render(&json_item(r#"{"id":1}"#), 2).unwrap(),
        ["find", r#"{"id":1}"#, "-exec", "wc", "-c", "{}", "+", "7"]
    );
    // Without one, {} is the item, as in GNU parallel, and nothing is appended.
    let t = Template::parse(&words(&["echo", "{}", "{#}", "{%}"]), false, false).unwrap();
    assert_eq!(
        t.render(&json_item(r#"{"id":1}"#), 2).unwrap(),
        ["echo", r#"{"id":1}"#, "7", "2"]
    );
    // In an argument with a blank, {} is the script's (JSON's empty object), not a value
    // pasted into code; the item is appended. A number is pasted anywhere.
    let t = Template::parse(&words(&["sh", "-c", "echo {}"]), false, false).unwrap();
    assert_eq!(
        t.render(&json_item(r#"{"id":1}"#), 2).unwrap(),
        ["sh", "-c", "echo {}", r#"{"id":1}"#]
    );
    let t = Template::parse(&words(&["sh", "-c", "echo {} {#}"]), false, false).unwrap();
    assert_eq!(
        t.render(&json_item(r#"{"id":1}"#), 2).unwrap(),
        ["sh", "-c", "echo {} 7"]
    );
    // jq's and awk's braces are theirs; with no placeholder the item is appended.
    let t = Template::parse(&words(&["jq", "-n", "{id}"]), false, false).unwrap();
    assert_eq!(
        t.render(&json_item(r#"{"id":1}"#), 1).unwrap(),
        ["jq", "-n", "{id}", r#"{"id":1}"#]
    );
}

#[test]
fn direct_mode_keeps_values_whole() {
    let t = Template::parse(&words(&["echo", "<text>", "<#>", "<%>"]), false, false).unwrap();
    let item = json_item(r#"{"id":1,"text":"$(touch x); rm -rf ~ 'q'"}"#);
    assert_eq!(
        t.render(&item, 3).unwrap(),
        ["echo", "$(touch x); rm -rf ~ 'q'", "7", "3"]
    );
}

#[test]
fn shell_mode_quotes_values() {
    let t = Template::parse(&words(&["echo <text> 2>&1"]), false, false).unwrap();
    let item = json_item(r#"{"id":1,"text":"a'b $(x)"}"#);
    // The value follows the script as an argument; the script only refers to it.
    assert_eq!(
        t.render(&item, 1).unwrap(),
        [
            "sh",
            "-c",
            r#"__pararun_1=${1}; shift 1; echo "${__pararun_1}" 2>&1"#,
            "sh",
            "a'b $(x)"
        ]
    );
}

#[test]
fn field_values_follow_json_rules() {
    let t = Template::parse(&words(&["p", "<n>", "<b>", "<z>", "<o>"]), false, false).unwrap();
    let item = json_item(r#"{"id":1,"n":2.5,"b":true,"z":null,"o":{"k":[1, 2]}}"#);
    assert_eq!(
        t.render(&item, 1).unwrap(),
        ["p", "2.5", "true", "", r#"{"k":[1,2]}"#]
    );
}

#[test]
fn missing_field_is_an_item_error() {
    let t = Template::parse(&words(&["p", "<nope>"]), false, false).unwrap();
    assert!(t.render(&json_item(r#"{"id":1}"#), 1).is_err());
}

#[test]
fn item_is_appended_without_placeholders() {
    let t = Template::parse(&words(&["echo", "hi"]), false, false).unwrap();
    assert_eq!(
        t.render(&json_item(r#"{"id":1}"#), 1).unwrap(),
        ["echo", "hi", r#"{"id":1}"#]
    );
    let t = Template::parse(&words(&["wc -c"]), false, false).unwrap();
    assert_eq!(
        t.render(&json_item(r#"{"id":1}"#), 1).unwrap()[2..],
        [
            r#"__pararun_1=${1}; shift 1; wc -c "${__pararun_1}""#,
            "sh",
            r#"{"id":1}"#
        ]
    );
    let t = Template::parse(&words(&["cat"]), false, true).unwrap();
    assert_eq!(t.render(&json_item(r#"{"id":1}"#), 1).unwrap(), ["cat"]);
    let t = Template::parse(&words(&["./work.sh"]), false, false).unwrap();
    assert_eq!(t.mode(), Mode::Direct);
    assert_eq!(
        t.render(&json_item(r#"{"id":1}"#), 1).unwrap(),
        ["./work.sh", r#"{"id":1}"#]
    );
}

#[test]
fn workers_take_only_the_slot() {
    let t = Template::parse(&words(&["python3", "w.py", "--slot=<%>"]), false, true).unwrap();
    assert_eq!(t.render_worker(2).unwrap(), ["python3", "w.py", "--slot=2"]);
    let t = Template::parse(&words(&["python3", "w.py", "<text>"]), false, true).unwrap();
    assert_eq!(t.render_worker(1).unwrap_err(), "<text>");
    let t = Template::parse(&words(&["python3", "w.py", "{%}", "{}"]), false, true).unwrap();
    assert_eq!(t.render_worker(1).unwrap_err(), "{}");
}

#[test]
fn forced_shell_joins_words() {
    let t = Template::parse(&words(&["echo", "$HOME", "<>"]), true, false).unwrap();
    assert_eq!(t.mode(), Mode::Shell);
    assert_eq!(
        t.render(&json_item(r#"{"id":1}"#), 1).unwrap()[2..],
        [
            r#"__pararun_1=${1}; shift 1; echo $HOME "${__pararun_1}""#,
            "sh",
            r#"{"id":1}"#
        ]
    );
    assert_eq!(t.literal_program(), None);
}
