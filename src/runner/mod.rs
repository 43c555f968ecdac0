//! Scheduling: the one loop that takes items from the reader, starts children in free slots,
//! retries, reacts to signals, and hands each outcome to the cache, stdout and the report.
//!
//! The loop owns the failures file; the cache and stdout each belong to a thread of their own
//! ([`writer`]), so each file is written by exactly one owner. Every item ends in exactly one
//! outcome: done, failed, cached, duplicate, given up or unfinished (cut short by a shutdown,
//! to run again next time).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::BuildHasherDefault;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Error;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::cache::CacheWriter;
use crate::config::Config;
use crate::input::feed::InputFeed;
use crate::input::{InputEvent, Item};
use crate::process::pipeline::{Answered, Answers, Pipeline};
use crate::process::spawner::{Spawner, SPAWNER_FROM_JOBS};
use crate::process::{Stop, Watchdog};
use crate::report::output::{Output, RawStdout};
use crate::report::progress::Progress;
use crate::report::repeats::Repeats;
use crate::report::{Exit, FailedItem, Failure, FailureLog, Reason, Stats};
use crate::template::Template;
use wait::{Event, OrdinalHasher, Wakers};
use writer::{Report, Writer};

mod attempt;
mod outcome;
mod printer;
mod retry;
mod seats;
mod signals;

pub use signals::{Signals, Stopped};
mod stop;
mod wait;
mod writer;

use attempt::Done;
use retry::{retry_delay, Pending};
use seats::Seats;

