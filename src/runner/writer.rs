//! The writers: a thread that owns the cache and one that owns stdout, so that a slow disk,
//! an NFS stall or a stdout pipe nobody reads never delays the scheduler (reaping, timeouts,
//! spawns, signals), and a blocked stdout never holds up the cache.
//!
//! The crash-safety rules hold as before, here: one `write` per record (in
//! [`CacheWriter::append`]), cut back to the last whole record on error, and a record is
//! reported done only after its write returned. After a failed append nothing more is written
//! to the cache: every later record is reported not written.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Error, Result};

use crate::cache::CacheWriter;
use crate::report::output::Output;

/// What the scheduler asks of the cache thread.
enum Job {
    /// Append a record (a line ending in `\n`) to the cache, then pass it on to be printed.
    /// `what` names the item for a message.
    Record {
        ordinal: u64,
        record: String,
        what: String,
    },
    /// `--fsync batch`: sync if a second has passed since the last sync.
    Sync,
}

/// What the printer thread is given: an item's record, or `None` for an item without one
/// (its place in `-k` order).
struct Print {
    ordinal: u64,
    record: Option<String>,
}

/// What the threads tell the scheduler.
pub(super) enum Report {
    /// The record is in the cache: the item is done (it is printed later, unless stdout
    /// failed).
    Done {
        /// Only the sync after the write failed (fatal for the run, but the record is kept).
        sync_failed: Option<Error>,
    },
    /// The record could not be written: the item is not done.
    NotWritten {
        /// The item, for the message.
        what: String,
        /// Why, or `None` when an earlier write failed and the cache takes nothing more.
        error: Option<Error>,
    },
    /// A record went to stdout (or was dropped there, after stdout failed).
    Printed,
    /// Writing to stdout failed (reported once; records are no longer printed).
    StdoutFailed(io::Error),
    /// A batch sync failed.
    SyncFailed(Error),
}

/// The scheduler's handle on the two threads that write: one owns the cache, the other
/// stdout. Apart, a stdout that nobody reads holds up neither the cache nor the scheduler.
pub(super) struct Writer {
    jobs: Option<mpsc::Sender<Job>>,
    prints: Option<mpsc::Sender<Print>>,
    reports: tokio::sync::mpsc::UnboundedReceiver<Report>,
    cache_thread: Option<JoinHandle<Result<()>>>,
    printer: Option<JoinHandle<()>>,
    /// Records sent and not printed yet: new items wait while too many are (backpressure
    /// from a slow stdout, and bounded memory).
    pub(super) in_flight: usize,
    /// The next ordinal stdout waits for with `-k` (read for the scheduler's window).
    next_to_print: Arc<AtomicU64>,
    keep_order: bool,
    window: u64,
}

impl Writer {
    /// Starts the threads, which own `cache` and `output` from now on.
    pub(super) fn start(cache: Option<CacheWriter>, output: Output) -> Result<Writer> {
        let (jobs, inbox) = mpsc::channel();
        let (prints, print_inbox) = mpsc::channel();
        let (outbox, reports) = tokio::sync::mpsc::unbounded_channel();
        let next_to_print = Arc::new(AtomicU64::new(0));
        let (keep_order, window) = (output.keep_order(), output.window());
        let cache_thread = {
            let (prints, outbox) = (prints.clone(), outbox.clone());
            std::thread::Builder::new()
                .name("pararun-cache".into())
                .spawn(move || write_cache(cache, &inbox, &prints, &outbox))
                .context("cannot start the cache writer thread")?
        };
        let printer = {
            let shared = next_to_print.clone();
            std::thread::Builder::new()
                .name("pararun-stdout".into())
                .spawn(move || print(output, &print_inbox, &outbox, &shared))
                .context("cannot start the stdout thread")?
        };
        Ok(Writer {
            jobs: Some(jobs),
            prints: Some(prints),
            reports,
            cache_thread: Some(cache_thread),
            printer: Some(printer),
            in_flight: 0,
            next_to_print,
            keep_order,
            window,
        })
    }

