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
    /// `None` when nothing is printed (`-q`, or records only in the cache): no stdout thread.
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
        Ok(Writer {
            jobs: Some(jobs),
            prints,
            reports,
            cache_thread: Some(cache_thread),
            printer,
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

    /// A report that is already there, without waiting.
    pub(super) fn ready_report(&mut self) -> Option<Report> {
        self.reports.try_recv().ok()
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

/// At most this many records, or bytes, go to the cache in one write.
const BATCH_RECORDS: usize = 1024;
const BATCH_BYTES: usize = 256 << 10;

/// The cache thread: appends the records that are waiting in one write (each record whole, and
/// each counted done only once that write returned) and passes them on to be printed; after a
/// failed append it writes nothing more. Ends when the jobs channel closes, with the cache's
/// final sync.
fn write_cache(
    mut cache: Option<CacheWriter>,
    inbox: &mpsc::Receiver<Job>,
    prints: Option<&mpsc::Sender<Print>>,
    outbox: &tokio::sync::mpsc::UnboundedSender<Report>,
) -> Result<()> {
    let mut broken = false;
    let mut batch = Batch::default();
    while let Ok(first) = inbox.recv() {
        let mut sync = false;
        let mut next = Some(first);
        // What else waits joins this write: under load the thread makes one system call for
        // many records instead of one each.
        while let Some(job) = next {
            match job {
                Job::Record {
                    ordinal,
                    record,
                    what,
                } => batch.push(ordinal, record, what),
                Job::Sync => sync = true,
            }
            if batch.full() {
                break;
            }
            next = inbox.try_recv().ok();
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
    match cache.as_mut().map(CacheWriter::finish) {
        Some(Err(e)) => Err(e.error),
        _ => Ok(()),
    }
}

/// Records waiting for one write: their bytes end to end, and each one's ordinal, text and
/// name.
#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    records: Vec<(u64, String, String)>,
}

impl Batch {
    fn push(&mut self, ordinal: u64, record: String, what: String) {
        self.bytes.extend_from_slice(record.as_bytes());
        self.records.push((ordinal, record, what));
    }

    fn full(&self) -> bool {
        self.records.len() >= BATCH_RECORDS || self.bytes.len() >= BATCH_BYTES
    }

    /// Appends the batch in one write and reports it: done (then printed), or not written.
    fn write(
        &mut self,
        cache: &mut Option<CacheWriter>,
        broken: &mut bool,
        prints: Option<&mpsc::Sender<Print>>,
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
                for (ordinal, record, _) in records {
                    if let Some(prints) = prints {
                        let record = Some(record);
                        let _ = prints.send(Print { ordinal, record });
                    }
                }
            }
            Err(mut error) => {
                for (ordinal, _, what) in records {
                    // The error is told once; the other items only say they are not done.
                    let error = error.take();
                    let _ = outbox.send(Report::NotWritten { what, error });
                    if let Some(prints) = prints {
                        let _ = prints.send(Print {
                            ordinal,
                            record: None,
                        });
                    }
                }
            }
        }
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
