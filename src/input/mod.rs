//! Reading items and their keys, a line at a time.
//!
//! [`InputReader`] turns lines into [`Item`]s (or bad-input events) lazily; it never holds more
//! than the current line, and never more than `--max-line-bytes` of it. Keys are JSON values;
//! their canonical text (compact JSON, as serde_json writes it) is what is hashed, so `5` and
//! `"5"` are different keys (see [`Key`]).

use std::io::{BufReader, Read};

use anyhow::{Context, Result};
use serde_json::Value;

use crate::config::Format;

pub mod feed;

pub use crate::base::key::{key_of_object, Key};
pub use crate::base::{depth, line};
use line::{exact_size, human_size, CappedLines, Line, KEPT};

/// One unit of work.
#[derive(Debug, Clone)]
pub struct Item {
    /// The 1-based input line number.
    pub seq: u64,
    /// The line as read, without its line ending.
    pub line: String,
    /// Whether the line is JSON (jsonl input).
    pub json: bool,
    /// The parsed JSON value, for jsonl input when the command names fields (it is parsed
    /// only then: the key alone is extracted otherwise, and the line checked for syntax).
    pub value: Option<Value>,
    /// The item's key.
    pub key: Key,
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
        /// The line as read (lossily decoded); only its first bytes when it is too long.
        line: String,
        /// Why it is unusable.
        reason: String,
    },
}

/// One non-blank line as read.
struct RawLine {
    /// The 1-based line number.
    seq: u64,
    /// The line without its line ending; only its first bytes when it is too long.
    bytes: Vec<u8>,
    /// The full length of a line over the cap.
    too_long: Option<u64>,
}

/// Reads items lazily from any byte stream.
pub struct InputReader {
    lines: CappedLines<BufReader<Box<dyn Read + Send>>>,
    name: String,
    format: Format,
    key_field: String,
    seq: u64,
    buf: Vec<u8>,
    peeked: Option<RawLine>,
    /// Whether items carry their parsed value (only the command's fields need it).
    values: bool,
}

impl InputReader {
    /// Wraps a stream named `name` (for messages), whose lines may be at most `max_line` bytes;
    /// with `Format::Auto` the format is settled by [`InputReader::resolve_format`] or by the
    /// first line read.
    pub fn new(
        source: Box<dyn Read + Send>,
        name: &str,
        format: Format,
        key_field: &str,
        max_line: usize,
    ) -> InputReader {
        InputReader {
            lines: CappedLines::new(BufReader::with_capacity(256 * 1024, source), max_line),
            name: name.to_owned(),
            format,
            key_field: key_field.to_owned(),
            seq: 0,
            buf: Vec::new(),
            peeked: None,
            values: true,
        }
    }

    /// Whether items carry their parsed JSON value: only a command that names fields needs
    /// it, and the full parse is most of the reader's work per item.
    pub fn keep_values(&mut self, values: bool) {
        self.values = values;
    }

    /// Settles `Format::Auto` by looking at the first non-blank line (jsonl when it starts with
    /// `{`), reading no further than that line. Blocks until that line arrives.
    pub fn resolve_format(&mut self) -> Result<Format> {
        if self.format == Format::Auto {
            self.peeked = self.next_line()?;
            self.format = match &self.peeked {
                Some(raw) if raw.bytes.trim_ascii_start().starts_with(b"{") => Format::Jsonl,
                _ => Format::Lines,
            };
        }
        Ok(self.format)
    }

    /// Whether the next line needs a read from the source, which may block (nothing buffered).
    pub fn would_block(&self) -> bool {
        self.peeked.is_none() && self.lines.buffered().is_empty()
    }

