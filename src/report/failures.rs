//! Item failures as values ([`Failure`], [`Reason`]), the message each one prints, and the
//! `--failures` file, which this module alone writes.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use serde_json::{json, Value};

use super::text::{escape, excerpt};
use crate::files;

/// Why an item failed: the `reason` field of the failures file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The child exited with a non-zero status.
    Exit,
    /// The child was killed by a signal it was not sent by pararun.
    Signal,
    /// The attempt ran out of `--timeout`.
    Timeout,
    /// Exit 0, but stdout held no usable result.
    BadOutput,
    /// The item itself is unusable (invalid JSON, missing field); never retried.
    BadInput,
    /// The child could not be started at all.
    Spawn,
    /// The service throttled the item more than `--max-throttled` times.
    Throttled,
}

impl Reason {
    /// The name used in messages and in the failures file.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Exit => "exit",
            Reason::Signal => "signal",
            Reason::Timeout => "timeout",
            Reason::BadOutput => "bad-output",
            Reason::BadInput => "bad-input",
            Reason::Spawn => "spawn",
            Reason::Throttled => "throttled",
        }
    }

    /// Whether another attempt could succeed.
    pub fn retryable(self) -> bool {
        self != Reason::BadInput
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One failed attempt, as a value the runner branches on.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The kind of failure.
    pub reason: Reason,
    /// What happened, for people (`exit code 3`, `invalid JSON: ...`).
    pub detail: String,
    /// The exit code, for `Reason::Exit`.
    pub code: Option<i32>,
    /// The signal number, for `Reason::Signal`.
    pub signal: Option<i32>,
    /// The last lines of the child's stderr.
    pub stderr_tail: String,
    /// How long the attempt ran.
    pub duration: Duration,
}

impl Failure {
    /// A failure with only a reason and a detail.
    pub fn new(reason: Reason, detail: impl Into<String>) -> Failure {
        Failure {
            reason,
            detail: detail.into(),
            code: None,
            signal: None,
            stderr_tail: String::new(),
            duration: Duration::ZERO,
        }
    }
}

/// Where in the input a failed item came from.
pub struct FailedItem<'a> {
    /// The item's key, if it had one.
    pub key: Option<&'a Value>,
    /// Its 1-based input line.
    pub seq: u64,
    /// The line as read.
    pub line: &'a str,
    /// How many attempts were made.
    pub attempts: u32,
}

/// The stderr message for a failed item: key, line, reason and the last stderr line(s).
pub fn failure_message(item: &FailedItem<'_>, failure: &Failure, input: &str) -> String {
    let mut msg = match item.key {
        Some(key) => format!(
            "pararun: item {} ({input}:{}) failed",
            excerpt(&key.to_string()),
            item.seq
        ),
        None => format!("pararun: {input}:{}: item failed", item.seq),
    };
    msg += &format!(": {}: {}", failure.reason, failure.detail);
    if item.attempts > 1 {
        msg += &format!(" (after {} attempts)", item.attempts);
    }
    let tail: Vec<&str> = failure
        .stderr_tail
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    if let Some(last) = tail.last() {
        msg += &format!("; stderr ends: {}", escape(last));
    }
    msg
}

/// The line saying a throttle paused every start, and for how long.
pub fn throttle_message(
    item: &FailedItem<'_>,
    failure: &Failure,
    input: &str,
    paused: Duration,
    after: Option<Duration>,
) -> String {
    let key = item
        .key
        .map_or_else(|| "?".into(), |k| excerpt(&k.to_string()).into_owned());
    let why = match after {
        Some(_) => "the retry_after it gave",
        None => "backoff, no retry_after given",
    };
    format!(
        "pararun: item {key} ({input}:{}) throttled: {}; new starts paused for {} ({why}), then \
         it runs again (no retry used)",
        item.seq,
        failure.detail,
        super::text::human_duration(paused)
    )
}

/// The stderr line for a failed attempt that will be retried: key, line, attempt `i/N`, the
/// reason, the last stderr line, and the delay before the next attempt.
pub fn retry_message(
    item: &FailedItem<'_>,
    failure: &Failure,
    input: &str,
    of: u32,
    delay: Duration,
) -> String {
    let key = item
        .key
        .map_or_else(|| "?".into(), |k| excerpt(&k.to_string()).into_owned());
    let mut msg = format!(
        "pararun: item {key} ({input}:{}) attempt {}/{of} failed: {}: {}",
        item.seq, item.attempts, failure.reason, failure.detail
    );
    if let Some(last) = failure
        .stderr_tail
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
    {
        msg += &format!("; stderr ends: {}", escape(last));
    }
    msg += &format!("; retrying in {}", super::text::human_duration(delay));
    msg
}

