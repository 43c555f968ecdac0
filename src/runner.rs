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
use serde_json::Value;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::cache::CacheWriter;
use crate::config::{Config, Fsync};
use crate::exec::{self, Finished, Job, Limits, Stop, Watchdog};
use crate::input::{InputEvent, Item};
use crate::output::Output;
use crate::progress::Progress;
use crate::report::{
    escape, failure_message, Exit, FailedItem, Failure, FailureLog, Reason, Stats,
};
use crate::result::{judge_process, judge_reply, Outcome};
use crate::template::{MissingField, Template};
use crate::worker::{Reply, Worker};

/// What the input reader thread sends: an event, or the I/O error that ended the input.
pub type InputMsg = Result<InputEvent, Error>;

/// Retries longer than this are capped.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(60);

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
    BrokenPipe,
    MaxFailures,
    Fatal,
}

/// A finished attempt, returned by its task.
struct Done {
    ordinal: u64,
    slot: usize,
    item: Item,
    attempt: u32,
    program: String,
    result: Attempt,
}

/// What an attempt's task brings back.
enum Attempt {
    /// A per-item child ended (or could not start).
    Process(io::Result<Finished>),
    /// A persistent worker replied (or could not start).
    Worker(io::Result<Box<WorkerAttempt>>),
}

struct WorkerAttempt {
    reply: Reply,
    worker: Worker,
    stderr_tail: String,
    duration: Duration,
}

/// An item waiting to be retried; it holds no slot.
struct Pending {
    due: Instant,
    ordinal: u64,
    item: Item,
    attempt: u32,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.item.seq) == (other.due, other.item.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.item.seq).cmp(&(other.due, other.item.seq))
    }
}

