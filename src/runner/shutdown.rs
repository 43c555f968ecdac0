//! Stopping a run: on a signal, a fatal error, a failed input, or `--max-failures`; and the exit
//! status that the cause leads to. This is the stop state machine alone: it says how hard the
//! running items are to be stopped, and the loop hands that to launch.

use std::time::Duration;

use anyhow::Error;

use super::Cause;
use crate::process::Stop;
use crate::report::progress::Progress;
use crate::report::Exit;

/// Why the run stopped, if it did, and the error it exits 2 for.
pub(super) struct Shutdown {
    cause: Option<Cause>,
    fatal: Option<Error>,
    /// `--kill-after`, for the stop message.
    kill_after: Duration,
    progress: Progress,
}

/// What the other components report for the exit status.
pub(super) struct Verdict {
    /// A write to stdout or the failures file failed: the run exits 2.
    pub(super) write_failed: bool,
    /// Some item failed for good.
    pub(super) items_failed: bool,
}

impl Shutdown {
    pub(super) fn new(kill_after: Duration, progress: Progress) -> Shutdown {
        Shutdown {
            cause: None,
            fatal: None,
            kill_after,
            progress,
        }
    }

    /// Whether the run is stopping: nothing new starts, and no retry is queued.
    pub(super) fn stopping(&self) -> bool {
        self.cause.is_some()
    }

    /// Whether a fatal error stopped the run: records are no longer written.
    pub(super) fn is_fatal(&self) -> bool {
        self.cause == Some(Cause::Fatal)
    }

    /// Whether the run stops for a signal or a closed stdout: it does not wait for ever on a
    /// stdout nobody reads.
    pub(super) fn in_a_hurry(&self) -> bool {
        matches!(
            self.cause,
            Some(Cause::Interrupt | Cause::Terminate | Cause::Hangup | Cause::BrokenPipe)
        )
    }

    /// The error that makes the run exit 2, if any.
    pub(super) fn fatal(&self) -> Option<&Error> {
        self.fatal.as_ref()
    }

    pub(super) fn exit_status(&self, verdict: &Verdict) -> Exit {
        match self.cause {
            Some(Cause::Fatal) => Exit::Error,
            _ if self.fatal.is_some() || verdict.write_failed => Exit::Error,
            Some(Cause::Interrupt) => Exit::Interrupted,
            Some(Cause::Terminate) => Exit::Terminated,
            Some(Cause::Hangup) => Exit::HungUp,
            Some(Cause::BrokenPipe) => Exit::BrokenPipe,
            _ if verdict.items_failed => Exit::ItemsFailed,
            _ => Exit::Success,
        }
    }

    /// Stops the run: nothing new starts; returns how hard running children are to be stopped
    /// (SIGTERM, not for `--max-failures` or a failed input, which let them finish). A second
    /// SIGINT kills them at once.
    pub(super) fn stop(&mut self, cause: Cause) -> Option<Stop> {
        let already = self.cause;
        let signal_children = !matches!(cause, Cause::MaxFailures | Cause::InputFailed);
        if already.is_none() || matches!(already, Some(Cause::MaxFailures | Cause::InputFailed)) {
            self.cause = Some(cause);
        } else if cause == Cause::Fatal {
            self.cause = Some(Cause::Fatal);
        }
        if !signal_children {
            return None;
        }
        let signalled = matches!(
            already,
            Some(Cause::Interrupt | Cause::Terminate | Cause::Hangup)
        );
        Some(if signalled && cause == Cause::Interrupt {
            Stop::Kill
        } else {
            Stop::Graceful
        })
    }

    /// A stop signal; `running` says what is running, for the message.
    pub(super) fn on_signal(&mut self, cause: Cause, running: &str) -> Option<Stop> {
        let name = match cause {
            Cause::Interrupt => "SIGINT",
            Cause::Hangup => "SIGHUP",
            _ => "SIGTERM",
        };
        let signalled = matches!(
            self.cause,
            Some(Cause::Interrupt | Cause::Terminate | Cause::Hangup)
        );
        let msg = if signalled && cause == Cause::Interrupt {
            format!("pararun: SIGINT while stopping: killing {running} now")
        } else {
            format!(
                "pararun: {name}: starting nothing new; stopping {running} (SIGTERM, SIGKILL \
                 after {}){}",
                crate::report::human_duration(self.kill_after),
                if cause == Cause::Interrupt {
                    "; Ctrl-C again to kill them now"
                } else {
                    ""
                }
            )
        };
        // The bar goes for good before the first stop message, so no frozen bar is left above
        // the messages and the summary.
        self.progress.finish();
        self.progress.line(msg.as_bytes());
        self.stop(cause)
    }

    /// A run-fatal error: the first one is kept for the exit message.
    pub(super) fn set_fatal(&mut self, err: Error) -> Option<Stop> {
        if self.fatal.is_none() {
            self.fatal = Some(err);
        }
        self.stop(Cause::Fatal)
    }

    /// The input cannot be read to its end (an I/O error, a dead reader): the run fails with
    /// exit 2, but the children already running are not at fault, so they finish and their
    /// results are kept, as with `--max-failures`. `running` says what runs, if anything.
    pub(super) fn input_failed(&mut self, err: Error, running: Option<String>) -> Option<Stop> {
        if let Some(running) = running {
            self.progress.line(
                format!("pararun: {err:#}: starting nothing new; letting {running} finish")
                    .as_bytes(),
            );
        }
        if self.fatal.is_none() {
            self.fatal = Some(err);
        }
        self.stop(Cause::InputFailed)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::Display;

    fn shutdown() -> Shutdown {
        let progress = Progress::new(Display::Off, false, Arc::default(), None);
        Shutdown::new(Duration::from_secs(1), progress)
    }

    const CLEAN: Verdict = Verdict {
        write_failed: false,
        items_failed: false,
    };

    #[test]
    fn a_second_sigint_kills_and_max_failures_lets_children_finish() {
        let mut s = shutdown();
        assert_eq!(s.stop(Cause::MaxFailures), None);
        assert!(s.stopping() && !s.in_a_hurry());
        // A signal after --max-failures takes over, and the exit status is the signal's.
        assert_eq!(s.stop(Cause::Interrupt), Some(Stop::Graceful));
        assert_eq!(s.stop(Cause::Interrupt), Some(Stop::Kill));
        assert_eq!(s.exit_status(&CLEAN), Exit::Interrupted);
    }

    #[test]
    fn a_fatal_error_wins_over_a_signal_and_failed_items() {
        let mut s = shutdown();
        assert_eq!(s.stop(Cause::Terminate), Some(Stop::Graceful));
        s.set_fatal(anyhow::anyhow!("disk full"));
        assert!(s.is_fatal());
        let failed = Verdict {
            write_failed: false,
            items_failed: true,
        };
        assert_eq!(s.exit_status(&failed), Exit::Error);
        assert_eq!(s.fatal().unwrap().to_string(), "disk full");
    }

    #[test]
    fn the_exit_status_without_a_stop() {
        let s = shutdown();
        assert_eq!(s.exit_status(&CLEAN), Exit::Success);
        let failed = Verdict {
            write_failed: false,
            items_failed: true,
        };
        assert_eq!(s.exit_status(&failed), Exit::ItemsFailed);
        let lost = Verdict {
            write_failed: true,
            items_failed: false,
        };
        assert_eq!(s.exit_status(&lost), Exit::Error);
    }
}
