//! Reading items and their keys, a line at a time.
//!
//! [`InputReader`] turns lines into [`Item`]s (or bad-input events) lazily; it never holds more
//! than the current line. Keys are JSON values; their canonical text (compact JSON, as
//! serde_json writes it) is what is hashed, so `5` and `"5"` are different keys (see [`Key`]).

use std::io::{BufRead, BufReader, Read};

use anyhow::{Context, Result};
use serde_json::Value;

use crate::config::Format;

mod key;

pub use key::{key_of_object, Key};

/// One unit of work.
#[derive(Debug, Clone)]
pub struct Item {
    /// The 1-based input line number.
    pub seq: u64,
    /// The line as read, without its line ending.
    pub line: String,
    /// The parsed JSON value, for jsonl input.
    pub value: Option<Value>,
    /// The item's key.
    pub key: Key,
}

impl Item {
    /// The line a persistent worker gets for this item: the JSON line as read, or the plain
    /// line as a JSON string.
    pub fn worker_request(&self) -> String {
        match &self.value {
            Some(_) => self.line.clone(),
            None => Value::String(self.line.clone()).to_string(),
        }
    }
}

/// What the reader yields for each non-blank line.
#[derive(Debug)]
pub enum InputEvent {
    /// A usable item.
    Item(Item),
    /// A line that cannot become an item; it counts as a failed item.
    Bad {
        /// The 1-based line number.
        seq: u64,
        /// The line as read (lossily decoded).
        line: String,
        /// Why it is unusable.
        reason: String,
    },
}

/// Reads items lazily from any byte stream.
pub struct InputReader {
    reader: BufReader<Box<dyn Read + Send>>,
    format: Format,
    key_field: String,
    seq: u64,
    buf: Vec<u8>,
    peeked: Option<(u64, Vec<u8>)>,
}

impl InputReader {
    /// Wraps a stream; with `Format::Auto` the format is settled by [`InputReader::resolve_format`]
    /// or by the first line read.
    pub fn new(source: Box<dyn Read + Send>, format: Format, key_field: &str) -> InputReader {
        InputReader {
            reader: BufReader::with_capacity(256 * 1024, source),
            format,
            key_field: key_field.to_owned(),
            seq: 0,
            buf: Vec::new(),
            peeked: None,
        }
    }

    /// Settles `Format::Auto` by looking at the first non-blank line (jsonl when it starts with
    /// `{`), reading no further than that line. Blocks until that line arrives.
    pub fn resolve_format(&mut self) -> Result<Format> {
        if self.format == Format::Auto {
            self.peeked = self.next_line()?;
            self.format = match &self.peeked {
                Some((_, line)) if line.trim_ascii().starts_with(b"{") => Format::Jsonl,
                _ => Format::Lines,
            };
        }
        Ok(self.format)
    }

    /// Whether the next line needs a read from the source, which may block (nothing buffered).
    pub fn would_block(&self) -> bool {
        self.peeked.is_none() && self.reader.buffer().is_empty()
    }

    /// The next non-blank line with its number, or `None` at the end of the input.
    fn next_line(&mut self) -> Result<Option<(u64, Vec<u8>)>> {
        loop {
            self.buf.clear();
            let n = self
                .reader
                .read_until(b'\n', &mut self.buf)
                .context("cannot read input")?;
            if n == 0 {
                return Ok(None);
            }
            self.seq += 1;
            if self.buf.last() == Some(&b'\n') {
                self.buf.pop();
                if self.buf.last() == Some(&b'\r') {
                    self.buf.pop();
                }
            }
            if !self.buf.trim_ascii().is_empty() {
                return Ok(Some((self.seq, std::mem::take(&mut self.buf))));
            }
        }
    }

