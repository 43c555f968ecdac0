//! The writers: a thread that owns the cache and one that owns stdout, so that a slow disk,
//! an NFS stall or a stdout pipe nobody reads never delays the scheduler (reaping, timeouts,
//! spawns, signals), and a blocked stdout never holds up the cache.
//!
//! The crash-safety rules hold as before, here: one `write` per record (in
//! [`CacheWriter::append`]), cut back to the last whole record on error, and a record is
//! reported done only after its write returned. After a failed append nothing more is written
//! to the cache: every later record is reported not written.

use std::io;
use std::sync::atomic::AtomicU64;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Error, Result};

use super::admission::Window;
use super::printer::{print, Print};
use crate::cache::CacheWriter;
use crate::report::output::Output;

/// What the scheduler asks of the cache thread. Jobs travel in batches, one per turn of the
/// scheduler: a hand-off per record woke the thread once per record, and those wake-ups
/// cost more than the writes.
enum CacheJob {
    /// Append a record (a line ending in `\n`) to the cache, then pass it on to be printed.
    Record(Rec),
    /// `--fsync batch`: sync if a second has passed since the last sync.
    Sync,
}

/// A record on its way, with what names its item should the write fail: the key's text and
/// the input line (the message is only formatted then).
struct Rec {
    ordinal: u64,
    record: String,
    key: String,
    seq: u64,
}

/// What the threads tell the scheduler.
pub(super) enum Report {
    /// Records are in the cache: their items are done (they are printed later, unless stdout
    /// failed or nothing is printed).
    Done {
        /// How many records.
        records: u64,
        /// How many of them are through with stdout already (nothing is printed).
        printed: u64,
        /// Only the sync after the write failed (fatal for the run, but the records are kept).
        sync_failed: Option<Error>,
    },
    /// The record could not be written: the item is not done.
    NotWritten {
        /// The item's key text, for the message.
        key: String,
        /// The item's input line number, for the message.
        seq: u64,
        /// Why, or `None` when an earlier write failed and the cache takes nothing more.
        error: Option<Error>,
    },
    /// Records went to stdout (or were dropped there, after stdout failed): how many.
    Printed(usize),
    /// Records the printer could not print, a write to stdout having failed: without a
    /// cache, their items are not done after all.
    Lost(u64),
    /// Writing to stdout failed (reported once; records are no longer printed).
    StdoutFailed(io::Error),
    /// A batch sync failed.
    SyncFailed(Error),
}

/// The scheduler's handle on the two threads that write: one owns the cache, the other
/// stdout. Apart, a stdout that nobody reads holds up neither the cache nor the scheduler.
pub(super) struct Writer {
    jobs: Option<mpsc::Sender<Vec<CacheJob>>>,
    /// `None` when nothing is printed (`-q`, or records only in the cache): no stdout thread.
    prints: Option<mpsc::Sender<Vec<Print>>>,
    /// Jobs and prints of this turn of the scheduler, sent by [`Writer::flush`].
    pending_jobs: Vec<CacheJob>,
    pending_prints: Vec<Print>,
    reports: tokio::sync::mpsc::UnboundedReceiver<Report>,
    cache_thread: Option<JoinHandle<Result<()>>>,
    printer: Option<JoinHandle<()>>,
    /// Records sent and not printed yet: new items wait while too many are (backpressure
    /// from a slow stdout, and bounded memory). Kept by the writer alone, from its reports.
    in_flight: usize,
}

impl Writer {
    /// Starts the threads, which own `cache` and `output` from now on; returns the handle and
    /// the `-k` window the stdout thread moves.
    pub(super) fn start(cache: Option<CacheWriter>, output: Output) -> Result<(Writer, Window)> {
        let (jobs, inbox) = mpsc::channel();
        let (outbox, reports) = tokio::sync::mpsc::unbounded_channel();
        let next_to_print = Arc::new(AtomicU64::new(0));
        // Order only matters for what is printed.
        let printing = output.prints();
        let (keep_order, window) = (printing && output.keep_order(), output.window());
        let (prints, printer) = if printing {
            let (prints, print_inbox) = mpsc::channel();
            let (shared, outbox) = (next_to_print.clone(), outbox.clone());
            let printer = std::thread::Builder::new()
                .name("pararun-stdout".into())
                .spawn(move || print(output, &print_inbox, &outbox, &shared))
                .context("cannot start the stdout thread")?;
            (Some(prints), Some(printer))
        } else {
            (None, None)
        };
        let cache_thread = {
            let prints = prints.clone();
            std::thread::Builder::new()
                .name("pararun-cache".into())
                .spawn(move || write_cache(cache, &inbox, prints.as_ref(), &outbox))
                .context("cannot start the cache writer thread")?
        };
        let writer = Writer {
            jobs: Some(jobs),
            prints,
            pending_jobs: Vec::new(),
            pending_prints: Vec::new(),
            reports,
            cache_thread: Some(cache_thread),
            printer,
            in_flight: 0,
        };
        Ok((writer, Window::new(next_to_print, keep_order, window)))
    }

