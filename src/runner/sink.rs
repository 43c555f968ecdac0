//! The sink: where each item's outcome goes. A record to the cache first (durability) and then
//! to stdout, both through the writer threads; a failure to stderr and the failures file; an
//! unfinished item only to the counters. It owns the counters, so an item counts as done only
//! when the writer says its write returned.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Error;

use super::admission::Window;
use super::shutdown::Verdict;
use super::writer::{Report, Writer};
use crate::cache::CacheWriter;
use crate::config::Config;
use crate::input::Item;
use crate::report::failures::{retry_message, throttle_message};
use crate::report::output::{Output, RawStdout};
use crate::report::progress::Progress;
use crate::report::repeats::{Repeats, Show};
use crate::report::{failure_message, FailedItem, Failure, FailureLog, Reason, Stats};

/// The outcomes' way out: the writer threads, the failures file and the counters.
pub(super) struct ResultSink {
    /// The threads that own the cache and stdout.
    writer: Writer,
    /// Whether there is a cache (it belongs to the writer thread).
    has_cache: bool,
    failures: Option<FailureLog>,
    stats: Arc<Stats>,
    /// Bad-input reasons seen, so that one repeated on every line is counted, not listed.
    repeats: Repeats,
    /// A write to stdout or the failures file failed: reported once, the run went on with the
    /// cache, and it exits 2.
    write_failed: bool,
    input_name: String,
    progress: Progress,
}

/// What the sink cannot deal with alone: it stops the run (shutdown's to decide how).
pub(super) enum Trouble {
    /// A run-fatal error: the cache cannot be trusted, or stdout was the only copy.
    Fatal(Error),
    /// Stdout's reader is gone (`pararun ... | head`).
    BrokenPipe,
}

impl ResultSink {
    /// Starts the writer threads; returns the sink and the `-k` window that admission reads.
    pub(super) fn new(
        cfg: &Config,
        stats: Arc<Stats>,
        progress: Progress,
        cache: Option<CacheWriter>,
        failures: Option<FailureLog>,
    ) -> anyhow::Result<(ResultSink, Window)> {
        let print = cfg.output.records && !cfg.output.quiet;
        let out = RawStdout::new(cfg.output.stdout_closed);
        let output = Output::new(
            print,
            cfg.output.keep_order,
            cfg.seats() * 4,
            progress.clone(),
            out,
        );
        let has_cache = cache.is_some();
        let (writer, window) = Writer::start(cache, output)?;
        let sink = ResultSink {
            writer,
            has_cache,
            failures,
            stats,
            repeats: Repeats::default(),
            write_failed: false,
            input_name: cfg.items.input.to_string(),
            progress,
        };
        Ok((sink, window))
    }

    /// Whether there is a cache to sync.
    pub(super) fn has_cache(&self) -> bool {
        self.has_cache
    }

    /// Records handed to the writer and not through with stdout yet.
    pub(super) fn backlog(&self) -> usize {
        self.writer.backlog()
    }

    /// Items that failed for good so far.
    pub(super) fn failed(&self) -> u64 {
        Stats::get(&self.stats.failed)
    }

    /// What the exit status needs to know of the outcomes.
    pub(super) fn verdict(&self) -> Verdict {
        Verdict {
            write_failed: self.write_failed,
            items_failed: self.failed() > 0,
        }
    }

    /// Counts an attempt that starts: a new item, or a retry (an item resent to a new worker
    /// was counted when it was first sent).
    pub(super) fn count_start(&self, attempt: u32, resent: bool) {
        if resent {
            // Counted when it was first sent.
        } else if attempt == 1 {
            Stats::bump(&self.stats.ran);
        } else {
            Stats::bump(&self.stats.retries);
        }
    }

    /// The writer's next report.
    pub(super) async fn report(&mut self) -> Option<Report> {
        self.writer.report().await
    }

    /// A writer's report that is already in, without waiting.
    pub(super) fn ready_report(&mut self) -> Option<Report> {
        self.writer.ready_report()
    }

