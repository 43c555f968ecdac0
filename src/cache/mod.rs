//! The JSONL cache: its lock ([`lock`]), its index of done keys ([`index`]), loading ([`load`]) and
//! crash-safe appends ([`CacheWriter`]).
//!
//! One [`CacheWriter`] owns the file for the whole run. Every record is one complete line,
//! written with one `write` call; a failed write is cut back to the last complete record, so
//! the file only ever holds whole records (plus, at worst, one torn line from a crash: Linux
//! stops a write of several pages at a SIGKILL; the next run cuts it off). The cache never
//! schedules: it is told what to write.

pub mod load;
pub mod lock;
pub mod reader;

pub use crate::base::index;

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

pub use load::{load_read_only, Loaded};
pub use lock::Busy;
pub use reader::CacheReader;

use crate::config::Fsync;
use crate::files;

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
    /// Opens (creating) the cache, takes its exclusive lock and loads its keys. When another
    /// process holds the lock, waits up to `wait.limit` for it (calling `wait.note` once, when
    /// the wait begins, and `wait.pause` between tries, whose error ends the wait), then fails with
    /// [`Busy`], touching nothing. `check` sees the opened file first (whether it is another
    /// of the run's files), and its error is returned as is.
    pub fn open(
        path: &Path,
        key_field: &str,
        max_line: usize,
        fsync: Fsync,
        wait: lock::Wait<impl FnOnce(), impl FnMut(Duration) -> Result<()>>,
        check: impl FnOnce(&File) -> Result<()>,
    ) -> Result<(CacheWriter, Loaded)> {
        let (mut file, mut created) = open_file(path)?;
        check(&file)?;
        let mut pause = wait.pause;
        lock::lock(&file, path, wait.limit, wait.note, &mut pause)?;
        // While this run waited for the lock, `check --repair` or `merge -o` may have renamed a
        // new file over the path: the records belong in that one, not in the one now unlinked.
        for _ in 0..3 {
            if same_file(&file, path) {
                break;
            }
            (file, created) = open_file(path)?;
            lock::lock(&file, path, wait.limit, || {}, &mut pause)?;
        }
        if created && fsync != Fsync::Never {
            sync_parent_dir(path)?;
        }
        let mut loaded = load::load(&file, key_field, max_line, path)?;
        // A crash may have cut the last write short: its item was never counted done, and a
        // partial line is no record, so it is cut off; a whole one (whatever its fields) is
        // kept, and gets its newline before the next record.
        let (len, tail) = files::repair_tail(&file, max_line)
            .with_context(|| format!("cannot repair the last line of cache {}", path.display()))?;
        loaded.torn_cut = tail == files::Tail::Cut;
        let writer = CacheWriter {
            file,
            path: path.to_owned(),
            len,
            needs_newline: tail == files::Tail::NeedsNewline,
            fsync,
            dirty: false,
            last_sync: Instant::now(),
        };
        Ok((writer, loaded))
    }

    /// Appends whole records (complete lines, the last ending in `\n`) in a single write. On
    /// error the file is cut back to its last complete record, before these.
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

/// Opens (creating) the cache for reading and appending; whether it was created.
fn open_file(path: &Path) -> Result<(File, bool)> {
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
    Ok((file, created))
}

/// Whether `path` still names the open `file` (same device and inode).
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => true,
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