    /// The next event, `Ok(None)` at the end, or an I/O error reading the input.
    ///
    /// `keep` is asked with each item's key before its JSON is fully parsed, so that skipped
    /// items (cached, duplicate, other shard) cost only a key extraction.
    pub fn next_event(&mut self, keep: &mut dyn FnMut(&Key) -> bool) -> Result<Option<InputEvent>> {
        self.resolve_format()?;
        loop {
            let Some((seq, bytes)) = (match self.peeked.take() {
                Some(p) => Some(p),
                None => self.next_line()?,
            }) else {
                return Ok(None);
            };
            let line = match String::from_utf8(bytes) {
                Ok(line) => line,
                Err(e) => {
                    return Ok(Some(InputEvent::Bad {
                        seq,
                        line: String::from_utf8_lossy(e.as_bytes()).into_owned(),
                        reason: "the line is not valid UTF-8".into(),
                    }))
                }
            };
            let parsed = match self.format {
                Format::Jsonl => parse_json_item(&line, &self.key_field, keep),
                _ => {
                    let key = Key::new(Value::String(line.clone()));
                    Ok(keep(&key).then_some((key, None)))
                }
            };
            match parsed {
                Ok(Some((key, value))) => {
                    return Ok(Some(InputEvent::Item(Item {
                        seq,
                        line,
                        value,
                        key,
                    })))
                }
                Ok(None) => continue,
                Err(reason) => return Ok(Some(InputEvent::Bad { seq, line, reason })),
            }
        }
    }
}

/// Estimates how many lines a file holds from its size and the lines in its first 64 KiB, to
/// size the index of keys seen in this input; 0 when it cannot tell.
pub fn estimate_lines(path: &std::path::Path) -> usize {
    use std::io::Read;
    let Ok(mut file) = std::fs::File::open(path) else {
        return 0;
    };
    let size = file.metadata().map_or(0, |m| m.len());
    let mut head = Vec::with_capacity(1 << 16);
    if file.by_ref().take(1 << 16).read_to_end(&mut head).is_err() || head.is_empty() {
        return 0;
    }
    let lines = head.iter().filter(|&&b| b == b'\n').count().max(1);
    (size as f64 / head.len() as f64 * lines as f64) as usize
}

/// Parses one jsonl item: its key first, then (if `keep` says so) the whole value.
fn parse_json_item(
    line: &str,
    key_field: &str,
    keep: &mut dyn FnMut(&Key) -> bool,
) -> Result<Option<(Key, Option<Value>)>, String> {
    if line.as_bytes().trim_ascii().starts_with(b"{") {
        let key = match key_of_object(line, key_field) {
            Ok(Some(value)) => Key::new(value),
            Ok(None) => {
                return Err(format!(
                    "the object has no {key_field:?} field (--key-field)"
                ))
            }
            Err(e) => return Err(format!("invalid JSON: {e}")),
        };
        if !keep(&key) {
            return Ok(None);
        }
        let value = serde_json::from_str(line).map_err(|e| format!("invalid JSON: {e}"))?;
        Ok(Some((key, Some(value))))
    } else {
        let value: Value = serde_json::from_str(line).map_err(|e| format!("invalid JSON: {e}"))?;
        let key = Key::new(value.clone());
        Ok(keep(&key).then_some((key, Some(value))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(text: &str, format: Format) -> Vec<InputEvent> {
        let mut r = InputReader::new(
            Box::new(std::io::Cursor::new(text.to_owned())),
            format,
            "id",
        );
        let mut out = Vec::new();
        while let Some(ev) = r.next_event(&mut |_| true).unwrap() {
            out.push(ev);
        }
        out
    }

    #[test]
    fn auto_detects_jsonl_and_skips_blank_lines() {
        let events = read_all(
            "\n  \n{\"id\":1}\r\n\n[2]\nnot json\n{\"x\":1}\n",
            Format::Auto,
        );
        let summary: Vec<String> = events
            .iter()
            .map(|e| match e {
                InputEvent::Item(i) => format!("{}:{}", i.seq, i.key.text),
                InputEvent::Bad { seq, .. } => format!("{seq}:bad"),
            })
            .collect();
        assert_eq!(summary, ["3:1", "5:[2]", "6:bad", "7:bad"]);
    }

    #[test]
    fn auto_detects_lines() {
        let events = read_all("a b\n{\"id\":1}\n", Format::Auto);
        match &events[1] {
            InputEvent::Item(i) => assert_eq!(i.key.value, Value::from("{\"id\":1}")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn skipped_keys_are_not_yielded() {
        let mut r = InputReader::new(
            Box::new(&b"{\"id\":1}\n{\"id\":2}\n"[..]),
            Format::Jsonl,
            "id",
        );
        let one = Key::new(Value::from(1)).hash;
        let ev = r.next_event(&mut |k| k.hash != one).unwrap().unwrap();
        assert!(matches!(ev, InputEvent::Item(i) if i.seq == 2));
        assert!(r.next_event(&mut |_| true).unwrap().is_none());
    }
}
