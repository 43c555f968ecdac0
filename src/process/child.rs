//! Running one per-item child to its end.
//!
//! The child leads a process group of its own ([`Group`]). Its stdin is fed, its stdout read
//! up to `--max-output`, its stderr passed through, all while waiting for it to exit, for its
//! `--timeout` or for a shutdown. Once it has exited, whatever it left in its group is killed,
//! and its pipes get [`DRAIN`] to reach their end: only a descendant that left the group can
//! still hold them, and that one is found by its marker and killed, so it holds neither the
//! item nor the run.

use std::future::Future;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::pin::Pin;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::process::Signal;
use tokio::io::AsyncWriteExt;
use tokio::process::{ChildStderr, ChildStdin, ChildStdout};
use tokio::sync::watch;

use super::group::Group;
use super::holders;
use super::pipes::{lock, pump_stderr, read_capped, Captured, Tail};
use super::{reached, sleep_until, Ending, Stop, Watchdog, DRAIN};
use crate::report::progress::Progress;

/// One child to start.
pub struct Job {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Extra environment variables.
    pub env: Vec<(&'static str, String)>,
    /// Bytes written to the child's stdin (then closed); `None` gives it /dev/null.
    pub stdin: Option<Vec<u8>>,
    /// What each line of its stderr starts with (`--tag`: the key and a tab).
    pub tag: Option<Vec<u8>>,
}

/// Limits of one attempt.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The attempt's time limit.
    pub timeout: Option<Duration>,
    /// Grace between SIGTERM and SIGKILL.
    pub kill_after: Duration,
    /// The most stdout kept; a child that prints more is killed.
    pub max_output: u64,
}

/// What a finished child left.
pub struct Finished {
    /// Its exit status.
    pub status: ExitStatus,
    /// Its stdout, at most `max_output` bytes.
    pub stdout: Vec<u8>,
    /// The last lines of its stderr (all of which went through to our stderr).
    pub stderr_tail: String,
    /// Wall time from spawn to exit.
    pub duration: Duration,
    /// Why it ended.
    pub ending: Ending,
}

impl Finished {
    /// The signal that killed it, if any.
    pub fn signal(&self) -> Option<i32> {
        self.status.signal()
    }
}

/// Runs one child to its end, registering its group with the watchdog (if any) under its slot
/// while it runs. An `Err` means it could not be started (or its stdout failed).
pub async fn run(
    job: Job,
    limits: Limits,
    mut stop: watch::Receiver<Stop>,
    progress: &Progress,
    guard: Option<(Arc<Watchdog>, usize)>,
) -> io::Result<Finished> {
    let start = Instant::now();
    let (mut group, stdin, stdout, stderr) = start_child(&job, guard.clone())?;
    let inodes: Vec<u64> = [holders::pipe_inode(&stdout), holders::pipe_inode(&stderr)]
        .into_iter()
        .flatten()
        .collect();
    let tail = Mutex::new(Tail::default());
    let mut captured = Captured::default();
    let tag = job.tag.clone();
    let (ending, status) = {
        let feed = async move {
            if let (Some(mut pipe), Some(bytes)) = (stdin, job.stdin) {
                // A child that exits without reading its stdin is its own business.
                let _ = pipe.write_all(&bytes).await;
            }
        };
        let pipes = async {
            // Done when all three are, or at once when stdout passes the cap.
            let out = read_capped(stdout, limits.max_output, &mut captured);
            let rest = async {
                tokio::join!(feed, pump_stderr(stderr, progress, &tail, tag.as_deref()));
            };
            tokio::pin!(out, rest);
            tokio::select! {
                over = &mut out => over || {
                    rest.await;
                    false
                },
                _ = &mut rest => out.await,
            }
        };
        tokio::pin!(pipes);
        let mut pipes = Pipes {
            fut: pipes,
            done: false,
        };
        let ending = supervise(&group, &mut pipes, limits, &mut stop).await;
        let status = group.reap().await;
        if !pipes.drain(DRAIN).await {
            // A descendant that left the group holds a pipe: it goes, and the item ends.
            if let Some((dog, slot)) = &guard {
                dog.sweep_slot(*slot);
            }
            // One that also cleared its environment carries no marker, but holds the pipe.
            holders::kill_holders(&inodes);
            pipes.drain(Duration::from_millis(100)).await;
        }
        (ending, status)
    };
    if let Some(e) = captured.error {
        return Err(e);
    }
    let stderr_tail = lock(&tail).text();
    Ok(Finished {
        status: status?,
        stdout: captured.bytes,
        stderr_tail,
        duration: start.elapsed(),
        ending,
    })
}

