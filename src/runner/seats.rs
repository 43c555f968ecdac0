//! Which slot the next item goes to, and how many items each slot may hold.
//!
//! A per-item child holds one item. A persistent worker may hold up to `--pipeline`, but an
//! item given to a worker stays with it: behind a slow item, the items queued on the same
//! worker wait while other workers may have nothing left to do. So an ordered worker (which
//! answers one item after another) is given only about [`QUEUED_WORK`] of work at once, as its
//! own answers measure it: items of 20 ms or more go one at a time, trivial items fill the
//! whole pipeline. A concurrent worker answers items side by side, so the time one takes says
//! nothing of how many it can hold: it gets `--pipeline`.

use std::collections::BTreeSet;
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
    /// The slots with room for another item, by items held, then slot: the next item goes
    /// to the slot holding fewest, so a run's items (and the slow ones among them, which
    /// nothing can tell apart before they run) spread evenly over the workers.
    /// Only slots already used are here: a fresh slot holds nothing and comes after them all,
    /// so it is taken only when none of them is empty ([`Seats::take`]).
    open: BTreeSet<(usize, usize)>,
    /// Per slot used so far (index: slot; 0 unused). It grows as slots fill, so that memory
    /// follows the items running, not `-j`.
    slots: Vec<Slot>,
    /// How many slots there are (`-j`).
    jobs: usize,
    /// A slot as it is first used.
    fresh: Slot,
    /// Whether allowances follow the measured time per item.
    adaptive: bool,
    depth: usize,
}

#[derive(Clone, Default)]
struct Slot {
    /// Items given to the slot and not done.
    held: usize,
    /// How many it may hold.
    allowed: usize,
    /// The answers of the sample being taken: their time, summed, and how many.
    sum: Duration,
    count: u32,
}

impl Slot {
    fn has_room(&self) -> bool {
        self.held < self.allowed
    }
}

impl Seats {
    /// The seats of a run under `cfg`, every slot empty.
    pub fn new(cfg: &Config) -> Seats {
        let depth = if cfg.launch.persistent {
            cfg.launch.pipeline
        } else {
            1
        };
        let adaptive =
            cfg.launch.persistent && cfg.launch.protocol == Protocol::Ordered && depth > 1;
        // An ordered worker starts with one item (its first answer shows whether it echoes
        // keys, and how long an item takes); a concurrent one with all it may hold.
        let allowed = if adaptive { 1 } else { depth };
        let slot = Slot {
            allowed,
            ..Slot::default()
        };
        Seats {
            open: BTreeSet::new(),
            slots: vec![Slot::default()],
            jobs: cfg.launch.jobs,
            fresh: slot,
            adaptive,
            depth,
        }
    }

    /// Whether a slot may take an item now.
    pub fn any(&self) -> bool {
        !self.open.is_empty() || self.slots.len() <= self.jobs
    }

    /// Takes a seat: the slot the next item goes to.
    pub fn take(&mut self) -> Option<usize> {
        // Every used slot is numbered below a fresh one: an empty used slot comes first.
        let slot = match self.open.first() {
            Some(&(0, slot)) => slot,
            _ if self.slots.len() <= self.jobs => {
                let slot = self.slots.len();
                self.slots.push(self.fresh.clone());
                self.open.insert((0, slot));
                slot
            }
            Some(&(_, slot)) => slot,
            None => return None,
        };
        self.change(slot, |s| s.held += 1);
        Some(slot)
    }

    /// Gives back a seat taken for an item that did not start.
    pub fn put_back(&mut self, slot: usize) {
        self.done(slot, None);
    }

    /// The item `slot` held is done; `took` is how long its worker took over it, if it
    /// answered (a worker's time per item is measured from its answers).
    pub fn done(&mut self, slot: usize, took: Option<Duration>) {
        let (adaptive, depth) = (self.adaptive, self.depth);
        self.change(slot, |s| {
            s.held -= 1;
            if let (true, Some(took)) = (adaptive, took) {
                s.measure(took, depth);
            }
        });
    }