/// The `--failures` file: one JSON line appended per item that failed for good.
///
/// After a write fails (a full disk, an I/O error), the log stops writing: the error is
/// reported once, the run goes on, and every failure is still reported on stderr.
pub struct FailureLog {
    /// `None` once a write has failed.
    file: Option<File>,
    path: PathBuf,
    /// Whether the file's last line is whole but lacks its newline, which the next record
    /// writes first.
    needs_newline: bool,
}

impl FailureLog {
    /// Opens (creating if needed) the failures file for appending. Anything but a regular file
    /// is refused without blocking (see [`crate::files`]). `check` sees the opened file before
    /// anything is read or written (whether it is another of the run's files).
    ///
    /// Its end is repaired as the cache's is ([`files::repair_tail`]): a torn last line is cut
    /// off, so the first record is not glued onto it, and a whole one gets its newline.
    pub fn open(
        path: &Path,
        max_line: usize,
        check: impl FnOnce(&File) -> Result<()>,
    ) -> Result<FailureLog> {
        let mut options = OpenOptions::new();
        options.read(true).create(true).append(true);
        let file = files::open_regular(path, &options).map_err(|e| {
            e.describe(files::FAILURES, path, || {
                format!("open failures file {} for appending", path.display())
            })
        })?;
        check(&file)?;
        // The repair waits longer for the lock than an append: a tail another run is still
        // writing must never be cut, and setup can afford the wait.
        let (_, tail) = while_locked(&file, REPAIR_PATIENCE, || {
            files::repair_tail(&file, max_line)
        })
        .map_err(|e| {
            anyhow::Error::new(e).context(format!(
                "cannot repair the last line of failures file {}; check that it is writable",
                path.display()
            ))
        })?;
        Ok(FailureLog {
            file: Some(file),
            path: path.to_owned(),
            needs_newline: tail == files::Tail::NeedsNewline,
        })
    }

    /// Whether every failure so far is in the file (no write has failed).
    pub fn is_complete(&self) -> bool {
        self.file.is_some()
    }

    /// Appends the record of a failed item in one write. The first failed write returns its
    /// error; later calls write nothing and return `Ok`.
    pub fn append(&mut self, item: &FailedItem<'_>, failure: &Failure) -> Result<()> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let record = json!({
            "key": item.key,
            "line": item.seq,
            "item": item.line,
            "reason": failure.reason.as_str(),
            "detail": failure.detail,
            "exit_code": failure.code,
            "signal": failure.signal,
            "attempts": item.attempts,
            "duration_s": (failure.duration.as_secs_f64() * 1000.0).round() / 1000.0,
            "stderr_tail": failure.stderr_tail,
        });
        let mut line = match self.needs_newline {
            true => "\n".to_owned(),
            false => String::new(),
        };
        line += &record.to_string();
        line.push('\n');
        // `&File` writes too: the closure shares the file with the lock it runs under.
        let written = while_locked(file, LOCK_PATIENCE, || {
            (&mut &*file).write_all(line.as_bytes())
        });
        self.needs_newline &= written.is_err();
        written.map_err(|e| {
            self.file = None;
            anyhow::Error::new(e).context(format!(
                "cannot append to failures file {}; it stops here (this and later failed items \
                 are reported on stderr only), the run goes on and will exit 2",
                self.path.display()
            ))
        })
    }
}

/// How long a write waits for the failures file's lock.
const LOCK_PATIENCE: Duration = Duration::from_millis(100);

/// How long the repair at open waits for it.
const REPAIR_PATIENCE: Duration = Duration::from_secs(10);

/// Runs `work` holding the file's exclusive `flock`, when it can be had within `patience`;
/// without it otherwise (or where the file system has no locks).
///
/// Runs that share a failures file (shards of one job, each with its own cache) append to it
/// at once. A reader can see the first page of a record another run is still writing; the
/// lock, taken by every pararun around each record and around the repair at open, keeps one
/// run's repair from taking such a record for a torn line and cutting it. It is held only for
/// one write, so the wait is short; a lock held by something else for longer is not waited
/// out, and the record is written all the same.
fn while_locked<T>(file: &File, patience: Duration, work: impl FnOnce() -> T) -> T {
    let start = std::time::Instant::now();
    let held = loop {
        match file.try_lock() {
            Ok(()) => break true,
            Err(std::fs::TryLockError::WouldBlock) if start.elapsed() < patience => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(_) => break false,
        }
    };
    let out = work();
    if held {
        // Closing the file would drop it too; an unlock that fails leaves nothing to undo.
        let _ = file.unlock();
    }
    out
}
