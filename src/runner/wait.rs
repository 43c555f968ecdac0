//! What the scheduling loop waits on, and the wait itself: signals, finished attempts,
//! answers, the writer's reports, due retries, the rate budget, input, ticks.

use std::hash::Hasher;
use std::io;
use std::time::{Duration, Instant};

use super::attempt::Done;
use super::writer::Report;
use super::{signals, Runner};
use crate::config::Fsync;
use crate::input::feed::{InputFeed, InputMsg};
use crate::process::pipeline::Answered;

/// What the scheduling loop waits on, besides the runner's own tasks and timers.
pub(super) struct Wakers {
    pub(super) signals: signals::Signals,
    input: InputFeed,
    /// Items received from the input and not started yet.
    /// (Taken from as it is, not copied into a queue: a new batch is received only once this
    /// one is used up.)
    batch: std::vec::IntoIter<InputMsg>,
    pub(super) input_open: bool,
    /// Items waiting for a retry hold no slot, but they do hold memory: past this many, new
    /// input waits, so a run where everything fails cannot grow without bound.
    retry_cap: usize,
    sync_tick: tokio::time::Interval,
    batch_sync: bool,
    progress_tick: tokio::time::Interval,
    progress_on: bool,
}

impl Wakers {
    pub(super) async fn new(
        runner: &Runner<'_>,
        signals: signals::Signals,
        input: InputFeed,
    ) -> Wakers {
        let progress_every = runner.progress.tick_every();
        let mut progress_tick =
            tokio::time::interval(progress_every.unwrap_or(Duration::from_secs(3600)));
        progress_tick.tick().await;
        Wakers {
            signals,
            input,
            batch: Vec::new().into_iter(),
            input_open: true,
            retry_cap: (runner.cfg.seats() * 4).max(64),
            sync_tick: tokio::time::interval(crate::cache::SYNC_EVERY),
            batch_sync: runner.cfg.fsync == Fsync::Batch && runner.has_cache,
            progress_tick,
            progress_on: progress_every.is_some(),
        }
    }
}

pub(super) enum Event {
    Signal(signals::Asked),
    Done(Done),
    Answer(u64, io::Result<Answered>),
    Written(Report),
    RetryDue,
    RateReady,
    Input(Option<InputMsg>),
    SyncTick,
    ProgressTick,
}

impl Runner<'_> {
    /// Waits for the next thing to do: a signal, a finished attempt, a due retry, the rate
    /// budget, an input item (only while one can start; the end of the input also while the
    /// rate holds starts back), or a tick.
    pub(super) async fn next_event(&mut self, w: &mut Wakers) -> Event {
        loop {
            let slot_free = self.cause.is_none() && self.seats.any();
            let rate_wait = self.rate_wait();
            let can_start = slot_free && rate_wait.is_none();
            let next_retry = self.retries.peek().map(|p| p.0.due);
            let input_room = slot_free
                && w.input_open
                && self.retries.len() < w.retry_cap
                && self.writer.in_flight < w.retry_cap
                && self.writer.window_open(self.next_ordinal);
            let want_input = input_room && rate_wait.is_none();
            // While `--rate` holds the next start back, the next batch is still received (one
            // batch, already bounded): the end of the input is then seen as soon as it comes,
            // and a run whose last item has finished ends, not one rate interval later.
            let read_input = input_room && w.batch.as_slice().is_empty();
            if want_input {
                if let Some(msg) = w.batch.next() {
                    return Event::Input(Some(msg));
                }
            }
            return tokio::select! {
                biased;
                asked = w.signals.recv() => Event::Signal(asked),
                Some(report) = self.writer.report() => Event::Written(report),
                Some((id, answered)) = self.answers.recv(), if !self.on_workers.is_empty() => {
                    Event::Answer(id, answered)
                }
                Some(joined) = self.tasks.join_next(), if !self.tasks.is_empty() => match joined {
                    Ok(done) => Event::Done(done),
                    Err(e) => std::panic::resume_unwind(e.into_panic()),
                },
                _ = sleep_until(next_retry), if can_start && next_retry.is_some() => Event::RetryDue,
                _ = sleep_until(rate_wait), if slot_free && rate_wait.is_some() => Event::RateReady,
                msg = w.input.recv(), if read_input => match msg {
                    Some(msgs) => {
                        debug_assert!(w.batch.as_slice().is_empty());
                        w.batch = msgs.into_iter();
                        continue;
                    }
                    None => Event::Input(None),
                },
                _ = w.sync_tick.tick(), if w.batch_sync => Event::SyncTick,
                _ = w.progress_tick.tick(), if w.progress_on => Event::ProgressTick,
            };
        }
    }
}

/// Hashes an ordinal (unique, and never chosen by the input) with one multiplication: SipHash's
/// resistance to chosen keys buys nothing here, and it cost a few hundred instructions per item.
#[derive(Default)]
pub(super) struct OrdinalHasher(u64);

impl Hasher for OrdinalHasher {
    fn finish(&self) -> u64 {
        // Fibonacci hashing: spreads consecutive ordinals over both the high bits (the table's
        // tags) and the low ones (its buckets).
        self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 << 8) | u64::from(byte);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
