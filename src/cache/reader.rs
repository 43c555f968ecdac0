//! Reading a cache's records from Rust: the public reader of the library API.

use std::fs::{File, OpenOptions};
use std::io::BufReader;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::Value;

use crate::base::line::{CappedLines, Line};
use crate::files;

/// The records of a pararun cache, in file order, read lazily with bounded memory.
///
/// Yields every line that is a whole JSON object. Lines that are not (a line torn by a crash,
/// garbage, a line longer than the cap) are skipped, as a run skips them, and counted in
/// [`CacheReader::skipped`]. A UTF-8 byte order mark at the start is skipped.
pub struct CacheReader {
    path: PathBuf,
    lines: CappedLines<BufReader<File>>,
    buf: Vec<u8>,
    line: u64,
    skipped: u64,
}

impl CacheReader {
    /// Opens the cache at `path` for reading; lines longer than `max_line` bytes are skipped
    /// unread (a run's default is 64 MiB). The file is neither locked nor created; a FIFO, a
    /// device or a directory is refused.
    pub fn open(path: &Path, max_line: usize) -> Result<CacheReader> {
        let file = files::open_regular(path, OpenOptions::new().read(true)).map_err(|e| {
            e.describe(files::CACHE, path, || {
                format!("read cache {}", path.display())
            })
        })?;
        Ok(CacheReader {
            path: path.to_owned(),
            lines: CappedLines::new(BufReader::with_capacity(1 << 16, file), max_line),
            buf: Vec::new(),
            line: 0,
            skipped: 0,
        })
    }

    /// How many lines were skipped so far as not being whole JSON objects.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }
}

impl Iterator for CacheReader {
    type Item = Result<serde_json::Map<String, Value>>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let read = self.lines.read(&mut self.buf).with_context(|| {
                format!(
                    "cannot read cache {} at line {}",
                    self.path.display(),
                    self.line + 1
                )
            });
            self.line += 1;
            match read {
                Err(e) => return Some(Err(e)),
                Ok(Line::End) => return None,
                Ok(Line::TooLong { .. }) => {
                    self.skipped += 1;
                    continue;
                }
                Ok(Line::Whole { .. }) => {}
            }
            let text = self.buf.trim_ascii();
            if text.is_empty() {
                continue;
            }
            match serde_json::from_slice::<Value>(text) {
                // A last line without its newline counts as a record when it parses, as a run
                // counts it done: no proper prefix of an object is JSON, so a torn one can't.
                Ok(Value::Object(record)) => return Some(Ok(record)),
                _ => self.skipped += 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_whole_records_and_counts_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.jsonl");
        std::fs::write(
            &path,
            b"\xEF\xBB\xBF{\"id\":1}\n\ngarbage\n[1]\n{\"id\":2,\"x\":0.10}\n{\"id\":3",
        )
        .unwrap();
        let mut reader = CacheReader::open(&path, 1 << 20).unwrap();
        let records: Vec<String> = reader
            .by_ref()
            .map(|r| Value::Object(r.unwrap()).to_string())
            .collect();
        assert_eq!(records, [r#"{"id":1}"#, r#"{"id":2,"x":0.10}"#]);
        assert_eq!(reader.skipped(), 3);
        std::fs::write(&path, b"{\"id\":1}\n{\"url\":\"b\"}").unwrap();
        let reader = CacheReader::open(&path, 1 << 20).unwrap();
        assert_eq!(
            reader.count(),
            2,
            "a whole last record without its newline is one"
        );
    }
}