    /// Records handed over and not through with stdout yet.
    pub(super) fn backlog(&self) -> usize {
        self.in_flight
    }

    /// Counts off the records a report says are through with stdout (printed, not printed
    /// at all, or not written).
    fn account(&mut self, report: &Report) {
        self.in_flight -= match report {
            Report::Done { printed, .. } => *printed as usize,
            Report::NotWritten { .. } => 1,
            Report::Printed(count) => *count,
            _ => 0,
        };
    }

    /// Queues a record to be appended and printed; `key` and `seq` name its item in a
    /// message should the write fail. It leaves at the next [`Writer::flush`].
    pub(super) fn record(&mut self, ordinal: u64, record: String, key: String, seq: u64) {
        self.in_flight += 1;
        self.pending_jobs.push(CacheJob::Record(Rec {
            ordinal,
            record,
            key,
            seq,
        }));
    }

    /// Gives up an item's place in `-k` order (it has no record).
    pub(super) fn skip(&mut self, ordinal: u64) {
        if self.prints.is_some() {
            self.pending_prints.push(Print {
                ordinal,
                record: None,
            });
        }
    }

    /// Asks for a batch sync.
    pub(super) fn sync(&mut self) {
        self.pending_jobs.push(CacheJob::Sync);
    }

    /// Hands this turn's jobs and prints to the threads: once a turn, before the scheduler
    /// waits, so a thread is woken once for all of them.
    pub(super) fn flush(&mut self) {
        if !self.pending_jobs.is_empty() {
            let jobs = std::mem::take(&mut self.pending_jobs);
            if let Some(sender) = &self.jobs {
                // The thread ends only when this channel closes (or it panicked, which
                // `finish` reports), so a failed send needs no handling here.
                let _ = sender.send(jobs);
            }
        }
        if !self.pending_prints.is_empty() {
            let prints = std::mem::take(&mut self.pending_prints);
            if let Some(sender) = &self.prints {
                let _ = sender.send(prints);
            }
        }
    }

    /// The next report.
    pub(super) async fn report(&mut self) -> Option<Report> {
        let report = self.reports.recv().await?;
        self.account(&report);
        Some(report)
    }

    /// A report that is already there, without waiting.
    pub(super) fn ready_report(&mut self) -> Option<Report> {
        let report = self.reports.try_recv().ok()?;
        self.account(&report);
        Some(report)
    }

