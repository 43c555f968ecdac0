//! A cache's lines one by one, each sorted as a run would take it: a record with its key, a
//! record without the key field, or damage (a torn write, garbage, a line over the cap).

use std::fs::OpenOptions;
use std::io::BufReader;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::base::key::Key;
use crate::base::line::{CappedLines, Line};
use crate::files;

/// What one non-blank line is.
pub enum Entry<'a> {
    /// A JSON object with the key field.
    Record {
        /// The record's key.
        key: Key,
        /// A hash of the record's compact JSON: equal records, however spaced, hash alike.
        content: u64,
        /// The line as written, without its newline.
        bytes: &'a [u8],
    },
    /// A JSON object without the key field: a run skips it (another key field's record).
    NoKey,
    /// Not a record: why.
    Damaged(String),
}

/// Calls `each(line_number, entry)` for every non-blank line of the cache at `path`. A last
/// line without its newline that is a whole JSON object is a record (the newline is what a
/// crash may take); one that does not parse is a torn write.
pub fn scan(
    path: &Path,
    key_field: &str,
    max_line: usize,
    mut each: impl FnMut(u64, Entry<'_>),
) -> Result<()> {
    let file = files::open_regular(path, OpenOptions::new().read(true)).map_err(|e| {
        e.describe(files::CACHE, path, || {
            format!("read cache {}", path.display())
        })
    })?;
    let mut lines = CappedLines::new(BufReader::with_capacity(1 << 16, file), max_line);
    let mut buf = Vec::new();
    let mut seq = 0;
    loop {
        seq += 1;
        let read = lines
            .read(&mut buf)
            .with_context(|| format!("cannot read cache {} at line {seq}", path.display()))?;
        let terminated = match read {
            Line::End => return Ok(()),
            Line::TooLong { bytes, .. } => {
                each(
                    seq,
                    Entry::Damaged(format!("a line of {bytes} bytes, over --max-line-bytes")),
                );
                continue;
            }
            Line::Whole { terminated } => terminated,
        };
        let text = buf.trim_ascii();
        if text.is_empty() {
            continue;
        }
        let entry = match serde_json::from_slice::<Value>(text) {
            Ok(Value::Object(mut record)) => match record.get(key_field) {
                Some(key) => {
                    let key = Key::new(key.clone());
                    record.remove(key_field);
                    let content = content_hash(&Value::Object(record));
                    Entry::Record {
                        key,
                        content,
                        bytes: text,
                    }
                }
                None => Entry::NoKey,
            },
            Ok(_) => Entry::Damaged("a JSON value that is not an object".into()),
            Err(_) if text.iter().all(|&b| b == 0) => Entry::Damaged("a line of NUL bytes".into()),
            Err(e) if !terminated => {
                Entry::Damaged(format!("a torn last line (a write cut short): {e}"))
            }
            Err(e) => Entry::Damaged(format!("not JSON: {e}")),
        };
        each(seq, entry);
    }
}

/// A hash of a JSON value that is the same however its objects' fields are ordered or its
/// text spaced: two machines whose programs write fields in another order agree.
fn content_hash(value: &Value) -> u64 {
    fn canonical(value: &Value, out: &mut String) {
        match value {
            Value::Object(map) => {
                let mut fields: Vec<(&String, &Value)> = map.iter().collect();
                fields.sort_by(|a, b| a.0.cmp(b.0));
                out.push('{');
                for (i, (name, field)) in fields.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(name.clone()).to_string());
                    out.push(':');
                    canonical(field, out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    canonical(item, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut text = String::new();
    canonical(value, &mut text);
    xxhash_rust::xxh3::xxh3_64(text.as_bytes())
}