    /// The next non-blank line, or `None` at the end of the input.
    fn next_line(&mut self) -> Result<Option<RawLine>> {
        loop {
            let line = self.lines.read(&mut self.buf).with_context(|| {
                format!("cannot read input {} at line {}", self.name, self.seq + 1)
            })?;
            let too_long = match line {
                Line::End => return Ok(None),
                Line::Whole { .. } => None,
                Line::TooLong { bytes, .. } => Some(bytes),
            };
            self.seq += 1;
            if too_long.is_none() && self.buf.last() == Some(&b'\r') {
                self.buf.pop();
            }
            if too_long.is_some() || !self.buf.trim_ascii().is_empty() {
                let bytes = std::mem::take(&mut self.buf);
                return Ok(Some(RawLine {
                    seq: self.seq,
                    bytes,
                    too_long,
                }));
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
            let Some(raw) = (match self.peeked.take() {
                Some(p) => Some(p),
                None => self.next_line()?,
            }) else {
                return Ok(None);
            };
            let seq = raw.seq;
            if let Some(bytes) = raw.too_long {
                return Ok(Some(InputEvent::Bad {
                    seq,
                    line: String::from_utf8_lossy(&raw.bytes).into_owned(),
                    reason: too_long(bytes, self.lines.cap()),
                }));
            }
            let line = match String::from_utf8(raw.bytes) {
                Ok(line) => line,
                Err(e) => {
                    return Ok(Some(InputEvent::Bad {
                        seq,
                        line: String::from_utf8_lossy(e.as_bytes()).into_owned(),
                        reason: format!(
                            "the line is not valid UTF-8 (at byte {})",
                            e.utf8_error().valid_up_to()
                        ),
                    }))
                }
            };
            let parsed = match self.format {
                Format::Jsonl => parse_json_item(&line, &self.key_field, self.values, keep),
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
                        json: self.format == Format::Jsonl,
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

/// Why a line over `--max-line-bytes` is not run, and what to do about it.
fn too_long(bytes: u64, cap: usize) -> String {
    format!(
        "the line is {}, over --max-line-bytes ({}); it was skipped without being held in \
         memory (only its first {KEPT} bytes are kept, for --failures); raise \
         --max-line-bytes to run it",
        exact_size(bytes),
        human_size(cap as u64),
    )
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

/// Parses one jsonl item: its key first, then (if `keep` says so, and `values` asks for it)
/// the whole value.
fn parse_json_item(
    line: &str,
    key_field: &str,
    values: bool,
    keep: &mut dyn FnMut(&Key) -> bool,
) -> Result<Option<(Key, Option<Value>)>, String> {
    if line.as_bytes().trim_ascii().starts_with(b"{") {
        // Most keys are plain (an integer, a decimal, a string without escapes): the cache's
        // scanner checks the line and finds the key's text without building the object.
        let plain = crate::base::scan::key_text(line.as_bytes(), key_field);
        let key = match plain.map(Key::from_plain_text) {
            Some(key) => key,
            None => match key_of_object(line, key_field) {
                Ok(Some(value)) => Key::new(value),
                Ok(None) => return Err(crate::base::key::missing_key(line, key_field)),
                Err(e) => return Err(depth::describe("invalid JSON", &e)),
            },
        };
        if !keep(&key) {
            return Ok(None);
        }
        if !values {
            // The key's extraction checked the whole line's syntax.
            return Ok(Some((key, None)));
        }
        let value = serde_json::from_str(line).map_err(|e| depth::describe("invalid JSON", &e))?;
        Ok(Some((key, Some(value))))
    } else {
        let value: Value =
            serde_json::from_str(line).map_err(|e| depth::describe("invalid JSON", &e))?;
        // An item that is not an object is its own key, one level down in its record
        // (`{"id": [[...]], ...}`): at the limit itself, its result could never be cached.
        if depth::deeper_than(line.as_bytes(), depth::MAX_DEPTH - 1) {
            return Err(format!(
                "{}: this item is its own key, and its record nests it one level deeper",
                depth::too_deep_message()
            ));
        }
        let key = Key::new(value.clone());
        Ok(keep(&key).then_some((key, values.then_some(value))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(text: &[u8], format: Format, max_line: usize) -> InputReader {
        let source = Box::new(std::io::Cursor::new(text.to_owned()));
        InputReader::new(source, "in.jsonl", format, "id", max_line)
    }

    fn read_all(text: &str, format: Format) -> Vec<InputEvent> {
        let mut r = reader(text.as_bytes(), format, 1 << 20);
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
        let mut r = reader(b"{\"id\":1}\n{\"id\":2}\n", Format::Jsonl, 100);
        let one = Key::new(Value::from(1)).hash;
        let ev = r.next_event(&mut |k| k.hash != one).unwrap().unwrap();
        assert!(matches!(ev, InputEvent::Item(i) if i.seq == 2));
        assert!(r.next_event(&mut |_| true).unwrap().is_none());
    }

    #[test]
    fn a_bom_does_not_hide_jsonl() {
        let events = read_all("\u{FEFF}{\"id\":1}\n{\"id\":2}\n", Format::Auto);
        let keys: Vec<&str> = events
            .iter()
            .map(|e| match e {
                InputEvent::Item(i) => i.key.text.as_str(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(keys, ["1", "2"]);
    }

    #[test]
    fn a_line_over_the_cap_fails_alone() {
        let long = format!("{{\"id\":2,\"x\":\"{}\"}}", "y".repeat(5000));
        let text = format!("{{\"id\":1}}\n{long}\n{{\"id\":3}}\n");
        let mut r = reader(text.as_bytes(), Format::Auto, 4096);
        let mut summary = Vec::new();
        while let Some(ev) = r.next_event(&mut |_| true).unwrap() {
            summary.push(match ev {
                InputEvent::Item(i) => format!("{}:{}", i.seq, i.key.text),
                InputEvent::Bad { seq, line, reason } => {
                    assert_eq!(line.len(), KEPT);
                    assert!(line.starts_with("{\"id\":2,"), "{line}");
                    assert!(
                        reason.contains("(5015 bytes), over --max-line-bytes (4 KiB)"),
                        "{reason}"
                    );
                    format!("{seq}:bad")
                }
            });
        }
        assert_eq!(summary, ["1:1", "2:bad", "3:3"]);
    }

    #[test]
    fn an_over_long_first_line_still_settles_the_format() {
        let text = format!("{{\"id\":\"{}\"}}\n{{\"id\":2}}\n", "y".repeat(500));
        let mut r = reader(text.as_bytes(), Format::Auto, 100);
        assert_eq!(r.resolve_format().unwrap(), Format::Jsonl);
    }

    #[test]
    fn a_read_error_names_the_input() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::from_raw_os_error(libc::EIO))
            }
        }
        let mut r = InputReader::new(Box::new(Broken), "in.jsonl", Format::Jsonl, "id", 100);
        let err = r.next_event(&mut |_| true).unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.starts_with("cannot read input in.jsonl at line 1: "),
            "{msg}"
        );
    }
}
