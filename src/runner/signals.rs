//! The signals a run answers: SIGINT, SIGTERM and SIGHUP stop it cleanly; SIGTSTP (Ctrl-Z)
//! pauses every child's group, then pararun itself, and resumes them all on SIGCONT.

use std::io;

use rustix::process::{Pid, Signal};
use tokio::signal::unix::{signal, SignalKind};

use super::Cause;
use crate::process::Watchdog;

/// The signals, installed before the first child starts. A task of their own waits on the
/// four streams and passes each on through one channel, so the scheduler's loop polls one
/// cheap receiver per turn rather than four signal streams.
pub struct Signals {
    asked: tokio::sync::mpsc::UnboundedReceiver<Asked>,
}

/// What a signal asks of the run.
pub(super) enum Asked {
    /// Stop the run, for this cause.
    Stop(Cause),
    /// Pause everything until SIGCONT (Ctrl-Z).
    Pause,
}

impl Signals {
    /// Installs the handlers; call it within the runtime that will run the scheduler.
    pub fn install() -> io::Result<Signals> {
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        let mut hangup = signal(SignalKind::hangup())?;
        let mut suspend = signal(SignalKind::from_raw(libc::SIGTSTP))?;
        let (tx, asked) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    _ = interrupt.recv() => Asked::Stop(Cause::Interrupt),
                    _ = terminate.recv() => Asked::Stop(Cause::Terminate),
                    _ = hangup.recv() => Asked::Stop(Cause::Hangup),
                    _ = suspend.recv() => Asked::Pause,
                };
                if tx.send(next).is_err() {
                    return;
                }
            }
        });
        Ok(Signals { asked })
    }

    /// The next signal.
    pub(super) async fn recv(&mut self) -> Asked {
        match self.asked.recv().await {
            Some(asked) => asked,
            // The forwarding task never ends while the receiver lives.
            None => std::future::pending().await,
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
