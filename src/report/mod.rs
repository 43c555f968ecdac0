//! What a run tells its user: the exit code, the counters and summary ([`stats`]), item
//! failures as values and the `--failures` file ([`failures`]) and what it says about items
//! that failed too often ([`given_up`]), repeated bad input counted rather than listed
//! ([`repeats`]), the progress display ([`progress`]) and the records on stdout ([`output`]).
//!
//! Item failures are never `Err`s: they are [`Failure`] values that the runner counts, retries
//! and reports here. This part owns the `--failures` file and stdout; nothing else writes them.

pub mod clock;
pub mod failures;
pub mod output;
pub mod progress;
pub mod repeats;
pub mod state;
pub mod stats;
mod stderr;

pub use crate::base::text;

pub use failures::{failure_message, FailedItem, Failure, FailureLog, Reason};
pub use stats::Stats;
pub use text::{escape, excerpt, human_duration};

/// The process exit status, one variant per documented code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Every item succeeded or was skipped.
    Success,
    /// At least one item failed.
    ItemsFailed,
    /// A usage, setup or run-fatal I/O error.
    Error,
    /// Stopped by SIGINT.
    Interrupted,
    /// Stopped because stdout was closed (`pararun ... | head`).
    BrokenPipe,
    /// Stopped by SIGTERM.
    Terminated,
    /// Stopped by SIGHUP (a closed terminal, a dropped ssh session).
    HungUp,
    /// Nothing ran: another run holds the cache's lock. The code is `--conflict-exit-code`
    /// (2 unless set; 0 to skip quietly).
    CacheBusy(u8),
}

impl Exit {
    /// The number the process exits with.
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::ItemsFailed => 1,
            Exit::Error => 2,
            Exit::Interrupted => 130,
            Exit::BrokenPipe => 141,
            Exit::Terminated => 143,
            Exit::HungUp => 129,
            Exit::CacheBusy(code) => code,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_the_documented_numbers() {
        let codes: Vec<u8> = [
            Exit::Success,
            Exit::ItemsFailed,
            Exit::Error,
            Exit::Interrupted,
            Exit::BrokenPipe,
            Exit::Terminated,
            Exit::HungUp,
            Exit::CacheBusy(0),
            Exit::CacheBusy(2),
        ]
        .iter()
        .map(|e| e.code())
        .collect();
        assert_eq!(codes, [0, 1, 2, 130, 141, 143, 129, 0, 2]);
    }
}
