//! Loading a cache: every record's key into the index of done keys, damaged lines counted
//! and skipped, never fatal.

use std::fs::OpenOptions;
use std::io::{self, Read, Seek};
use std::path::Path;
use std::sync::{mpsc, Mutex, PoisonError};

use anyhow::{Context, Result};

use super::blocks::{count_lines, BlockLines, LineRef};
use super::index::KeyIndex;
use super::scan;
use crate::files;
use crate::input::line::human_size;
use crate::input::{key_of_object, Key};

/// What loading the cache found.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The done keys.
    pub index: KeyIndex,
    /// Lines that hold no usable record: (line number, why); only the first few are kept.
    pub bad_lines: Vec<(u64, String)>,
    /// How many such lines there were in all.
    pub bad_count: u64,
    /// Whether the file ends without a newline (a torn last line).
    pub torn_tail: bool,
}

impl Loaded {
    /// One warning for all the unreadable lines, or `None` when there were none.
    pub fn warning(&self, path: &Path) -> Option<String> {
        let (first, why) = self.bad_lines.first()?;
        let mut msg = format!(
            "pararun: warning: {}:{first}: skipped {} unreadable cache line{} ({why})",
            path.display(),
            self.bad_count,
            if self.bad_count == 1 { "" } else { "s" },
        );
        if self.bad_count > 1 {
            let lines: Vec<String> = self.bad_lines.iter().map(|(n, _)| n.to_string()).collect();
            msg += &format!(
                "; lines {}{}",
                lines.join(", "),
                if self.bad_count > lines.len() as u64 {
                    ", ..."
                } else {
                    ""
                }
            );
        }
        msg += "; their items will run again if they are in the input";
        Some(msg)
    }
}

const BAD_LINES_KEPT: usize = 5;

/// How many key hashes go from the reading thread to the index at a time.
const BATCH: usize = 4096;

/// Reads every record's key from a cache stream. Unreadable lines, and lines over `max_line`
/// bytes (never held whole), are counted, never fatal. A UTF-8 byte order mark at the start is
/// skipped. The stream is read twice: a quick count of its lines first sizes the index exactly.
///
/// A thread reads and parses the lines while this one fills the index: the two halves of the
/// work take about as long, and filling a table too big for the CPU's caches is mostly waiting
/// for memory. Without a thread to spare, this one does both.
pub fn load(
    mut file: impl Read + Seek + Send,
    key_field: &str,
    max_line: usize,
    path: &Path,
) -> Result<Loaded> {
    let context = |seq: u64| format!("cannot read cache {} at line {}", path.display(), seq + 1);
    let lines = count_lines(&mut file).with_context(|| context(0))?;
    file.rewind().with_context(|| context(0))?;
    let mut index = KeyIndex::with_capacity(lines);
    let (full_tx, full_rx) = mpsc::sync_channel::<Vec<u128>>(4);
    let (empty_tx, empty_rx) = mpsc::channel::<Vec<u128>>();
    // The file goes to the reading thread, or back to this one if there is none.
    let slot = Mutex::new(Some(file));
    let take = || {
        let taken = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
        taken.expect("the cache file is read once")
    };
    let found = std::thread::scope(|scope| {
        let send = move |batch: &mut Vec<u128>| {
            let mut spare = empty_rx
                .try_recv()
                .unwrap_or_else(|_| Vec::with_capacity(BATCH));
            spare.clear();
            // Only a panic hangs up the index's end, and the join reports it.
            let _ = full_tx.send(std::mem::replace(batch, spare));
        };
        let thread = std::thread::Builder::new()
            .name("pararun-load".into())
            .spawn_scoped(scope, move || {
                read_keys(take(), key_field, max_line, path, send)
            });
        match thread {
            Ok(thread) => {
                for batch in full_rx {
                    index.insert_hashes(&batch);
                    let _ = empty_tx.send(batch);
                }
                thread
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            }
            Err(_) => read_keys(take(), key_field, max_line, path, |batch| {
                index.insert_hashes(batch);
                batch.clear();
            }),
        }
    })?;
    Ok(Loaded { index, ..found })
}

/// Reads the keys of every line, handing their hashes to `sink` a batch at a time (it leaves
/// the batch empty); what else the lines held (damage, a torn tail) comes back.
fn read_keys(
    file: impl Read,
    key_field: &str,
    max_line: usize,
    path: &Path,
    mut sink: impl FnMut(&mut Vec<u128>),
) -> Result<Loaded> {
    let context = |seq: u64| format!("cannot read cache {} at line {}", path.display(), seq + 1);
    let mut reader = BlockLines::new(file, max_line);
    let mut loaded = Loaded::default();
    let mut batch = Vec::with_capacity(BATCH);
    let mut seq = 0u64;
    while let Some(read) = reader.next_line().with_context(|| context(seq))? {
        seq += 1;
        let (line, complete, too_long) = match read {
            LineRef::Whole { line, terminated } => (line.trim_ascii(), terminated, None),
            LineRef::TooLong { bytes, terminated } => (&[][..], terminated, Some(bytes)),
        };
        if !complete {
            loaded.torn_tail = true;
        }
        if line.is_empty() && too_long.is_none() {
            continue;
        }
        // Most records take the fast path; the rest get the full parse, whose key (or
        // message) it is in any case.
        let key = match scan::key_hash(line, key_field).filter(|_| too_long.is_none()) {
            Some(hash) => Ok(hash),
            None => record_key(line, complete, too_long, key_field, max_line).map(|k| k.hash),
        };
        match key {
            Ok(hash) => {
                batch.push(hash);
                if batch.len() == BATCH {
                    sink(&mut batch);
                    debug_assert!(batch.is_empty(), "a sink must leave the batch empty");
                }
            }
            Err(problem) => {
                loaded.bad_count += 1;
                if loaded.bad_lines.len() < BAD_LINES_KEPT {
                    loaded.bad_lines.push((seq, problem));
                }
            }
        }
    }
    sink(&mut batch);
    Ok(loaded)
}

