//! The fast path must give the full parse's key or step aside: whenever [`key_hash`] answers,
//! its hash is the hash of the key that `key_of_object` and `Key::new` give, on plain records,
//! on every spelling of numbers and strings, and on damaged lines.

use proptest::prelude::*;

use std::ops::Range;

use super::{key_hash, plain_run, scalar_fields};
use crate::base::key::{key_of_object, Key};

/// The key hash by the full parse, as a cache load computes it; `None` for a damaged line.
fn full(line: &[u8], field: &str) -> Option<u128> {
    let text = std::str::from_utf8(line).ok()?;
    Some(Key::new(key_of_object(text, field).ok()??).hash)
}

fn fast(line: &str) -> Option<u128> {
    key_hash(line.as_bytes(), "id")
}

#[test]
fn plain_records_take_the_fast_path() {
    for line in [
        r#"{"id":0,"words":3,"upper":"ITEM NUMBER 0"}"#,
        r#"{"id":-7,"text":"a \"quoted\" word\n","n":[1,2.5,{"id":9}],"ok":true}"#,
        r#"{"id":"doc-1","v":null,"w":{"a":{"b":[]}},"x":"\u00e9\/"}"#,
        r#"{"id":"naïve ☃ 😀"}"#,
        r#"{"id":123456789012345678901234567890}"#,
        r#"{"id":-123456789012345678901234567890}"#,
        r#"{"id":18446744073709551616}"#,
        r#"{"id":-0}"#,
        r#"{"id":0.10}"#,
        r#"{"id":1.0}"#,
        r#"{"x":[1e5,-2E-3],"id":3}"#,
        r#"{ "id" : 4 , "y" : { } }"#,
        "{\t\"id\":\r\n5}",
        r#"{"ID":1,"id":2,"Id":3}"#,
        r#"{"a":{"id":1},"id":""}"#,
    ] {
        let got = fast(line);
        assert!(got.is_some(), "not on the fast path: {line}");
        assert_eq!(got, full(line.as_bytes(), "id"), "{line}");
    }
}

#[test]
fn unusual_keys_take_the_full_parse() {
    for line in [
        r#"{"id":1e5}"#,
        r#"{"id":1E+5}"#,
        r#"{"id":"a\"b"}"#,
        r#"{"id":"\u0041"}"#,
        r#"{"i\u0064":1}"#,
        r#"{"id":1,"id":2}"#,
        r#"{"id":null}"#,
        r#"{"id":true}"#,
        r#"{"id":[1]}"#,
        r#"{"id":{"a":1}}"#,
    ] {
        assert_eq!(fast(line), None, "{line}");
        assert!(full(line.as_bytes(), "id").is_some(), "{line}");
    }
}

#[test]
fn damaged_lines_take_the_full_parse() {
    for line in [
        "",
        "garbage",
        "[1]",
        "{}",
        r#"{"x":1}"#,
        r#"{"id":5"#,
        r#"{"id":5} x"#,
        r#"{"id":5,}"#,
        r#"{"id":5,"v":[1,]}"#,
        r#"{"id":5,"v":tru}"#,
        r#"{"id":5,"v":truex}"#,
        r#"{"id":05}"#,
        r#"{"id":-}"#,
        r#"{"id":1.}"#,
        r#"{"id":.5}"#,
        r#"{"id":"a	b"}"#,
        r#"{"id":1,"v":"\x"}"#,
        r#"{"id":1,"v":"\u12"}"#,
        r#"{"id":1,"v":"unterminated}"#,
        r#"{"id":1 "v":2}"#,
        r#"{"id" 1}"#,
        r#"{id:1}"#,
        "{\"id\":1,\"v\":\"\u{1}\"}",
        "{\"id\":1}\u{c}",
    ] {
        assert_eq!(fast(line), None, "{line}");
        assert_eq!(full(line.as_bytes(), "id"), None, "{line}");
    }
    assert_eq!(key_hash(b"{\"id\":1,\"v\":\"\xff\"}", "id"), None);
}

