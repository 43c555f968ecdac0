//! A running child's process group: the only place that signals one.
//!
//! Each child leads a group of its own, so one signal reaches everything it started in it. A
//! group id is the leader's pid, and pids are recycled once a process is reaped. So a [`Group`]
//! owns the unreaped leader: it waits for the exit without reaping (a pidfd, or
//! `waitid(WNOWAIT)`), signals the group while the leader is a zombie (its id still taken),
//! clears the watchdog's table entry, and only then reaps, in [`Group::reap`]; after that,
//! signalling it does nothing. Dropping a group unreaped kills it first, so a worker found dead between two items still
//! takes its group with it.

use std::io;
use std::os::fd::OwnedFd;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use rustix::process::{Pid, Signal, WaitId, WaitIdOptions};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::process::Child;
use tokio::sync::watch;

use super::{reached, Stop, Watchdog};

/// A spawned child that leads its own process group, not reaped yet.
pub struct Group {
    /// The leader, spawned by tokio, which reaps it (in the background, if it is dropped
    /// unreaped).
    child: Option<Child>,
    pid: Pid,
    exit: Option<AsyncFd<OwnedFd>>,
    guard: Option<(Arc<Watchdog>, usize)>,
}

impl Group {
    /// Takes charge of a child spawned with `process_group(0)`, registering its group with the
    /// watchdog under `slot`.
    pub fn new(child: Child, guard: Option<(Arc<Watchdog>, usize)>) -> io::Result<Group> {
        let raw = child
            .id()
            .ok_or_else(|| io::Error::other("the child has no pid"))?;
        let pid = Pid::from_raw(raw as i32).ok_or_else(|| io::Error::other("pid 0"))?;
        Ok(Group::of(child, pid, guard))
    }

    fn of(leader: Child, pid: Pid, guard: Option<(Arc<Watchdog>, usize)>) -> Group {
        if let Some((dog, slot)) = &guard {
            dog.set(*slot, pid.as_raw_nonzero().get());
        }
        // Without pidfds (Linux before 5.3, or a seccomp filter) exits are polled instead.
        let exit = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())
            .ok()
            // SAFETY: an OwnedFd is a valid open descriptor that keeps naming the same pidfd
            // until the AsyncFd that owns it is dropped.
            .and_then(|fd| unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }.ok());
        Group {
            child: Some(leader),
            pid,
            exit,
            guard,
        }
    }

    /// Whether the leader has exited (it stays unreaped).
    pub fn has_exited(&self) -> bool {
        if self.child.is_none() {
            return true;
        }
        let options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
        // By pid, which is safe while the leader is unreaped (P_PIDFD needs Linux 5.4). An
        // error (ECHILD) means there is nothing left to wait for.
        !matches!(
            rustix::process::waitid(WaitId::Pid(self.pid), options),
            Ok(None)
        )
    }

    /// Resolves once the leader has exited, leaving it unreaped.
    pub async fn exited(&self) {
        if self.child.is_none() {
            return;
        }
        match &self.exit {
            Some(fd) => {
                // A pidfd turns readable when its process exits, and stays so.
                let _ = fd.readable().await;
            }
            None => {
                while !self.has_exited() {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }

    /// Sends `signal` to the whole group. Sound because the leader is not reaped: its id
    /// cannot name another group.
    pub fn signal(&self, signal: Signal) {
        if self.child.is_none() {
            return;
        }
        // ESRCH (everyone gone but the zombie leader) is fine.
        let _ = rustix::process::kill_process_group(self.pid, signal);
    }

    /// Ends the group: SIGTERM (with SIGCONT, so a stopped child can act on it), then SIGKILL
    /// after `grace` or as soon as the run escalates to [`Stop::Kill`]. Returns once the
    /// leader has exited.
    pub async fn terminate(&self, grace: Duration, stop: &mut watch::Receiver<Stop>) {
        if *stop.borrow() != Stop::Kill {
            self.signal(Signal::TERM);
            self.signal(Signal::CONT);
            tokio::select! {
                _ = self.exited() => return,
                _ = tokio::time::sleep(grace) => {}
                _ = reached(stop, Stop::Kill) => {}
            }
        }
        self.signal(Signal::KILL);
        self.exited().await;
    }

    /// Kills what the leader left in its group, clears the watchdog's entry, then reaps the
    /// leader. Call it once the leader has exited (it waits otherwise); from then on the group
    /// is spent and signalling it does nothing.
    pub async fn reap(&mut self) -> io::Result<ExitStatus> {
        self.exited().await;
        self.signal(Signal::KILL);
        self.release();
        match self.child.take() {
            Some(mut child) => child.wait().await,
            None => Err(io::Error::other("the child was reaped already")),
        }
    }

    fn release(&mut self) {
        if let Some((dog, slot)) = self.guard.take() {
            dog.set(slot, 0);
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if self.child.is_some() {
            // Not reaped (a worker replaced, a task cancelled): the group goes now, and tokio
            // reaps the leader in the background once dropped.
            self.signal(Signal::KILL);
            self.release();
        }
    }
}