    /// Hands this turn's records to the writer threads.
    pub(super) fn flush(&mut self) {
        self.writer.flush();
    }

    /// `--fsync batch`: asks for a sync.
    pub(super) fn sync(&mut self) {
        self.writer.sync();
    }

    /// Takes the writer's word on a record, a stdout failure or a sync.
    pub(super) fn on_written(&mut self, report: Report) -> Option<Trouble> {
        match report {
            Report::Done {
                records,
                sync_failed,
                ..
            } => {
                self.stats.succeeded.fetch_add(records, Ordering::Relaxed);
                sync_failed.map(Trouble::Fatal)
            }
            Report::NotWritten { key, seq, error } => {
                Stats::bump(&self.stats.unfinished);
                let what = format!(
                    "{} ({}:{seq})",
                    crate::report::excerpt(&key),
                    self.input_name
                );
                self.progress.line(
                    format!("pararun: item {what} is not done: its record could not be written")
                        .as_bytes(),
                );
                error.map(Trouble::Fatal)
            }
            Report::Printed(_) => None,
            Report::Lost(count) if !self.has_cache => {
                // stdout was their only copy: they run again next time, like items cut short.
                self.stats.succeeded.fetch_sub(count, Ordering::Relaxed);
                self.stats.unfinished.fetch_add(count, Ordering::Relaxed);
                None
            }
            Report::Lost(_) => None,
            Report::StdoutFailed(e) => self.stdout_failed(e),
            Report::SyncFailed(e) => Some(Trouble::Fatal(e)),
        }
    }

    fn stdout_failed(&mut self, e: io::Error) -> Option<Trouble> {
        if e.kind() == io::ErrorKind::BrokenPipe {
            // `pararun ... | head`: the reader is gone. Stop like SIGTERM; the cache keeps
            // every result that finishes meanwhile.
            Some(Trouble::BrokenPipe)
        } else if self.has_cache {
            // stdout is a copy of the cache: losing it must not lose results, so the run goes
            // on (records are no longer printed) and exits 2.
            self.write_failed = true;
            self.progress.line(
                format!(
                    "pararun: cannot write to stdout: {e}; records are no longer printed but \
                     still go to the cache; the run goes on and will exit 2"
                )
                .as_bytes(),
            );
            None
        } else {
            // Without a cache, stdout is the only place results go: stop starting items.
            Some(Trouble::Fatal(Error::new(e).context(
                "cannot write to stdout, the only place results go without --cache",
            )))
        }
    }

    /// An item cut short by a shutdown: no record, no failure; it runs again next time.
    pub(super) fn unfinished(&mut self, ordinal: u64) {
        Stats::bump(&self.stats.unfinished);
        self.writer.skip(ordinal);
    }

    /// Hands a record to the writer, which appends it to the cache (first: durability) and
    /// then prints it; the item counts as done when the writer says the write returned.
    pub(super) fn record(&mut self, ordinal: u64, item: Item, mut record: String) {
        record.push('\n');
        self.writer.record(ordinal, record, item.key.text, item.seq);
    }

    /// A line of input that is no item: it ran, and failed.
    pub(super) fn bad_input(&mut self, ordinal: u64, seq: u64, line: &str, reason: String) {
        Stats::bump(&self.stats.ran);
        let failure = Failure::new(Reason::BadInput, reason);
        let failed = FailedItem {
            key: None,
            seq,
            line,
            attempts: 0,
        };
        self.fail(ordinal, &failed, &failure);
    }

    /// Counts, reports and logs an item that failed for good.
    pub(super) fn fail(&mut self, ordinal: u64, item: &FailedItem<'_>, failure: &Failure) {
        Stats::bump(&self.stats.failed);
        // Its place in `-k` order is given up: it has no record.
        self.writer.skip(ordinal);
        self.report_failure(item, failure);
        if let Some(log) = &mut self.failures {
            if let Err(e) = log.append(item, failure) {
                self.write_failed = true;
                self.progress.line(format!("pararun: {e:#}").as_bytes());
            }
        }
    }