/// Every record one byte away from these (a byte changed, dropped or put in anywhere, whatever
/// the byte) is answered alike, or left to the full parse.
#[test]
fn every_one_byte_damage() {
    for base in [
        r#"{"id":-10.5,"a":[true,false,null,{}],"b":{"c":"x\"\\\/\b\f\n\r\t"},"d":0}"#,
        r#"{ "s":"\u00e9\uD83D\ude00" , "id" : "k é" , "n":-0.0e+1,"m":1E-2 }"#,
        r#"{"id":0,"v":[[1],[-2,[3.25]]],"w":""}"#,
    ] {
        let base = base.as_bytes();
        let check = |line: &[u8]| {
            if let Some(hash) = key_hash(line, "id") {
                assert_eq!(
                    Some(hash),
                    full(line, "id"),
                    "{}",
                    String::from_utf8_lossy(line)
                );
            }
        };
        check(base);
        assert!(key_hash(base, "id").is_some());
        for at in 0..=base.len() {
            for byte in 0..=255u8 {
                let mut line = base.to_vec();
                line.insert(at, byte);
                check(&line);
                if at < base.len() {
                    line.remove(at);
                    line[at] = byte;
                    check(&line);
                }
            }
            check(&[&base[..at], base.get(at + 1..).unwrap_or_default()].concat());
        }
    }
}

#[test]
fn nesting_past_the_bound_takes_the_full_parse() {
    let deep = |n: usize| format!("{{\"id\":1,\"v\":{}{}}}", "[".repeat(n), "]".repeat(n));
    assert!(fast(&deep(super::MAX_DEPTH as usize - 1)).is_some());
    assert_eq!(fast(&deep(super::MAX_DEPTH as usize)), None);
    // The full parse applies pararun's one nesting limit (`input::depth`), fields skipped
    // or not: 127 levels counting the record itself.
    let limit = crate::base::depth::MAX_DEPTH;
    assert!(full(deep(limit - 1).as_bytes(), "id").is_some());
    assert_eq!(full(deep(limit).as_bytes(), "id"), None);
    assert_eq!(full(deep(500).as_bytes(), "id"), None);
}

#[test]
fn every_scalar_alone() {
    for key in SCALARS {
        let line = format!("{{\"id\":{key}}}");
        let plain = !key.contains(['e', 'E', '\\']) && !["true", "false", "null"].contains(key);
        assert_eq!(fast(&line).is_some(), plain, "{line}");
        if plain {
            assert_eq!(fast(&line), full(line.as_bytes(), "id"), "{line}");
        }
    }
}

#[test]
fn other_key_fields() {
    let line = r#"{"id":1,"doc id":"x","":2,"k":{"doc id":3}}"#;
    for field in ["doc id", "", "k", "missing"] {
        let got = key_hash(line.as_bytes(), field);
        assert_eq!(
            got.is_some(),
            field == "doc id" || field.is_empty(),
            "{field}"
        );
        if got.is_some() {
            assert_eq!(got, full(line.as_bytes(), field), "{field}");
        }
    }
}

// Scalars in every spelling the two parsers might treat differently.
#[rustfmt::skip]
const SCALARS: &[&str] = &[
    "0", "-0", "7", "-12", "123456789012345678901234567890", "18446744073709551616",
    "-9223372036854775809", "0.10", "1.0", "-2.5", "1e5", "1E+5", "2.5e-7", "1e400", "-0.0e0",
    "\"\"", "\"a\"", "\"5\"", "\"é ü 😀\"", "\"a\\\"b\"", "\"\\\\\"", "\"\\n\\t\"", "\"\\u0041\"",
    "\"\\ud800\"", "\"\\udc00x\"", "\"\\ud83d\\ude00\"", "\"/\\/\"", "true", "false", "null",
];

#[rustfmt::skip]
const NAMES: &[&str] = &[
    "\"id\"", "\"id\"", "\"i\\u0064\"", "\"ID\"", "\"words\"", "\"\"", "\"id \"", "\"x\\\"y\"",
];

