//! Loading a cache: every record's key into the index of done keys, damaged lines counted
//! and skipped, never fatal.

use std::fs::OpenOptions;
use std::io::{self, Read};
use std::path::Path;
use std::sync::mpsc;

use anyhow::{Context, Result};

use super::index::KeyIndex;
use crate::base::blocks::{count_lines, middle_line_start, BlockLines, FilePart, LineRef, ReadAt};
use crate::base::depth;
use crate::base::key::{key_of_object, Key};
use crate::base::line::human_size;
use crate::base::scan;
use crate::files;

/// What loading the cache found.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The done keys.
    pub index: KeyIndex,
    /// Lines that hold no usable record: (line number, why); only the first few are kept.
    pub bad_lines: Vec<(u64, String)>,
    /// How many such lines there were in all.
    pub bad_count: u64,
    /// Whether the file ends without a newline: a torn last line (a write cut short by a
    /// crash), or a whole one; the writer tells them apart (`files::repair_tail`).
    pub torn_tail: bool,
    /// Whether the torn last line was cut off the file (by [`CacheWriter::open`]).
    ///
    /// [`CacheWriter::open`]: super::CacheWriter::open
    pub torn_cut: bool,
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
        if self.torn_cut {
            msg += "; the torn last line was cut off";
        }
        msg += "; their items will run again if they are in the input";
        Some(msg)
    }
}

const BAD_LINES_KEPT: usize = 5;

/// How many key hashes go from a reading thread to the index at a time.
const BATCH: usize = 4096;

/// Reads every record's key from a cache file. Unreadable lines, and lines over `max_line`
/// bytes (never held whole), are counted, never fatal. A UTF-8 byte order mark at the start is
/// skipped. The file is read twice: a quick count of its lines first sizes the index exactly.
///
/// A big file is read in two halves, cut at a line's start, by two threads that count and
/// then parse their half while this one fills the index: filling a table too big for the
/// CPU's caches is mostly waiting for memory. Without threads to spare, this one does it all.
pub fn load(
    file: &(impl ReadAt + ?Sized),
    key_field: &str,
    max_line: usize,
    path: &Path,
) -> Result<Loaded> {
    let context = |seq: u64| format!("cannot read cache {} at line {}", path.display(), seq + 1);
    let cut = middle_line_start(file).with_context(|| context(0))?;
    let first_part = || FilePart {
        file,
        pos: 0,
        end: cut,
    };
    let second_part = |pos| FilePart {
        file,
        pos,
        end: None,
    };
    let (first_lines, second_lines) = std::thread::scope(|scope| {
        let counting = cut.map(|at| (at, spawn(scope, move || count_lines(&mut second_part(at)))));
        let first_lines = count_lines(&mut first_part())?;
        let second_lines = match counting {
            Some((_, Ok(thread))) => join(thread)?,
            Some((at, Err(_))) => count_lines(&mut second_part(at))?,
            None => 0,
        };
        io::Result::Ok((first_lines, second_lines))
    })
    .with_context(|| context(0))?;
    let mut index = KeyIndex::with_capacity(first_lines + second_lines);
    let first = || BlockLines::new(first_part(), max_line);
    let second = |at| BlockLines::continuing(second_part(at), max_line);
    let after_first = first_lines as u64;
    let (tx, rx) = mpsc::sync_channel::<Vec<u128>>(4);
    let parts = std::thread::scope(|scope| {
        let sink = sender(tx.clone());
        let reading_first = spawn(scope, move || read_keys(first(), 0, key_field, path, sink));
        let reading_second = cut.map(|at| {
            let sink = sender(tx.clone());
            let job = move || read_keys(second(at), after_first, key_field, path, sink);
            (at, spawn(scope, job))
        });
        drop(tx);
        for batch in rx {
            index.insert_hashes(&batch);
        }
        // A part no thread could take is read here, now that the threads are done.
        let mut inline = |lines, seq| {
            read_keys(lines, seq, key_field, path, |batch: &mut Vec<u128>| {
                index.insert_hashes(batch);
                batch.clear();
            })
        };
        let mut parts = vec![match reading_first {
            Ok(thread) => join(thread)?,
            Err(_) => inline(first(), 0)?,
        }];
        match reading_second {
            Some((_, Ok(thread))) => parts.push(join(thread)?),
            Some((at, Err(_))) => parts.push(inline(second(at), after_first)?),
            None => {}
        }
        Result::<_>::Ok(parts)
    })?;
    Ok(combined(index, parts))
}

