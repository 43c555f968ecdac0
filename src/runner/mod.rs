//! Scheduling: the one loop that takes items from the reader, starts children in free slots,
//! retries, reacts to signals, and hands each outcome to the cache, stdout and the report.
//!
//! The loop owns the cache writer, stdout and the failures file, so each is written by exactly
//! one task. Every item ends in exactly one outcome: done, failed, cached, duplicate or
//! unfinished (cut short by a shutdown, to run again next time).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Error;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::cache::CacheWriter;
use crate::config::{Config, Fsync};
use crate::input::feed::InputFeed;
use crate::input::{InputEvent, Item};
use crate::process::worker::Worker;
use crate::process::{Stop, Watchdog};
use crate::report::output::Output;
use crate::report::progress::Progress;
use crate::report::{failure_message, Exit, FailedItem, Failure, FailureLog, Reason, Stats};
use crate::template::Template;

mod attempt;
mod retry;
mod signals;

use attempt::Done;
use retry::{retry_delay, Pending};

pub use crate::input::feed::InputMsg;

/// The parts of a run the scheduler drives; built by `lib::run` after setup succeeded.
pub struct Runner<'a> {
    cfg: &'a Config,
    template: Template,
    input_name: String,
    stats: Arc<Stats>,
    progress: Progress,
    cache: Option<CacheWriter>,
    failures: Option<FailureLog>,
    output: Output,
    /// The ordinal the next item taken from the input gets (its place in input order).
    next_ordinal: u64,
    stop_tx: watch::Sender<Stop>,
    free_slots: Vec<usize>,
    tasks: JoinSet<Done>,
    retries: BinaryHeap<Reverse<Pending>>,
    cause: Option<Cause>,
    fatal: Option<Error>,
    /// A write to stdout or the failures file failed: reported once, the run went on with the
    /// cache, and it exits 2.
    write_failed: bool,
    watchdog: Option<Arc<Watchdog>>,
    /// `--rate`'s theoretical arrival time of the next start (GCRA, a token bucket in one
    /// number): a start is allowed once it is within `burst - 1` intervals of now.
    rate_tat: Instant,
    /// With `--persistent`, each slot's idle worker (index: slot).
    workers: Vec<Option<Worker>>,
}

/// Why the run stopped starting items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    Interrupt,
    Terminate,
    Hangup,
    BrokenPipe,
    MaxFailures,
    /// The input could not be read to its end; what runs may finish.
    InputFailed,
    Fatal,
}

enum Event {
    Signal(signals::Asked),
    Done(Done),
    RetryDue,
    RateReady,
    Input(Option<InputMsg>),
    SyncTick,
    ProgressTick,
}

