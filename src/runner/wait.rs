//! What the scheduling loop waits on, and the wait itself: signals, finished attempts,
//! answers, the writer's reports, due retries, the rate budget, input, ticks. Whether an item
//! may start is admission's to say ([`super::admission::Admission::may_start`]); this only waits.

use std::hash::Hasher;
use std::time::{Duration, Instant};

use super::admission::Held;
use super::launch::Ended;
use super::writer::Report;
use super::{signals, Runner};
use crate::config::{Config, Fsync};
use crate::input::feed::{InputFeed, InputMsg};
use crate::report::progress::Progress;

/// What the scheduling loop waits on, besides the components' own channels and timers.
pub(super) struct Wakers {
    pub(super) signals: signals::Signals,
    input: InputFeed,
    /// Items received from the input and not started yet.
    /// (Taken from as it is, not copied into a queue: a new batch is received only once this
    /// one is used up.)
    batch: std::vec::IntoIter<InputMsg>,
    pub(super) input_open: bool,
    sync_tick: tokio::time::Interval,
    batch_sync: bool,
    progress_tick: tokio::time::Interval,
    progress_on: bool,
}

impl Wakers {
    pub(super) async fn new(
        cfg: &Config,
        progress: &Progress,
        has_cache: bool,
        signals: signals::Signals,
        input: InputFeed,
    ) -> Wakers {
        let progress_every = progress.tick_every();
        let mut progress_tick =
            tokio::time::interval(progress_every.unwrap_or(Duration::from_secs(3600)));
        progress_tick.tick().await;
        Wakers {
            signals,
            input,
            batch: Vec::new().into_iter(),
            input_open: true,
            sync_tick: tokio::time::interval(crate::cache::SYNC_EVERY),
            batch_sync: cfg.results.fsync == Fsync::Batch && has_cache,
            progress_tick,
            progress_on: progress_every.is_some(),
        }
    }
}

/// What woke the loop.
pub(super) enum LoopEvent {
    Signal(signals::Asked),
    Ended(Ended),
    Written(Report),
    RetryDue,
    RateReady,
    Input(Option<InputMsg>),
    SyncTick,
    ProgressTick,
}

impl Runner<'_> {
    /// Waits for the next thing to do: a signal, a finished attempt, a due retry, the rate
    /// budget, an input item (only while admission lets one start; the end of the input also
    /// while the rate holds starts back), or a tick.
    pub(super) async fn next_event(&mut self, w: &mut Wakers) -> LoopEvent {
        loop {
            let gate = self.admission.may_start(&Held {
                stopping: self.shutdown.stopping(),
                backlog: self.sink.backlog(),
                next_ordinal: self.next_ordinal,
            });
            let input_room = gate.input_room() && w.input_open;
            if gate.input_now() && w.input_open {
                if let Some(msg) = w.batch.next() {
                    return LoopEvent::Input(Some(msg));
                }
            }
            let read_input = input_room && w.batch.as_slice().is_empty();
            let (retry_due, rate_wait) = (gate.retry_due(), gate.rate_wait());
            return tokio::select! {
                biased;
                asked = w.signals.recv() => LoopEvent::Signal(asked),
                Some(report) = self.sink.report() => LoopEvent::Written(report),
                ended = self.launch.ended() => LoopEvent::Ended(ended),
                _ = sleep_until(retry_due), if retry_due.is_some() => LoopEvent::RetryDue,
                _ = sleep_until(rate_wait), if rate_wait.is_some() => LoopEvent::RateReady,
                msg = w.input.recv(), if read_input => match msg {
                    Some(msgs) => {
                        debug_assert!(w.batch.as_slice().is_empty());
                        w.batch = msgs.into_iter();
                        continue;
                    }
                    None => LoopEvent::Input(None),
                },
                _ = w.sync_tick.tick(), if w.batch_sync => LoopEvent::SyncTick,
                _ = w.progress_tick.tick(), if w.progress_on => LoopEvent::ProgressTick,
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
