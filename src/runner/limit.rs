//! `--adaptive` (admission's): how many items may run at once, with `-j` as the ceiling.
//!
//! As in TCP, it starts slow: at 1, doubled after each clean round, until the first throttle,
//! which halves it. From then on it grows by one after a full window of successes with no
//! throttle. A throttle cuts it at most once per round (the items in flight at the last cut
//! were started under the old limit). Each probe past what the service takes costs everyone a
//! shared pause (`Retry-After`), so the benchmark (`scripts/bench/throttle.py`), not the
//! textbook, sets the rest: a probe that fails (a throttle right after a raise) takes the limit
//! back down by one, to the level that held, and makes the next probe wait eight times longer.

/// The largest factor the window is stretched by after failed probes.
const MAX_PATIENCE: usize = 4096;

/// The adaptive limit on items running at once.
pub(super) struct Limit {
    limit: usize,
    ceiling: usize,
    running: usize,
    /// Attempts ended since the last cut, and how many must end before the next one.
    ended_since_cut: usize,
    round: usize,
    /// Successes in a row with no throttle, toward the next raise.
    clean: usize,
    /// The window a raise takes is `limit * patience` successes.
    patience: usize,
    /// The last change was a raise that has not yet lasted a full window.
    probing: bool,
    /// No throttle yet: the limit doubles after each clean round.
    slow_start: bool,
}

impl Limit {
    /// A limit under the ceiling `-j`, starting at 1.
    pub(super) fn new(ceiling: usize) -> Limit {
        Limit {
            limit: 1,
            ceiling: ceiling.max(1),
            running: 0,
            ended_since_cut: 0,
            round: 0,
            clean: 0,
            patience: 1,
            probing: false,
            slow_start: true,
        }
    }

    /// Whether another item may start now.
    pub(super) fn allows(&self) -> bool {
        self.running < self.limit
    }

    /// The limit now.
    #[cfg(test)]
    pub(super) fn get(&self) -> usize {
        self.limit
    }

    /// An item started.
    pub(super) fn started(&mut self) {
        self.running += 1;
    }

    /// An item that was admitted did not start after all.
    pub(super) fn withdrawn(&mut self) {
        self.running -= 1;
    }

    /// An attempt ended (whatever its outcome).
    pub(super) fn ended(&mut self) {
        self.running = self.running.saturating_sub(1);
        self.ended_since_cut += 1;
    }

    /// An attempt was throttled: the new limit, when this cut it.
    pub(super) fn throttled(&mut self) -> Option<usize> {
        self.clean = 0;
        if self.ended_since_cut < self.round {
            return None;
        }
        self.limit = match (std::mem::take(&mut self.slow_start), self.probing) {
            // A probe one past what held: back to what held, and probe far less often.
            (false, true) => {
                self.patience = (self.patience * 8).min(MAX_PATIENCE);
                self.limit - 1
            }
            _ => self.limit / 2,
        }
        .max(1);
        self.probing = false;
        self.ended_since_cut = 0;
        // The items still running, and this one: all were started under the old limit.
        self.round = self.running + 1;
        Some(self.limit)
    }

    /// An attempt succeeded: the new limit, when this raised it.
    pub(super) fn succeeded(&mut self) -> Option<usize> {
        self.clean += 1;
        if self.slow_start {
            if self.clean < self.limit || self.limit >= self.ceiling {
                return None;
            }
            self.clean = 0;
            self.limit = (self.limit * 2).min(self.ceiling);
            return Some(self.limit);
        }
        if self.clean < self.limit * self.patience {
            return None;
        }
        self.clean = 0;
        if self.probing {
            // The last raise held for a full window: probes may come at the usual pace.
            self.patience = 1;
        }
        self.probing = self.limit < self.ceiling;
        if !self.probing {
            return None;
        }
        self.limit += 1;
        Some(self.limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(l: &mut Limit, n: usize) {
        for _ in 0..n {
            l.started();
        }
    }

    /// Ends `n` attempts that succeeded; the raises they made.
    fn succeed(l: &mut Limit, n: usize) -> Vec<usize> {
        (0..n)
            .filter_map(|_| {
                l.ended();
                l.succeeded()
            })
            .collect()
    }

    #[test]
    fn starts_slow_then_halves_once_per_round() {
        let mut l = Limit::new(64);
        assert_eq!(l.get(), 1);
        // Doubled after each clean round: 1, 2, 4, 8, 16.
        let mut raises = Vec::new();
        for _ in 0..4 {
            let n = l.get();
            run(&mut l, n);
            raises.extend(succeed(&mut l, n));
        }
        assert_eq!(raises, [2, 4, 8, 16]);
        run(&mut l, 16);
        l.ended();
        assert_eq!(l.throttled(), Some(8));
        // The other fifteen were started under the old limit: their throttles do not cut again.
        for _ in 0..15 {
            l.ended();
            assert_eq!(l.throttled(), None);
        }
        assert_eq!(l.get(), 8);
        // From now on one more after a window of eight successes.
        run(&mut l, 8);
        assert_eq!(succeed(&mut l, 8), [9]);
    }

    #[test]
    fn a_failed_probe_steps_back_by_one_and_waits_eight_times_longer() {
        let mut l = Limit::new(64);
        run(&mut l, 1);
        l.ended();
        assert_eq!(l.throttled(), Some(1));
        // Window of 1: a raise to 2, which is throttled at once: back to 1.
        run(&mut l, 1);
        assert_eq!(succeed(&mut l, 1), [2]);
        run(&mut l, 1);
        l.ended();
        assert_eq!(l.throttled(), Some(1));
        // The next probe takes eight successes, not one.
        run(&mut l, 8);
        assert_eq!(succeed(&mut l, 7), Vec::<usize>::new());
        assert_eq!(succeed(&mut l, 1), [2]);
    }

    #[test]
    fn never_passes_the_ceiling_nor_goes_under_one() {
        let mut l = Limit::new(2);
        run(&mut l, 10);
        assert_eq!(succeed(&mut l, 10), [2]);
        l.ended();
        assert_eq!(l.throttled(), Some(1));
        l.ended();
        assert_eq!(l.throttled(), Some(1));
    }
}
