//! The JSONL cache: its lock, its index of done keys, and crash-safe appends.
//!
//! One [`CacheWriter`] owns the file for the whole run. Every record is one complete line,
//! written with one `write` call; a failed write is cut back to the last complete record, so
//! the file only ever holds whole records (plus, at worst, one torn line from a crash, which the
//! next load skips).

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::config::Fsync;
use crate::files;
use crate::index::KeyIndex;
use crate::input::line::{human_size, CappedLines, Line};
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

/// Reads every record's key from a cache stream. Unreadable lines, and lines over `max_line`
/// bytes (never held whole), are counted, never fatal. A UTF-8 byte order mark at the start is
/// skipped. The stream is read twice: a quick count of its lines first sizes the index exactly.
pub fn load(
    mut file: impl Read + Seek,
    key_field: &str,
    max_line: usize,
    path: &Path,
) -> Result<Loaded> {
    let context = |seq: u64| format!("cannot read cache {} at line {}", path.display(), seq + 1);
    let lines = count_lines(&mut file).with_context(|| context(0))?;
    file.rewind().with_context(|| context(0))?;
    let mut reader = CappedLines::new(BufReader::with_capacity(1 << 20, file), max_line);
    let mut loaded = Loaded {
        index: KeyIndex::with_capacity(lines),
        ..Loaded::default()
    };
    let mut buf = Vec::with_capacity(256);
    let mut seq = 0u64;
    loop {
        let read = reader.read(&mut buf).with_context(|| context(seq))?;
        let (complete, too_long) = match read {
            Line::End => break,
            Line::Whole { terminated } => (terminated, None),
            Line::TooLong { bytes, terminated } => (terminated, Some(bytes)),
        };
        seq += 1;
        if !complete {
            loaded.torn_tail = true;
        }
        let line = buf.trim_ascii();
        if line.is_empty() && too_long.is_none() {
            continue;
        }
        let problem = match record_key(line, complete, too_long, key_field, max_line) {
            Ok(key) => {
                loaded.index.insert(&key);
                continue;
            }
            Err(problem) => problem,
        };
        loaded.bad_count += 1;
        if loaded.bad_lines.len() < BAD_LINES_KEPT {
            loaded.bad_lines.push((seq, problem));
        }
    }
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

fn count_lines(file: &mut impl Read) -> io::Result<usize> {
    let mut buf = vec![0u8; 1 << 20];
    let mut lines = 0;
    loop {
        match file.read(&mut buf) {
            Ok(0) => return Ok(lines),
            Ok(n) => lines += buf[..n].iter().filter(|&&b| b == b'\n').count(),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// A cache write or sync that failed; the run must stop (exit 2).
#[derive(Debug)]
pub struct WriteError {
    /// What failed, with the cache's path.
    pub error: anyhow::Error,
    /// Whether the record being appended is whole in the file all the same (only its sync
    /// failed): then it counts as done, since the next run will find it and skip its item.
    pub record_kept: bool,
}

/// The single owner of the cache file during a run.
pub struct CacheWriter {
    file: File,
    path: PathBuf,
    /// The length of the file up to its last complete record.
    len: u64,
    needs_newline: bool,
    fsync: Fsync,
    dirty: bool,
    last_sync: Instant,
}

impl CacheWriter {
    /// Opens (creating) the cache, takes its exclusive lock and loads its keys. Fails, touching
    /// nothing, when another process holds the lock.
    pub fn open(
        path: &Path,
        key_field: &str,
        max_line: usize,
        fsync: Fsync,
    ) -> Result<(CacheWriter, Loaded)> {
        let mut options = OpenOptions::new();
        options.read(true).append(true).create_new(true);
        let mut created = true;
        let file = match files::open_regular(path, &options) {
            Err(e) if e.io_kind() == Some(io::ErrorKind::AlreadyExists) => {
                created = false;
                files::open_regular(path, options.create_new(false))
            }
            other => other,
        }
        .map_err(|e| {
            e.describe(files::CACHE, path, || {
                format!("open cache {} for appending", path.display())
            })
        })?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => bail!(
                "cache {} is in use by another pararun (it holds the file's lock); wait for it \
                 to finish or use another --cache file",
                path.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock cache {}", path.display()))
            }
        }
        if created && fsync != Fsync::Never {
            sync_parent_dir(path)?;
        }
        let loaded = load(&file, key_field, max_line, path)?;
        let len = file
            .metadata()
            .with_context(|| format!("cannot stat cache {}", path.display()))?
            .len();
        let writer = CacheWriter {
            file,
            path: path.to_owned(),
            len,
            needs_newline: loaded.torn_tail,
            fsync,
            dirty: false,
            last_sync: Instant::now(),
        };
        Ok((writer, loaded))
    }

    /// Appends one record (a complete line ending in `\n`) in a single write. On error the file
    /// is cut back to its last complete record.
    pub fn append(&mut self, record: &[u8]) -> Result<(), WriteError> {
        debug_assert!(record.ends_with(b"\n"));
        let prefixed;
        let bytes = if self.needs_newline {
            prefixed = [&b"\n"[..], record].concat();
            &prefixed[..]
        } else {
            record
        };
        if let Err(e) = self.file.write_all(bytes) {
            let cut = self.file.set_len(self.len);
            let mut err = anyhow::Error::new(e).context(format!(
                "cannot append to cache {} (disk full or file too large?)",
                self.path.display()
            ));
            if let Err(cut) = cut {
                err = err.context(format!(
                    "and could not cut it back to its last complete record ({cut}); its last line may be torn"
                ));
            }
            return Err(WriteError {
                error: err,
                record_kept: false,
            });
        }
        self.len += bytes.len() as u64;
        self.needs_newline = false;
        self.dirty = true;
        if self.fsync == Fsync::Always {
            self.sync()?;
        }
        Ok(())
    }

    /// With `--fsync batch`: syncs when a second has passed since the last sync.
    pub fn sync_if_due(&mut self) -> Result<(), WriteError> {
        if self.fsync == Fsync::Batch && self.dirty && self.last_sync.elapsed() >= SYNC_EVERY {
            self.sync()?;
        }
        Ok(())
    }

    /// The final sync at exit (except with `--fsync never`).
    pub fn finish(&mut self) -> Result<(), WriteError> {
        if self.fsync != Fsync::Never && self.dirty {
            self.sync()?;
        }
        Ok(())
    }

    /// fdatasync; a failure is fatal and never retried, because the kernel may already have
    /// dropped the dirty pages, so a later success would prove nothing.
    fn sync(&mut self) -> Result<(), WriteError> {
        self.file.sync_data().map_err(|e| WriteError {
            error: anyhow::Error::new(e).context(format!(
                "cannot sync cache {} to disk; records since the last sync may not survive a \
                 power cut (check the disk, e.g. with dmesg)",
                self.path.display()
            )),
            record_kept: true,
        })?;
        self.dirty = false;
        self.last_sync = Instant::now();
        Ok(())
    }
}

/// How often `--fsync batch` syncs at most.
pub const SYNC_EVERY: Duration = Duration::from_secs(1);

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

/// Makes a newly created file's directory entry durable.
fn sync_parent_dir(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir).and_then(|d| d.sync_all()).with_context(|| {
        format!(
            "cannot sync directory {} after creating the cache",
            dir.display()
        )
    })
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
