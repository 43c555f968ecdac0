//! What a run tells its user: the counters, item failures as values, the failures file, the
//! summary line and the exit code.
//!
//! Item failures are never `Err`s: they are [`Failure`] values that the runner counts, retries
//! and reports here. This module owns the `--failures` file; nothing else writes it.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Result;
use serde_json::{json, Value};

use crate::files;

/// The process exit status, one variant per documented code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Every item succeeded or was skipped.
    Success,
    /// At least one item failed.
    ItemsFailed,
    /// A usage, setup or run-fatal I/O error.
    Error,
    /// Stopped by SIGINT.
    Interrupted,
    /// Stopped because stdout was closed (`pararun ... | head`).
    BrokenPipe,
    /// Stopped by SIGTERM.
    Terminated,
    /// Stopped by SIGHUP (a closed terminal, a dropped ssh session).
    HungUp,
}

impl Exit {
    /// The number the process exits with.
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::ItemsFailed => 1,
            Exit::Error => 2,
            Exit::Interrupted => 130,
            Exit::BrokenPipe => 141,
            Exit::Terminated => 143,
            Exit::HungUp => 129,
        }
    }
}

/// Counters shared between the input reader and the runner; read by the progress display.
#[derive(Debug, Default)]
pub struct Stats {
    /// Items started at least once.
    pub ran: AtomicU64,
    /// Items whose result was recorded.
    pub succeeded: AtomicU64,
    /// Items that failed for good (after retries), bad input included.
    pub failed: AtomicU64,
    /// Items skipped because their key is in the cache.
    pub cached: AtomicU64,
    /// Items skipped because their key came earlier in this input.
    pub duplicates: AtomicU64,
    /// Attempts beyond the first.
    pub retries: AtomicU64,
    /// Items skipped because another shard owns them.
    pub other_shards: AtomicU64,
    /// Items cut short by a shutdown: neither done nor failed, they run again next time.
    pub unfinished: AtomicU64,
}

impl Stats {
    /// Adds one to a counter.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Items accounted for so far: done, failed or skipped for any reason.
    pub fn settled(&self) -> u64 {
        Self::get(&self.succeeded)
            + Self::get(&self.failed)
            + Self::get(&self.cached)
            + Self::get(&self.duplicates)
            + Self::get(&self.other_shards)
    }

    /// The one-line summary printed at the end of a run.
    pub fn summary(&self, elapsed: Duration, failures_file: Option<&Path>) -> String {
        let ran = Self::get(&self.ran);
        let failed = Self::get(&self.failed);
        let secs = elapsed.as_secs_f64();
        let rate = if secs > 0.0 { ran as f64 / secs } else { 0.0 };
        let mut line = format!(
            "pararun: ran {ran} ({} succeeded, {failed} failed), {} cached, {} duplicates in {}, {rate:.1}/s",
            Self::get(&self.succeeded),
            Self::get(&self.cached),
            Self::get(&self.duplicates),
            human_duration(elapsed),
        );
        let other = Self::get(&self.other_shards);
        if other > 0 {
            line += &format!(", {other} other shards");
        }
        let unfinished = Self::get(&self.unfinished);
        if unfinished > 0 {
            line += &format!("; {unfinished} unfinished (they run again next time)");
        }
        if failed > 0 {
            match failures_file {
                Some(path) => line += &format!("; failures in {}", path.display()),
                None => line += "; failures: see stderr",
            }
        }
        line
    }
}

/// Formats a duration for people: `850ms`, `12.3s`, `4m05s`, `2h03m`.
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs >= 3600 {
        format!("{}h{:02}m", secs / 3600, secs % 3600 / 60)
    } else if secs >= 60 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else if d.as_millis() >= 1000 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{}ms", d.as_millis())
    }
}

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

