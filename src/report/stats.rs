//! The run's counters, shared between the input reader and the runner and read by the
//! progress display, and the summary line made from them.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::text::human_duration;

/// Counters shared between the input reader and the runner; read by the progress display.
#[derive(Debug, Default)]
pub struct Stats {
    /// Items started at least once.
    pub ran: AtomicU64,
    /// Items whose result was recorded.
    pub succeeded: AtomicU64,
    /// Items that failed for good (after retries), bad input included.
    pub failed: AtomicU64,
    /// Items skipped because their key is in the cache.
    pub cached: AtomicU64,
    /// Items skipped because their key came earlier in this input.
    pub duplicates: AtomicU64,
    /// Attempts beyond the first.
    pub retries: AtomicU64,
    /// Items skipped because another shard owns them.
    pub other_shards: AtomicU64,
    /// Items cut short by a shutdown: neither done nor failed, they run again next time.
    pub unfinished: AtomicU64,
    /// Items skipped because the failures file holds too many failed attempts of them.
    pub given_up: AtomicU64,
    /// Attempts the service throttled (each went back to the queue, no retry used).
    pub throttled: AtomicU64,
    /// With `--adaptive`, the limit on items running at once, once it has changed (0 before).
    pub limit: AtomicU64,
}

impl Stats {
    /// Adds one to a counter.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Items accounted for so far: done, failed or skipped for any reason.
    pub fn settled(&self) -> u64 {
        Self::get(&self.succeeded)
            + Self::get(&self.failed)
            + Self::get(&self.cached)
            + Self::get(&self.duplicates)
            + Self::get(&self.other_shards)
            + Self::get(&self.given_up)
    }

    /// The one-line summary printed at the end of a run; it points at `records_file` when the
    /// records went only there (not to stdout), and at `failures_file` when items failed.
    pub fn summary(
        &self,
        elapsed: Duration,
        records_file: Option<&Path>,
        failures_file: Option<&Path>,
    ) -> String {
        let ran = Self::get(&self.ran);
        let failed = Self::get(&self.failed);
        let secs = elapsed.as_secs_f64();
        let rate = if secs > 0.0 { ran as f64 / secs } else { 0.0 };
        let given_up = Self::get(&self.given_up);
        let mut line = format!(
            "pararun: ran {ran} ({} succeeded, {failed} failed), {} cached, {} duplicates{} in {}, {rate:.1}/s",
            Self::get(&self.succeeded),
            Self::get(&self.cached),
            Self::get(&self.duplicates),
            match given_up {
                0 => String::new(),
                n => format!(", {n} given up"),
            },
            human_duration(elapsed),
        );
        let other = Self::get(&self.other_shards);
        if other > 0 {
            line += &format!(", {other} other shards");
        }
        let retries = Self::get(&self.retries);
        if retries > 0 {
            line += &format!(", {retries} retr{}", if retries == 1 { "y" } else { "ies" });
        }
        let throttled = Self::get(&self.throttled);
        if throttled > 0 {
            line += &format!(", {throttled} throttled");
        }
        let limit = Self::get(&self.limit);
        if limit > 0 {
            line += &format!(", at most {limit} at once at the end (--adaptive)");
        }
        if let Some(path) = records_file {
            line += &format!("; records in {}", path.display());
        }
        let unfinished = Self::get(&self.unfinished);
        if unfinished > 0 {
            line += &format!("; {unfinished} unfinished (they run again next time)");
        }
        if given_up > 0 {
            line += "; run without --give-up-after to retry those given up";
        }
        if failed > 0 {
            match failures_file {
                Some(path) => line += &format!("; failures in {}", path.display()),
                None => line += "; failures: see stderr",
            }
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_points_at_failures() {
        let stats = Stats::default();
        Stats::bump(&stats.ran);
        Stats::bump(&stats.failed);
        let line = stats.summary(Duration::from_secs(2), None, Some(Path::new("f.jsonl")));
        assert!(line.contains("ran 1 (0 succeeded, 1 failed)"), "{line}");
        assert!(line.ends_with("failures in f.jsonl"), "{line}");
        assert!(stats
            .summary(Duration::from_secs(2), None, None)
            .ends_with("see stderr"));
        let line = stats.summary(Duration::from_secs(2), Some(Path::new("c.jsonl")), None);
        assert!(
            line.contains("/s; records in c.jsonl; failures: see"),
            "{line}"
        );
    }

    #[test]
    fn summary_counts_the_given_up() {
        let stats = Stats::default();
        Stats::bump(&stats.given_up);
        Stats::bump(&stats.given_up);
        let line = stats.summary(Duration::from_secs(2), None, None);
        assert!(
            line.contains(", 0 duplicates, 2 given up in 2.0s"),
            "{line}"
        );
        assert!(
            line.ends_with("; run without --give-up-after to retry those given up"),
            "{line}"
        );
        assert_eq!(stats.settled(), 2);
    }
}