    /// A retry is never silent: the log says which attempt failed, why, and when the next one
    /// starts.
    pub(super) fn retrying(
        &self,
        item: &FailedItem<'_>,
        failure: &Failure,
        attempts: u32,
        delay: Duration,
    ) {
        let note = retry_message(item, failure, &self.input_name, attempts, delay);
        self.progress.line(note.as_bytes());
    }

    /// A throttle is counted, and said on stderr when it paused starts for longer than they
    /// were (`paused`); `after` is the `retry_after` the service gave, if any.
    pub(super) fn throttled(
        &self,
        item: &FailedItem<'_>,
        failure: &Failure,
        paused: Option<Duration>,
        after: Option<Duration>,
    ) {
        Stats::bump(&self.stats.throttled);
        if let Some(paused) = paused {
            let note = throttle_message(item, failure, &self.input_name, paused, after);
            self.progress.line(note.as_bytes());
        }
    }

    /// With `--adaptive`, the limit on items running at once changed to `limit`: said on
    /// stderr, and kept for the summary.
    pub(super) fn limit_changed(&self, limit: usize, why: &str) {
        self.stats.limit.store(limit as u64, Ordering::Relaxed);
        let note = format!("pararun: --adaptive: at most {limit} running at once ({why})");
        self.progress.line(note.as_bytes());
    }

    /// The failure's line on stderr, unless its bad-input reason has repeated enough to be
    /// only counted (`report::repeats`).
    fn report_failure(&mut self, item: &FailedItem<'_>, failure: &Failure) {
        let show = match failure.reason {
            Reason::BadInput => self.repeats.note(&failure.detail),
            // A program that prints text, not JSON, fails every item the same way; what each
            // item printed differs, so the reason is counted by its kind.
            Reason::BadOutput => self
                .repeats
                .note_kind("bad-output", &output_reason(&failure.detail)),
            _ => Show::Line,
        };
        if show != Show::Counted {
            self.progress
                .line(failure_message(item, failure, &self.input_name).as_bytes());
        }
        if let Show::LineThenNote(note) = show {
            self.progress.line(note.as_bytes());
        }
    }

    /// The end of the writers: the cache gets what is queued and its last sync; stdout gets
    /// the rest within `patience` (for ever with `None`) or until `give_up`. Returns what
    /// stops the run, from the last reports and the final sync.
    pub(super) async fn finish(
        &mut self,
        patience: Option<Duration>,
        give_up: impl std::future::Future<Output = ()>,
    ) -> Vec<Trouble> {
        let (left, finished) = self.writer.finish(patience, give_up).await;
        let mut troubles: Vec<Trouble> = left
            .into_iter()
            .filter_map(|report| self.on_written(report))
            .collect();
        if let Err(e) = finished {
            troubles.push(Trouble::Fatal(e));
        }
        troubles
    }

    /// The repeated reasons' counts and, unless `-q`, the summary, on stderr.
    pub(super) fn summarize(&self, cfg: &Config, started: Instant) {
        for line in self.repeats.summary() {
            self.progress.line(line.as_bytes());
        }
        if !cfg.output.quiet {
            // An incomplete failures file is not pointed at: stderr has every failure.
            let complete = self.failures.as_ref().is_some_and(FailureLog::is_complete);
            let failures_file = cfg.faults.failures.as_deref().filter(|_| complete);
            let records_file = cfg.results.cache.as_deref().filter(|_| !cfg.output.records);
            let summary = self
                .stats
                .summary(started.elapsed(), records_file, failures_file);
            self.progress.line(summary.as_bytes());
        }
    }
}

/// A bad-output detail without what the item printed: its text up to the first quote or
/// parenthesis, plus the hint at its end, if any.
fn output_reason(detail: &str) -> String {
    let cut = detail.find([':', '(']).unwrap_or(detail.len());
    let mut reason = detail[..cut].trim_end().to_owned();
    if let Some(hint) = detail.rfind("; if ").map(|at| &detail[at..]) {
        reason += hint;
    }
    reason
}
