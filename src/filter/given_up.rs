//! `--give-up-after N`: the `--failures` file read back at start, as the memory of how often
//! each key has failed across runs. The keys with N failed attempts or more are given up:
//! the filter skips them, and the summary counts them.
//!
//! Memory is bounded like the cache's index: the attempts are tallied per 128-bit key hash in a
//! flat table sized once from the file's line count, and only the given-up keys are kept.

use std::fs::OpenOptions;
use std::io::{self, BufReader, Seek};
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::base::blocks::count_lines;
use crate::base::depth;
use crate::base::index::{KeyIndex, KeyTally};
use crate::base::key::Key;
use crate::base::line::{CappedLines, Line};
use crate::files;

/// What reading the failures file found.
#[derive(Debug, Default)]
pub struct GivenUp {
    /// The keys with at least N failed attempts.
    pub index: KeyIndex,
    /// The first line that could not be read, and why.
    pub first_bad: Option<(u64, String)>,
    /// How many lines could not be read (a torn last line, garbage).
    pub bad_count: u64,
}

impl GivenUp {
    /// One warning for the unreadable lines, or `None` when there were none.
    pub fn warning(&self, path: &Path) -> Option<String> {
        let (line, why) = self.first_bad.as_ref()?;
        Some(format!(
            "pararun: warning: {}:{line}: skipped {} unreadable line{} of the failures file \
             ({why}); their attempts do not count towards --give-up-after",
            path.display(),
            self.bad_count,
            if self.bad_count == 1 { "" } else { "s" },
        ))
    }
}

/// Reads the failures file at `path` (none yet: nothing is given up) and gives up the keys
/// whose `attempts` add up to `limit` or more. Lines over `max_line` bytes, or that are not a
/// failure record, are counted and skipped. A `null` key is never given up: it is what the
/// file holds for a line that had no key at all.
pub fn load(path: &Path, limit: u32, max_line: usize) -> Result<GivenUp> {
    let mut file = match files::open_regular(path, OpenOptions::new().read(true)) {
        Ok(file) => file,
        Err(e) if e.io_kind() == Some(io::ErrorKind::NotFound) => return Ok(GivenUp::default()),
        Err(e) => {
            return Err(e.describe(files::FAILURES, path, || {
                format!("read failures file {}", path.display())
            }))
        }
    };
    let context = |seq: u64| {
        format!(
            "cannot read failures file {} at line {}",
            path.display(),
            seq + 1
        )
    };
    let lines = count_lines(&mut file).with_context(|| context(0))?;
    file.rewind().with_context(|| context(0))?;
    let mut reader = CappedLines::new(BufReader::new(file), max_line);
    // A last line without a newline is one more than the count.
    let mut tally = KeyTally::with_capacity(lines + 1);
    let mut given_up = GivenUp::default();
    let (mut buf, mut seq) = (Vec::new(), 0u64);
    loop {
        let line = reader.read(&mut buf).with_context(|| context(seq))?;
        seq += 1;
        let parsed = match line {
            Line::End => break,
            Line::TooLong { .. } => Err("over --max-line-bytes".to_owned()),
            Line::Whole { .. } if buf.trim_ascii().is_empty() => continue,
            Line::Whole { .. } => entry(&buf),
        };
        match parsed {
            Ok(None) => {}
            Ok(Some((key, attempts))) => {
                if tally.add(key.hash, attempts) >= limit {
                    given_up.index.insert(&key);
                }
            }
            Err(why) => {
                given_up.bad_count += 1;
                given_up.first_bad.get_or_insert((seq, why));
            }
        }
    }
    Ok(given_up)
}

/// The key and attempts of one failure record; `None` for a record without a key.
fn entry(line: &[u8]) -> Result<Option<(Key, u32)>, String> {
    let record: Value =
        serde_json::from_slice(line).map_err(|e| depth::describe("not a JSON record", &e))?;
    let Some(key) = record.get("key") else {
        return Err("no \"key\" field".to_owned());
    };
    if key.is_null() {
        return Ok(None);
    }
    // A bad-input item was never started: it records 0 attempts, but it did fail once.
    let attempts = record.get("attempts").and_then(Value::as_u64).unwrap_or(1);
    let attempts = u32::try_from(attempts.max(1)).unwrap_or(u32::MAX);
    Ok(Some((Key::new(key.clone()), attempts)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn given_up(text: &str, limit: u32) -> GivenUp {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("failed.jsonl");
        std::fs::write(&path, text).unwrap();
        load(&path, limit, 1000).unwrap()
    }

    #[test]
    fn attempts_add_up_across_runs() {
        let text = "{\"key\":1,\"attempts\":2}\n{\"key\":\"1\",\"attempts\":1}\n\
                    {\"key\":1,\"attempts\":1}\n{\"key\":null,\"attempts\":0}\n\
                    {\"key\":[1],\"attempts\":0}\n\n{\"key\":2,\"att";
        let found = given_up(text, 3);
        assert!(found.index.contains(&Key::new(1.into())));
        assert!(!found.index.contains(&Key::new("1".into())));
        assert!(!found.index.contains(&Key::new(Value::Null)));
        assert_eq!(found.index.len(), 1);
        assert_eq!(found.bad_count, 1);
        let warning = found.warning(Path::new("f")).unwrap();
        assert!(warning.starts_with("pararun: warning: f:7: skipped 1 unreadable line of the failures file (not a JSON record"), "{warning}");
        assert_eq!(given_up(text, 1).index.len(), 3);
    }

    #[test]
    fn no_file_gives_up_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let found = load(&dir.path().join("none"), 1, 1000).unwrap();
        assert_eq!(found.index.len(), 0);
        assert!(found.warning(Path::new("none")).is_none());
    }

    #[test]
    fn a_full_tally_still_finds_every_key() {
        let mut tally = KeyTally::with_capacity(100);
        for round in 1..=3 {
            for k in 0..100u128 {
                assert_eq!(tally.add(k * 0x9e37_79b9_7f4a_7c15, 1), round);
            }
        }
    }
}
