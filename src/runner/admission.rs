//! Admission: the one place that decides when the next item may start. It owns what a start
//! waits for: a free seat ([`Seats`]), the `--rate` budget (GCRA), the retries waiting and
//! their cap, and the `-k` window. [`Admission::may_start`] weighs them all, and every start
//! takes its seat through [`Admission::admit`]. The shared pause after a throttle
//! ([`Pause`]) and `--adaptive`'s limit ([`Limit`]) hold every start in `may_start` too; a new
//! reason to hold starts (a memory check) is one more condition there.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::limit::Limit;
use super::pause::{Pause, Throttle};
use super::retry::Retry;
use super::seats::Seats;
use crate::config::{Config, Rate};

/// Decides when items start, and which slot takes each.
pub(super) struct Admission {
    /// Which slots may take an item now.
    seats: Seats,
    rate: Option<Rate>,
    /// `--rate`'s theoretical arrival time of the next start (GCRA, a token bucket in one
    /// number): a start is allowed once it is within `burst - 1` intervals of now.
    rate_tat: Instant,
    /// Items waiting for a retry, soonest first.
    retries: BinaryHeap<Reverse<Retry>>,
    /// Items waiting for a retry hold no slot, but they do hold memory: past this many (or
    /// this many records not yet printed), new input waits, so a run where everything fails
    /// cannot grow without bound.
    retry_cap: usize,
    /// With `-k`, how far ahead of stdout items may be taken from the input.
    window: Window,
    max_failures: Option<u64>,
    /// After a throttle, no start (retries included) until the pause is over.
    pause: Pause,
    /// With `--adaptive`, how many items may run at once (at most `-j`).
    limit: Option<Limit>,
}

/// With `-k`, how far ahead of stdout items may be taken from the input: at most a window of
/// items waits behind the slowest. The stdout thread moves it; only admission reads it.
pub(super) struct Window {
    /// The next ordinal stdout waits for.
    next_to_print: Arc<AtomicU64>,
    keep_order: bool,
    size: u64,
}

impl Window {
    /// A window of `size` items past `next_to_print`, when `keep_order` (else always open).
    pub(super) fn new(next_to_print: Arc<AtomicU64>, keep_order: bool, size: u64) -> Window {
        Window {
            next_to_print,
            keep_order,
            size,
        }
    }

    /// Whether the item with ordinal `next` may be taken from the input now.
    fn admits(&self, next: u64) -> bool {
        let printed = self.next_to_print.load(Ordering::Acquire);
        crate::report::output::window_admits(self.keep_order, self.size, printed, next)
    }
}

/// What, outside admission, has a say in a start: the other components' state, passed in by
/// the loop for [`Admission::may_start`].
pub(super) struct Held {
    /// The run is stopping: nothing new starts.
    pub(super) stopping: bool,
    /// Records handed to the writer and not printed yet.
    pub(super) backlog: usize,
    /// The ordinal the next input item would get (for the `-k` window).
    pub(super) next_ordinal: u64,
}

/// Admission's answer for this turn of the loop.
pub(super) struct Gate {
    /// A seat is free and nothing holds starts back but, perhaps, the rate.
    seat: bool,
    /// When the rate allows the next start, if that is still to come.
    rate_wait: Option<Instant>,
    /// When the soonest retry is due.
    next_retry: Option<Instant>,
    /// New input may be taken (a seat, retries and records below the cap, the window open),
    /// the rate aside.
    input_room: bool,
}

impl Gate {
    /// The soonest retry, when it may start as soon as it is due.
    pub(super) fn retry_due(&self) -> Option<Instant> {
        self.next_retry
            .filter(|_| self.seat && self.rate_wait.is_none())
    }

    /// The moment the rate lets the next start go, while a seat waits for it.
    pub(super) fn rate_wait(&self) -> Option<Instant> {
        self.rate_wait.filter(|_| self.seat)
    }

    /// Whether an input item may start now.
    pub(super) fn input_now(&self) -> bool {
        self.input_room && self.rate_wait.is_none()
    }

    /// Whether more input may be received (while `--rate` holds the next start back, the next
    /// batch is still received: the end of the input is then seen as soon as it comes, and a
    /// run whose last item has finished ends, not one rate interval later).
    pub(super) fn input_room(&self) -> bool {
        self.input_room
    }
}

impl Admission {
    /// Admission for a run under `cfg`; `window` is the writer's `-k` window.
    pub(super) fn new(cfg: &Config, window: Window) -> Admission {
        Admission {
            seats: Seats::new(cfg),
            rate: cfg.launch.rate,
            rate_tat: Instant::now(),
            retries: BinaryHeap::new(),
            retry_cap: (cfg.seats() * 4).max(64),
            window,
            max_failures: cfg.faults.max_failures,
            pause: Pause::new(),
            // With workers, every item in flight on them counts: -j times --pipeline at most.
            limit: cfg.launch.adaptive.then(|| Limit::new(cfg.seats())),
        }
    }