/// The parts of a run the scheduler drives; built by `lib::run` after setup succeeded.
pub struct Runner<'a> {
    cfg: &'a Config,
    template: Template,
    input_name: String,
    stats: Arc<Stats>,
    progress: Progress,
    /// Whether there is a cache (it belongs to the writer thread).
    has_cache: bool,
    failures: Option<FailureLog>,
    /// Bad-input reasons seen, so that one repeated on every line is counted, not listed.
    repeats: Repeats,
    /// The threads that own the cache and stdout.
    writer: Writer,
    /// The ordinal the next item taken from the input gets (its place in input order).
    next_ordinal: u64,
    stop_tx: watch::Sender<Stop>,
    /// Which slots may take an item now.
    seats: Seats,
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
    /// With `--persistent`, each slot's pipeline, which owns its worker (index: slot; grown as
    /// slots are first used).
    pipelines: Vec<Option<Pipeline>>,
    /// Items sent to a worker and not answered yet, by ordinal.
    on_workers: HashMap<u64, attempt::Started, BuildHasherDefault<OrdinalHasher>>,
    /// With many jobs at once, the thread that spawns per-item children from a small
    /// descriptor table (`process::spawner`).
    spawner: Option<Arc<Spawner>>,
    /// Where every pipeline sends its answers, tagged with the item's ordinal.
    answers_tx: Answers,
    answers: mpsc::UnboundedReceiver<(u64, io::Result<Answered>)>,
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
        let print = cfg.records && !cfg.quiet;
        let out = RawStdout::new(cfg.stdout_closed);
        let output = Output::new(
            print,
            cfg.keep_order,
            cfg.seats() * 4,
            progress.clone(),
            out,
        );
        let has_cache = cache.is_some();
        let (answers_tx, answers) = mpsc::unbounded_channel();
        Ok(Runner {
            cfg,
            template,
            input_name: cfg.input.to_string(),
            stats,
            progress,
            has_cache,
            failures,
            repeats: Repeats::default(),
            writer: Writer::start(cache, output)?,
            next_ordinal: 0,
            stop_tx: watch::channel(Stop::Run).0,
            seats: Seats::new(cfg),
            tasks: JoinSet::new(),
            retries: BinaryHeap::new(),
            cause: None,
            fatal: None,
            write_failed: false,
            watchdog: watchdog.map(Arc::new),
            rate_tat: Instant::now(),
            pipelines: Vec::new(),
            on_workers: HashMap::default(),
            spawner: None,
            answers_tx,
            answers,
        })
    }

    /// Runs until the input is exhausted and every child is done, or until a stop; returns the
    /// exit status. `signals` were installed at setup, before the cache was loaded.
    pub async fn run(mut self, signals: Signals, input: InputFeed, started: Instant) -> Exit {
        let mut wakers = Wakers::new(&self, signals, input).await;
        if !self.cfg.persistent && self.cfg.jobs >= SPAWNER_FROM_JOBS {
            // Without it (no unshare under a seccomp filter), children are spawned directly.
            self.spawner = Spawner::start().ok().map(Arc::new);
        }
        loop {
            if self.tasks.is_empty()
                && self.on_workers.is_empty()
                && (self.cause.is_some() || (!wakers.input_open && self.retries.is_empty()))
            {
                break;
            }
            let event = self.next_event(&mut wakers).await;
            self.handle(event, &mut wakers);
            self.handle_ready();
            self.writer.flush();
            self.progress.refresh();
        }
        self.wind_down(started, &mut wakers.signals).await
    }

    /// Answers and writer reports that are already in: handled now, a bounded number, rather
    /// than each through a turn of the select (a pipelined worker answers many at a time).
    fn handle_ready(&mut self) {
        for _ in 0..READY_BATCH {
            if let Ok((id, answered)) = self.answers.try_recv() {
                self.on_answer(id, answered);
            } else if let Some(report) = self.writer.ready_report() {
                self.on_written(report);
            } else {
                return;
            }
        }
    }

    /// Acts on one event.
    fn handle(&mut self, event: Event, w: &mut Wakers) {
        match event {
            Event::Signal(signals::Asked::Stop(cause)) => self.on_signal(cause),
            Event::Signal(signals::Asked::Pause) => self.pause(),
            Event::Done(done) => self.on_done(done),
            Event::Answer(id, answered) => self.on_answer(id, answered),
            Event::Written(report) => self.on_written(report),
            Event::RetryDue => {
                let Reverse(p) = self.retries.pop().expect("a retry is due");
                self.start(p.ordinal, p.item, p.attempt, p.resent);
            }
            Event::RateReady => {}
            Event::Input(None) => w.input_open = false,
            Event::Input(Some(Ok(InputEvent::Item(item)))) => {
                let ordinal = self.take_ordinal();
                self.start(ordinal, item, 1, false);
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
                self.writer.sync();
            }
        }
    }

    /// After the last attempt: retries left waiting are unfinished, workers end, leftovers of
    /// the items are killed, the cache is synced, and the summary printed.
    async fn wind_down(mut self, started: Instant, signals: &mut Signals) -> Exit {
        for Reverse(pending) in std::mem::take(&mut self.retries) {
            self.unfinished(pending.ordinal);
        }
        self.shut_down_workers().await;
        if let Some(dog) = &self.watchdog {
            // Every child has been reaped. What an item started outside its group (a `setsid`
            // daemon that closed its descriptors) goes now, so nothing outlives the run; then
            // nothing is left for the watchdog to clean up.
            dog.sweep_run();
            dog.disarm();
        }
        // The cache gets what is queued and its last sync. Stdout gets the rest too, but a run
        // that is stopping does not wait for ever on a stdout that nobody reads.
        let stopping = matches!(
            self.cause,
            Some(Cause::Interrupt | Cause::Terminate | Cause::Hangup | Cause::BrokenPipe)
        );
        let patience = stopping.then_some(self.cfg.kill_after);
        let signalled = async {
            signals.recv().await;
        };
        let (left, finished) = self.writer.finish(patience, signalled).await;
        for report in left {
            self.on_written(report);
        }
        if let Err(e) = finished {
            self.set_fatal(e);
        }
        self.progress.finish();
        if let Some(err) = &self.fatal {
            self.progress.line(format!("pararun: {err:#}").as_bytes());
        }
        for line in self.repeats.summary() {
            self.progress.line(line.as_bytes());
        }
        if !self.cfg.quiet {
            // An incomplete failures file is not pointed at: stderr has every failure.
            let complete = self.failures.as_ref().is_some_and(FailureLog::is_complete);
            let failures_file = self.cfg.failures.as_deref().filter(|_| complete);
            let records_file = self.cfg.cache.as_deref().filter(|_| !self.cfg.records);
            let summary = self
                .stats
                .summary(started.elapsed(), records_file, failures_file);
            self.progress.line(summary.as_bytes());
        }
        // Written now, not at exit: the summary must not wait in a queue when the process ends.
        self.progress.flush(Duration::from_secs(2));
        self.exit_status()
    }

    /// Ends every worker, idle by now: EOF on stdin, then SIGTERM and SIGKILL if it lingers.
    async fn shut_down_workers(&mut self) {
        let mut ending = JoinSet::new();
        for pipeline in self.pipelines.iter_mut().filter_map(Option::take) {
            ending.spawn(pipeline.close());
        }
        while let Some(joined) = ending.join_next().await {
            if let Err(e) = joined {
                std::panic::resume_unwind(e.into_panic());
            }
        }
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
