//! Persistent workers (`--persistent`): one long-lived process per slot, fed one item per line
//! on its stdin, answering one JSON line per item on its stdout. [`super::owner`] decides how
//! many items it holds at once, and its protocol in what order they are answered.
//!
//! A worker that exits, times out or gets out of step is gone: its slot's owner
//! ([`super::owner`]) drops it, which kills its group (see [`Group`]), and starts a new one for
//! the items it still has. Its stderr passes through like any child's.

use std::future::Future;
use std::io;
use std::os::fd::AsFd;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::process::{ChildStdin, ChildStdout};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::group::Group;
use super::pipes::{self, AnswerLine, Tail};
use super::{child, Stop, Watchdog, DRAIN};
use crate::report::progress::Progress;

/// One running worker, owned by the slot it serves.
pub struct Worker {
    group: Group,
    /// Request lines for the task that writes them to the worker's stdin; dropping it closes
    /// that stdin once the lines already sent are written.
    stdin: mpsc::UnboundedSender<Vec<u8>>,
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
    /// The worker answered with this result, already parsed as the item's result (so it is
    /// not parsed twice); any key it echoes is still checked against the item's.
    Result(super::answer::Answer),
    /// The worker answered, but more output followed at once: it is out of step.
    Extra(Vec<u8>),
    /// The answer line passed `--max-output` bytes; the worker was killed.
    TooLong(u64),
    /// With `--protocol concurrent`: this item's answer passed `--max-output` bytes (the id at
    /// its start named the item); the rest of the line was dropped unread and the worker keeps
    /// its other items.
    Oversized(u64),
    /// The worker exited before answering.
    Died(io::Result<ExitStatus>),
    /// `--timeout` ran out; the worker was killed.
    TimedOut,
    /// The run is shutting down; the worker was stopped.
    Stopped,
    /// With `--protocol concurrent`: `--timeout` ran out for this item alone; the worker keeps
    /// its other items.
    Expired,
    /// With `--protocol concurrent`: the worker answered this item with an error message;
    /// `true` when it says the item timed out (`"reason": "timeout"`).
    Refused(String, bool),
    /// With `--protocol concurrent`: the worker answered this item with an error whose
    /// `"reason"` is `"throttled"`: the service said to slow down, after `retry_after` if it
    /// gave one. The worker keeps its other items.
    Throttled(String, Option<std::time::Duration>),
    /// The worker is out of step: with `--protocol concurrent` it answered an id it was not
    /// asked (or twice); with the ordered protocol an answer named another item. Nothing shows
    /// which item its answers belong to, so this, the item the answer is taken for, fails.
    OutOfStep(String),
    /// The worker was lost while an older item was in flight: this item was never answered
    /// and goes to a fresh worker, on the same attempt.
    Resend,
}

impl Reply {
    /// Whether the reply's duration is the worker's time on the item: it answered it, or
    /// `--timeout` ran out on it. A worker's allowance of items is measured from these.
    pub fn measures(&self) -> bool {
        matches!(self, Reply::Answer(_) | Reply::Result(_) | Reply::TimedOut)
    }
}

