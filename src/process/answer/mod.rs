//! A persistent worker's answer, parsed once.
//!
//! Most answers are small JSON objects of scalars (strings without escapes, numbers, `true`,
//! `false`, `null`). Those are checked by hand against JSON's grammar (`base::scan::scalar_fields`) without
//! building a `Value`: only where each top-level field starts and ends is kept, and the record
//! is written from the answer's own bytes. Building the `Value` (a map, a string per key and
//! per number) was a third of pararun's work per item on trivial workers.
//!
//! The record is the same either way, byte for byte: without escapes a string is written back
//! as it was read, serde_json (with `arbitrary_precision`) writes a number as its text (only
//! an exponent is respelled, here too), and the whitespace between tokens is dropped.
//! Whatever could differ takes the `Value` path: an escape anywhere, a field named twice (the
//! map keeps the last), more than [`MAX_FLAT`] fields, an answer that is not an object, and
//! any nested array or object (the `Value` path merges a nested field named twice and
//! enforces serde_json's nesting limit; copied raw, neither would hold).

pub mod echo;
pub mod throttle;

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::base::record::{make_record, put_json};
use crate::base::scan::{scalar_fields, Field};

/// Objects with more fields take the `Value` path (telling duplicates apart is quadratic here).
const MAX_FLAT: usize = 16;

/// A worker's answer: a JSON result, parsed once.
pub struct Answer {
    /// The answer line (empty for an answer made from a `Value`).
    line: Vec<u8>,
    form: AnswerForm,
    /// Whether the key it echoes was already matched against its item's (by the pipeline, as
    /// it read the answer), so the judge need not read it again.
    pub(crate) echo_checked: bool,
}

enum AnswerForm {
    /// An object read in place: its fields as ranges of `line`.
    Flat(Vec<Field>),
    Value(Value),
}

impl Answer {
    /// An answer that is already a `Value`.
    pub fn from_value(value: Value) -> Answer {
        Answer::parsed(Vec::new(), value)
    }

    /// The answer `line`, already parsed as `value`.
    pub fn parsed(line: Vec<u8>, value: Value) -> Answer {
        Answer {
            line,
            form: AnswerForm::Value(value),
            echo_checked: false,
        }
    }

    /// Reads `line` in place if it is a flat-path object; gives it back otherwise.
    pub fn flat(line: Vec<u8>) -> Result<Answer, Vec<u8>> {
        if memchr::memchr(b'\\', &line).is_some() || std::str::from_utf8(&line).is_err() {
            return Err(line);
        }
        let fields = scalar_fields(&line, MAX_FLAT);
        match fields {
            Some(fields) => Ok(Answer {
                line,
                form: AnswerForm::Flat(fields),
                echo_checked: false,
            }),
            None => Err(line),
        }
    }

    /// The answer line as the worker wrote it (empty for an answer made from a `Value`).
    pub fn into_line(self) -> Vec<u8> {
        self.line
    }

    /// The value of field `name`, if the answer is an object that has it.
    pub fn field(&self, name: &str) -> Option<Cow<'_, Value>> {
        match &self.form {
            AnswerForm::Value(Value::Object(map)) => map.get(name).map(Cow::Borrowed),
            AnswerForm::Value(_) => None,
            AnswerForm::Flat(fields) => {
                let field = fields
                    .iter()
                    .find(|f| &self.line[f.name.clone()] == name.as_bytes())?;
                let text = &self.line[field.value.clone()];
                let value = serde_json::from_slice(text).expect("checked as JSON when read");
                Some(Cow::Owned(value))
            }
        }
    }

    /// Whether field `name` holds `key` exactly (`Some(true)`; for a read-in-place answer, as
    /// the same text, which needs no `Value` made), something else (`Some(false)`: see
    /// [`Answer::field`]), or is missing (`None`).
    pub fn names_exactly(&self, name: &str, key: &Value) -> Option<bool> {
        match &self.form {
            AnswerForm::Value(value) => value.get(name).map(|v| v == key),
            AnswerForm::Flat(fields) => {
                let field = fields
                    .iter()
                    .find(|f| &self.line[f.name.clone()] == name.as_bytes())?;
                Some(is_text_of(&self.line[field.value.clone()], key))
            }
        }
    }

    /// The answer as a `Value`.
    #[cfg(test)]
    pub fn into_value(self) -> Value {
        match self.form {
            AnswerForm::Value(value) => value,
            AnswerForm::Flat(_) => serde_json::from_slice(&self.line).expect("checked when read"),
        }
    }

    /// The cache record: the result object with the key field first, set to the item's key;
    /// any other result is wrapped as `{"<key-field>": KEY, "result": VALUE}`.
    /// `key_text` is the key's compact JSON.
    pub fn record(self, key_field: &str, key: &Value, key_text: &str) -> String {
        let fields = match self.form {
            AnswerForm::Value(value) => return make_record(key_field, key, value),
            AnswerForm::Flat(fields) => fields,
        };
        let mut out = Vec::with_capacity(self.line.len() + key_text.len() + 32);
        out.push(b'{');
        put_json(&mut out, key_field);
        out.push(b':');
        out.extend_from_slice(key_text.as_bytes());
        for field in fields {
            let name = &self.line[field.name];
            if name == key_field.as_bytes() {
                continue;
            }
            // Without escapes, a name is written back as it is, and so is a value but for a
            // number's exponent.
            out.extend_from_slice(b",\"");
            out.extend_from_slice(name);
            out.extend_from_slice(b"\":");
            put_scalar(&mut out, &self.line[field.value]);
        }
        out.push(b'}');
        String::from_utf8(out).expect("checked as UTF-8 when read")
    }
}

