//! One cache as `status` sees it: its records, whether a run holds it now, and what that run's
//! state file says.

use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use serde_json::Value;

use crate::base::index::KeyIndex;
use crate::cache::load_read_only;
use crate::config::Format;
use crate::files;
use crate::report::state;

/// Expands each argument that holds a glob character (`*`, `?`, `[`) into the files it
/// matches, sorted, so that a job script can pass `'out.*.jsonl'` quoted; other arguments are
/// kept as they are (a cache that does not exist yet is an empty one). A pattern that matches
/// nothing is an error: it is a typo far more often than a job not started.
pub fn expand(patterns: &[PathBuf], what: &str) -> Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for pattern in patterns {
        let text = pattern.to_string_lossy();
        // A file that exists is itself, whatever its name holds (`out[1].jsonl`).
        if !text.contains(['*', '?', '[']) || pattern.symlink_metadata().is_ok() {
            paths.push(pattern.clone());
            continue;
        }
        let found: Vec<PathBuf> = match glob::glob(&text) {
            Ok(found) => found.filter_map(Result::ok).collect(),
            Err(e) => bail!("{what} pattern {text:?} is not a valid glob: {e}"),
        };
        if found.is_empty() {
            bail!("no {what} matches {text:?}; check the pattern, or quote it so that pararun expands it");
        }
        paths.extend(found);
    }
    Ok(paths)
}

/// Refuses a file given by name that does not exist: a typo, far more often than a job that
/// has not failed yet (a run creates its failures file at start).
pub fn all_exist(paths: &[PathBuf], what: &str) -> Result<()> {
    match paths.iter().find(|p| p.symlink_metadata().is_err()) {
        Some(missing) => bail!("{what} {} does not exist", missing.display()),
        None => Ok(()),
    }
}

/// What the live part of `status` knows of a run from its state file.
#[derive(Debug, Clone, Default)]
pub struct Live {
    /// The state file as last written, if there is one that parses.
    pub state: Option<serde_json::Map<String, Value>>,
    /// Whether a run holds the cache's lock now.
    pub running: bool,
}

impl Live {
    /// A field of the state file.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.state.as_ref()?.get(name).filter(|v| !v.is_null())
    }

    /// A text field of the state file.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.get(name)?.as_str()
    }

    /// The live run's state: only while the lock is held and the state file says its run has
    /// not finished (a lock held by `check --repair`, or by a run that has not written its
    /// state yet, has no live figures).
    pub fn live_state(&self) -> Option<&serde_json::Map<String, Value>> {
        let state = self.state.as_ref()?;
        (self.running && state.get("finished") == Some(&Value::Bool(false))).then_some(state)
    }
}

/// One cache: its keys, and its run.
pub struct Shard {
    /// The cache's path, as given.
    pub path: PathBuf,
    /// The keys recorded in it.
    pub index: KeyIndex,
    /// Its state file and lock.
    pub live: Live,
}

impl Shard {
    /// Reads the cache at `path` with the run's own loader, and its state file and lock.
    /// `key_field` is the flag's, else the state file's, else `id`.
    pub fn open(path: &Path, key_field: Option<&str>, max_line: usize) -> Result<Shard> {
        let live = Live {
            state: read_state(path),
            running: locked(path)?,
        };
        let field = key_field
            .or(live.text("key_field"))
            .unwrap_or("id")
            .to_owned();
        let loaded = load_read_only(path, &field, max_line)?;
        Ok(Shard {
            path: path.to_owned(),
            index: loaded.index,
            live,
        })
    }
}

/// The state file of the cache at `cache`, if it is a regular file holding a JSON object (a
/// reader sees whole versions only: each is renamed into place). It sits beside the cache's
/// real path, so a symlink to the cache finds it too; anything but a regular file (a FIFO put
/// there) is passed over without blocking.
pub fn read_state(cache: &Path) -> Option<serde_json::Map<String, Value>> {
    let path = state::path_for(&std::fs::canonicalize(cache).ok()?);
    let mut file = files::open_regular(&path, OpenOptions::new().read(true)).ok()?;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(&mut file, 1 << 20), &mut bytes).ok()?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(state)) => Some(state),
        _ => None,
    }
}

/// What the last run on `cache` said of itself: its key field and input format, for the
/// subcommands that read the cache as that run did.
pub fn run_fact(cache: &Path, name: &str) -> Option<String> {
    read_state(cache)?.get(name)?.as_str().map(str::to_owned)
}

/// The key field to read the caches with: the flag's, else the first cache's run's, else `id`.
pub fn key_field_of(flag: Option<&str>, caches: &[PathBuf]) -> String {
    flag.map(str::to_owned)
        .or_else(|| caches.iter().find_map(|c| run_fact(c, "key_field")))
        .unwrap_or_else(|| "id".into())
}

/// How to read an input: the flag's format, else the run's (`--format` as it was given),
/// else `auto`, which decides from the first line as the run did.
pub fn format_of(flag: Option<Format>, caches: &[PathBuf]) -> Format {
    let run = || {
        caches
            .iter()
            .find_map(|c| match run_fact(c, "format")?.as_str() {
                "jsonl" => Some(Format::Jsonl),
                "lines" => Some(Format::Lines),
                _ => None,
            })
    };
    flag.or_else(run).unwrap_or(Format::Auto)
}

/// Whether a run holds the cache's lock. A lock held on this machine shows in `/proc/locks`,
/// which can be read without touching the lock. Otherwise (no local holder, or a filesystem
/// shared with other nodes, where Linux turns `flock` into a lock the server keeps) a shared
/// lock is tried and at once given back; a run that starts in that instant retries its own
/// lock for a moment (`cache::lock`), so the probe never turns it away.
pub fn locked(path: &Path) -> Result<bool> {
    let file: File = match files::open_regular(path, OpenOptions::new().read(true)) {
        Ok(file) => file,
        Err(e) if e.io_kind() == Some(std::io::ErrorKind::NotFound) => return Ok(false),
        Err(e) => {
            return Err(e.describe(files::CACHE, path, || {
                format!("read cache {}", path.display())
            }))
        }
    };
    if let Ok(meta) = file.metadata() {
        if held_here(meta.dev(), meta.ino()) {
            return Ok(true);
        }
    }
    Ok(match file.try_lock_shared() {
        Ok(()) => false,
        Err(TryLockError::WouldBlock) => true,
        Err(TryLockError::Error(_)) => false,
    })
}

/// Whether `/proc/locks` lists an exclusive `flock` on the file `(dev, ino)`.
fn held_here(dev: u64, ino: u64) -> bool {
    let Ok(locks) = std::fs::read_to_string("/proc/locks") else {
        return false;
    };
    let want = format!(
        "{:02x}:{:02x}:{ino}",
        rustix::fs::major(dev),
        rustix::fs::minor(dev)
    );
    locks.lines().any(|line| {
        // `1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF`; a blocked waiter's line has `->`
        // in second place, and holds nothing.
        let words: Vec<&str> = line.split_whitespace().collect();
        words.get(1) == Some(&"FLOCK")
            && words.get(3) == Some(&"WRITE")
            && words.get(5) == Some(&want.as_str())
    })
}