    /// Changes a slot's count or allowance, keeping `open` in step.
    fn change(&mut self, slot: usize, f: impl FnOnce(&mut Slot)) {
        let s = &mut self.slots[slot];
        if s.has_room() {
            self.open.remove(&(s.held, slot));
        }
        f(s);
        if s.has_room() {
            self.open.insert((s.held, slot));
        }
    }

    /// The slot's allowance now.
    #[cfg(test)]
    fn allowed(&self, slot: usize) -> usize {
        self.slots[slot].allowed
    }
}

impl Slot {
    /// Adds one answer to the slot's sample; a finished sample sets its allowance.
    fn measure(&mut self, took: Duration, depth: usize) {
        self.sum += took;
        self.count += 1;
        if self.count < SAMPLE_ANSWERS && self.sum < QUEUED_WORK {
            return;
        }
        // The last sample alone decides, at once when items got slower: a sample is already
        // 16 answers or 20 ms of work, and a fast past must not let slow items pile up. The
        // allowance grows by doubling, as TCP's window does: items that run slow after a run
        // of quick ones are sent before any of them is answered, so a slot that grew at once
        // to its full pipeline (while the other workers were still starting) would take them
        // all.
        let per_item = self.sum / self.count;
        (self.sum, self.count) = (Duration::ZERO, 0);
        self.allowed = allowance(per_item, depth).min(self.allowed * 2);
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
        (
            cfg.launch.jobs,
            cfg.launch.pipeline,
            cfg.launch.persistent,
            cfg.launch.protocol,
        ) = (jobs, pipeline, persistent, protocol);
        cfg
    }

    fn drain(seats: &mut Seats) -> Vec<usize> {
        std::iter::from_fn(|| seats.take()).collect()
    }

    /// Answers quick items on `slot` (holding one) until its allowance is `to`, checking that
    /// it doubles with each sample of quick answers.
    fn grow(seats: &mut Seats, slot: usize, to: usize) {
        let mut expected = 1;
        while expected < to {
            for _ in 0..SAMPLE_ANSWERS {
                seats.done(slot, Some(Duration::from_micros(10)));
                assert_eq!(seats.take(), Some(slot));
            }
            expected *= 2;
            assert_eq!(seats.allowed(slot), expected);
        }
    }

    #[test]
    fn per_item_children_take_each_slot_once() {
        let mut seats = Seats::new(&config(3, 128, false, Protocol::Ordered));
        assert_eq!(drain(&mut seats), [1, 2, 3]);
        seats.done(2, Some(Duration::from_micros(1)));
        assert_eq!(drain(&mut seats), [2]);
    }

    #[test]
    fn slots_are_made_as_they_fill_not_for_every_job() {
        // Were a slot made for each of -j, this would ask for exabytes.
        let mut seats = Seats::new(&config(usize::MAX - 1, 1, false, Protocol::Ordered));
        assert_eq!([seats.take(), seats.take()], [Some(1), Some(2)]);
        seats.done(1, None);
        assert_eq!([seats.take(), seats.take()], [Some(1), Some(3)]);
        assert_eq!(seats.slots.len(), 4);
        assert!(seats.any());
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
        grow(&mut seats, 1, 128);
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
        grow(&mut seats, 1, 128);
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
    fn items_go_to_the_slot_holding_fewest() {
        let mut seats = Seats::new(&config(3, 4, true, Protocol::Concurrent));
        assert_eq!(drain(&mut seats), [1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3]);
        for _ in 0..3 {
            seats.done(2, None);
        }
        seats.done(3, None);
        // Slot 2 holds 1, slot 3 holds 3: slot 2 gets items until it holds as many as slot 3.
        assert_eq!(drain(&mut seats), [2, 2, 2, 3]);
    }

    #[test]
    fn allowance_is_queued_work_over_time_per_item() {
        assert_eq!(allowance(Duration::from_millis(30), 128), 1);
        assert_eq!(allowance(Duration::from_millis(5), 128), 4);
        assert_eq!(allowance(Duration::from_micros(100), 128), 128);
        assert_eq!(allowance(Duration::ZERO, 7), 7);
    }
}
