//! The cache record: a result object with the key field first. Made here for the judge of a
//! child's stdout and for a worker's answer read in place alike, so both write the same bytes.

use serde_json::Value;

/// The cache record: the result object with the key field first, set to the item's key; any
/// other result is wrapped as `{"<key-field>": KEY, "result": VALUE}`.
pub fn make_record(key_field: &str, key: &Value, result: Value) -> String {
    // Written field by field rather than through a new map: the same compact JSON (the key
    // first, the result's other fields in their order), without copying every field.
    let mut out = Vec::with_capacity(128);
    out.push(b'{');
    put_json(&mut out, key_field);
    out.push(b':');
    put_json(&mut out, key);
    match &result {
        Value::Object(fields) => {
            for (name, value) in fields.iter().filter(|(name, _)| *name != key_field) {
                out.push(b',');
                put_json(&mut out, name);
                out.push(b':');
                put_json(&mut out, value);
            }
        }
        other => {
            out.extend_from_slice(b",\"result\":");
            put_json(&mut out, other);
        }
    }
    out.push(b'}');
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

/// Appends `value` to `out` as compact JSON.
pub fn put_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    serde_json::to_writer(&mut *out, value).expect("writing JSON to memory cannot fail");
}