    /// The one decision of when the next item may start: every start waits for this gate.
    pub(super) fn may_start(&self, held: &Held) -> Gate {
        let seat =
            !held.stopping && self.seats.any() && self.limit.as_ref().is_none_or(Limit::allows);
        let input_room = seat
            && self.retries.len() < self.retry_cap
            && held.backlog < self.retry_cap
            && self.window.admits(held.next_ordinal);
        Gate {
            seat,
            rate_wait: self.rate_wait(),
            next_retry: self.retries.peek().map(|r| r.0.due),
            input_room,
        }
    }

    /// Takes the seat of a start [`Admission::may_start`] allowed: the slot it runs in, or
    /// `None` when `failed` items have reached `--max-failures` meanwhile (the item is then
    /// unfinished).
    pub(super) fn admit(&mut self, failed: u64) -> Option<usize> {
        let Some(slot) = self.seats.take() else {
            unreachable!("a start is only made with a free seat")
        };
        if self.max_failures.is_some_and(|max| failed >= max) {
            self.seats.put_back(slot);
            return None;
        }
        if let Some(limit) = &mut self.limit {
            limit.started();
        }
        Some(slot)
    }

    /// The admitted start did not launch (its item could not be prepared): its seat is free.
    pub(super) fn withdraw(&mut self, slot: usize) {
        self.seats.put_back(slot);
        if let Some(limit) = &mut self.limit {
            limit.withdrawn();
        }
    }

    /// The admitted start launched: with `--rate`, it is taken out of the budget.
    pub(super) fn launched(&mut self) {
        if let Some(rate) = self.rate {
            // Timers fire a little late; forgiving up to a tenth of an interval (at most 5 ms)
            // keeps that lateness from adding up into a slower rate.
            let slack = (rate.interval / 10).min(Duration::from_millis(5));
            let now = Instant::now();
            self.rate_tat =
                self.rate_tat.max(now.checked_sub(slack).unwrap_or(now)) + rate.interval;
        }
    }

    /// The item in `slot` is done; `took` is how long its worker took over it, if it answered.
    pub(super) fn done(&mut self, slot: usize, took: Option<Duration>) {
        self.seats.done(slot, took);
        if let Some(limit) = &mut self.limit {
            limit.ended();
        }
    }

    /// Queues an item to start again once due.
    pub(super) fn retry(&mut self, retry: Retry) {
        self.retries.push(Reverse(retry));
    }

    /// The retry that is due (the gate said so).
    pub(super) fn due_retry(&mut self) -> Retry {
        let Some(Reverse(retry)) = self.retries.pop() else {
            unreachable!("a retry is due")
        };
        retry
    }

    /// Whether no retry waits.
    pub(super) fn no_retries(&self) -> bool {
        self.retries.is_empty()
    }

    /// The retries still waiting at the end of the run, taken out.
    pub(super) fn take_retries(&mut self) -> impl Iterator<Item = Retry> {
        std::mem::take(&mut self.retries)
            .into_iter()
            .map(|Reverse(retry)| retry)
    }

    /// An item was throttled: every start pauses (see [`Pause::throttled`]); with
    /// `--adaptive`, the limit on items running at once is cut too (`Throttle::cut`).
    pub(super) fn throttled(
        &mut self,
        ordinal: u64,
        after: Option<Duration>,
        noise: u64,
    ) -> Throttle {
        let mut throttle = self.pause.throttled(ordinal, after, noise);
        throttle.cut = self.limit.as_mut().and_then(Limit::throttled);
        throttle
    }

    /// An item is settled: its throttles are forgotten, and a success resets the backoff.
    /// With `--adaptive`, a success may raise the limit: the new one, if it did.
    pub(super) fn settled(&mut self, ordinal: u64, succeeded: bool) -> Option<usize> {
        self.pause.settled(ordinal, succeeded);
        let limit = self.limit.as_mut().filter(|_| succeeded)?;
        limit.succeeded()
    }

    /// The moment the next start is allowed, if that is still to come: the end of a shared
    /// pause, or `--rate`'s next token, whichever is later. (A pause waits like the rate: input
    /// is still received, so the end of the input is seen.)
    fn rate_wait(&self) -> Option<Instant> {
        self.token_wait().max(self.pause.until())
    }

