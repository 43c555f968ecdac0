//! Retries: when a failed item runs again, and the item as it waits (admission keeps the queue).

use std::time::{Duration, Instant};

use crate::input::Item;

/// Retries longer than this are capped.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(60);

/// An item waiting to be retried; it holds no slot.
pub(super) struct Retry {
    pub(super) due: Instant,
    pub(super) ordinal: u64,
    pub(super) item: Item,
    pub(super) attempt: u32,
    /// Sent to a worker that was lost before it answered: the same attempt, not counted again.
    pub(super) resent: bool,
}

impl PartialEq for Retry {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.item.seq) == (other.due, other.item.seq)
    }
}
impl Eq for Retry {}
impl PartialOrd for Retry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Retry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.item.seq).cmp(&(other.due, other.item.seq))
    }
}

/// The wait before attempt `attempt + 1`: `base` doubled per earlier retry, ±25% jitter (so that
/// a burst of failures does not retry in lockstep), capped at one minute.
pub(super) fn retry_delay(base: Duration, attempt: u32, seq: u64) -> Duration {
    let doubled = base.saturating_mul(1u32 << (attempt - 1).min(20));
    let noise = xxhash_rust::xxh3::xxh3_64(
        &[seq.to_le_bytes(), u64::from(attempt).to_le_bytes(), nanos()].concat(),
    );
    let factor = 0.75 + (noise % 1000) as f64 / 2000.0;
    doubled.mul_f64(factor).min(MAX_RETRY_DELAY)
}

fn nanos() -> [u8; 8] {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (t.subsec_nanos() as u64).to_le_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_double_with_jitter_and_cap() {
        let base = Duration::from_secs(1);
        for attempt in 1..=3u32 {
            let d = retry_delay(base, attempt, 9).as_secs_f64();
            let nominal = f64::from(1u32 << (attempt - 1));
            assert!(d >= nominal * 0.75 && d <= nominal * 1.25, "{attempt}: {d}");
        }
        assert_eq!(retry_delay(base, 30, 1), MAX_RETRY_DELAY);
    }
}
