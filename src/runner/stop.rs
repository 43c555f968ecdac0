//! Stopping a run: on a signal, a fatal error, a failed input, or `--max-failures`; Ctrl-Z
//! pauses; and the exit status that the cause leads to.

use anyhow::Error;

use super::{signals, Cause, Runner};
use crate::process::Stop;
use crate::report::{Exit, Stats};

impl Runner<'_> {
    pub(super) fn exit_status(&self) -> Exit {
        match self.cause {
            Some(Cause::Fatal) => Exit::Error,
            _ if self.fatal.is_some() || self.write_failed => Exit::Error,
            Some(Cause::Interrupt) => Exit::Interrupted,
            Some(Cause::Terminate) => Exit::Terminated,
            Some(Cause::Hangup) => Exit::HungUp,
            Some(Cause::BrokenPipe) => Exit::BrokenPipe,
            _ if Stats::get(&self.stats.failed) > 0 => Exit::ItemsFailed,
            _ => Exit::Success,
        }
    }

    /// Stops the run: nothing new starts, running children get SIGTERM (not for
    /// `--max-failures` or a failed input, which let them finish). A second SIGINT kills them
    /// at once.
    pub(super) fn stop(&mut self, cause: Cause) {
        let already = self.cause;
        let signal_children = !matches!(cause, Cause::MaxFailures | Cause::InputFailed);
        if already.is_none() || matches!(already, Some(Cause::MaxFailures | Cause::InputFailed)) {
            self.cause = Some(cause);
        } else if cause == Cause::Fatal {
            self.cause = Some(Cause::Fatal);
        }
        if signal_children {
            let signalled = matches!(
                already,
                Some(Cause::Interrupt | Cause::Terminate | Cause::Hangup)
            );
            let level = if signalled && cause == Cause::Interrupt {
                Stop::Kill
            } else {
                Stop::Graceful
            };
            self.stop_tx.send_if_modified(|s| {
                let raise = level > *s;
                if raise {
                    *s = level;
                }
                raise
            });
        }
    }

    /// What is running, for a message: per-item children, or items in flight on workers.
    fn running(&self) -> String {
        if !self.cfg.persistent {
            return format!("{} running children", self.tasks.len());
        }
        let workers = self.pipelines.iter().flatten().count();
        let items = self.on_workers.len();
        format!(
            "{items} item{} in flight on {workers} worker{}",
            if items == 1 { "" } else { "s" },
            if workers == 1 { "" } else { "s" }
        )
    }

    pub(super) fn on_signal(&mut self, cause: Cause) {
        let running = self.running();
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
                crate::report::human_duration(self.cfg.kill_after),
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
        self.stop(cause);
    }

    /// Ctrl-Z: pauses every child and pararun; returns once continued.
    pub(super) fn pause(&mut self) {
        let running = self.running();
        self.progress.line(
            format!(
                "pararun: SIGTSTP: pausing {running} and pararun; `fg` or \
                 SIGCONT resumes them (paused time counts toward --timeout)"
            )
            .as_bytes(),
        );
        // The message goes out before pararun stops (the stderr thread stops with it).
        self.progress.flush(std::time::Duration::from_millis(500));
        signals::pause(self.watchdog.as_deref());
        self.progress
            .line(format!("pararun: continued: resuming {running}").as_bytes());
    }

    pub(super) fn set_fatal(&mut self, err: Error) {
        if self.fatal.is_none() {
            self.fatal = Some(err);
        }
        self.stop(Cause::Fatal);
    }

    /// The input cannot be read to its end (an I/O error, a dead reader): the run fails with
    /// exit 2, but the children already running are not at fault, so they finish and their
    /// results are kept, as with `--max-failures`.
    pub(super) fn input_failed(&mut self, err: Error) {
        if !self.tasks.is_empty() || !self.on_workers.is_empty() {
            let running = self.running();
            self.progress.line(
                format!("pararun: {err:#}: starting nothing new; letting {running} finish")
                    .as_bytes(),
            );
        }
        if self.fatal.is_none() {
            self.fatal = Some(err);
        }
        self.stop(Cause::InputFailed);
    }
}