/// A child's pipes, driven while waiting for something else.
struct Pipes<F> {
    fut: Pin<F>,
    done: bool,
}

impl<F: std::ops::DerefMut<Target: Future<Output = bool>>> Pipes<F> {
    /// Waits for `until` while driving the pipes; `Err(over_cap)` if they end first.
    async fn alongside<T>(&mut self, until: impl Future<Output = T>) -> Result<T, bool> {
        tokio::pin!(until);
        tokio::select! {
            biased;
            value = &mut until => Ok(value),
            over = self.fut.as_mut(), if !self.done => {
                self.done = true;
                Err(over)
            }
        }
    }

    /// Drives the pipes to their end for at most `limit`; `false` if they are still open.
    async fn drain(&mut self, limit: Duration) -> bool {
        if !self.done && tokio::time::timeout(limit, self.fut.as_mut()).await.is_ok() {
            self.done = true;
        }
        self.done
    }
}

/// Waits for the child to exit, driving its pipes, and ends it when its time runs out, the run
/// stops, or it prints too much. Returns once the leader has exited (unreaped).
async fn supervise<F: std::ops::DerefMut<Target: Future<Output = bool>>>(
    group: &Group,
    pipes: &mut Pipes<F>,
    limits: Limits,
    stop: &mut watch::Receiver<Stop>,
) -> Ending {
    let deadline = limits.timeout.map(|t| tokio::time::Instant::now() + t);
    enum Wake {
        Exited,
        Deadline,
        Stop,
    }
    let wake = loop {
        let waiting = async {
            tokio::select! {
                // An exit first: at a wake-up that finds both (pararun itself was stopped),
                // what the child finished within its time is judged as finished.
                biased;
                _ = group.exited() => Wake::Exited,
                _ = sleep_until(deadline) => Wake::Deadline,
                _ = reached(stop, Stop::Graceful) => Wake::Stop,
            }
        };
        match pipes.alongside(waiting).await {
            Ok(wake) => break wake,
            Err(true) => {
                group.signal(Signal::KILL);
                // A dead child's pipes stay shut; nothing more to drive.
                group.exited().await;
                return Ending::TooMuchOutput;
            }
            Err(false) => continue,
        }
    };
    let ending = match wake {
        Wake::Exited => return Ending::Exited,
        // The timer can be seen before the exit's wake-up is (both came while pararun was
        // stopped, SIGSTOP, and the child ran on): a child that has exited is not overdue. The
        // child ran all the while, so its wall time is its own run time.
        Wake::Deadline if group.has_exited() => return Ending::Exited,
        Wake::Deadline => Ending::TimedOut,
        Wake::Stop => Ending::Stopped,
    };
    // Its output still counts (a child may answer SIGTERM with its last result).
    let terminate = group.terminate(limits.kill_after, stop);
    tokio::pin!(terminate);
    while pipes.alongside(&mut terminate).await.is_err() {}
    ending
}

/// Spawns the job's child and takes charge of its group.
fn start_child(
    job: &Job,
    guard: Option<(Arc<Watchdog>, usize)>,
) -> io::Result<(Group, Option<ChildStdin>, ChildStdout, ChildStderr)> {
    let mut child = command(&job.argv, &job.env, job.stdin.is_some()).spawn()?;
    let stdin = child.stdin.take();
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    Ok((Group::new(child, guard)?, stdin, stdout, stderr))
}

/// A child's command: its own process group, stdout and stderr piped, stdin piped or
/// /dev/null.
pub(crate) fn command(
    argv: &[String],
    env: &[(&'static str, String)],
    pipe_stdin: bool,
) -> tokio::process::Command {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(if pipe_stdin {
            Stdio::piped()
        } else {
            dev_null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    tokio::process::Command::from(cmd)
}

/// A child's stdin when it gets no input: a duplicate of one /dev/null opened for the run, which
/// is cheaper than opening the path again for every child.
fn dev_null() -> Stdio {
    static DEV_NULL: std::sync::OnceLock<Option<std::fs::File>> = std::sync::OnceLock::new();
    DEV_NULL
        .get_or_init(|| std::fs::File::open("/dev/null").ok())
        .as_ref()
        .and_then(|file| file.try_clone().ok())
        .map_or_else(Stdio::null, Stdio::from)
}
