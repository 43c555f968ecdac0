//! Which slot the next item goes to, and how many items each slot may hold.
//!
//! A per-item child holds one item. A persistent worker may hold up to `--pipeline`, but an
//! item given to a worker stays with it: behind a slow item, the items queued on the same
//! worker wait while other workers may have nothing left to do. So an ordered worker (which
//! answers one item after another) is given only about [`QUEUED_WORK`] of work at once, as its
//! own answers measure it: items of 20 ms or more go one at a time, trivial items fill the
//! whole pipeline. A concurrent worker answers items side by side, so the time one takes says
//! nothing of how many it can hold: it gets `--pipeline`.

use std::time::Duration;

use crate::config::{Config, Protocol};

/// How much work an ordered worker is given ahead, by its measured time per item. It bounds
/// what waits behind a slow item, and it is long enough that a refill (a round trip of tens of
/// microseconds) is rare next to the work.
pub const QUEUED_WORK: Duration = Duration::from_millis(20);

/// A slot's time per item is measured over this many answers, or over [`QUEUED_WORK`],
/// whichever comes first: answers read together come with durations near zero, and only their
/// sum means anything.
const SAMPLE_ANSWERS: u32 = 16;

/// The free seats: the slots that may take an item now, and each slot's allowance.
pub struct Seats {
    /// Free seats, taken from the end. A slot may be here more often than it has room (its
    /// allowance shrank): such a seat is dropped when it comes up.
    free: Vec<usize>,
    /// Per slot (index: slot; 0 unused): items held, seats in `free`, and its allowance.
    slots: Vec<Slot>,
    /// Whether allowances follow the measured time per item.
    adaptive: bool,
    depth: usize,
}

#[derive(Clone, Default)]
struct Slot {
    held: usize,
    queued: usize,
    allowed: usize,
    /// The answers of the sample being taken: their time, summed, and how many.
    sum: Duration,
    count: u32,
}

impl Seats {
    /// The seats of a run under `cfg`: every slot once before any twice, so the first items
    /// spread over all the workers.
    pub fn new(cfg: &Config) -> Seats {
        let depth = if cfg.persistent { cfg.pipeline } else { 1 };
        let adaptive = cfg.persistent && cfg.protocol == Protocol::Ordered && depth > 1;
        // An ordered worker starts with one item (its first answer shows whether it echoes
        // keys, and how long an item takes); a concurrent one with all it may hold.
        let allowed = if adaptive { 1 } else { depth };
        let slot = Slot {
            allowed,
            queued: allowed,
            ..Slot::default()
        };
        let mut slots = vec![slot; cfg.jobs + 1];
        slots[0] = Slot::default();
        let free = (0..allowed).flat_map(|_| (1..=cfg.jobs).rev()).collect();
        Seats {
            free,
            slots,
            adaptive,
            depth,
        }
    }

    /// Whether a slot may take an item now.
    pub fn any(&mut self) -> bool {
        while let Some(&slot) = self.free.last() {
            let s = &mut self.slots[slot];
            if s.held < s.allowed {
                return true;
            }
            // A seat left from a larger allowance.
            s.queued -= 1;
            self.free.pop();
        }
        false
    }

    /// Takes a seat: the slot the next item goes to.
    pub fn take(&mut self) -> Option<usize> {
        if !self.any() {
            return None;
        }
        let slot = self.free.pop()?;
        let s = &mut self.slots[slot];
        s.queued -= 1;
        s.held += 1;
        Some(slot)
    }

    /// Gives back a seat taken for an item that did not start.
    pub fn put_back(&mut self, slot: usize) {
        self.release(slot);
    }

    /// The item `slot` held is done; `took` is how long its worker took over it, if it
    /// answered (a worker's time per item is measured from its answers).
    pub fn done(&mut self, slot: usize, took: Option<Duration>) {
        if let (true, Some(took)) = (self.adaptive, took) {
            self.measure(slot, took);
        }
        self.release(slot);
    }

    fn release(&mut self, slot: usize) {
        let s = &mut self.slots[slot];
        s.held -= 1;
        self.refill(slot);
    }

    /// Puts back seats until the slot has as many free ones as its allowance leaves room for.
    fn refill(&mut self, slot: usize) {
        let s = &mut self.slots[slot];
        while s.held + s.queued < s.allowed {
            s.queued += 1;
            self.free.push(slot);
        }
    }