    /// With `--rate`, the moment the next start is allowed, if that is still to come.
    fn token_wait(&self) -> Option<Instant> {
        let rate = self.rate?;
        let allowed = self
            .rate_tat
            .checked_sub(rate.interval * (rate.burst - 1))
            .unwrap_or(self.rate_tat);
        (allowed > Instant::now()).then_some(allowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Rate;
    use crate::input::Item;

    fn admission(cfg: &Config, printed: &Arc<AtomicU64>, keep_order: bool) -> Admission {
        Admission::new(cfg, Window::new(printed.clone(), keep_order, 2))
    }

    fn held(stopping: bool, backlog: usize, next_ordinal: u64) -> Held {
        Held {
            stopping,
            backlog,
            next_ordinal,
        }
    }

    fn config(jobs: usize) -> Config {
        let mut cfg = Config::new(vec!["true".into()]);
        cfg.launch.jobs = jobs;
        cfg
    }

    #[test]
    fn a_stop_or_a_full_house_holds_every_start() {
        let cfg = config(1);
        let mut a = admission(&cfg, &Arc::default(), false);
        assert!(a.may_start(&held(false, 0, 0)).input_now());
        assert!(!a.may_start(&held(true, 0, 0)).input_now());
        assert_eq!(a.admit(0), Some(1));
        let gate = a.may_start(&held(false, 0, 1));
        assert!(!gate.input_now() && !gate.input_room());
        a.done(1, None);
        assert!(a.may_start(&held(false, 0, 1)).input_now());
    }

    #[test]
    fn records_waiting_on_stdout_and_the_window_hold_new_input() {
        let cfg = config(4);
        let printed = Arc::new(AtomicU64::new(0));
        let a = admission(&cfg, &printed, true);
        assert!(a.may_start(&held(false, 0, 1)).input_now());
        // A window of 2 past the next ordinal stdout waits for.
        assert!(!a.may_start(&held(false, 0, 2)).input_now());
        printed.store(1, Ordering::Release);
        assert!(a.may_start(&held(false, 0, 2)).input_now());
        assert!(!a.may_start(&held(false, 64, 0)).input_now());
    }

    #[test]
    fn the_rate_holds_starts_after_the_burst() {
        let mut cfg = config(4);
        cfg.launch.rate = Some(Rate {
            interval: Duration::from_secs(3600),
            burst: 2,
        });
        let mut a = admission(&cfg, &Arc::default(), false);
        for _ in 0..2 {
            assert!(a.may_start(&held(false, 0, 0)).input_now());
            a.admit(0).unwrap();
            a.launched();
        }
        let gate = a.may_start(&held(false, 0, 0));
        assert!(!gate.input_now() && gate.input_room());
        assert!(gate.rate_wait().is_some());
    }

    #[test]
    fn a_throttle_pauses_every_start_and_adaptive_holds_past_its_limit() {
        let mut cfg = config(4);
        cfg.launch.adaptive = true;
        let mut a = admission(&cfg, &Arc::default(), false);
        for _ in 0..4 {
            a.admit(0).unwrap();
        }
        a.done(1, None);
        let throttle = a.throttled(9, Some(Duration::from_secs(3600)), 0);
        // It started slow, at 1; the first throttle halves it, to no less than 1.
        assert_eq!(throttle.cut, Some(1));
        let gate = a.may_start(&held(false, 0, 0));
        // Three still run, over the new limit of one: nothing starts, pause or not.
        assert!(!gate.input_now() && gate.rate_wait().is_none());
        a.done(2, None);
        a.done(3, None);
        a.done(4, None);
        // None runs now, under the limit of one: only the pause holds the next start.
        let gate = a.may_start(&held(false, 0, 0));
        assert!(
            !gate.input_now() && gate.rate_wait().is_some(),
            "the pause holds it"
        );
    }

    #[test]
    fn retries_start_when_due_and_max_failures_refuses_a_seat() {
        let mut cfg = config(2);
        cfg.faults.max_failures = Some(1);
        let mut a = admission(&cfg, &Arc::default(), false);
        let due = Instant::now();
        a.retry(Retry {
            due,
            ordinal: 7,
            item: Item {
                seq: 1,
                line: "a".into(),
                json: false,
                value: None,
                key: crate::input::Key::new("a".into()),
            },
            attempt: 2,
            resent: false,
        });
        assert_eq!(a.may_start(&held(false, 0, 0)).retry_due(), Some(due));
        assert!(a.may_start(&held(true, 0, 0)).retry_due().is_none());
        assert_eq!(a.due_retry().ordinal, 7);
        assert!(a.no_retries());
        assert_eq!(a.admit(1), None);
        // The refused seat is free again.
        assert_eq!(a.admit(0), Some(1));
    }
}
