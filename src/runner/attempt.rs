//! Starting attempts, per-item children or persistent workers, and taking their outcomes.

use std::cmp::Reverse;
use std::io;
use std::time::{Duration, Instant};

use super::{failed_item, retry_delay, Pending, Runner};
use crate::input::Item;
use crate::process::worker::{Reply, Worker};
use crate::process::{self, Finished, Job, Limits};
use crate::report::{escape, Failure, Reason, Stats};
use crate::result::{judge_process, judge_reply, Outcome};
use crate::template::MissingField;

/// A finished attempt, returned by its task.
/// The longest `PARARUN_KEY` handed to a child (the kernel's limit for one string is 128 KiB).
const MAX_ENV_KEY: usize = 32 * 1024;

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
    /// Starts one attempt of `item` in a free slot.
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
        let argv = match self.template.render(&item, slot) {
            Ok(argv) => argv,
            Err(MissingField(reason)) => {
                self.free_slots.push(slot);
                let failure = Failure::new(Reason::BadInput, reason);
                self.fail(ordinal, &failed_item(&item, attempt), &failure);
                return;
            }
        };
        if argv.iter().any(|arg| arg.contains('\0')) {
            self.free_slots.push(slot);
            let failure = Failure::new(
                Reason::BadInput,
                "the item holds a NUL byte, which no command argument can carry (use --stdin)",
            );
            self.fail(ordinal, &failed_item(&item, attempt), &failure);
            return;
        }
        if let Some(rate) = self.cfg.rate {
            // Timers fire a little late; forgiving up to a tenth of an interval (at most 5 ms)
            // keeps that lateness from adding up into a slower rate.
            let slack = (rate.interval / 10).min(Duration::from_millis(5));
            let now = Instant::now();
            self.rate_tat =
                self.rate_tat.max(now.checked_sub(slack).unwrap_or(now)) + rate.interval;
        }
        let mut env = vec![
            ("PARARUN_SEQ", item.seq.to_string()),
            ("PARARUN_SLOT", slot.to_string()),
            ("PARARUN_ATTEMPT", attempt.to_string()),
        ];
        // Linux caps one environment string at 128 KiB: a longer key (a huge plain line) is
        // left out rather than making the item impossible to run.
        let key = item.key.env_text();
        if key.len() <= MAX_ENV_KEY && !key.contains('\0') {
            env.push(("PARARUN_KEY", key.to_owned()));
        }
        if let Some(dog) = &self.watchdog {
            env.push(dog.marker(slot));
        }
        let job = Job {
            env,
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
            max_output: self.cfg.max_output,
        };
        let stop = self.stop_tx.subscribe();
        let progress = self.progress.clone();
        let program = job.argv[0].clone();
        let watchdog = self.watchdog.clone();
        self.tasks.spawn(async move {
            let guard = watchdog.map(|dog| (dog, slot));
            let result = Attempt::Process(process::run(job, limits, stop, &progress, guard).await);
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
        let request = item.worker_request();
        let idle = self.workers[slot].take();
        let (timeout, kill_after, max_output) =
            (self.cfg.timeout, self.cfg.kill_after, self.cfg.max_output);
        let mut stop = self.stop_tx.subscribe();
        let progress = self.progress.clone();
        let watchdog = self.watchdog.clone();
        let program = argv[0].clone();
        self.tasks.spawn(async move {
            let spawn = || Worker::spawn(&argv, slot, &progress, watchdog.clone());
            let worker = match idle.map(|w| (w.alive(), w)) {
                Some((true, mut worker)) => match worker.stray_output() {
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
                        spawn()
                    }
                },
                _ => spawn(),
            };
            let result = match worker {
                Ok(mut worker) => {
                    let started = Instant::now();
                    let reply = worker
                        .call(
                            request.as_bytes(),
                            timeout,
                            kill_after,
                            max_output,
                            &mut stop,
                        )
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
}