enum Event {
    Signal(Cause),
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
        Runner {
            cfg,
            template,
            input_name: cfg.input.to_string(),
            stats,
            progress,
            cache,
            failures,
            output: Output::new(!cfg.quiet, cfg.keep_order, cfg.jobs * 4),
            next_ordinal: 0,
            stop_tx: watch::channel(Stop::Run).0,
            free_slots: (1..=cfg.jobs).rev().collect(),
            tasks: JoinSet::new(),
            retries: BinaryHeap::new(),
            cause: None,
            fatal: None,
            watchdog: watchdog.map(Arc::new),
            rate_tat: Instant::now(),
            workers: (0..=cfg.jobs).map(|_| None).collect(),
        }
    }

    /// Runs until the input is exhausted and every child is done, or until a stop; returns the
    /// exit status. Signal handlers are installed before the first child starts.
    pub async fn run(mut self, mut input: mpsc::Receiver<InputMsg>, started: Instant) -> Exit {
        let (mut sigint, mut sigterm) = match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(i), Ok(t)) => (i, t),
            (Err(e), _) | (_, Err(e)) => {
                self.progress
                    .line(format!("pararun: cannot install signal handlers: {e}").as_bytes());
                return Exit::Error;
            }
        };
        let mut input_open = true;
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
            let event = tokio::select! {
                biased;
                _ = sigint.recv() => Event::Signal(Cause::Interrupt),
                _ = sigterm.recv() => Event::Signal(Cause::Terminate),
                Some(joined) = self.tasks.join_next(), if !self.tasks.is_empty() => match joined {
                    Ok(done) => Event::Done(done),
                    Err(e) => std::panic::resume_unwind(e.into_panic()),
                },
                _ = sleep_until(next_retry), if can_start && next_retry.is_some() => Event::RetryDue,
                _ = sleep_until(rate_wait), if slot_free && rate_wait.is_some() => Event::RateReady,
                msg = input.recv(), if want_input => Event::Input(msg),
                _ = sync_tick.tick(), if batch_sync => Event::SyncTick,
                _ = progress_tick.tick(), if progress_every.is_some() => Event::ProgressTick,
            };
            match event {
                Event::Signal(cause) => self.on_signal(cause),
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
                    let failure = Failure::new(Reason::BadInput, reason);
                    let failed = FailedItem {
                        key: None,
                        seq,
                        line: &line,
                        attempts: 0,
                    };
                    self.fail(ordinal, &failed, &failure);
                }
                Event::Input(Some(Err(e))) => {
                    self.set_fatal(e.context(format!("reading {}", self.input_name)))
                }
                Event::ProgressTick => self.progress.tick(),
                Event::SyncTick => {
                    if let Some(Err(e)) = self.cache.as_mut().map(CacheWriter::sync_if_due) {
                        self.set_fatal(e.0);
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
        if let Some(Err(e)) = self.cache.as_mut().map(CacheWriter::finish) {
            self.set_fatal(e.0);
        }
        self.progress.finish();
        if let Some(err) = &self.fatal {
            self.progress.line(format!("pararun: {err:#}").as_bytes());
        }
        if !self.cfg.quiet {
            let summary = self
                .stats
                .summary(started.elapsed(), self.cfg.failures.as_deref());
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
            Some(Cause::Interrupt) => Exit::Interrupted,
            Some(Cause::Terminate) => Exit::Terminated,
            Some(Cause::BrokenPipe) => Exit::BrokenPipe,
            _ if Stats::get(&self.stats.failed) > 0 => Exit::ItemsFailed,
            _ => Exit::Success,
        }
    }

    /// Stops the run: nothing new starts, running children get SIGTERM (not for
    /// `--max-failures`, which lets them finish). A second SIGINT kills them at once.
    fn stop(&mut self, cause: Cause) {
        let already = self.cause;
        let signal_children = cause != Cause::MaxFailures;
        if already.is_none() || already == Some(Cause::MaxFailures) {
            self.cause = Some(cause);
        } else if cause == Cause::Fatal {
            self.cause = Some(Cause::Fatal);
        }
        if signal_children {
            let level = if already == Some(Cause::Interrupt) && cause == Cause::Interrupt {
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
        let name = if cause == Cause::Interrupt {
            "SIGINT"
        } else {
            "SIGTERM"
        };
        let msg = if self.cause == Some(Cause::Interrupt) && cause == Cause::Interrupt {
            format!("pararun: second SIGINT: killing {running} running children now")
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
        self.progress.line(msg.as_bytes());
        self.stop(cause);
    }

    fn set_fatal(&mut self, err: Error) {
        if self.fatal.is_none() {
            self.fatal = Some(err);
        }
        self.stop(Cause::Fatal);
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
        } else {
            self.set_fatal(Error::new(e).context("cannot write to stdout"));
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

    /// Starts one attempt of `item` in a free slot.
    fn start(&mut self, ordinal: u64, item: Item, attempt: u32) {
        let Some(slot) = self.free_slots.pop() else {
            unreachable!("start is only called with a free slot")
        };
        if let Some(max) = self.cfg.max_failures {
            if Stats::get(&self.stats.failed) >= max {
                self.free_slots.push(slot);
                self.unfinished(ordinal);
                return;
            }
        }
        if attempt == 1 {
            Stats::bump(&self.stats.ran);
        } else {
            Stats::bump(&self.stats.retries);
        }
        let argv = match self.template.render(&item, slot) {
            Ok(argv) => argv,
            Err(MissingField(reason)) => {
                self.free_slots.push(slot);
                let failure = Failure::new(Reason::BadInput, reason);
                self.fail(ordinal, &failed_item(&item, attempt), &failure);
                return;
            }
        };
        if let Some(rate) = self.cfg.rate {
            self.rate_tat = self.rate_tat.max(Instant::now()) + rate.interval;
        }
        let job = Job {
            env: vec![
                ("PARARUN_KEY", item.key.env_text().to_owned()),
                ("PARARUN_SEQ", item.seq.to_string()),
                ("PARARUN_SLOT", slot.to_string()),
                ("PARARUN_ATTEMPT", attempt.to_string()),
            ],
            stdin: self.cfg.stdin.then(|| {
                let mut line = item.line.clone().into_bytes();
                line.push(b'\n');
                line
            }),
            argv,
        };
        if self.cfg.persistent {
            self.start_on_worker(ordinal, item, attempt, slot);
            return;
        }
        let limits = Limits {
            timeout: self.cfg.timeout,
            kill_after: self.cfg.kill_after,
        };
        let stop = self.stop_tx.subscribe();
        let progress = self.progress.clone();
        let program = job.argv[0].clone();
        let watchdog = self.watchdog.clone();
        self.tasks.spawn(async move {
            let guard = watchdog.as_deref().map(|dog| (dog, slot));
            let result = Attempt::Process(exec::run(job, limits, stop, &progress, guard).await);
            Done {
                ordinal,
                slot,
                item,
                attempt,
                program,
                result,
            }
        });
    }

    /// Sends an item to the slot's worker, starting one if there is none (or it exited).
    fn start_on_worker(&mut self, ordinal: u64, item: Item, attempt: u32, slot: usize) {
        let argv = match self.template.render_worker(slot) {
            Ok(argv) => argv,
            Err(_) => unreachable!("the worker command was checked at setup"),
        };
        let request = match &item.value {
            Some(_) => item.line.clone(),
            None => Value::String(item.line.clone()).to_string(),
        };
        let idle = self.workers[slot].take();
        let (timeout, kill_after) = (self.cfg.timeout, self.cfg.kill_after);
        let mut stop = self.stop_tx.subscribe();
        let progress = self.progress.clone();
        let watchdog = self.watchdog.clone();
        let program = argv[0].clone();
        self.tasks.spawn(async move {
            let worker = match idle.map(|mut w| (w.alive(), w)) {
                Some((true, worker)) => Ok(worker),
                _ => Worker::spawn(&argv, slot, &progress, watchdog.as_deref()),
            };
            let result = match worker {
                Ok(mut worker) => {
                    let started = Instant::now();
                    let reply = worker
                        .call(request.as_bytes(), timeout, kill_after, &mut stop)
                        .await;
                    Ok(Box::new(WorkerAttempt {
                        reply,
                        stderr_tail: worker.stderr_tail(),
                        duration: started.elapsed(),
                        worker,
                    }))
                }
                Err(e) => Err(e),
            };
            Done {
                ordinal,
                slot,
                item,
                attempt,
                program,
                result: Attempt::Worker(result),
            }
        });
    }

    fn on_done(&mut self, done: Done) {
        self.free_slots.push(done.slot);
        let outcome = match done.result {
            Attempt::Process(Ok(finished)) => judge_process(self.cfg, &done.item, finished),
            Attempt::Worker(Ok(w)) => {
                let outcome = judge_reply(self.cfg, &done.item, w.reply, w.stderr_tail, w.duration);
                if matches!(outcome, Outcome::Record(_)) {
                    self.workers[done.slot] = Some(w.worker);
                } else {
                    // Dead, or out of step with the protocol: the slot gets a new worker.
                    w.worker.kill();
                    if let Some(dog) = &self.watchdog {
                        dog.set(done.slot, 0);
                    }
                }
                outcome
            }
            Attempt::Process(Err(e)) | Attempt::Worker(Err(e)) => Outcome::Failed(Failure::new(
                Reason::Spawn,
                format!("cannot start {}: {e}", escape(&done.program)),
            )),
        };
        match outcome {
            Outcome::Record(record) => self.record(done.ordinal, &done.item, record),
            Outcome::Unfinished => self.unfinished(done.ordinal),
            Outcome::Failed(failure) => {
                if failure.reason.retryable()
                    && done.attempt <= self.cfg.retries
                    && self.cause.is_none()
                {
                    let delay = retry_delay(self.cfg.retry_delay, done.attempt, done.item.seq);
                    self.retries.push(Reverse(Pending {
                        due: Instant::now() + delay,
                        ordinal: done.ordinal,
                        item: done.item,
                        attempt: done.attempt + 1,
                    }));
                } else {
                    self.fail(
                        done.ordinal,
                        &failed_item(&done.item, done.attempt),
                        &failure,
                    );
                }
            }
        }
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
                self.progress.line(
                    format!(
                        "pararun: item {} ({}:{}) is not done: its record could not be written",
                        item.key.text, self.input_name, item.seq
                    )
                    .as_bytes(),
                );
                self.set_fatal(e.0);
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
                self.failures = None;
                self.set_fatal(e);
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

/// The wait before attempt `attempt + 1`: `base` doubled per earlier retry, ±25% jitter (so that
/// a burst of failures does not retry in lockstep), capped at one minute.
fn retry_delay(base: Duration, attempt: u32, seq: u64) -> Duration {
    let doubled = base.saturating_mul(1u32 << (attempt - 1).min(20));
    let noise = xxhash_rust::xxh3::xxh3_64(
        &[seq.to_le_bytes(), u64::from(attempt).to_le_bytes(), nanos()].concat(),
    );
    let factor = 0.75 + (noise % 1000) as f64 / 2000.0;
    doubled.mul_f64(factor).min(MAX_RETRY_DELAY)
}

fn nanos() -> [u8; 8] {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (t.subsec_nanos() as u64).to_le_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_double_with_jitter_and_cap() {
        let base = Duration::from_secs(1);
        for attempt in 1..=3u32 {
            let d = retry_delay(base, attempt, 9).as_secs_f64();
            let nominal = f64::from(1u32 << (attempt - 1));
            assert!(d >= nominal * 0.75 && d <= nominal * 1.25, "{attempt}: {d}");
        }
        assert_eq!(retry_delay(base, 30, 1), MAX_RETRY_DELAY);
    }
}
