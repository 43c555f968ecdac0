//! `--adaptive` (admission's): how many items may run at once, with `-j` as the ceiling. AIMD,
//! as in TCP: the limit halves on a throttle, at most once per round (the items that were in
//! flight at the last cut must end first, since they were started under the old limit), and
//! grows by one after a full window of successes with no throttle. Each probe past what the
//! service takes costs everyone a shared pause, so probes are rare: the window is the limit's
//! worth of items, doubled each time a raise is followed by a cut before it has lasted a window.

/// The largest factor the window is stretched by after failed probes.
const MAX_PATIENCE: usize = 16;

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
}

impl Limit {
    /// A limit that starts at the ceiling, `-j`.
    pub(super) fn new(ceiling: usize) -> Limit {
        Limit {
            limit: ceiling.max(1),
            ceiling: ceiling.max(1),
            running: 0,
            ended_since_cut: 0,
            round: 0,
            clean: 0,
            patience: 1,
            probing: false,
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
        if self.probing {
            self.patience = (self.patience * 2).min(MAX_PATIENCE);
            self.probing = false;
        }
        self.limit = (self.limit / 2).max(1);
        self.ended_since_cut = 0;
        // The items still running, and this one: all were started under the old limit.
        self.round = self.running + 1;
        Some(self.limit)
    }

    /// An attempt succeeded: the new limit, when this raised it.
    pub(super) fn succeeded(&mut self) -> Option<usize> {
        self.clean += 1;
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

    #[test]
    fn halves_once_per_round_then_grows_after_a_clean_window() {
        let mut l = Limit::new(8);
        run(&mut l, 8);
        assert!(!l.allows());
        l.ended();
        assert_eq!(l.throttled(), Some(4));
        // The other seven were started under the old limit: their throttles do not cut again.
        for _ in 0..7 {
            l.ended();
            assert_eq!(l.throttled(), None);
        }
        assert_eq!(l.get(), 4);
        run(&mut l, 4);
        assert!(!l.allows());
        // Four clean successes raise it by one.
        let raised: Vec<_> = (0..4).map(|_| l.succeeded()).collect();
        assert_eq!(raised, [None, None, None, Some(5)]);
        // A cut right after a raise makes the next window twice as long.
        for _ in 0..4 {
            l.ended();
        }
        assert_eq!(l.throttled(), Some(2));
        assert_eq!((0..4).filter_map(|_| l.succeeded()).count(), 1);
        assert_eq!(l.get(), 3);
    }

    #[test]
    fn never_passes_the_ceiling_nor_goes_under_one() {
        let mut l = Limit::new(2);
        assert_eq!((0..10).filter_map(|_| l.succeeded()).count(), 0);
        l.ended();
        assert_eq!(l.throttled(), Some(1));
        l.ended();
        assert_eq!(l.throttled(), Some(1));
    }
}