    /// Closes the channels and waits for the cache thread to write what is queued and sync;
    /// then gives stdout up to `patience` to take the rest (for ever with `None`), or until
    /// `give_up` resolves (a signal): a stdout nobody reads must not keep a stopping run alive,
    /// and the cache has every record by then. Returns every report left and the outcome of
    /// the cache's final sync.
    pub(super) async fn finish(
        &mut self,
        patience: Option<Duration>,
        give_up: impl std::future::Future<Output = ()>,
    ) -> (Vec<Report>, Result<()>) {
        self.flush();
        self.jobs = None;
        self.prints = None;
        let cache_thread = self.cache_thread.take();
        let synced = tokio::task::spawn_blocking(move || cache_thread.map(JoinHandle::join))
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        let outcome = match synced {
            Some(Ok(outcome)) => outcome,
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            None => Ok(()),
        };
        let mut left = Vec::new();
        let drain = async {
            while let Some(report) = self.reports.recv().await {
                left.push(report);
            }
        };
        let limit = async {
            match patience {
                Some(limit) => tokio::time::sleep(limit).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = drain => {}
            _ = limit => {}
            _ = give_up => {}
        }
        while let Ok(report) = self.reports.try_recv() {
            left.push(report);
        }
        if self.reports.is_closed() {
            if let Some(Err(panic)) = self.printer.take().map(JoinHandle::join) {
                std::panic::resume_unwind(panic);
            }
        }
        for report in &left {
            self.account(report);
        }
        (left, outcome)
    }
}

/// At most this many records, or bytes, go to the cache in one write.
const BATCH_RECORDS: usize = 1024;
const BATCH_BYTES: usize = 256 << 10;

/// The cache thread: appends the records that are waiting in one write (each record whole, and
/// each counted done only once that write returned) and passes them on to be printed; after a
/// failed append it writes nothing more. Ends when the jobs channel closes, with the cache's
/// final sync.
fn write_cache(
    mut cache: Option<CacheWriter>,
    inbox: &mpsc::Receiver<Vec<CacheJob>>,
    prints: Option<&mpsc::Sender<Vec<Print>>>,
    outbox: &tokio::sync::mpsc::UnboundedSender<Report>,
) -> Result<()> {
    let mut broken = false;
    let mut batch = WriteBatch::default();
    let mut waiting = std::collections::VecDeque::new();
    while let Ok(first) = inbox.recv() {
        waiting.extend(first);
        // What else waits joins this write: under load the thread makes one system call for
        // many records instead of one each.
        while !waiting.is_empty() {
            if let Ok(more) = inbox.try_recv() {
                waiting.extend(more);
            }
            let mut sync = false;
            while let Some(job) = waiting.pop_front() {
                match job {
                    CacheJob::Record(rec) => batch.push(rec),
                    CacheJob::Sync => sync = true,
                }
                if batch.full() {
                    break;
                }
            }
            if !batch.records.is_empty() {
                batch.write(&mut cache, &mut broken, prints, outbox);
            }
            if sync {
                if let Some(Err(e)) = cache.as_mut().map(CacheWriter::sync_if_due) {
                    let _ = outbox.send(Report::SyncFailed(e.error));
                }
            }
        }
    }
    match cache.as_mut().map(CacheWriter::finish) {
        Some(Err(e)) => Err(e.error),
        _ => Ok(()),
    }
}

/// Records waiting for one write: their bytes end to end, and the records themselves.
#[derive(Default)]
struct WriteBatch {
    bytes: Vec<u8>,
    records: Vec<Rec>,
}

impl WriteBatch {
    fn push(&mut self, rec: Rec) {
        self.bytes.extend_from_slice(rec.record.as_bytes());
        self.records.push(rec);
    }

    fn full(&self) -> bool {
        self.records.len() >= BATCH_RECORDS || self.bytes.len() >= BATCH_BYTES
    }

    /// Appends the batch in one write and reports it: done (then printed), or not written.
    fn write(
        &mut self,
        cache: &mut Option<CacheWriter>,
        broken: &mut bool,
        prints: Option<&mpsc::Sender<Vec<Print>>>,
        outbox: &tokio::sync::mpsc::UnboundedSender<Report>,
    ) {
        let appended = match (cache, *broken) {
            (_, true) => Err(None),
            (None, false) => Ok(None),
            (Some(cache), false) => match cache.append(&self.bytes) {
                Ok(()) => Ok(None),
                // Only the sync failed: the records are in the file, so the items are done.
                // After a failed sync the disk cannot be trusted with more: nothing more is
                // written.
                Err(e) if e.record_kept => {
                    *broken = true;
                    Ok(Some(e.error))
                }
                Err(e) => {
                    *broken = true;
                    Err(Some(e.error))
                }
            },
        };
        self.bytes.clear();
        let records = std::mem::take(&mut self.records);
        match appended {
            Ok(sync_failed) => {
                let count = records.len() as u64;
                let printed = if prints.is_some() { 0 } else { count };
                let _ = outbox.send(Report::Done {
                    records: count,
                    printed,
                    sync_failed,
                });
                if let Some(prints) = prints {
                    let batch = records.into_iter().map(|rec| Print {
                        ordinal: rec.ordinal,
                        record: Some(rec.record),
                    });
                    let _ = prints.send(batch.collect());
                }
            }
            Err(mut error) => {
                let mut unprinted = Vec::new();
                for Rec {
                    ordinal, key, seq, ..
                } in records
                {
                    // The error is told once; the other items only say they are not done.
                    let error = error.take();
                    let _ = outbox.send(Report::NotWritten { key, seq, error });
                    unprinted.push(Print {
                        ordinal,
                        record: None,
                    });
                }
                if let Some(prints) = prints {
                    let _ = prints.send(unprinted);
                }
            }
        }
    }
}
