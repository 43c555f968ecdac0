//! The quickest reading of an answer: a JSON object whose values are all scalars (strings
//! without escapes, numbers, `true`, `false`, `null`), the usual answer of a trivial worker.
//! It is checked here by hand against JSON's grammar; anything else, even valid JSON (a nested
//! value), is left to serde_json. Going through serde_json cost more than pararun's whole
//! scheduling of the item.

use std::ops::Range;

/// A top-level field: its name (inside the quotes) and its value's text.
pub(super) struct Field {
    pub(super) name: Range<usize>,
    pub(super) value: Range<usize>,
}

/// The fields of `line` if it is such an object (and UTF-8, and has no backslash: the caller
/// checked); `None` when it is not, whether or not it is JSON.
pub(super) fn scalar_fields(line: &[u8], max: usize) -> Option<Vec<Field>> {
    let mut at = skip_blank(line, 0);
    if line.get(at) != Some(&b'{') {
        return None;
    }
    at = skip_blank(line, at + 1);
    let mut fields = Vec::with_capacity(4);
    if line.get(at) == Some(&b'}') {
        at += 1;
    } else {
        loop {
            let name = string(line, at)?;
            at = skip_blank(line, name.end);
            if line.get(at) != Some(&b':') {
                return None;
            }
            at = skip_blank(line, at + 1);
            let value = scalar(line, at)?;
            at = skip_blank(line, value.end);
            let name = name.start + 1..name.end - 1;
            let seen = |f: &Field| line[f.name.clone()] == line[name.clone()];
            if fields.len() == max || fields.iter().any(seen) {
                return None;
            }
            fields.push(Field { name, value });
            match line.get(at) {
                Some(b',') => at = skip_blank(line, at + 1),
                Some(b'}') => {
                    at += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    (skip_blank(line, at) == line.len()).then_some(fields)
}

fn skip_blank(line: &[u8], mut at: usize) -> usize {
    while matches!(line.get(at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        at += 1;
    }
    at
}

/// A string without escapes at `at`, quotes included.
fn string(line: &[u8], at: usize) -> Option<Range<usize>> {
    if line.get(at) != Some(&b'"') {
        return None;
    }
    let len = memchr::memchr(b'"', &line[at + 1..])?;
    let inside = &line[at + 1..at + 1 + len];
    // JSON forbids raw control characters in strings (a backslash was ruled out before).
    if inside.iter().any(|&b| b < 0x20) {
        return None;
    }
    Some(at..at + len + 2)
}

/// A scalar value at `at`.
fn scalar(line: &[u8], at: usize) -> Option<Range<usize>> {
    match line.get(at)? {
        b'"' => string(line, at),
        b't' => word(line, at, b"true"),
        b'f' => word(line, at, b"false"),
        b'n' => word(line, at, b"null"),
        b'-' | b'0'..=b'9' => number(line, at),
        _ => None,
    }
}

fn word(line: &[u8], at: usize, word: &[u8]) -> Option<Range<usize>> {
    line[at..].starts_with(word).then_some(at..at + word.len())
}

/// A number by JSON's grammar: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
fn number(line: &[u8], start: usize) -> Option<Range<usize>> {
    let digits = |mut at: usize| {
        while line.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
        at
    };
    let mut at = start + usize::from(line[start] == b'-');
    match line.get(at)? {
        b'0' => at += 1,
        b'1'..=b'9' => at = digits(at + 1),
        _ => return None,
    }
    if line.get(at) == Some(&b'.') {
        let end = digits(at + 1);
        if end == at + 1 {
            return None;
        }
        at = end;
    }
    if matches!(line.get(at), Some(b'e' | b'E')) {
        at += 1;
        if matches!(line.get(at), Some(b'+' | b'-')) {
            at += 1;
        }
        let end = digits(at);
        if end == at {
            return None;
        }
        at = end;
    }
    Some(start..at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
}