/// What the parts of a file held, in the order of their lines.
fn combined(index: KeyIndex, parts: Vec<Loaded>) -> Loaded {
    let mut loaded = Loaded {
        index,
        ..Loaded::default()
    };
    for part in parts {
        loaded.bad_count += part.bad_count;
        loaded.bad_lines.extend(part.bad_lines);
        loaded.torn_tail |= part.torn_tail;
    }
    loaded.bad_lines.truncate(BAD_LINES_KEPT);
    loaded
}

/// A sink for [`read_keys`] that sends each batch to the index's thread.
fn sender(tx: mpsc::SyncSender<Vec<u128>>) -> impl FnMut(&mut Vec<u128>) {
    move |batch| {
        let full = std::mem::replace(batch, Vec::with_capacity(BATCH));
        // Only a panic hangs up the index's end, and the join reports it.
        let _ = tx.send(full);
    }
}

fn spawn<'scope, T: Send + 'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    job: impl FnOnce() -> T + Send + 'scope,
) -> io::Result<std::thread::ScopedJoinHandle<'scope, T>> {
    std::thread::Builder::new()
        .name("pararun-load".into())
        .spawn_scoped(scope, job)
}

fn join<T>(thread: std::thread::ScopedJoinHandle<'_, T>) -> T {
    thread
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Reads the keys of every line, the first of which is line `seq + 1`, handing their hashes
/// to `sink` a batch at a time (it leaves the batch empty); what else the lines held (damage,
/// a torn tail) comes back.
fn read_keys(
    mut reader: BlockLines<impl Read>,
    mut seq: u64,
    key_field: &str,
    path: &Path,
    mut sink: impl FnMut(&mut Vec<u128>),
) -> Result<Loaded> {
    let context = |seq: u64| format!("cannot read cache {} at line {}", path.display(), seq + 1);
    let max_line = reader.cap();
    let mut loaded = Loaded::default();
    let mut batch = Vec::with_capacity(BATCH);
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
                // Counted, never cut here: a record without this run's key field is kept
                // whole, and only the writer cuts a torn last line (one that does not parse).
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
            Ok(None) => Err(format!(
                "no {key_field:?} field: a record of another --key-field? it is kept"
            )),
            Err(e) if !complete => Err(depth::describe("torn last line", &e)),
            Err(e) => Err(depth::describe("not a JSON record", &e)),
        },
    }
}

/// Loads a cache's keys without locking or creating it (for `--dry-run`).
pub fn load_read_only(path: &Path, key_field: &str, max_line: usize) -> Result<Loaded> {
    match files::open_regular(path, OpenOptions::new().read(true)) {
        Ok(file) => load(&file, key_field, max_line, path),
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
        load(text, "id", 1000, Path::new("c.jsonl")).unwrap()
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
    fn a_big_file_read_in_halves_numbers_its_lines_throughout() {
        let mut text = b"\xEF\xBB\xBF".to_vec();
        let mut bad = Vec::new();
        for line in 1..=150_000u64 {
            if line % 30_000 == 0 || line == 2 || line == 75_001 {
                text.extend_from_slice(b"garbage\n");
                bad.push(line);
            } else {
                text.extend_from_slice(format!("{{\"id\":{line},\"v\":\"x\"}}\n").as_bytes());
            }
        }
        text.extend_from_slice(b"{\"id\":0,\"v\":");
        assert!(middle_line_start(&text[..]).unwrap().is_some());
        let loaded = load_str(&text);
        assert_eq!(loaded.index.len(), 150_000 - bad.len());
        assert!(loaded.index.contains(&Key::new(1.into())));
        assert!(loaded.index.contains(&Key::new(149_999.into())));
        assert!(!loaded.index.contains(&Key::new(0.into())));
        assert!(loaded.torn_tail);
        assert_eq!(loaded.bad_count, bad.len() as u64 + 1);
        let lines: Vec<u64> = loaded.bad_lines.iter().map(|(n, _)| *n).collect();
        assert_eq!(lines, bad[..BAD_LINES_KEPT]);
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
