//! Starting attempts, per-item children or persistent workers, and taking their outcomes.

use std::cmp::Reverse;
use std::io;
use std::time::{Duration, Instant};

use super::{failed_item, retry_delay, Pending, Runner};
use crate::input::Item;
use crate::job::{self, Launch};
use crate::process::pipeline::{AnswerTo, Answered, Pipeline, Request, Settings};
use crate::process::worker::Reply;
use crate::process::{self, Finished, Job, Limits};
use crate::report::failures::retry_message;
use crate::report::{escape, Failure, Reason, Stats};
use crate::result::{judge_process, judge_reply, Outcome};

/// An attempt on its way: which item, in which slot.
pub(super) struct Started {
    ordinal: u64,
    slot: usize,
    item: Item,
    attempt: u32,
}

impl Started {
    fn done(self, program: String, result: Attempt) -> Done {
        Done {
            ordinal: self.ordinal,
            slot: self.slot,
            item: self.item,
            attempt: self.attempt,
            program,
            result,
        }
    }
}

/// A finished attempt, returned by its task.
pub(super) struct Done {
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
    Worker(io::Result<Box<Answered>>),
}

impl Runner<'_> {
    /// Starts one attempt of `item` in a free slot: a child of its own, or a request to the
    /// slot's persistent worker, as [`job::prepare`] decides.
    pub(super) fn start(&mut self, ordinal: u64, item: Item, attempt: u32, resent: bool) {
        let Some(slot) = self.seats.take() else {
            unreachable!("start is only called with a free slot")
        };
        if let Some(max) = self.cfg.max_failures {
            if Stats::get(&self.stats.failed) >= max {
                self.seats.put_back(slot);
                self.unfinished(ordinal);
                return;
            }
        }
        if resent {
            // Counted when it was first sent.
        } else if attempt == 1 {
            Stats::bump(&self.stats.ran);
        } else {
            Stats::bump(&self.stats.retries);
        }
        // A worker gets its marker when it starts, not with each item.
        let marker = (self.watchdog.as_ref())
            .filter(|_| !self.cfg.persistent)
            .map(|dog| dog.marker(slot));
        let launch = match job::prepare(self.cfg, &self.template, &item, slot, attempt, marker) {
            Ok(launch) => launch,
            Err(failure) => {
                self.seats.put_back(slot);
                self.fail(ordinal, &failed_item(&item, attempt), &failure);
                return;
            }
        };
        self.count_rate();
        let attempt = Started {
            ordinal,
            slot,
            item,
            attempt,
        };
        match launch {
            Launch::Process(job) => self.start_process(attempt, job),
            Launch::Worker { request } => self.start_on_worker(attempt, request),
        }
    }

    /// With `--rate`, takes this start out of the budget.
    fn count_rate(&mut self) {
        if let Some(rate) = self.cfg.rate {
            // Timers fire a little late; forgiving up to a tenth of an interval (at most 5 ms)
            // keeps that lateness from adding up into a slower rate.
            let slack = (rate.interval / 10).min(Duration::from_millis(5));
            let now = Instant::now();
            self.rate_tat =
                self.rate_tat.max(now.checked_sub(slack).unwrap_or(now)) + rate.interval;
        }
    }

    /// Runs a child of its own for the attempt.
    fn start_process(&mut self, started: Started, job: Job) {
        let limits = Limits {
            timeout: self.cfg.timeout,
            kill_after: self.cfg.kill_after,
            max_output: self.cfg.max_output,
        };
        let stop = self.stop_tx.subscribe();
        let progress = self.progress.clone();
        let program = job.argv[0].clone();
        let guard = self.watchdog.clone().map(|dog| (dog, started.slot));
        let spawner = self.spawner.clone();
        self.tasks.spawn(async move {
            let spawner = spawner.as_deref();
            let ran = process::run(job, limits, stop, &progress, guard, spawner).await;
            let result = Attempt::Process(ran);
            started.done(program, result)
        });
    }

    /// Queues the request on the slot's pipeline, which starts the slot's worker if there is
    /// none; the answer comes back on the runner's answer channel.
    fn start_on_worker(&mut self, started: Started, request: Vec<u8>) {
        let slot = started.slot;
        // Grown as slots are first used, like the seats: memory follows the workers started.
        if self.pipelines.len() <= slot {
            self.pipelines.resize_with(slot + 1, || None);
        }
        let pipeline = self.pipelines[slot].get_or_insert_with(|| {
            let settings = Settings::new(
                self.cfg,
                job::worker_argv(&self.template, slot),
                slot,
                self.progress.clone(),
                self.watchdog.clone(),
            );
            Pipeline::start(settings, self.stop_tx.subscribe())
        });
        pipeline.send(Request {
            line: request,
            key: started.item.key.value.clone(),
            answer: AnswerTo::new(started.ordinal, self.answers_tx.clone()),
        });
        // One attempt of an item at a time, so its ordinal names the request.
        self.on_workers.insert(started.ordinal, started);
    }

    /// A worker's answer to the request `id` (the item's ordinal).
    pub(super) fn on_answer(&mut self, id: u64, result: io::Result<Answered>) {
        let Some(started) = self.on_workers.remove(&id) else {
            unreachable!("every request is answered once")
        };
        // The worker's program names it in a message only if it could not start.
        let program = match &result {
            Err(_) => job::worker_argv(&self.template, started.slot).swap_remove(0),
            Ok(_) => String::new(),
        };
        self.on_done(started.done(program, Attempt::Worker(result.map(Box::new))));
    }

    pub(super) fn on_done(&mut self, done: Done) {
        let took = match &done.result {
            Attempt::Worker(Ok(w)) if w.reply.measures() => Some(w.duration),
            _ => None,
        };
        self.seats.done(done.slot, took);
        let outcome = match done.result {
            Attempt::Process(Ok(finished)) => judge_process(self.cfg, &done.item, finished),
            Attempt::Worker(Ok(w)) if matches!(w.reply, Reply::Resend) => {
                self.resend(done.ordinal, done.item, done.attempt);
                return;
            }
            Attempt::Worker(Ok(w)) => {
                judge_reply(self.cfg, &done.item, w.reply, w.stderr_tail, w.duration)
            }
            Attempt::Process(Err(e)) if e.raw_os_error() == Some(libc::E2BIG) => {
                Outcome::Failed(Failure::new(
                    Reason::BadInput,
                    "the command line is too long for the system (E2BIG); pass big items with \
                     --stdin or --persistent",
                ))
            }
            Attempt::Process(Err(e)) | Attempt::Worker(Err(e)) => Outcome::Failed(Failure::new(
                Reason::Spawn,
                format!(
                    "cannot start {}: {e}{}",
                    escape(&done.program),
                    process::program::spawn_hint(&done.program, &e)
                ),
            )),
        };
        match outcome {
            Outcome::Record(record) => self.record(done.ordinal, done.item, record),
            Outcome::Unfinished => self.unfinished(done.ordinal),
            Outcome::Failed(failure) => {
                if failure.reason.retryable()
                    && done.attempt <= self.cfg.retries
                    && self.cause.is_none()
                {
                    let delay = retry_delay(self.cfg.retry_delay, done.attempt, done.item.seq);
                    // A retry is never silent: the log says which attempt failed, why, and
                    // when the next one starts.
                    let note = retry_message(
                        &failed_item(&done.item, done.attempt),
                        &failure,
                        &self.input_name,
                        self.cfg.retries + 1,
                        delay,
                    );
                    self.progress.line(note.as_bytes());
                    self.retries.push(Reverse(Pending {
                        due: Instant::now() + delay,
                        ordinal: done.ordinal,
                        item: done.item,
                        attempt: done.attempt + 1,
                        resent: false,
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

    /// An item a lost worker never answered goes to the slot's next worker on the same
    /// attempt, at once; in a shutdown it is unfinished.
    fn resend(&mut self, ordinal: u64, item: Item, attempt: u32) {
        if self.cause.is_some() {
            self.unfinished(ordinal);
            return;
        }
        self.retries.push(Reverse(Pending {
            due: Instant::now(),
            ordinal,
            item,
            attempt,
            resent: true,
        }));
    }
}
