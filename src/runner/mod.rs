//! Scheduling: the one loop that takes items from the reader, starts children in free slots,
//! retries, reacts to signals, and hands each outcome to the cache, stdout and the report.
//!
//! The loop only routes events between components, each owning its state: [`admission`]
//! decides when the next item may start, [`launch`] runs attempts and brings them back,
//! [`sink`] takes outcomes (records, failures, unfinished items) and [`shutdown`] keeps the
//! stop state and the exit status. The sink owns the failures file; the cache and stdout each
//! belong to a thread of their own ([`writer`]), so each file is written by exactly one owner. Every item ends in exactly one
//! outcome: done, failed, cached, duplicate, given up or unfinished (cut short by a shutdown,
//! to run again next time).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cache::CacheWriter;
use crate::config::Config;
use crate::input::feed::InputFeed;
use crate::input::{InputEvent, Item};
use crate::process::{Stop, Watchdog};
use crate::report::progress::Progress;
use crate::report::{Exit, FailedItem, Failure, FailureLog, Stats};
use crate::template::Template;
use admission::Admission;
use launch::Launcher;
use shutdown::Shutdown;
use sink::{ResultSink, Trouble};
use wait::{LoopEvent, Wakers};

mod admission;
mod attempt;
mod launch;
mod limit;
mod pause;
mod printer;
mod retry;
mod seats;
mod shutdown;
mod signals;
mod sink;
mod wait;
mod writer;

pub use signals::{Signals, Stopped};

/// The scheduler: the loop that routes events between the components, each of which owns its
/// state. Built by `lib::run` after setup succeeded.
pub struct Runner<'a> {
    cfg: &'a Config,
    progress: Progress,
    /// The ordinal the next item taken from the input gets (its place in input order).
    next_ordinal: u64,
    /// When the next item may start: seats, rate, retries, the `-k` window.
    admission: Admission,
    /// What runs: children, workers, and their ends.
    launch: Launcher<'a>,
    /// Where outcomes go: cache, stdout, failures file, counters.
    sink: ResultSink,
    /// Why the run stops, and its exit status.
    shutdown: Shutdown,
}

