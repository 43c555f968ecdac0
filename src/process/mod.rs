//! Processes: starting a child, feeding and reading it, and ending it and everything it started.
//!
//! - [`child`] runs one per-item child to its end;
//! - [`worker`] keeps a persistent worker per slot (`--persistent`); [`owner`] is the task that
//!   owns it and keeps up to `--pipeline` items in flight on it, [`pipeline`] the scheduler's
//!   handle on that task, and [`ordered`] and [`concurrent`] the two protocols it speaks (one
//!   answer per line in order, checked by echoed key; or answers by `pararun_id`, in any order);
//! - [`group`] owns a running child's process group, and is the one place that signals it;
//! - [`pipes`] reads a child's stdout (capped) and passes its stderr through (in bounded pieces);
//! - [`program`] checks once, before the first child, that a program can be started at all;
//! - [`sweep`] finds and kills, by pidfd, every process that carries a run's marker;
//! - [`holders`] finds and kills the processes that hold a child's pipes, marker or not;
//! - [`watchdog`] is the forked process that cleans up if pararun itself dies;
//! - [`sys`] holds the process-wide settings (open-file limit, SIGXFSZ).
//!
//! The rules kept here: a group is signalled only while its leader is unreaped (its id cannot
//! have been recycled), and the watchdog's table entry is cleared before the reap; nothing an
//! item started outlives the run.

pub mod answer;
pub mod child;
pub mod concurrent;
pub mod group;
pub mod holders;
pub mod ordered;
pub mod owner;
pub mod pipeline;
pub mod pipes;
pub mod program;
pub mod sweep;
pub mod sys;
pub mod watchdog;
pub mod worker;

use std::time::Duration;

use tokio::sync::watch;

pub use child::{run, Finished, Job, Limits};
pub use watchdog::Watchdog;

/// How far a shutdown has gone; children watch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stop {
    /// Keep running.
    Run,
    /// SIGTERM every group, SIGKILL after the grace period.
    Graceful,
    /// SIGKILL every group now.
    Kill,
}

/// Why a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// On its own.
    Exited,
    /// Killed by us when `--timeout` ran out.
    TimedOut,
    /// Killed by us because the run is shutting down.
    Stopped,
    /// Killed by us because it printed more than `--max-output` on stdout.
    TooMuchOutput,
}

/// How long the pipes of a child that has exited may stay open: only a descendant that left
/// the child's group can still hold them, and it must not hold the item.
pub const DRAIN: Duration = Duration::from_millis(500);

/// Resolves once the shutdown level is at least `level`; never, if the sender is gone.
pub async fn reached(stop: &mut watch::Receiver<Stop>, level: Stop) {
    if stop.wait_for(|s| *s >= level).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Sleeps until `deadline`, or for ever without one.
pub(crate) async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
