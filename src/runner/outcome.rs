//! Where each item's outcome goes: a record to the cache first (durability) and then to stdout,
//! a failure to stderr and the failures file; and the `--rate` budget.

use std::io;
use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::Error;

use super::{Cause, Report, Runner};
use crate::input::Item;
use crate::report::repeats::Show;
use crate::report::{failure_message, FailedItem, Failure, Reason, Stats};

impl Runner<'_> {
    /// Gives up the place in `-k` order of an item that ends without a record.
    pub(super) fn emit_nothing(&mut self, ordinal: u64) {
        self.writer.skip(ordinal);
    }

    /// Takes the writer's word on a record, a stdout failure or a sync.
    pub(super) fn on_written(&mut self, report: Report) {
        match report {
            Report::Done {
                records,
                printed,
                sync_failed,
            } => {
                self.stats.succeeded.fetch_add(records, Ordering::Relaxed);
                self.writer.in_flight -= printed as usize;
                if let Some(e) = sync_failed {
                    self.set_fatal(e);
                }
            }
            Report::NotWritten { key, seq, error } => {
                self.writer.in_flight -= 1;
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
                if let Some(e) = error {
                    self.set_fatal(e);
                }
            }
            Report::Printed(count) => self.writer.in_flight -= count,
            Report::Lost(count) if !self.has_cache => {
                // stdout was their only copy: they run again next time, like items cut short.
                self.stats.succeeded.fetch_sub(count, Ordering::Relaxed);
                self.stats.unfinished.fetch_add(count, Ordering::Relaxed);
            }
            Report::Lost(_) => {}
            Report::StdoutFailed(e) => self.stdout_failed(e),
            Report::SyncFailed(e) => self.set_fatal(e),
        }
    }

    pub(super) fn stdout_failed(&mut self, e: io::Error) {
        if e.kind() == io::ErrorKind::BrokenPipe {
            // `pararun ... | head`: the reader is gone. Stop like SIGTERM; the cache keeps
            // every result that finishes meanwhile.
            self.stop(Cause::BrokenPipe);
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
        } else {
            // Without a cache, stdout is the only place results go: stop starting items.
            self.set_fatal(
                Error::new(e)
                    .context("cannot write to stdout, the only place results go without --cache"),
            );
        }
    }

    /// An item cut short by a shutdown: no record, no failure; it runs again next time.
    pub(super) fn unfinished(&mut self, ordinal: u64) {
        Stats::bump(&self.stats.unfinished);
        self.emit_nothing(ordinal);
    }

    /// With `--rate`, the moment the next start is allowed, if that is still to come.
    pub(super) fn rate_wait(&self) -> Option<Instant> {
        let rate = self.cfg.rate?;
        let allowed = self
            .rate_tat
            .checked_sub(rate.interval * (rate.burst - 1))
            .unwrap_or(self.rate_tat);
        (allowed > Instant::now()).then_some(allowed)
    }

    /// Hands a record to the writer, which appends it to the cache (first: durability) and
    /// then prints it; the item counts as done when the writer says the write returned.
    pub(super) fn record(&mut self, ordinal: u64, item: Item, mut record: String) {
        record.push('\n');
        if self.cause == Some(Cause::Fatal) {
            self.unfinished(ordinal);
            return;
        }
        self.writer.record(ordinal, record, item.key.text, item.seq);
    }

    /// Counts, reports and logs an item that failed for good.
    pub(super) fn fail(&mut self, ordinal: u64, item: &FailedItem<'_>, failure: &Failure) {
        Stats::bump(&self.stats.failed);
        self.emit_nothing(ordinal);
        self.report_failure(item, failure);
        if let Some(log) = &mut self.failures {
            if let Err(e) = log.append(item, failure) {
                self.write_failed = true;
                self.progress.line(format!("pararun: {e:#}").as_bytes());
            }
        }
        if let Some(max) = self.cfg.max_failures {
            if Stats::get(&self.stats.failed) >= max && self.cause.is_none() {
                self.progress.line(
                    format!(
                        "pararun: {max} failed item{}: starting nothing new (--max-failures)",
                        if max == 1 { "" } else { "s" }
                    )
                    .as_bytes(),
                );
                self.stop(Cause::MaxFailures);
            }
        }
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