/// Whether `text` (JSON without a backslash) is `key`'s compact JSON. Numbers are compared as
/// their text (serde_json keeps it, with `arbitrary_precision`); without escapes, a string's
/// text is its quotes around its bytes.
fn is_text_of(text: &[u8], key: &Value) -> bool {
    match key {
        Value::Number(n) => text == n.as_str().as_bytes(),
        Value::String(s) => {
            text.len() == s.len() + 2 && text[0] == b'"' && &text[1..text.len() - 1] == s.as_bytes()
        }
        Value::Bool(true) => text == b"true",
        Value::Bool(false) => text == b"false",
        Value::Null => text == b"null",
        Value::Array(_) | Value::Object(_) => false,
    }
}

/// Appends a scalar's text as serde_json writes it: a string, `true`, `false` or `null` as
/// it is (without escapes), a number with its exponent, if any, written `e+N` or `e-N`
/// (serde_json writes `1E5` as `1e+5`).
fn put_scalar(out: &mut Vec<u8>, text: &[u8]) {
    let exponent = match text.first() {
        Some(b'-' | b'0'..=b'9') => text.iter().position(|&b| b == b'e' || b == b'E'),
        _ => None,
    };
    let Some(at) = exponent else {
        out.extend_from_slice(text);
        return;
    };
    out.extend_from_slice(&text[..at]);
    out.push(b'e');
    if !matches!(text.get(at + 1), Some(b'+' | b'-')) {
        out.push(b'+');
    }
    out.extend_from_slice(&text[at + 1..]);
}

/// The top-level fields of a JSON object `line` as raw text, borrowed from it: `None` unless
/// it is one, with at most 16 fields, none named twice, and no escape in any name.
pub fn raw_fields(line: &[u8]) -> Option<Vec<(&str, &RawValue)>> {
    serde_json::from_slice::<Fields<'_>>(line)
        .ok()
        .map(|Fields(fields)| fields)
}

/// A flat-path object's fields, borrowed from the line.
struct Fields<'a>(Vec<(&'a str, &'a RawValue)>);

impl<'de> Deserialize<'de> for Fields<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(FieldsVisitor)
    }
}

struct FieldsVisitor;

