//! The signals a run answers: SIGINT, SIGTERM and SIGHUP stop it cleanly; SIGTSTP (Ctrl-Z)
//! pauses every child's group, then pararun itself, and resumes them all on SIGCONT.

use std::io;
use std::time::Duration;

use rustix::process::{Pid, Signal};
use tokio::signal::unix::{signal, SignalKind};

use super::Cause;
use crate::process::Watchdog;
use crate::report::Exit;

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

/// A signal that ended a wait before the run began (`--lock-wait`): nothing has run, and the
/// run exits with the status the signal stands for.
#[derive(Debug)]
pub struct Stopped {
    /// The signal's name, for the message.
    pub signal: &'static str,
    /// What the run exits with: 130, 143 or 129, as a stopped run does.
    pub exit: Exit,
}

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} before the run began", self.signal)
    }
}

impl std::error::Error for Stopped {}

impl Signals {
    /// Sleeps for `gap` on the calling thread, before the scheduler runs (setup's
    /// `--lock-wait`), answering signals as a run does: Ctrl-Z stops pararun until SIGCONT (no
    /// child runs yet), and SIGINT, SIGTERM or SIGHUP end the sleep at once with [`Stopped`].
    pub fn nap(&mut self, runtime: &tokio::runtime::Runtime, gap: Duration) -> Result<(), Stopped> {
        let asked = runtime.block_on(async {
            tokio::select! {
                asked = self.recv() => Some(asked),
                () = tokio::time::sleep(gap) => None,
            }
        });
        let (signal, exit) = match asked {
            None => return Ok(()),
            Some(Asked::Pause) => {
                pause(None);
                return Ok(());
            }
            Some(Asked::Stop(Cause::Interrupt)) => ("SIGINT", Exit::Interrupted),
            Some(Asked::Stop(Cause::Hangup)) => ("SIGHUP", Exit::HungUp),
            Some(Asked::Stop(_)) => ("SIGTERM", Exit::Terminated),
        };
        Err(Stopped { signal, exit })
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
