//! Keys: an item's JSON value, its canonical text and the hash the cache index stores.
//!
//! The canonical text is the compact JSON that serde_json writes. serde_json is built with
//! `arbitrary_precision`, so a number keeps every digit it was written with (`0.10`,
//! `123456789012345678901234567890`, `-0`); only an exponent is respelled, as `e+N` or `e-N`.
//! A key read back from the cache is therefore the same text, and the same hash, as the key in
//! the input, whatever its size or precision. The flip side: `1`, `1.0` and `1e0` are three
//! different keys (while `1e0`, `1E0` and `1e+0` are one), as `5` and `"5"` are.

use std::fmt;

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

/// An item's key: its JSON value, canonical text and 128-bit hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    /// The key as a JSON value, as written into records.
    pub value: Value,
    /// The compact JSON text of the value.
    pub text: String,
    /// XXH3-128 of `text`: what the cache index stores.
    pub hash: u128,
}

impl Key {
    /// Builds a key from its JSON value.
    pub fn new(value: Value) -> Key {
        let text = value.to_string();
        let hash = xxhash_rust::xxh3::xxh3_128(text.as_bytes());
        Key { value, text, hash }
    }

    /// Builds a key from its canonical text, as `cache::scan::key_text` finds it in a line
    /// (so it is valid JSON, and already the text [`Key::new`] would give).
    pub(crate) fn from_plain_text(text: &[u8]) -> Key {
        let text = std::str::from_utf8(text).expect("the scanner checked UTF-8");
        // serde_json's parser cost more than the rest of reading the item: a string without
        // escapes is its bytes, and an integer that fits 64 bits is made from the integer
        // (with `arbitrary_precision` both keep this very text; `-0` would not).
        let parsed = || serde_json::from_str(text).expect("the scanner checked the syntax");
        let value = match text.as_bytes()[0] {
            b'"' => Value::String(text[1..text.len() - 1].to_owned()),
            _ if text.starts_with("-0") => parsed(),
            _ => (text.parse::<u64>().map(Value::from))
                .or_else(|_| text.parse::<i64>().map(Value::from))
                .unwrap_or_else(|_| parsed()),
        };
        debug_assert_eq!(value.to_string(), text);
        let hash = xxhash_rust::xxh3::xxh3_128(text.as_bytes());
        Key {
            value,
            text: text.to_owned(),
            hash,
        }
    }

    /// The shard (0..count) that owns this key: XXH3-64 of the compact JSON text, modulo count.
    pub fn shard(&self, count: u64) -> u64 {
        xxhash_rust::xxh3::xxh3_64(self.text.as_bytes()) % count
    }

    /// The key as handed to children in `PARARUN_KEY`: a string key bare, others as JSON.
    pub fn env_text(&self) -> &str {
        match &self.value {
            Value::String(s) => s,
            _ => &self.text,
        }
    }
}

/// Extracts `field` from a JSON object line without building the rest of it (the other values
/// are only checked for syntax). `Ok(None)` when the object lacks the field.
pub fn key_of_object(line: &str, field: &str) -> Result<Option<Value>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(line);
    let key = KeyOnly(field).deserialize(&mut de)?;
    de.end()?;
    // The other fields were skipped without a depth limit; pararun's applies all the same.
    if super::depth::too_deep(line.as_bytes()) {
        return Err(super::depth::too_deep_error());
    }
    Ok(key)
}

/// Why an object line has no key, naming the field that was probably meant: one whose name
/// differs only in case (`"ID"` for `id`), or else the object's first fields. Only called on a
/// line that failed, so parsing it whole costs nothing in the common case.
pub fn missing_key(line: &str, field: &str) -> String {
    let base = format!("the object has no {field:?} field (--key-field)");
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(line) else {
        return base;
    };
    if let Some(near) = map.keys().find(|k| k.eq_ignore_ascii_case(field)) {
        return format!(
            "{base} but has {near:?}: try --key-field {}",
            shell_words::quote(near)
        );
    }
    if map.is_empty() {
        return format!("{base}; the object is empty");
    }
    let mut names: Vec<String> = map.keys().take(5).map(|k| format!("{k:?}")).collect();
    if map.len() > 5 {
        names.push("…".into());
    }
    format!(
        "{base}; its fields are {}: name the key's with --key-field NAME",
        names.join(", ")
    )
}

struct KeyOnly<'a>(&'a str);