/// The key of one cache line, or why the line holds no usable record.
fn record_key(
    line: &[u8],
    complete: bool,
    too_long: Option<u64>,
    key_field: &str,
    max_line: usize,
) -> Result<Key, String> {
    if let Some(bytes) = too_long {
        return Err(format!(
            "a line of {}, over --max-line-bytes ({})",
            human_size(bytes),
            human_size(max_line as u64)
        ));
    }
    match std::str::from_utf8(line) {
        _ if line.iter().all(|&b| b == 0) => Err("a line of NUL bytes".to_owned()),
        Err(_) => Err("not UTF-8".to_owned()),
        Ok(text) => match key_of_object(text, key_field) {
            Ok(Some(key)) => Ok(Key::new(key)),
            Ok(None) => Err(format!("no {key_field:?} field")),
            Err(e) if !complete => Err(format!("torn last line: {e}")),
            Err(e) => Err(format!("not a JSON record: {e}")),
        },
    }
}

/// Loads a cache's keys without locking or creating it (for `--dry-run`).
pub fn load_read_only(path: &Path, key_field: &str, max_line: usize) -> Result<Loaded> {
    match files::open_regular(path, OpenOptions::new().read(true)) {
        Ok(file) => load(file, key_field, max_line, path),
        Err(e) if e.io_kind() == Some(io::ErrorKind::NotFound) => Ok(Loaded::default()),
        Err(e) => Err(e.describe(files::CACHE, path, || {
            format!("read cache {}", path.display())
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(text: &[u8]) -> Loaded {
        load(io::Cursor::new(text), "id", 1000, Path::new("c.jsonl")).unwrap()
    }

    #[test]
    fn loads_keys_and_skips_damage() {
        let loaded = load_str(
            b"{\"id\":1}\n\0\0\0\n{\"x\":2}\ngarbage\n\n{\"id\":\"2\"}\n{\"id\":3,\"v\":[1,",
        );
        assert_eq!(loaded.index.len(), 2);
        assert!(loaded.index.contains(&Key::new(1.into())));
        assert!(loaded.index.contains(&Key::new("2".into())));
        assert!(!loaded.index.contains(&Key::new(2.into())));
        assert_eq!(loaded.bad_count, 4);
        assert!(loaded.torn_tail);
        let lines: Vec<u64> = loaded.bad_lines.iter().map(|(n, _)| *n).collect();
        assert_eq!(lines, [2, 3, 4, 7]);
        let warning = loaded.warning(Path::new("c.jsonl")).unwrap();
        assert!(
            warning.contains("c.jsonl:2: skipped 4 unreadable cache lines (a line of NUL bytes)"),
            "{warning}"
        );
        assert!(warning.contains("lines 2, 3, 4, 7"), "{warning}");
    }

    #[test]
    fn many_batches_go_into_the_index_once_each() {
        let records: String = (0..BATCH * 3 + 5)
            .map(|i| format!("{{\"id\":{i}}}\n"))
            .collect();
        let loaded = load_str(records.as_bytes());
        assert_eq!(loaded.index.len(), BATCH * 3 + 5);
        assert!(loaded.index.contains(&Key::new((BATCH * 3 + 4).into())));
        assert_eq!(loaded.bad_count, 0);
    }

    #[test]
    fn clean_cache_has_no_warning() {
        let loaded = load_str(b"{\"id\":1}\n");
        assert!(!loaded.torn_tail);
        assert!(loaded.warning(Path::new("c")).is_none());
    }

    #[test]
    fn a_bom_at_the_start_is_not_damage() {
        let loaded = load_str(b"\xEF\xBB\xBF{\"id\":1}\n{\"id\":2}\n");
        assert_eq!(loaded.bad_count, 0, "{:?}", loaded.bad_lines);
        assert!(loaded.index.contains(&Key::new(1.into())));
    }

    #[test]
    fn an_over_long_line_is_damage_and_not_held() {
        let long = format!("{{\"id\":2,\"v\":\"{}\"}}", "x".repeat(2000));
        let loaded = load_str(format!("{{\"id\":1}}\n{long}\n{{\"id\":3}}\n").as_bytes());
        assert_eq!(loaded.index.len(), 2);
        assert!(!loaded.index.contains(&Key::new(2.into())));
        assert_eq!(loaded.bad_count, 1);
        let (line, why) = &loaded.bad_lines[0];
        assert_eq!(*line, 2);
        assert!(
            why.contains("a line of 2 KiB, over --max-line-bytes (1000 bytes)"),
            "{why}"
        );
    }
}
