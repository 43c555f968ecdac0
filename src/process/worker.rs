//! Persistent workers (`--persistent`): one long-lived process per slot, fed one item per line
//! on its stdin, answering one JSON line per item on its stdout.
//!
//! A worker that exits, or whose item times out, is gone: the runner drops it (which kills its
//! group, see [`Group`]) and starts a new one for the next item in that slot. Its stderr passes
//! through like any child's.

use std::future::Future;
use std::io;
use std::os::fd::AsFd;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::process::{ChildStdin, ChildStdout};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::group::Group;
use super::pipes::{self, Line, Tail};
use super::{child, reached, Stop, Watchdog, DRAIN};
use crate::report::progress::Progress;

/// One running worker, owned by the slot it serves.
pub struct Worker {
    group: Group,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    tail: Arc<Mutex<Tail>>,
    stderr_pump: JoinHandle<()>,
    slot: usize,
    watchdog: Option<Arc<Watchdog>>,
}

/// What one request came to.
pub enum Reply {
    /// The worker answered this line (without its newline); it can take the next item.
    Answer(Vec<u8>),
    /// The worker answered, but more output followed at once: it is out of step.
    Extra(Vec<u8>),
    /// The answer line passed `--max-output` bytes; the worker was killed.
    TooLong(u64),
    /// The worker exited before answering.
    Died(io::Result<ExitStatus>),
    /// `--timeout` ran out; the worker was killed.
    TimedOut,
    /// The run is shutting down; the worker was stopped.
    Stopped,
}

impl Worker {
    /// Starts `argv` as the worker of `slot`, with `PARARUN_SLOT` set, registered with the
    /// watchdog.
    pub fn spawn(
        argv: &[String],
        slot: usize,
        progress: &Progress,
        watchdog: Option<Arc<Watchdog>>,
    ) -> io::Result<Worker> {
        let mut env = vec![("PARARUN_SLOT", slot.to_string())];
        env.extend(watchdog.as_ref().map(|dog| dog.marker(slot)));
        let mut child = child::command(argv, &env, true).spawn()?;
        let stdin = child.stdin.take().expect("stdin is piped");
        let stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
        let stderr = child.stderr.take().expect("stderr is piped");
        let group = Group::new(child, watchdog.clone().map(|dog| (dog, slot)))?;
        let tail = Arc::new(Mutex::new(Tail::default()));
        let stderr_pump = {
            let (progress, tail) = (progress.clone(), tail.clone());
            tokio::spawn(async move { pipes::pump_stderr(stderr, &progress, &tail).await })
        };
        Ok(Worker {
            group,
            stdin,
            stdout,
            tail,
            stderr_pump,
            slot,
            watchdog,
        })
    }

    /// Whether the worker is still running (it may have exited between two items).
    pub fn alive(&self) -> bool {
        !self.group.has_exited()
    }

    /// The last lines of the worker's stderr.
    pub fn stderr_tail(&self) -> String {
        pipes::lock(&self.tail).text()
    }

    /// Output the worker printed after its last answer, which belongs to no item: a worker out
    /// of step with the one-line protocol, to be replaced before it gets another item.
    pub fn stray_output(&mut self) -> Option<String> {
        use tokio::io::AsyncBufReadExt;
        // One poll without waiting: a zero timeout would go through the timer wheel and cost
        // a millisecond per item.
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let poll = std::pin::pin!(self.stdout.fill_buf()).poll(&mut cx);
        match poll {
            std::task::Poll::Ready(Ok(waiting)) if !waiting.is_empty() => {
                let end = waiting
                    .iter()
                    .position(|&b| b == b'\n')
                    .unwrap_or(waiting.len());
                Some(String::from_utf8_lossy(&waiting[..end.min(200)]).into_owned())
            }
            _ => None,
        }
    }