    /// Whether the item with ordinal `next` may be taken from the input now: with `-k`, at
    /// most a window of items waits behind the slowest.
    pub(super) fn window_open(&self, next: u64) -> bool {
        let printed = self.next_to_print.load(Ordering::Acquire);
        crate::report::output::window_admits(self.keep_order, self.window, printed, next)
    }

    /// Sends a record to be appended and printed.
    pub(super) fn record(&mut self, ordinal: u64, record: String, what: String) {
        self.in_flight += 1;
        if let Some(jobs) = &self.jobs {
            // The thread ends only when this channel closes (or it panicked, which `finish`
            // reports), so a failed send needs no handling here.
            let _ = jobs.send(Job::Record {
                ordinal,
                record,
                what,
            });
        }
    }

    /// Gives up an item's place in `-k` order (it has no record).
    pub(super) fn skip(&mut self, ordinal: u64) {
        if let Some(prints) = &self.prints {
            let _ = prints.send(Print {
                ordinal,
                record: None,
            });
        }
    }

    /// Asks for a batch sync.
    pub(super) fn sync(&mut self) {
        if let Some(jobs) = &self.jobs {
            let _ = jobs.send(Job::Sync);
        }
    }

    /// The next report.
    pub(super) async fn report(&mut self) -> Option<Report> {
        self.reports.recv().await
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
        (left, outcome)
    }
}

/// The cache thread: appends each record in one write and passes it on to be printed; after
/// a failed append it writes nothing more. Ends when the jobs channel closes, with the cache's
/// final sync.
fn write_cache(
    mut cache: Option<CacheWriter>,
    inbox: &mpsc::Receiver<Job>,
    prints: &mpsc::Sender<Print>,
    outbox: &tokio::sync::mpsc::UnboundedSender<Report>,
) -> Result<()> {
    let mut broken = false;
    for job in inbox {
        let (ordinal, record, what) = match job {
            Job::Record {
                ordinal,
                record,
                what,
            } => (ordinal, record, what),
            Job::Sync => {
                if let Some(Err(e)) = cache.as_mut().map(CacheWriter::sync_if_due) {
                    let _ = outbox.send(Report::SyncFailed(e.error));
                }
                continue;
            }
        };
        let appended = match (&mut cache, broken) {
            (_, true) => Err(None),
            (None, false) => Ok(None),
            (Some(cache), false) => match cache.append(record.as_bytes()) {
                Ok(()) => Ok(None),
                // Only the sync failed: the record is in the file, so the item is done. After a
                // failed sync the disk cannot be trusted with more: nothing more is written.
                Err(e) if e.record_kept => {
                    broken = true;
                    Ok(Some(e.error))
                }
                Err(e) => {
                    broken = true;
                    Err(Some(e.error))
                }
            },
        };
        let (report, record) = match appended {
            Ok(sync_failed) => (Report::Done { sync_failed }, Some(record)),
            Err(error) => (Report::NotWritten { what, error }, None),
        };
        let _ = outbox.send(report);
        let _ = prints.send(Print { ordinal, record });
    }
    match cache.as_mut().map(CacheWriter::finish) {
        Some(Err(e)) => Err(e.error),
        _ => Ok(()),
    }
}

/// The stdout thread: prints records (in input order with `-k`) until every sender is gone,
/// then flushes what `-k` still holds.
fn print(
    mut output: Output,
    inbox: &mpsc::Receiver<Print>,
    outbox: &tokio::sync::mpsc::UnboundedSender<Report>,
    next_to_print: &AtomicU64,
) {
    for Print { ordinal, record } in inbox {
        let had_record = record.is_some();
        if let Err(e) = output.resolve(ordinal, record.as_deref()) {
            let _ = outbox.send(Report::StdoutFailed(e));
        }
        next_to_print.store(output.next_to_print(), Ordering::Release);
        if had_record {
            let _ = outbox.send(Report::Printed);
        }
    }
    if let Err(e) = output.finish() {
        let _ = outbox.send(Report::StdoutFailed(e));
    }
}