impl<'de> Visitor<'de> for FieldsVisitor {
    type Value = Fields<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields<'de>, A::Error> {
        let mut fields: Vec<(&str, &RawValue)> = Vec::with_capacity(4);
        while let Some(name) = map.next_key::<&'de str>()? {
            let value = map.next_value::<&'de RawValue>()?;
            if fields.len() == MAX_FLAT || fields.iter().any(|(seen, _)| *seen == name) {
                return Err(de::Error::custom("not flat"));
            }
            fields.push((name, value));
        }
        Ok(Fields(fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn by_value(line: &str, key: &Value) -> String {
        let value: Value = serde_json::from_str(line).unwrap();
        make_record("id", key, value)
    }

    fn flat(line: &str) -> Answer {
        Answer::flat(line.as_bytes().to_vec()).unwrap_or_else(|_| panic!("flat: {line}"))
    }

    #[test]
    fn flat_records_match_the_value_path() {
        let key = serde_json::json!(7);
        for line in [
            r#"{"id": 7, "x": "[1, 2]", "y": "é ü", "n": 1E+05}"#,
            r#"{"x":1.50e-3,"id":"7","big":123456789012345678901234567890}"#,
            r#"  { "s" : " spaced   out " , "e" : null , "l" : true, "z": 0e0 }  "#,
            r#"{}"#,
        ] {
            let record = flat(line).record("id", &key, &key.to_string());
            assert_eq!(record, by_value(line, &key), "{line}");
        }
    }

    #[test]
    fn what_could_differ_takes_the_value_path() {
        for line in [
            r#"{"id": 1, "s": "a\"b"}"#,
            r#"{"id": 1, "id": 2}"#,
            r#"{"a": 1, "a": 2}"#,
            r#"[1, 2]"#,
            r#"5"#,
            r#"{"id": 1"#,
            r#"{"id": 1} x"#,
            "{\"s\": \"tab\there\"}",
            r#"{"id": 1, "a": {"x": 1, "x": 2}}"#,
            r#"{"id": 1, "a": [1]}"#,
        ] {
            assert!(Answer::flat(line.as_bytes().to_vec()).is_err(), "{line}");
        }
        let many: Vec<String> = (0..=MAX_FLAT).map(|i| format!("\"f{i}\":{i}")).collect();
        let line = format!("{{{}}}", many.join(","));
        assert!(Answer::flat(line.into_bytes()).is_err());
    }

    #[test]
    fn exact_keys_are_told_by_their_text() {
        let answer = flat(r#"{"id": 5, "s": "5", "f": 5.0, "b": true, "z": null}"#);
        let parse = |t: &str| -> Value { serde_json::from_str(t).unwrap() };
        assert_eq!(answer.names_exactly("id", &parse("5")), Some(true));
        assert_eq!(answer.names_exactly("id", &parse("5.0")), Some(false));
        assert_eq!(answer.names_exactly("id", &parse("\"5\"")), Some(false));
        assert_eq!(answer.names_exactly("s", &parse("\"5\"")), Some(true));
        assert_eq!(answer.names_exactly("f", &parse("5.0")), Some(true));
        assert_eq!(answer.names_exactly("b", &parse("true")), Some(true));
        assert_eq!(answer.names_exactly("z", &parse("null")), Some(true));
        assert_eq!(answer.names_exactly("q", &parse("5")), None);
    }

    #[test]
    fn fields_are_read_as_values() {
        let answer = flat(r#"{"id": 5.0, "x": "y"}"#);
        assert_eq!(answer.field("id").unwrap().to_string(), "5.0");
        assert!(answer.field("z").is_none());
        assert_eq!(answer.into_value()["x"], "y");
    }

    fn json_text() -> impl Strategy<Value = String> {
        let number = prop_oneof![
            Just("0".to_owned()),
            Just("-0".to_owned()),
            Just("1E+05".to_owned()),
            Just("0.1000000000000000055511151231257827".to_owned()),
            Just("123456789012345678901234567890".to_owned()),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| format!("{f:e}")),
        ];
        let string = "[^\"\\\\\\x00-\\x1f]{0,8}".prop_map(|s| format!("\"{s}\""));
        let blank = "[ \t\r\n]{0,2}";
        let leaf = prop_oneof![
            number,
            string,
            Just("true".to_owned()),
            Just("null".to_owned())
        ];
        leaf.prop_recursive(3, 24, 4, move |inner| {
            let items = prop::collection::vec((inner.clone(), blank, blank), 0..4);
            let names = prop::collection::btree_map("[a-z]{1,3}", (inner, blank), 0..4);
            prop_oneof![
                items.prop_map(|items| {
                    let parts: Vec<String> = items
                        .into_iter()
                        .map(|(v, a, b)| format!("{a}{v}{b}"))
                        .collect();
                    format!("[{}]", parts.join(","))
                }),
                names.prop_map(|fields| {
                    let parts: Vec<String> = (fields.into_iter())
                        .map(|(n, (v, b))| format!("{b}\"{n}\"{b}:{b}{v}"))
                        .collect();
                    format!("{{{}}}", parts.join(","))
                }),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_flat_answer_records_as_the_value_path_does(
            fields in prop::collection::btree_map("[a-z]{1,3}", (json_text(), "[ \t]{0,2}"), 0..6)
        ) {
            let parts: Vec<String> = (fields.into_iter())
                .map(|(n, (v, b))| format!("{b}\"{n}\"{b}:{b}{v}{b}"))
                .collect();
            let line = format!("{{{}}}", parts.join(","));
            let key = serde_json::json!("k");
            // Whatever is read in place records as the Value path does; an object of
            // scalars (its only brace the outer one) always is read in place.
            let scalars = line.matches(['[', '{']).count() == 1;
            match Answer::flat(line.clone().into_bytes()) {
                Ok(answer) => {
                    let record = answer.record("id", &key, &key.to_string());
                    prop_assert_eq!(record, by_value(&line, &key));
                }
                Err(_) => prop_assert!(!scalars, "{}", line),
            }
        }
    }
}
