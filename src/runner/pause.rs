//! The shared pause (admission's): when the service says "throttled", every new start waits,
//! not only the item's own, for the `retry_after` it gave, else for a short backoff that
//! doubles with each throttle (1 s to 1 min, with jitter) and starts over on a success. It
//! also counts each item's throttles against `--max-throttled`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The first backoff when a throttle gives no `retry_after`.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest backoff.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// One pause for every slot, and the throttles of the items that have had some.
pub(super) struct Pause {
    /// No start before this.
    until: Option<Instant>,
    /// The next backoff for a throttle with no `retry_after`.
    backoff: Duration,
    /// Throttles so far, by ordinal, of items not settled yet (only those throttled at least
    /// once are here, so a run that is never throttled keeps it empty).
    counts: HashMap<u64, u32>,
}

/// What one throttle did.
pub(super) struct Throttle {
    /// How many times this item has now been throttled.
    pub(super) count: u32,
    /// The pause it set, when it put the end of the pause later than it was.
    pub(super) extended: Option<Duration>,
    /// With `--adaptive`, the limit on items running at once, when this throttle cut it
    /// (admission fills it in).
    pub(super) cut: Option<usize>,
}

impl Pause {
    pub(super) fn new() -> Pause {
        Pause {
            until: None,
            backoff: FIRST_BACKOFF,
            counts: HashMap::new(),
        }
    }

    /// Until when starts wait, if that is still to come.
    pub(super) fn until(&self) -> Option<Instant> {
        self.until.filter(|&until| until > Instant::now())
    }

    /// The item `ordinal` was throttled: starts pause for `retry_after`, else for the backoff
    /// (`noise` picks its jitter, ±25%), which doubles.
    pub(super) fn throttled(
        &mut self,
        ordinal: u64,
        retry_after: Option<Duration>,
        noise: u64,
    ) -> Throttle {
        let count = self.counts.entry(ordinal).or_default();
        *count += 1;
        let count = *count;
        let wait = retry_after.unwrap_or_else(|| {
            let wait = self.backoff.mul_f64(0.75 + (noise % 1000) as f64 / 2000.0);
            self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
            wait
        });
        let until = Instant::now() + wait;
        let later = self.until.is_none_or(|now| until > now);
        if later {
            self.until = Some(until);
        }
        Throttle {
            count,
            extended: later.then_some(wait),
            cut: None,
        }
    }

    /// The item `ordinal` is settled (recorded or failed): its throttles are forgotten, and
    /// when it succeeded the backoff starts over.
    pub(super) fn settled(&mut self, ordinal: u64, succeeded: bool) {
        if !self.counts.is_empty() {
            self.counts.remove(&ordinal);
        }
        if succeeded {
            self.backoff = FIRST_BACKOFF;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retry_after_pauses_every_start_and_the_backoff_doubles() {
        let mut p = Pause::new();
        assert!(p.until().is_none());
        let t = p.throttled(1, Some(Duration::from_secs(30)), 0);
        assert_eq!((t.count, t.extended), (1, Some(Duration::from_secs(30))));
        assert!(p.until().is_some());
        // A shorter pause does not cut the longer one short.
        let t = p.throttled(1, Some(Duration::from_secs(1)), 0);
        assert_eq!((t.count, t.extended), (2, None));
        let mut p = Pause::new();
        let first = p.throttled(2, None, 500).extended.unwrap();
        assert_eq!(first, Duration::from_secs(1));
        p.until = None;
        let second = p.throttled(2, None, 500).extended.unwrap();
        assert_eq!(second, Duration::from_secs(2));
        p.settled(2, true);
        assert!(p.counts.is_empty());
        p.until = None;
        assert_eq!(p.throttled(3, None, 500).extended, Some(FIRST_BACKOFF));
    }
}
