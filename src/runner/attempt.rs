//! Starting attempts, per-item children or persistent workers, and taking their outcomes.

use std::cmp::Reverse;
use std::io;
use std::time::{Duration, Instant};

use super::{failed_item, retry_delay, Pending, Runner};
use crate::input::Item;
use crate::job::{self, Launch};
use crate::process::worker::{Reply, Worker};
use crate::process::{self, Finished, Job, Limits};
use crate::report::{escape, Failure, Reason, Stats};
use crate::result::{judge_process, judge_reply, Outcome};

/// An attempt on its way: which item, in which slot.
struct Started {
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
    Worker(io::Result<Box<WorkerAttempt>>),
}

struct WorkerAttempt {
    reply: Reply,
    worker: Worker,
    stderr_tail: String,
    duration: Duration,
}

impl Runner<'_> {
    /// Starts one attempt of `item` in a free slot: a child of its own, or a request to the
    /// slot's persistent worker, as [`job::prepare`] decides.
    pub(super) fn start(&mut self, ordinal: u64, item: Item, attempt: u32) {
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
        let marker = self.watchdog.as_ref().map(|dog| dog.marker(slot));
        let launch = match job::prepare(self.cfg, &self.template, &item, slot, attempt, marker) {
            Ok(launch) => launch,
            Err(failure) => {
                self.free_slots.push(slot);
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
            Launch::Worker { argv, request } => self.start_on_worker(attempt, argv, request),
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
        self.tasks.spawn(async move {
            let result = Attempt::Process(process::run(job, limits, stop, &progress, guard).await);
            started.done(program, result)
        });
    }

    /// Sends the request to the slot's worker, starting one if there is none (or it exited,
    /// or printed output that answers no item).
    fn start_on_worker(&mut self, started: Started, argv: Vec<String>, request: Vec<u8>) {
        let slot = started.slot;
        let idle = self.workers[slot].take();
        let (timeout, kill_after, max_output) =
            (self.cfg.timeout, self.cfg.kill_after, self.cfg.max_output);
        let mut stop = self.stop_tx.subscribe();
        let progress = self.progress.clone();
        let watchdog = self.watchdog.clone();
        let program = argv[0].clone();
        self.tasks.spawn(async move {
            let worker = match idle.filter(Worker::alive) {
                Some(mut worker) => match worker.stray_output() {
                    None => Ok(worker),
                    Some(stray) => {
                        progress.line(
                            format!(
                                "pararun: the worker in slot {slot} printed output that answers no \
                                 item ({}); restarting it",
                                escape(&stray)
                            )
                            .as_bytes(),
                        );
                        drop(worker);
                        Worker::spawn(&argv, slot, &progress, watchdog)
                    }
                },
                None => Worker::spawn(&argv, slot, &progress, watchdog),
            };
            let result = match worker {
                Ok(mut worker) => {
                    let begun = Instant::now();
                    let reply = worker
                        .call(&request, timeout, kill_after, max_output, &mut stop)
                        .await;
                    Ok(Box::new(WorkerAttempt {
                        reply,
                        stderr_tail: worker.stderr_tail(),
                        duration: begun.elapsed(),
                        worker,
                    }))
                }
                Err(e) => Err(e),
            };
            started.done(program, Attempt::Worker(result))
        });
    }

    pub(super) fn on_done(&mut self, done: Done) {
        self.free_slots.push(done.slot);
        let outcome = match done.result {
            Attempt::Process(Ok(finished)) => judge_process(self.cfg, &done.item, finished),
            Attempt::Worker(Ok(w)) => {
                let outcome = judge_reply(self.cfg, &done.item, w.reply, w.stderr_tail, w.duration);
                if matches!(outcome, Outcome::Record(_)) {
                    self.workers[done.slot] = Some(w.worker);
                } else {
                    // Dead, or out of step with the protocol: the slot gets a new worker. Dropping
                    // it kills its group and clears its watchdog entry.
                    drop(w.worker);
                }
                outcome
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
}
