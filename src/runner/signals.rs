//! The signals a run answers: SIGINT, SIGTERM and SIGHUP stop it cleanly; SIGTSTP (Ctrl-Z)
//! pauses every child's group, then pararun itself, and resumes them all on SIGCONT.

use std::io;

use rustix::process::{Pid, Signal};
use tokio::signal::unix::{signal, SignalKind};

use super::Cause;
use crate::process::Watchdog;

/// The signal streams, installed before the first child starts.
pub struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
    suspend: tokio::signal::unix::Signal,
}

/// What a signal asks of the run.
pub(super) enum Asked {
    /// Stop the run, for this cause.
    Stop(Cause),
    /// Pause everything until SIGCONT (Ctrl-Z).
    Pause,
}

impl Signals {
    /// Installs the handlers.
    pub fn install() -> io::Result<Signals> {
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
            hangup: signal(SignalKind::hangup())?,
            suspend: signal(SignalKind::from_raw(libc::SIGTSTP))?,
        })
    }

    /// The next signal.
    pub(super) async fn recv(&mut self) -> Asked {
        tokio::select! {
            _ = self.interrupt.recv() => Asked::Stop(Cause::Interrupt),
            _ = self.terminate.recv() => Asked::Stop(Cause::Terminate),
            _ = self.hangup.recv() => Asked::Stop(Cause::Hangup),
            _ = self.suspend.recv() => Asked::Pause,
        }
    }
}

/// Ctrl-Z: stops every running child's group, then pararun itself (as the terminal's SIGTSTP
/// would have, had it been left to its default). Returns once pararun is continued (`fg`,
/// SIGCONT), after continuing every group again. Children run in groups of their own, so the
/// terminal's SIGTSTP never reaches them: this is the only way they pause.
pub(super) fn pause(watchdog: Option<&Watchdog>) {
    let groups: Vec<i32> = watchdog
        .map(|dog| dog.groups().collect())
        .unwrap_or_default();
    for &pgid in &groups {
        if let Some(pid) = Pid::from_raw(pgid) {
            let _ = rustix::process::kill_process_group(pid, Signal::STOP);
        }
    }
    // SIGSTOP cannot be caught: this call returns only after a SIGCONT.
    let _ = rustix::process::kill_process(rustix::process::getpid(), Signal::STOP);
    let now: Vec<i32> = watchdog
        .map(|dog| dog.groups().collect())
        .unwrap_or_default();
    for pgid in groups.into_iter().chain(now) {
        if let Some(pid) = Pid::from_raw(pgid) {
            let _ = rustix::process::kill_process_group(pid, Signal::CONT);
        }
    }
}