/// Top-level names without escapes: beside them, a plain key must take the fast path.
const PLAIN_NAMES: &[&str] = &["\"words\"", "\"\"", "\"ID\"", "\"id \"", "\"di\""];

#[rustfmt::skip]
const PLAIN_KEYS: &[&str] = &[
    "0", "-0", "7", "-12", "123456789012345678901234567890", "-9223372036854775809", "0.10",
    "-2.5", "\"\"", "\"a\"", "\"5\"", "\"é ü 😀\"", "\"/\"",
];

const SPACE: &[&str] = &["", "", "", " ", "\t", " \r\n "];

/// Bytes that break a line in interesting ways when put anywhere in it.
const BREAKERS: &[u8] = b"\"\\,:{}[]0-.e \x01\xff\xc3tnxg";

/// Bytes where the grammar branches.
const TOKENS: &[u8] = b"\"\\,:{}[]0123456789-.eEtfnu";

fn value() -> impl Strategy<Value = String> {
    let leaf = prop::sample::select(SCALARS).prop_map(str::to_owned);
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(","))),
            members(NAMES, inner).prop_map(|m| format!("{{{m}}}")),
        ]
    })
}

/// Object members, with whitespace around the tokens.
fn members(
    names: &'static [&'static str],
    value: impl Strategy<Value = String>,
) -> impl Strategy<Value = String> {
    let space = || prop::sample::select(SPACE);
    let member = (
        space(),
        prop::sample::select(names),
        space(),
        space(),
        value,
        space(),
    );
    prop::collection::vec(member, 0..5).prop_map(|members| {
        let members: Vec<String> = members
            .into_iter()
            .map(|(a, name, b, c, value, d)| format!("{a}{name}{b}:{c}{value}{d}"))
            .collect();
        members.join(",")
    })
}

/// Top-level names: mostly plain, sometimes escaped or the key field again.
#[rustfmt::skip]
const TOP_NAMES: &[&str] = &[
    "\"words\"", "\"text\"", "\"\"", "\"ID\"", "\"id \"", "\"di\"", "\"v\"", "\"i\\u0064\"",
    "\"x\\\"y\"", "\"id\"",
];