/// At most 200 characters of a key or item for a message, so that a huge item cannot flood
/// stderr; the cut is marked with its full length.
pub fn excerpt(text: &str) -> std::borrow::Cow<'_, str> {
    const MAX: usize = 200;
    match text.char_indices().nth(MAX) {
        None => text.into(),
        Some((cut, _)) => format!("{}...({} bytes)", &text[..cut], text.len()).into(),
    }
}

/// Quotes text as a JSON string, so that keys, items and child output inside our messages can't
/// carry terminal escapes or fake line breaks.
pub fn escape(text: &str) -> String {
    Value::String(text.to_owned()).to_string()
}

/// The `--failures` file: one JSON line appended per item that failed for good.
///
/// After a write fails (a full disk, an I/O error), the log stops writing: the error is
/// reported once, the run goes on, and every failure is still reported on stderr.
pub struct FailureLog {
    /// `None` once a write has failed.
    file: Option<File>,
    path: PathBuf,
}

impl FailureLog {
    /// Opens (creating if needed) the failures file for appending. Anything but a regular file
    /// is refused without blocking (see [`crate::files`]).
    pub fn open(path: &Path) -> Result<FailureLog> {
        let file = files::open_regular(path, OpenOptions::new().create(true).append(true))
            .map_err(|e| {
                e.describe(files::FAILURES, path, || {
                    format!("open failures file {} for appending", path.display())
                })
            })?;
        Ok(FailureLog {
            file: Some(file),
            path: path.to_owned(),
        })
    }

    /// Whether every failure so far is in the file (no write has failed).
    pub fn is_complete(&self) -> bool {
        self.file.is_some()
    }

    /// Appends the record of a failed item in one write. The first failed write returns its
    /// error; later calls write nothing and return `Ok`.
    pub fn append(&mut self, item: &FailedItem<'_>, failure: &Failure) -> Result<()> {
        let Some(file) = &mut self.file else {
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
        let mut line = record.to_string();
        line.push('\n');
        file.write_all(line.as_bytes()).map_err(|e| {
            self.file = None;
            anyhow::Error::new(e).context(format!(
                "cannot append to failures file {}; it stops here (this and later failed items \
                 are reported on stderr only), the run goes on and will exit 2",
                self.path.display()
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_the_documented_numbers() {
        let codes: Vec<u8> = [
            Exit::Success,
            Exit::ItemsFailed,
            Exit::Error,
            Exit::Interrupted,
            Exit::BrokenPipe,
            Exit::Terminated,
        ]
        .iter()
        .map(|e| e.code())
        .collect();
        assert_eq!(codes, [0, 1, 2, 130, 141, 143]);
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human_duration(Duration::from_millis(850)), "850ms");
        assert_eq!(human_duration(Duration::from_millis(12_340)), "12.3s");
        assert_eq!(human_duration(Duration::from_secs(245)), "4m05s");
        assert_eq!(human_duration(Duration::from_secs(7380)), "2h03m");
    }

    #[test]
    fn excerpts_cut_long_text() {
        assert_eq!(excerpt("short"), "short");
        let long = "é".repeat(300);
        let cut = excerpt(&long);
        assert!(
            cut.starts_with(&"é".repeat(200)) && cut.ends_with("...(600 bytes)"),
            "{cut}"
        );
    }

    #[test]
    fn escape_neutralises_control_characters() {
        assert_eq!(escape("a\u{1b}[31mb\n"), "\"a\\u001b[31mb\\n\"");
    }

    #[test]
    fn summary_points_at_failures() {
        let stats = Stats::default();
        Stats::bump(&stats.ran);
        Stats::bump(&stats.failed);
        let line = stats.summary(Duration::from_secs(2), Some(Path::new("f.jsonl")));
        assert!(line.contains("ran 1 (0 succeeded, 1 failed)"), "{line}");
        assert!(line.ends_with("failures in f.jsonl"), "{line}");
        assert!(stats
            .summary(Duration::from_secs(2), None)
            .ends_with("see stderr"));
    }
}
