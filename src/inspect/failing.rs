//! The items failing now, read back from one or more `--failures` files.
//!
//! The failures file is an append-only history: an item that failed once and then succeeded
//! still has its line there. What fails *now* is an item whose key has a failure line and no
//! record in the cache, since a record is written only once, when the item succeeds. The
//! latest line of a key is its current failure; the `attempts` of all its lines add up, which
//! is what `--give-up-after` counts.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::Value;

use crate::base::key::Key;
use crate::base::line::{CappedLines, Line};
use crate::files;

/// The latest failure of one item, with the attempts of all its failure lines.
#[derive(Debug, Clone)]
pub struct Failing {
    /// The item's key (`null` for a line that had no key: bad input).
    pub key: Value,
    /// The item's input line as the failures file keeps it.
    pub item: String,
    /// The reason of the latest failure (`exit`, `timeout`, ...).
    pub reason: String,
    /// What happened, for people.
    pub detail: String,
    /// The end of the child's stderr at the latest failure.
    pub stderr_tail: String,
    /// Failed attempts over every line of this key.
    pub attempts: u64,
    /// Where the latest line is: the failures file and its line number.
    pub at: (PathBuf, u64),
}

/// Every key's latest failure, by key hash, and the lines that could not be read.
#[derive(Debug, Default)]
pub struct FailureHistory {
    /// The latest failure of each key.
    pub by_key: HashMap<u128, Failing>,
    /// Lines that are not failure records (a torn last line, garbage).
    pub unreadable: u64,
}

impl FailureHistory {
    /// Reads the failure files in order; a later line of a key replaces an earlier one. A file
    /// that does not exist yet holds no failures.
    pub fn read(paths: &[PathBuf], max_line: usize) -> Result<FailureHistory> {
        let mut history = FailureHistory::default();
        for path in paths {
            history.read_one(path, max_line)?;
        }
        Ok(history)
    }

    fn read_one(&mut self, path: &Path, max_line: usize) -> Result<()> {
        let file: File = match files::open_regular(path, OpenOptions::new().read(true)) {
            Ok(file) => file,
            Err(e) if e.io_kind() == Some(io::ErrorKind::NotFound) => return Ok(()),
            Err(e) => {
                return Err(e.describe(files::FAILURES, path, || {
                    format!("read failures file {}", path.display())
                }))
            }
        };
        let mut lines = CappedLines::new(BufReader::with_capacity(1 << 16, file), max_line);
        let mut buf = Vec::new();
        let mut seq = 0;
        loop {
            seq += 1;
            let read = lines.read(&mut buf).with_context(|| {
                format!("cannot read failures file {} at line {seq}", path.display())
            })?;
            match read {
                Line::End => return Ok(()),
                Line::TooLong { .. } => self.unreadable += 1,
                Line::Whole { .. } if buf.trim_ascii().is_empty() => {}
                Line::Whole { .. } => match serde_json::from_slice::<Value>(buf.trim_ascii()) {
                    Ok(Value::Object(record)) if record.contains_key("reason") => {
                        self.add(record, (path.to_owned(), seq));
                    }
                    _ => self.unreadable += 1,
                },
            }
        }
    }

    fn add(&mut self, record: serde_json::Map<String, Value>, at: (PathBuf, u64)) {
        let text = |name: &str| match record.get(name) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        };
        let key = record.get("key").cloned().unwrap_or(Value::Null);
        let item = text("item");
        // A line without a key (bad input) is told apart by its input line.
        let hash = match key {
            Value::Null => xxhash_rust::xxh3::xxh3_128(format!("\0null\0{item}").as_bytes()),
            _ => Key::new(key.clone()).hash,
        };
        let attempts = record.get("attempts").and_then(Value::as_u64).unwrap_or(1);
        let earlier = self.by_key.get(&hash).map_or(0, |f| f.attempts);
        let failing = Failing {
            key,
            item,
            reason: text("reason"),
            detail: text("detail"),
            stderr_tail: text("stderr_tail"),
            attempts: earlier + attempts.max(1),
            at,
        };
        self.by_key.insert(hash, failing);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_line_of_a_key_wins_and_attempts_add_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.jsonl");
        std::fs::write(
            &path,
            concat!(
                r#"{"key":1,"item":"{\"id\":1}","reason":"exit","detail":"exit code 1","attempts":2}"#,
                "\n",
                r#"{"key":2,"item":"{\"id\":2}","reason":"exit","detail":"x","attempts":1}"#,
                "\n",
                r#"{"key":1,"item":"{\"id\":1}","reason":"timeout","detail":"timed out","attempts":1}"#,
                "\n{\"key\":3,\"rea"
            ),
        )
        .unwrap();
        let history = FailureHistory::read(&[path], 1 << 20).unwrap();
        assert_eq!(history.by_key.len(), 2);
        let one = &history.by_key[&Key::new(1.into()).hash];
        assert_eq!(
            (one.reason.as_str(), one.attempts, one.at.1),
            ("timeout", 3, 3)
        );
        assert_eq!(history.unreadable, 1);
    }
}
