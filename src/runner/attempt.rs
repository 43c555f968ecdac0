//! One attempt through the components: admission gives it a seat, launch runs it, and its end
//! is judged and routed to the sink (a record, a failure) or back to admission (a retry).

use std::time::{Duration, Instant};

use super::launch::{Attempt, Ended, Started};
use super::retry::{retry_delay, Retry};
use super::{failed_item, Runner};
use crate::config::Config;
use crate::input::Item;
use crate::process;
use crate::process::worker::Reply;
use crate::report::{escape, Failure, Reason};
use crate::result::{judge_process, judge_reply, Outcome};

impl Runner<'_> {
    /// Starts one attempt of `item`, admitted by [`super::admission::Admission`]: a child of
    /// its own, or a request to the slot's persistent worker, as `job::prepare` decides.
    pub(super) fn start(&mut self, ordinal: u64, item: Item, attempt: u32, resent: bool) {
        let Some(slot) = self.admission.admit(self.sink.failed()) else {
            self.sink.unfinished(ordinal);
            return;
        };
        self.sink.count_start(attempt, resent);
        let launch = match self.launch.prepare(&item, slot, attempt) {
            Ok(launch) => launch,
            Err(failure) => {
                self.admission.withdraw(slot);
                self.fail(ordinal, &failed_item(&item, attempt), &failure);
                return;
            }
        };
        self.admission.launched();
        let started = Started::new(ordinal, slot, item, attempt);
        self.launch.launch(started, launch);
    }

    /// An attempt ended: its seat is free, and its outcome goes where it belongs.
    pub(super) fn on_ended(&mut self, ended: Ended) {
        self.admission.done(ended.slot, ended.took());
        let Ended {
            ordinal,
            item,
            attempt,
            program,
            result,
            ..
        } = ended;
        let outcome = match result {
            Attempt::Worker(Ok(w)) if matches!(w.reply, Reply::Resend) => {
                self.resend(ordinal, item, attempt);
                return;
            }
            result => judge(self.cfg, &item, &program, result),
        };
        match outcome {
            Outcome::Record(record) if self.shutdown.is_fatal() => {
                drop(record);
                self.sink.unfinished(ordinal);
            }
            Outcome::Record(record) => {
                if let Some(limit) = self.admission.settled(ordinal, true) {
                    self.sink.limit_changed(limit, "raised after successes");
                }
                self.sink.record(ordinal, item, record);
            }
            Outcome::Unfinished => self.sink.unfinished(ordinal),
            Outcome::Failed(failure) => self.retry_or_fail(ordinal, item, attempt, failure),
            Outcome::Throttled(failure, after) => {
                self.throttled(ordinal, item, attempt, failure, after);
            }
        }
    }

    /// The service throttled the item: every start pauses, and the item goes back to the
    /// queue on the same attempt (a throttle is not a failure: it uses up no `--retries` and
    /// counts toward neither `--max-failures` nor `--give-up-after`), unless it has been
    /// throttled past `--max-throttled`, when it fails as `throttled`.
    fn throttled(
        &mut self,
        ordinal: u64,
        item: Item,
        attempt: u32,
        mut failure: Failure,
        after: Option<Duration>,
    ) {
        let throttle = self.admission.throttled(ordinal, after, item.seq);
        if let Some(limit) = throttle.cut {
            self.sink.limit_changed(limit, "cut on a throttle");
        }
        let max = self.cfg.faults.max_throttled;
        if throttle.count > max {
            failure.detail += &format!(
                ", throttled {} times, past --max-throttled {max}; raise --max-throttled, or \
                 lower -j or --rate",
                throttle.count
            );
            self.admission.settled(ordinal, false);
            self.fail(ordinal, &failed_item(&item, attempt), &failure);
            return;
        }
        self.sink.throttled(
            &failed_item(&item, attempt),
            &failure,
            throttle.extended,
            after,
        );
        // Sent again on the same attempt, due at once: the pause holds it with every other
        // start (in a shutdown it is unfinished).
        self.resend(ordinal, item, attempt);
    }

    /// A failed attempt runs again after a delay, when its reason allows, attempts are left
    /// and the run is not stopping; otherwise the item has failed.
    fn retry_or_fail(&mut self, ordinal: u64, item: Item, attempt: u32, failure: Failure) {
        if failure.reason.retryable()
            && attempt <= self.cfg.faults.retries
            && !self.shutdown.stopping()
        {
            let delay = retry_delay(self.cfg.faults.retry_delay, attempt, item.seq);
            let failed = failed_item(&item, attempt);
            self.sink
                .retrying(&failed, &failure, self.cfg.faults.retries + 1, delay);
            self.admission.retry(Retry {
                due: Instant::now() + delay,
                ordinal,
                item,
                attempt: attempt + 1,
                resent: false,
            });
        } else {
            self.admission.settled(ordinal, false);
            self.fail(ordinal, &failed_item(&item, attempt), &failure);
        }
    }

    /// An item a lost worker never answered goes to the slot's next worker on the same
    /// attempt, at once; in a shutdown it is unfinished.
    fn resend(&mut self, ordinal: u64, item: Item, attempt: u32) {
        if self.shutdown.stopping() {
            self.sink.unfinished(ordinal);
            return;
        }
        self.admission.retry(Retry {
            due: Instant::now(),
            ordinal,
            item,
            attempt,
            resent: true,
        });
    }
}

/// What an attempt's result means for its item (a worker's `Resend` is taken before).
fn judge(cfg: &Config, item: &Item, program: &str, result: Attempt) -> Outcome {
    match result {
        Attempt::Process(Ok(finished)) => judge_process(cfg, item, finished),
        Attempt::Worker(Ok(w)) => judge_reply(cfg, item, w.reply, w.stderr_tail, w.duration),
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
                escape(program),
                process::program::spawn_hint(program, &e)
            ),
        )),
    }
}