impl<'de> DeserializeSeed<'de> for KeyOnly<'_> {
    type Value = Option<Value>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for KeyOnly<'_> {
    type Value = Option<Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(is_key) = map.next_key_seed(FieldIs(self.0))? {
            if is_key {
                found = Some(map.next_value::<Value>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// Compares an object's field name with ours without allocating for it.
struct FieldIs<'a>(&'a str);

impl<'de> DeserializeSeed<'de> for FieldIs<'_> {
    type Value = bool;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for FieldIs<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E>(self, v: &str) -> Result<bool, E> {
        Ok(v == self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_key_names_the_field_probably_meant() {
        assert_eq!(
            missing_key(r#"{"ID":1,"text":"a"}"#, "id"),
            r#"the object has no "id" field (--key-field) but has "ID": try --key-field ID"#
        );
        assert_eq!(
            missing_key(r#"{"Doc Id":1}"#, "doc id"),
            r#"the object has no "doc id" field (--key-field) but has "Doc Id": try --key-field 'Doc Id'"#
        );
        assert_eq!(
            missing_key(r#"{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6}"#, "id"),
            r#"the object has no "id" field (--key-field); its fields are "a", "b", "c", "d", "e", …: name the key's with --key-field NAME"#
        );
        assert!(missing_key("{}", "id").ends_with("the object is empty"));
    }

    fn key_text(line: &str) -> String {
        Key::new(key_of_object(line, "id").unwrap().unwrap()).text
    }

    #[test]
    fn key_extraction() {
        assert_eq!(
            key_of_object(r#"{"a":[1,{"id":9}],"id":"x"}"#, "id").unwrap(),
            Some(Value::from("x"))
        );
        assert_eq!(
            key_of_object(r#"{"id":5}"#, "id").unwrap(),
            Some(Value::from(5))
        );
        assert_eq!(
            key_of_object(r#"{"i\u0064":7}"#, "id").unwrap(),
            Some(Value::from(7))
        );
        assert_eq!(key_of_object(r#"{"other":5}"#, "id").unwrap(), None);
        assert!(key_of_object(r#"{"id":5"#, "id").is_err());
        assert!(key_of_object(r#"{"id":5} x"#, "id").is_err());
        assert!(key_of_object("[1]", "id").is_err());
    }

    #[test]
    fn number_and_string_keys_differ() {
        assert_ne!(
            Key::new(Value::from(5)).hash,
            Key::new(Value::from("5")).hash
        );
        assert_eq!(Key::new(Value::from("5")).env_text(), "5");
        assert_eq!(Key::new(Value::from(5)).env_text(), "5");
    }

    #[test]
    fn numbers_keep_their_digits() {
        for exact in [
            "0.1",
            "0.10",
            "3.141592653589793238",
            "123456789012345678901234567890",
            "-123456789012345678901234567890",
            "18446744073709551616",
            "-0",
            "1.0",
            "1e+400",
            "2.5e-7",
        ] {
            assert_eq!(key_text(&format!("{{\"id\":{exact}}}")), exact);
        }
        // Only the exponent is respelled: these are one key...
        for same in ["1e0", "1E0", "1e+0", "1E+0"] {
            assert_eq!(key_text(&format!("{{\"id\":{same}}}")), "1e+0");
        }
        // ...and these three keys, though equal as numbers.
        let texts = ["1", "1.0", "1e0"].map(|n| key_text(&format!("{{\"id\":{n}}}")));
        assert_eq!(texts, ["1", "1.0", "1e+0"]);
    }

    #[test]
    fn a_key_reads_back_from_its_record_unchanged() {
        // The cache record carries the key's value; loading it must give the same hash.
        for number in [
            "0.1",
            "1e400",
            "3.141592653589793238",
            "123456789012345678901234567890",
        ] {
            let key = Key::new(
                key_of_object(&format!("{{\"id\":{number}}}"), "id")
                    .unwrap()
                    .unwrap(),
            );
            let record = serde_json::json!({"id": key.value, "v": 1}).to_string();
            let back = Key::new(key_of_object(&record, "id").unwrap().unwrap());
            assert_eq!(back, key, "{record}");
        }
    }

    #[test]
    fn shard_hash_is_fixed() {
        // Pinned values, checked against Python's `xxhash.xxh3_64_intdigest`: every machine and
        // every version must agree on them.
        assert_eq!(xxhash_rust::xxh3::xxh3_64(b"1"), 0x65cd25028f98f158);
        assert_eq!(Key::new(Value::from(1)).shard(4), 0x65cd25028f98f158 % 4);
        assert_eq!(Key::new(Value::from("a")).shard(4), 3);
    }

    proptest::proptest! {
        /// A key the cache's scanner finds in an input line is the key the full parse gives.
        #[test]
        fn a_plain_key_is_the_parsed_key(
            key in r#"-?[0-9]{1,25}(\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?|"[^"\\\x00-\x1f]{0,6}"|"a\\n"|true|null|\[1\]"#,
            before in r#"("x" *: *[0-9], *)?"#,
            after in r#"(, *"y" *: *\{"id": *2\})?"#,
        ) {
            let line = format!("{{{before}\"id\" : {key}{after}}}");
            if let Some(text) = crate::base::scan::key_text(line.as_bytes(), "id") {
                let parsed = Key::new(key_of_object(&line, "id").unwrap().unwrap());
                let plain = Key::from_plain_text(text);
                proptest::prop_assert_eq!(&plain.value, &parsed.value);
                proptest::prop_assert_eq!(&plain.text, &parsed.text);
                proptest::prop_assert_eq!(plain.hash, parsed.hash);
            }
        }
    }
}