/// What [`Worker::next`] heard.
pub enum Heard {
    /// A line, a line over the cap, EOF or a read error.
    Read(io::Result<AnswerLine>),
    /// The worker exited (answers written before may still wait in the pipe).
    Exited,
    /// The deadline passed.
    TimedOut,
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
        let (stdin, requests) = mpsc::unbounded_channel();
        tokio::spawn(feed(child.stdin.take().expect("stdin is piped"), requests));
        let stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
        let stderr = child.stderr.take().expect("stderr is piped");
        let group = Group::new(child, watchdog.clone().map(|dog| (dog, slot)))?;
        let tail = Arc::new(Mutex::new(Tail::default()));
        let stderr_pump = {
            let (progress, tail) = (progress.clone(), tail.clone());
            tokio::spawn(async move { pipes::pump_stderr(stderr, &progress, &tail, None).await })
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
            std::task::Poll::Ready(Ok(waiting)) if !waiting.is_empty() => Some(shown(waiting)),
            _ => None,
        }
    }

    /// Sends request lines, each ending in a newline, in one hand-over (a refill of many items
    /// is one message and one write). They are written by the task that owns the worker's
    /// stdin, so a worker too busy to read never holds up the reading of its answers.
    pub fn send(&self, lines: Vec<u8>) {
        if lines.is_empty() {
            return;
        }
        // A closed channel means the writer met a broken pipe: the worker is gone, and its
        // exit or EOF says so on the read side.
        let _ = self.stdin.send(lines);
    }

    /// Whether output already waits after the answer just read: with nothing else in flight,
    /// more than one line for one item.
    pub fn buffered(&self) -> bool {
        !self.stdout.buffer().is_empty()
    }

    /// Whether answer bytes wait to be read, in the buffer or in the pipe, asked of the kernel
    /// (`poll`, no wait), not of tokio's readiness: after pararun itself was stopped, a timer
    /// can fire before the reactor has seen what the worker wrote meanwhile.
    pub fn answer_waiting(&self) -> bool {
        use rustix::event::{poll, PollFd, PollFlags};
        if self.buffered() {
            return true;
        }
        let fd = self.stdout.get_ref().as_fd();
        let mut fds = [PollFd::new(&fd, PollFlags::IN)];
        let zero = rustix::event::Timespec::default();
        poll(&mut fds, Some(&zero)).is_ok_and(|n| n > 0) && fds[0].revents().contains(PollFlags::IN)
    }

    /// Takes the next answer line into `line` if a whole one (within `cap` bytes) already
    /// waits in the buffer: a pipelined worker's answers come many to a read, and each needs
    /// no turn of the event loop.
    pub fn buffered_line(&mut self, cap: usize, line: &mut Vec<u8>) -> bool {
        use tokio::io::AsyncBufRead;
        let waiting = self.stdout.buffer();
        let Some(nl) = memchr::memchr(b'\n', waiting) else {
            return false;
        };
        if line.len() + nl > cap {
            // The slow path says what an over-long line is.
            return false;
        }
        line.extend_from_slice(&waiting[..nl]);
        std::pin::Pin::new(&mut self.stdout).consume(nl + 1);
        true
    }

    /// Waits for the next answer line (at most `cap` bytes, gathered in `line`), the worker's
    /// exit, or `deadline`; with `skip`, for the end of the over-long line being dropped
    /// instead, within the bytes it holds (see [`pipes::skip_line`]). Cancel-safe: what was
    /// read stays in `line` for the next call.
    pub async fn next(
        &mut self,
        cap: usize,
        line: &mut Vec<u8>,
        deadline: Option<tokio::time::Instant>,
        skip: Option<&mut u64>,
    ) -> Heard {
        let stdout = &mut self.stdout;
        let read = async move {
            if let Some(budget) = skip {
                pipes::skip_line(stdout, budget, line).await
            } else {
                pipes::read_line_capped(stdout, cap, line).await
            }
        };
        tokio::select! {
            read = read => Heard::Read(read),
            // A worker can exit while something it started still holds its stdout open (a
            // background job): its exit, not an EOF that may never come, ends the wait.
            _ = self.group.exited() => Heard::Exited,
            _ = super::sleep_until(deadline) => Heard::TimedOut,
        }
    }

    /// Drops the rest of an answer line that passed the cap, through its newline.
    pub async fn skip_answer(
        &mut self,
        budget: &mut u64,
        tail: &mut Vec<u8>,
    ) -> io::Result<AnswerLine> {
        pipes::skip_line(&mut self.stdout, budget, tail).await
    }

    /// Reads the next answer line, at most `cap` bytes, into `line`.
    pub async fn read_answer(&mut self, cap: usize, line: &mut Vec<u8>) -> io::Result<AnswerLine> {
        pipes::read_line_capped(&mut self.stdout, cap, line).await
    }

    /// After an EOF, a broken pipe or an exit: the worker is gone (or closed its stdout and
    /// lingers, which it gets `kill_after` to stop doing); its status says why.
    pub async fn lost(
        &mut self,
        kill_after: Duration,
        stop: &mut watch::Receiver<Stop>,
    ) -> io::Result<ExitStatus> {
        let exited = tokio::time::timeout(kill_after, self.group.exited()).await;
        if exited.is_err() {
            self.group.terminate(kill_after, stop).await;
        }
        let status = self.reap().await;
        self.release_pipes();
        status
    }

    /// SIGTERM, then SIGKILL after `kill_after` (a timeout, or the run stopping).
    pub async fn terminate(&self, kill_after: Duration, stop: &mut watch::Receiver<Stop>) {
        self.group.terminate(kill_after, stop).await;
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
    /// [`DRAIN`] to end once it has exited. Returns the start of what it printed on stdout
    /// after its last answer, if anything: output that answers no item.
    pub async fn shutdown(
        self,
        grace: Duration,
        mut stop: watch::Receiver<Stop>,
    ) -> Option<String> {
        use tokio::io::AsyncReadExt;
        let Worker {
            mut group,
            stdin,
            mut stdout,
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
        // A line written just after the last answer may come too late for the answer's own
        // check: it is read here, once the worker has exited.
        let mut rest = Vec::new();
        let mut head = (&mut stdout).take(STRAY_SHOWN as u64);
        let _ = tokio::time::timeout(DRAIN, head.read_to_end(&mut rest)).await;
        (!rest.is_empty()).then(|| shown(&rest))
    }
}

/// How much of a worker's stray output a message shows.
const STRAY_SHOWN: usize = 200;

/// The first line of stray output, at most [`STRAY_SHOWN`] bytes of it, for a message.
fn shown(output: &[u8]) -> String {
    let end = output
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(output.len());
    String::from_utf8_lossy(&output[..end.min(STRAY_SHOWN)]).into_owned()
}

/// Writes request lines to a worker's stdin as they come, flushing whenever none is waiting (a
/// pipeline's requests go out in one write). It ends on a broken pipe, or when the worker's
/// sender is dropped, which closes the stdin: EOF asks the worker to exit.
async fn feed(stdin: ChildStdin, mut requests: mpsc::UnboundedReceiver<Vec<u8>>) {
    let mut stdin = BufWriter::new(stdin);
    while let Some(line) = requests.recv().await {
        if stdin.write_all(&line).await.is_err() {
            return;
        }
        if requests.is_empty() && stdin.flush().await.is_err() {
            return;
        }
    }
}

/// Waits on the worker, which is there whenever items are in flight.
pub async fn next(
    worker: &mut Option<Worker>,
    cap: usize,
    line: &mut Vec<u8>,
    deadline: Option<tokio::time::Instant>,
    skip: Option<&mut u64>,
) -> Heard {
    match worker {
        Some(worker) => worker.next(cap, line, deadline, skip).await,
        None => std::future::pending().await,
    }
}