    /// Sends one request line and waits for the answer line, at most `max_output` bytes.
    /// After anything but [`Reply::Answer`] the worker is dead or doomed and must be dropped.
    pub async fn call(
        &mut self,
        request: &[u8],
        timeout: Option<Duration>,
        kill_after: Duration,
        max_output: u64,
        stop: &mut watch::Receiver<Stop>,
    ) -> Reply {
        enum Event {
            Read(io::Result<Line>),
            Exited,
            TimedOut,
            Stopped,
        }
        let deadline = timeout.map(|t| tokio::time::Instant::from_std(Instant::now() + t));
        let cap = usize::try_from(max_output).unwrap_or(usize::MAX);
        let mut line = Vec::new();
        let event = {
            let (stdin, stdout, group) = (&mut self.stdin, &mut self.stdout, &self.group);
            let exchange = async {
                stdin.write_all(request).await?;
                stdin.write_all(b"\n").await?;
                stdin.flush().await?;
                pipes::read_line_capped(stdout, cap, &mut line).await
            };
            tokio::pin!(exchange);
            let mut event = tokio::select! {
                read = &mut exchange => Event::Read(read),
                // A worker can exit while something it started still holds its stdout open (a
                // background job): its exit, not an EOF that may never come, ends the wait.
                _ = group.exited() => Event::Exited,
                _ = super::sleep_until(deadline) => Event::TimedOut,
                _ = reached(stop, Stop::Graceful) => Event::Stopped,
            };
            if let Event::Exited = event {
                // An answer written just before the exit is still in the pipe.
                if let Ok(read) = tokio::time::timeout(DRAIN, &mut exchange).await {
                    event = Event::Read(read);
                }
            }
            event
        };
        match event {
            Event::Read(Ok(Line::Whole)) => {
                if self.stdout.buffer().is_empty() {
                    Reply::Answer(line)
                } else {
                    Reply::Extra(line)
                }
            }
            Event::Read(Ok(Line::OverCap)) => Reply::TooLong(max_output),
            // EOF, a broken pipe, or an exit: the worker is gone (or closed its stdout and
            // lingers, which it gets `kill_after` to stop doing); its status says why.
            Event::Read(_) | Event::Exited => {
                let exited = tokio::time::timeout(kill_after, self.group.exited()).await;
                if exited.is_err() {
                    self.group.terminate(kill_after, stop).await;
                }
                let status = self.reap().await;
                self.release_pipes();
                Reply::Died(status)
            }
            Event::TimedOut => {
                self.group.terminate(kill_after, stop).await;
                Reply::TimedOut
            }
            Event::Stopped => {
                self.group.terminate(kill_after, stop).await;
                Reply::Stopped
            }
        }
    }

    /// After the worker died: whatever still holds its pipes (a descendant that left the
    /// group) is killed, so that nothing it started outlives it.
    fn release_pipes(&self) {
        if let Some(dog) = &self.watchdog {
            dog.sweep_slot(self.slot);
        }
        let inode = super::holders::pipe_inode(self.stdout.get_ref().as_fd());
        super::holders::kill_holders(&inode.into_iter().collect::<Vec<_>>());
    }

    /// Reaps the exited leader (and kills what it left in its group).
    async fn reap(&mut self) -> io::Result<ExitStatus> {
        self.group.reap().await
    }

    /// Ends an idle worker at the end of the run: EOF on its stdin asks it to exit; it gets
    /// `grace` to do so before SIGTERM and, after another `grace`, SIGKILL. Its stderr gets
    /// [`DRAIN`] to end once it has exited.
    pub async fn shutdown(self, grace: Duration, mut stop: watch::Receiver<Stop>) {
        let Worker {
            mut group,
            stdin,
            stderr_pump,
            slot,
            watchdog,
            ..
        } = self;
        drop(stdin);
        if *stop.borrow() == Stop::Kill {
            group.signal(rustix::process::Signal::KILL);
        }
        if tokio::time::timeout(grace, group.exited()).await.is_err() {
            group.terminate(grace, &mut stop).await;
        }
        // Anything the worker left behind in its group goes too, and with it the last holders
        // of its stderr pipe.
        let _ = group.reap().await;
        let pump = stderr_pump.abort_handle();
        if tokio::time::timeout(DRAIN, stderr_pump).await.is_err() {
            if let Some(dog) = &watchdog {
                dog.sweep_slot(slot);
            }
            pump.abort();
        }
    }
}