    /// Adds one answer to the slot's measure; a finished sample sets its allowance.
    fn measure(&mut self, slot: usize, took: Duration) {
        let s = &mut self.slots[slot];
        s.sum += took;
        s.count += 1;
        if s.count < SAMPLE_ANSWERS && s.sum < QUEUED_WORK {
            return;
        }
        // The last sample alone decides: a sample is already 16 answers or 20 ms of work, and
        // an older one (a worker's start, which its first answer pays for) should not hold
        // the slot back, nor a fast past let slow items pile up.
        let per_item = s.sum / s.count;
        (s.sum, s.count) = (Duration::ZERO, 0);
        s.allowed = allowance(per_item, self.depth);
        self.refill(slot);
    }

    /// The slot's allowance now.
    #[cfg(test)]
    fn allowed(&self, slot: usize) -> usize {
        self.slots[slot].allowed
    }
}

/// How many items of `per_item` each make about [`QUEUED_WORK`], from 1 to `depth`.
fn allowance(per_item: Duration, depth: usize) -> usize {
    let nanos = per_item.as_nanos().max(1);
    let fit = QUEUED_WORK.as_nanos() / nanos;
    usize::try_from(fit).unwrap_or(usize::MAX).clamp(1, depth)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(jobs: usize, pipeline: usize, persistent: bool, protocol: Protocol) -> Config {
        let mut cfg = Config::new(vec!["true".into()]);
        (cfg.jobs, cfg.pipeline, cfg.persistent, cfg.protocol) =
            (jobs, pipeline, persistent, protocol);
        cfg
    }

    fn drain(seats: &mut Seats) -> Vec<usize> {
        std::iter::from_fn(|| seats.take()).collect()
    }

    #[test]
    fn per_item_children_take_each_slot_once() {
        let mut seats = Seats::new(&config(3, 128, false, Protocol::Ordered));
        assert_eq!(drain(&mut seats), [1, 2, 3]);
        seats.done(2, Some(Duration::from_micros(1)));
        assert_eq!(drain(&mut seats), [2]);
    }

    #[test]
    fn a_concurrent_worker_gets_its_whole_pipeline_at_once() {
        let mut seats = Seats::new(&config(2, 3, true, Protocol::Concurrent));
        assert_eq!(drain(&mut seats), [1, 2, 1, 2, 1, 2]);
    }

    #[test]
    fn an_ordered_worker_grows_its_allowance_with_fast_answers() {
        let mut seats = Seats::new(&config(2, 128, true, Protocol::Ordered));
        assert_eq!(drain(&mut seats), [1, 2]);
        for _ in 0..SAMPLE_ANSWERS {
            seats.done(1, Some(Duration::from_micros(10)));
            assert_eq!(seats.take(), Some(1));
        }
        assert_eq!(seats.allowed(1), 128);
        assert_eq!(seats.allowed(2), 1);
        // The slot held one item; 127 more seats are free, all of slot 1.
        let taken = drain(&mut seats);
        assert_eq!(taken.len(), 127);
        assert!(taken.iter().all(|&s| s == 1));
    }

    #[test]
    fn slow_answers_shrink_the_allowance_and_extra_seats_are_dropped() {
        let mut seats = Seats::new(&config(1, 128, true, Protocol::Ordered));
        assert_eq!(seats.take(), Some(1));
        for _ in 0..SAMPLE_ANSWERS {
            seats.done(1, Some(Duration::from_micros(10)));
            assert_eq!(seats.take(), Some(1));
        }
        // 128 allowed, 1 held: the other 127 are taken too.
        assert_eq!(drain(&mut seats).len(), 127);
        // A slow answer finishes a sample at once (it passes QUEUED_WORK).
        seats.done(1, Some(Duration::from_secs(1)));
        assert_eq!(seats.allowed(1), 1);
        // 127 items still held: no seat until none is.
        assert!(!seats.any());
        for _ in 0..126 {
            seats.done(1, None);
            assert!(!seats.any());
        }
        seats.done(1, None);
        assert_eq!(drain(&mut seats), [1]);
    }

    #[test]
    fn allowance_is_queued_work_over_time_per_item() {
        assert_eq!(allowance(Duration::from_millis(30), 128), 1);
        assert_eq!(allowance(Duration::from_millis(5), 128), 4);
        assert_eq!(allowance(Duration::from_micros(100), 128), 128);
        assert_eq!(allowance(Duration::ZERO, 7), 7);
    }
}
