//! Persistent workers (`--persistent`): one long-lived process per slot, fed one item per line
//! on its stdin, answering one JSON line per item on its stdout.
//!
//! A worker that exits, or whose item times out, is gone: the runner drops it and starts a new
//! one for the next item in that slot. Its stderr passes through like any child's.

use std::future::Future;
use std::io;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::exec::{self, reached, signal_group, Stop, Tail, Watchdog};
use crate::progress::Progress;

/// One running worker, owned by the slot it serves.
pub struct Worker {
    child: Child,
    pid: Option<i32>,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    tail: Arc<Mutex<Tail>>,
    stderr_pump: JoinHandle<()>,
}

/// What one request came to.
pub enum Reply {
    /// The worker answered this line (without its newline); it can take the next item.
    Answer(Vec<u8>),
    /// The worker answered, but more output followed at once: it is out of step.
    Extra(Vec<u8>),
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
        watchdog: Option<&Watchdog>,
    ) -> io::Result<Worker> {
        let mut env = vec![("PARARUN_SLOT", slot.to_string())];
        env.extend(watchdog.map(Watchdog::marker));
        let mut child = exec::command(argv, &env, true).spawn()?;
        let pid = child.id().map(|p| p as i32);
        if let (Some(dog), Some(pid)) = (watchdog, pid) {
            dog.set(slot, pid);
        }
        let stdin = child.stdin.take().expect("stdin is piped");
        let stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
        let stderr = child.stderr.take().expect("stderr is piped");
        let tail = Arc::new(Mutex::new(Tail::default()));
        let stderr_pump = {
            let (progress, tail) = (progress.clone(), tail.clone());
            tokio::spawn(async move { exec::pump_stderr(stderr, &progress, &tail).await })
        };
        Ok(Worker {
            child,
            pid,
            stdin,
            stdout,
            tail,
            stderr_pump,
        })
    }

    /// Whether the worker is still running (it may have exited between two items).
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The last lines of the worker's stderr.
    pub fn stderr_tail(&self) -> String {
        exec::lock(&self.tail).text()
    }

    /// Output the worker printed after its last answer, which belongs to no item: a worker out
    /// of step with the one-line protocol, to be replaced before it gets another item.
    pub fn stray_output(&mut self) -> Option<String> {
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

    /// Sends one request line and waits for the answer line. After anything but
    /// [`Reply::Answer`] the worker is dead and must be dropped.
    pub async fn call(
        &mut self,
        request: &[u8],
        timeout: Option<Duration>,
        kill_after: Duration,
        stop: &mut watch::Receiver<Stop>,
    ) -> Reply {
        enum Event {
            Read(io::Result<Vec<u8>>),
            TimedOut,
            Stopped,
        }
        let deadline = timeout.map(|t| tokio::time::Instant::from_std(Instant::now() + t));
        let (stdin, stdout) = (&mut self.stdin, &mut self.stdout);
        let exchange = async move {
            stdin.write_all(request).await?;
            stdin.write_all(b"\n").await?;
            stdin.flush().await?;
            let mut line = Vec::new();
            stdout.read_until(b'\n', &mut line).await?;
            Ok(line)
        };
        let event = tokio::select! {
            read = exchange => Event::Read(read),
            _ = exec::sleep_until(deadline) => Event::TimedOut,
            _ = reached(stop, Stop::Graceful) => Event::Stopped,
        };
        match event {
            Event::Read(Ok(mut line)) if line.ends_with(b"\n") => {
                line.pop();
                if self.stdout.buffer().is_empty() {
                    Reply::Answer(line)
                } else {
                    Reply::Extra(line)
                }
            }
            // EOF or a broken pipe: the worker is exiting (or closed its stdout and lingers,
            // which it gets `kill_after` to stop doing); its status says why.
            Event::Read(_) => {
                if tokio::time::timeout(kill_after, self.child.wait())
                    .await
                    .is_err()
                {
                    self.end(kill_after, stop).await;
                }
                Reply::Died(self.child.wait().await)
            }
            Event::TimedOut => {
                self.end(kill_after, stop).await;
                Reply::TimedOut
            }
            Event::Stopped => {
                self.end(kill_after, stop).await;
                Reply::Stopped
            }
        }
    }

    /// SIGTERM, then SIGKILL after the grace (or at once when the run escalates to a kill).
    async fn end(&mut self, grace: Duration, stop: &mut watch::Receiver<Stop>) {
        let wait = self.child.wait();
        tokio::pin!(wait);
        exec::terminate(self.pid, &mut wait, grace, stop).await.ok();
    }

    /// Kills a worker that is out of step or already dead (its whole group, at once).
    pub fn kill(self) {
        signal_group(self.pid, libc::SIGKILL);
    }

    /// Ends an idle worker at the end of the run: EOF on its stdin asks it to exit; it gets
    /// `grace` to do so before SIGTERM and, after another `grace`, SIGKILL.
    pub async fn shutdown(self, grace: Duration, mut stop: watch::Receiver<Stop>) {
        let Worker {
            mut child,
            pid,
            stdin,
            stderr_pump,
            ..
        } = self;
        drop(stdin);
        if *stop.borrow() == Stop::Kill {
            signal_group(pid, libc::SIGKILL);
        }
        if tokio::time::timeout(grace, child.wait()).await.is_err() {
            let wait = child.wait();
            tokio::pin!(wait);
            exec::terminate(pid, &mut wait, grace, &mut stop).await.ok();
        }
        // Anything the worker left behind in its group goes too, and with it the last holders
        // of its stderr pipe.
        signal_group(pid, libc::SIGKILL);
        stderr_pump.await.ok();
    }
}