/// A record with its key field among others, maybe damaged: cut short, a byte dropped, put
/// in or overwritten.
fn line() -> impl Strategy<Value = Vec<u8>> {
    let key = prop_oneof![
        3 => prop::sample::select(PLAIN_KEYS).prop_map(str::to_owned),
        1 => value(),
    ];
    let record = (
        members(TOP_NAMES, value()),
        key,
        members(TOP_NAMES, value()),
    )
        .prop_map(|(before, key, after)| {
            let comma = |m: &str| if m.is_empty() { "" } else { "," };
            format!(
                "{{{before}{}\"id\":{key}{}{after}}}",
                comma(&before),
                comma(&after)
            )
        });
    let damage = prop_oneof![
        1 => Just(None),
        2 => (any::<prop::sample::Index>(), any::<bool>(), 0..4u8, prop::sample::select(BREAKERS))
            .prop_map(Some),
    ];
    (record, damage).prop_map(|(record, damage)| {
        let mut line = record.into_bytes();
        if let Some((at, near_token, how, byte)) = damage {
            // Half the damage lands on or just after a token's byte, where parsers decide.
            let tokens: Vec<usize> = (0..line.len())
                .filter(|&i| near_token && TOKENS.contains(&line[i]))
                .flat_map(|i| [i, i + 1])
                .collect();
            let at = match tokens.is_empty() {
                true => at.index(line.len() + 1),
                false => tokens[at.index(tokens.len())],
            };
            match how {
                0 => line.truncate(at),
                1 if at < line.len() => drop(line.remove(at)),
                2 if at < line.len() => line[at] = byte,
                _ => line.insert(at, byte),
            }
        }
        line
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 4096,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn a_fast_answer_is_the_full_parses(line in line()) {
        if let Some(hash) = key_hash(&line, "id") {
            prop_assert_eq!(Some(hash), full(&line, "id"), "{}", String::from_utf8_lossy(&line));
        }
    }

    #[test]
    fn plain_keys_are_found_beside_any_fields(
        key in prop::sample::select(PLAIN_KEYS),
        before in members(PLAIN_NAMES, value()),
        after in members(PLAIN_NAMES, value()),
    ) {
        let comma = |m: &str| if m.is_empty() { "" } else { "," };
        let line = format!("{{{before}{}\"id\":{key}{}{after}}}", comma(&before), comma(&after));
        let got = key_hash(line.as_bytes(), "id");
        prop_assert!(got.is_some(), "not on the fast path: {}", line);
        prop_assert_eq!(got, full(line.as_bytes(), "id"), "{}", line);
    }


    #[test]
    fn plain_runs_end_where_bytes_say(bytes in prop::collection::vec(
        prop::sample::select(&b"ab\"\\\x00\x1f \x7f\x80\xff"[..]), 0..40,
    )) {
        let naive = bytes.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20);
        prop_assert_eq!(plain_run(&bytes), naive.unwrap_or(bytes.len()));
    }
}

// The scalar-only objects of workers' answers (`scalar_fields`).

fn read(line: &str) -> Option<Vec<(String, String)>> {
    let fields = scalar_fields(line.as_bytes(), 16)?;
    let text = |r: Range<usize>| line[r].to_owned();
    Some(
        fields
            .into_iter()
            .map(|f| (text(f.name), text(f.value)))
            .collect(),
    )
}

#[test]
fn scalar_objects_are_read() {
    let pair = |n: &str, v: &str| (n.to_owned(), v.to_owned());
    assert_eq!(
        read(r#" { "id" : -0.5e+3 ,"s":"a b","t":true,"f":false,"n":null} "#),
        Some(vec![
            pair("id", "-0.5e+3"),
            pair("s", "\"a b\""),
            pair("t", "true"),
            pair("f", "false"),
            pair("n", "null")
        ])
    );
    assert_eq!(read("{}"), Some(vec![]));
}

#[test]
fn anything_else_is_left_to_serde() {
    for line in [
        "",
        "{",
        "}",
        "[]",
        "{}x",
        "{,}",
        r#"{"a":1,}"#,
        r#"{"a" 1}"#,
        r#"{"a":01}"#,
        r#"{"a":1.}"#,
        r#"{"a":.5}"#,
        r#"{"a":1e}"#,
        r#"{"a":-}"#,
        r#"{"a":tru}"#,
        r#"{"a":truex}"#,
        r#"{"a":[1]}"#,
        r#"{"a":{}}"#,
        r#"{"a":1,"a":2}"#,
        r#"{a:1}"#,
        "{\"a\":\"x\u{1}\"}",
        r#"{"a":1 "b":2}"#,
        r#"{"a":+1}"#,
        r#"{"a":NaN}"#,
    ] {
        assert!(read(line).is_none(), "{line:?}");
    }
}

proptest! {
    /// Whatever it accepts, serde_json accepts as the same fields.
    #[test]
    fn it_accepts_only_json(tokens in prop::collection::vec(prop::sample::select(vec![
        "{", "}", ",", ":", " ", "\"a\"", "\"b\"", "\"", "1", "-0.5e3", "01", "1.", "-",
        "2E-1", "true", "nul", "null", "x", "[", "]",
    ]), 0..12)) {
        let line = tokens.concat();
        if let Some(fields) = read(&line) {
            let value: serde_json::Value = serde_json::from_str(&line)
                .map_err(|e| TestCaseError::fail(format!("{line:?}: {e}")))?;
            let map = value.as_object().unwrap();
            prop_assert_eq!(map.len(), fields.len());
            for (name, text) in fields {
                prop_assert_eq!(map[&name].to_string(), text);
            }
        }
    }
}