impl<'a> Runner<'a> {
    /// Assembles a runner; nothing starts until [`Runner::run`].
    pub fn new(
        cfg: &'a Config,
        template: Template,
        stats: Arc<Stats>,
        progress: Progress,
        cache: Option<CacheWriter>,
        failures: Option<FailureLog>,
        watchdog: Option<Watchdog>,
    ) -> Runner<'a> {
        let output = Output::new(!cfg.quiet, cfg.keep_order, cfg.jobs * 4, progress.clone());
        Runner {
            cfg,
            template,
            input_name: cfg.input.to_string(),
            stats,
            progress,
            cache,
            failures,
            output,
            next_ordinal: 0,
            stop_tx: watch::channel(Stop::Run).0,
            free_slots: (1..=cfg.jobs).rev().collect(),
            tasks: JoinSet::new(),
            retries: BinaryHeap::new(),
            cause: None,
            fatal: None,
            write_failed: false,
            watchdog: watchdog.map(Arc::new),
            rate_tat: Instant::now(),
            workers: (0..=cfg.jobs).map(|_| None).collect(),
        }
    }

    /// Runs until the input is exhausted and every child is done, or until a stop; returns the
    /// exit status. Signal handlers are installed before the first child starts.
    pub async fn run(mut self, mut input: InputFeed, started: Instant) -> Exit {
        let mut signals = match signals::Signals::install() {
            Ok(signals) => signals,
            Err(e) => {
                self.progress
                    .line(format!("pararun: cannot install signal handlers: {e}").as_bytes());
                return Exit::Error;
            }
        };
        let mut input_open = true;
        let mut batch = std::collections::VecDeque::new();
        let mut sync_tick = tokio::time::interval(crate::cache::SYNC_EVERY);
        let batch_sync = self.cfg.fsync == Fsync::Batch && self.cache.is_some();
        let progress_every = self.progress.tick_every();
        let mut progress_tick =
            tokio::time::interval(progress_every.unwrap_or(Duration::from_secs(3600)));
        progress_tick.tick().await;
        // Items waiting for a retry hold no slot, but they do hold memory: past this many, new
        // input waits, so a run where everything fails cannot grow without bound.
        let retry_cap = (self.cfg.jobs * 4).max(64);
        loop {
            if self.tasks.is_empty()
                && (self.cause.is_some() || (!input_open && self.retries.is_empty()))
            {
                break;
            }
            let slot_free = self.cause.is_none() && !self.free_slots.is_empty();
            let rate_wait = self.rate_wait();
            let can_start = slot_free && rate_wait.is_none();
            let next_retry = self.retries.peek().map(|p| p.0.due);
            let want_input = can_start
                && input_open
                && self.retries.len() < retry_cap
                && self.output.window_open(self.next_ordinal);
            let event = if want_input && !batch.is_empty() {
                Event::Input(batch.pop_front())
            } else {
                tokio::select! {
                biased;
                asked = signals.recv() => Event::Signal(asked),
                Some(joined) = self.tasks.join_next(), if !self.tasks.is_empty() => match joined {
                    Ok(done) => Event::Done(done),
                    Err(e) => std::panic::resume_unwind(e.into_panic()),
                },
                _ = sleep_until(next_retry), if can_start && next_retry.is_some() => Event::RetryDue,
                _ = sleep_until(rate_wait), if slot_free && rate_wait.is_some() => Event::RateReady,
                msg = input.recv(), if want_input => match msg {
                    Some(msgs) => {
                        batch.extend(msgs);
                        continue;
                    }
                    None => Event::Input(None),
                },
                _ = sync_tick.tick(), if batch_sync => Event::SyncTick,
                _ = progress_tick.tick(), if progress_every.is_some() => Event::ProgressTick,
                }
            };
            match event {
                Event::Signal(signals::Asked::Stop(cause)) => self.on_signal(cause),
                Event::Signal(signals::Asked::Pause) => self.pause(),
                Event::Done(done) => self.on_done(done),
                Event::RetryDue => {
                    let Reverse(p) = self.retries.pop().expect("a retry is due");
                    self.start(p.ordinal, p.item, p.attempt);
                }
                Event::RateReady => {}
                Event::Input(None) => input_open = false,
                Event::Input(Some(Ok(InputEvent::Item(item)))) => {
                    let ordinal = self.take_ordinal();
                    self.start(ordinal, item, 1);
                }
                Event::Input(Some(Ok(InputEvent::Bad { seq, line, reason }))) => {
                    let ordinal = self.take_ordinal();
                    Stats::bump(&self.stats.ran);
                    let failure = Failure::new(Reason::BadInput, reason);
                    let failed = FailedItem {
                        key: None,
                        seq,
                        line: &line,
                        attempts: 0,
                    };
                    self.fail(ordinal, &failed, &failure);
                }
                Event::Input(Some(Err(e))) => self.input_failed(e),
                Event::ProgressTick => self.progress.tick(),
                Event::SyncTick => {
                    if let Some(Err(e)) = self.cache.as_mut().map(CacheWriter::sync_if_due) {
                        self.set_fatal(e.error);
                    }
                }
            }
            self.progress.refresh();
        }
        for Reverse(pending) in std::mem::take(&mut self.retries) {
            self.unfinished(pending.ordinal);
        }
        if let Err(e) = self.output.finish() {
            self.stdout_failed(e);
        }
        self.shut_down_workers().await;
        if let Some(dog) = &self.watchdog {
            // Every child has been reaped. What an item started outside its group (a `setsid`
            // daemon that closed its descriptors) goes now, so nothing outlives the run; then
            // nothing is left for the watchdog to clean up.
            dog.sweep_run();
            dog.disarm();
        }
        if let Some(Err(e)) = self.cache.as_mut().map(CacheWriter::finish) {
            self.set_fatal(e.error);
        }
        self.progress.finish();
        if let Some(err) = &self.fatal {
            self.progress.line(format!("pararun: {err:#}").as_bytes());
        }
        if !self.cfg.quiet {
            // An incomplete failures file is not pointed at: stderr has every failure.
            let complete = self.failures.as_ref().is_some_and(FailureLog::is_complete);
            let failures_file = self.cfg.failures.as_deref().filter(|_| complete);
            let summary = self.stats.summary(started.elapsed(), failures_file);
            self.progress.line(summary.as_bytes());
        }
        self.exit_status()
    }

    /// Ends every idle worker: EOF on stdin, then SIGTERM and SIGKILL if it lingers.
    async fn shut_down_workers(&mut self) {
        let mut ending = JoinSet::new();
        for worker in self.workers.iter_mut().filter_map(Option::take) {
            ending.spawn(worker.shutdown(self.cfg.kill_after, self.stop_tx.subscribe()));
        }
        while let Some(joined) = ending.join_next().await {
            if let Err(e) = joined {
                std::panic::resume_unwind(e.into_panic());
            }
        }
    }

    fn exit_status(&self) -> Exit {
        match self.cause {
            Some(Cause::Fatal) => Exit::Error,
            _ if self.fatal.is_some() || self.write_failed => Exit::Error,
            Some(Cause::Interrupt) => Exit::Interrupted,
            Some(Cause::Terminate) => Exit::Terminated,
            Some(Cause::Hangup) => Exit::HungUp,
            Some(Cause::BrokenPipe) => Exit::BrokenPipe,
            _ if Stats::get(&self.stats.failed) > 0 => Exit::ItemsFailed,
            _ => Exit::Success,
        }
    }

    /// Stops the run: nothing new starts, running children get SIGTERM (not for
    /// `--max-failures` or a failed input, which let them finish). A second SIGINT kills them
    /// at once.
    fn stop(&mut self, cause: Cause) {
        let already = self.cause;
        let signal_children = !matches!(cause, Cause::MaxFailures | Cause::InputFailed);
        if already.is_none() || matches!(already, Some(Cause::MaxFailures | Cause::InputFailed)) {
            self.cause = Some(cause);
        } else if cause == Cause::Fatal {
            self.cause = Some(Cause::Fatal);
        }
        if signal_children {
            let signalled = matches!(
                already,
                Some(Cause::Interrupt | Cause::Terminate | Cause::Hangup)
            );
            let level = if signalled && cause == Cause::Interrupt {
                Stop::Kill
            } else {
                Stop::Graceful
            };
            self.stop_tx.send_if_modified(|s| {
                let raise = level > *s;
                if raise {
                    *s = level;
                }
                raise
            });
        }
    }

    fn on_signal(&mut self, cause: Cause) {
        let running = self.tasks.len();
        let name = match cause {
            Cause::Interrupt => "SIGINT",
            Cause::Hangup => "SIGHUP",
            _ => "SIGTERM",
        };
        let signalled = matches!(
            self.cause,
            Some(Cause::Interrupt | Cause::Terminate | Cause::Hangup)
        );
        let msg = if signalled && cause == Cause::Interrupt {
            format!("pararun: SIGINT while stopping: killing {running} running children now")
        } else {
            format!(
                "pararun: {name}: starting nothing new; stopping {running} running children \
                 (SIGTERM, SIGKILL after {}){}",
                crate::report::human_duration(self.cfg.kill_after),
                if cause == Cause::Interrupt {
                    "; Ctrl-C again to kill them now"
                } else {
                    ""
                }
            )
        };
        // The bar goes for good before the first stop message, so no frozen bar is left above
        // the messages and the summary.
        self.progress.finish();
        self.progress.line(msg.as_bytes());
        self.stop(cause);
    }

    /// Ctrl-Z: pauses every child and pararun; returns once continued.
    fn pause(&mut self) {
        let running = self.tasks.len();
        self.progress.line(
            format!(
                "pararun: SIGTSTP: pausing {running} running children and pararun; `fg` or \
                 SIGCONT resumes them (paused time counts toward --timeout)"
            )
            .as_bytes(),
        );
        signals::pause(self.watchdog.as_deref());
        self.progress
            .line(format!("pararun: continued: resuming {running} children").as_bytes());
    }

    fn set_fatal(&mut self, err: Error) {
        if self.fatal.is_none() {
            self.fatal = Some(err);
        }
        self.stop(Cause::Fatal);
    }

    /// The input cannot be read to its end (an I/O error, a dead reader): the run fails with
    /// exit 2, but the children already running are not at fault, so they finish and their
    /// results are kept, as with `--max-failures`.
    fn input_failed(&mut self, err: Error) {
        let running = self.tasks.len();
        if running > 0 {
            self.progress.line(
                format!(
                    "pararun: {err:#}: starting nothing new; letting {running} running \
                     children finish"
                )
                .as_bytes(),
            );
        }
        if self.fatal.is_none() {
            self.fatal = Some(err);
        }
        self.stop(Cause::InputFailed);
    }

    fn take_ordinal(&mut self) -> u64 {
        self.next_ordinal += 1;
        self.next_ordinal - 1
    }

    /// Hands an item's outcome to stdout (a record, or `None` for no record).
    fn emit(&mut self, ordinal: u64, record: Option<&str>) {
        if let Err(e) = self.output.resolve(ordinal, record) {
            self.stdout_failed(e);
        }
    }

    fn stdout_failed(&mut self, e: io::Error) {
        if e.kind() == io::ErrorKind::BrokenPipe {
            // `pararun ... | head`: the reader is gone. Stop like SIGTERM; the cache keeps
            // every result that finishes meanwhile.
            self.stop(Cause::BrokenPipe);
        } else if self.cache.is_some() {
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
    fn unfinished(&mut self, ordinal: u64) {
        Stats::bump(&self.stats.unfinished);
        self.emit(ordinal, None);
    }

    /// With `--rate`, the moment the next start is allowed, if that is still to come.
    fn rate_wait(&self) -> Option<Instant> {
        let rate = self.cfg.rate?;
        let allowed = self
            .rate_tat
            .checked_sub(rate.interval * (rate.burst - 1))
            .unwrap_or(self.rate_tat);
        (allowed > Instant::now()).then_some(allowed)
    }

    /// Appends a record to the cache (first: durability) and then to stdout.
    fn record(&mut self, ordinal: u64, item: &Item, mut record: String) {
        record.push('\n');
        if self.cause == Some(Cause::Fatal) {
            self.unfinished(ordinal);
            return;
        }
        if let Some(cache) = &mut self.cache {
            if let Err(e) = cache.append(record.as_bytes()) {
                if e.record_kept {
                    // Only the sync failed: the record is in the file, so the item is done.
                    self.set_fatal(e.error);
                    Stats::bump(&self.stats.succeeded);
                    self.emit(ordinal, Some(&record));
                    return;
                }
                self.progress.line(
                    format!(
                        "pararun: item {} ({}:{}) is not done: its record could not be written",
                        crate::report::excerpt(&item.key.text),
                        self.input_name,
                        item.seq
                    )
                    .as_bytes(),
                );
                self.set_fatal(e.error);
                self.unfinished(ordinal);
                return;
            }
        }
        Stats::bump(&self.stats.succeeded);
        self.emit(ordinal, Some(&record));
    }

    /// Counts, reports and logs an item that failed for good.
    fn fail(&mut self, ordinal: u64, item: &FailedItem<'_>, failure: &Failure) {
        Stats::bump(&self.stats.failed);
        self.emit(ordinal, None);
        self.progress
            .line(failure_message(item, failure, &self.input_name).as_bytes());
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
}

fn failed_item(item: &Item, attempts: u32) -> FailedItem<'_> {
    FailedItem {
        key: Some(&item.key.value),
        seq: item.seq,
        line: &item.line,
        attempts,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