/// At most this many ready events are handled between two turns of the select, which is where
/// signals and timers are looked at.
const READY_BATCH: usize = 256;

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
    ) -> anyhow::Result<Runner<'a>> {
        let (sink, window) = ResultSink::new(cfg, stats, progress.clone(), cache, failures)?;
        Ok(Runner {
            cfg,
            next_ordinal: 0,
            admission: Admission::new(cfg, window),
            launch: Launcher::new(cfg, template, progress.clone(), watchdog),
            sink,
            shutdown: Shutdown::new(cfg.faults.kill_after, progress.clone()),
            progress,
        })
    }

    /// Runs until the input is exhausted and every child is done, or until a stop; returns the
    /// exit status. `signals` were installed at setup, before the cache was loaded.
    pub async fn run(mut self, signals: Signals, input: InputFeed, started: Instant) -> Exit {
        let has_cache = self.sink.has_cache();
        let mut wakers = Wakers::new(self.cfg, &self.progress, has_cache, signals, input).await;
        loop {
            if self.launch.idle()
                && (self.shutdown.stopping() || (!wakers.input_open && self.admission.no_retries()))
            {
                break;
            }
            let event = self.next_event(&mut wakers).await;
            self.handle(event, &mut wakers);
            self.handle_ready();
            self.sink.flush();
            self.progress.refresh();
        }
        self.wind_down(started, &mut wakers.signals).await
    }

    /// Answers and writer reports that are already in: handled now, a bounded number, rather
    /// than each through a turn of the select (a pipelined worker answers many at a time).
    fn handle_ready(&mut self) {
        for _ in 0..READY_BATCH {
            if let Some(ended) = self.launch.ready() {
                self.on_ended(ended);
            } else if let Some(report) = self.sink.ready_report() {
                self.on_written(report);
            } else {
                return;
            }
        }
    }

    /// Routes one event to the component it is for.
    fn handle(&mut self, event: LoopEvent, w: &mut Wakers) {
        match event {
            LoopEvent::Signal(signals::Asked::Stop(cause)) => {
                let running = self.launch.running();
                let level = self.shutdown.on_signal(cause, &running);
                self.stop_children(level);
            }
            LoopEvent::Signal(signals::Asked::Pause) => self.launch.pause(),
            LoopEvent::Ended(ended) => self.on_ended(ended),
            LoopEvent::Written(report) => self.on_written(report),
            LoopEvent::RetryDue => {
                let r = self.admission.due_retry();
                self.start(r.ordinal, r.item, r.attempt, r.resent);
            }
            LoopEvent::RateReady => {}
            LoopEvent::Input(None) => w.input_open = false,
            LoopEvent::Input(Some(Ok(InputEvent::Item(item)))) => {
                let ordinal = self.take_ordinal();
                self.start(ordinal, item, 1, false);
            }
            LoopEvent::Input(Some(Ok(InputEvent::Bad { seq, line, reason }))) => {
                let ordinal = self.take_ordinal();
                self.sink.bad_input(ordinal, seq, &line, reason);
                self.check_max_failures();
            }
            LoopEvent::Input(Some(Err(e))) => {
                let running = (!self.launch.idle()).then(|| self.launch.running());
                let level = self.shutdown.input_failed(e, running);
                self.stop_children(level);
            }
            LoopEvent::ProgressTick => self.progress.tick(),
            LoopEvent::SyncTick => self.sink.sync(),
        }
    }

    /// Takes the writer's word on a record, a stdout failure or a sync; what stops the run
    /// goes to shutdown.
    fn on_written(&mut self, report: writer::Report) {
        if let Some(trouble) = self.sink.on_written(report) {
            self.trouble(trouble);
        }
    }

    fn trouble(&mut self, trouble: Trouble) {
        let level = match trouble {
            // Stop like SIGTERM; the cache keeps every result that finishes meanwhile.
            Trouble::BrokenPipe => self.shutdown.stop(Cause::BrokenPipe),
            Trouble::Fatal(e) => self.shutdown.set_fatal(e),
        };
        self.stop_children(level);
    }

    fn stop_children(&mut self, level: Option<Stop>) {
        if let Some(level) = level {
            self.launch.stop(level);
        }
    }

    /// Counts, reports and logs an item that failed for good; `--max-failures` may stop the run.
    fn fail(&mut self, ordinal: u64, item: &FailedItem<'_>, failure: &Failure) {
        self.sink.fail(ordinal, item, failure);
        self.check_max_failures();
    }

    /// With `--max-failures`, the run starts nothing new once that many items failed.
    fn check_max_failures(&mut self) {
        let Some(max) = self.cfg.faults.max_failures else {
            return;
        };
        if self.sink.failed() >= max && !self.shutdown.stopping() {
            self.progress.line(
                format!(
                    "pararun: {max} failed item{}: starting nothing new (--max-failures)",
                    if max == 1 { "" } else { "s" }
                )
                .as_bytes(),
            );
            let level = self.shutdown.stop(Cause::MaxFailures);
            self.stop_children(level);
        }
    }

    /// After the last attempt: retries left waiting are unfinished, workers end, leftovers of
    /// the items are killed, the cache is synced, and the summary printed.
    async fn wind_down(mut self, started: Instant, signals: &mut Signals) -> Exit {
        for retry in self.admission.take_retries() {
            self.sink.unfinished(retry.ordinal);
        }
        self.launch.finish().await;
        // The cache gets what is queued and its last sync. Stdout gets the rest too, but a run
        // that is stopping does not wait for ever on a stdout that nobody reads.
        let patience = self
            .shutdown
            .in_a_hurry()
            .then_some(self.cfg.faults.kill_after);
        let signalled = async {
            signals.recv().await;
        };
        for trouble in self.sink.finish(patience, signalled).await {
            self.trouble(trouble);
        }
        self.progress.finish();
        if let Some(err) = self.shutdown.fatal() {
            self.progress.line(format!("pararun: {err:#}").as_bytes());
        }
        self.sink.summarize(self.cfg, started);
        // Written now, not at exit: the summary must not wait in a queue when the process ends.
        self.progress.flush(Duration::from_secs(2));
        self.shutdown.exit_status(&self.sink.verdict())
    }

    fn take_ordinal(&mut self) -> u64 {
        self.next_ordinal += 1;
        self.next_ordinal - 1
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
