//! Pipelined persistent workers (`--pipeline K`): one long-lived task per slot owns the slot's
//! worker, keeps up to K items in flight on it, and hands each item its answer.
//!
//! The worker reads one line and answers one line, in order, so the oldest unanswered item
//! owns the next answer. Each answer's echoed key is checked as it is read, before the next
//! answer is handed out, so an answer is never taken for an item it does not name:
//! - an answer naming another key goes to its item (which fails, out of step) and the worker
//!   is replaced; the items behind it are resent to the new worker on the same attempt;
//! - only a worker seen to echo keys gets more than one item at a time; one that answers
//!   without the key (or stops echoing it with others in flight) is fed one at a time, as a
//!   worker without a pipeline is;
//! - a worker that dies, times out or answers past `--max-output-bytes` fails its oldest item
//!   (the one it owed an answer) and the rest are resent; each such loss costs one attempt of
//!   one item, so a worker that always dies cannot resend items for ever.
//!
//! `--timeout` is per item from the moment it becomes its worker's oldest unanswered item.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::pipes::Line;
use super::worker::{next, Heard, Reply, Worker};
use super::{reached, Stop, Watchdog, DRAIN};
use crate::config::{Capture, Config, Protocol};
use crate::report::escape;
use crate::report::progress::Progress;
use crate::result::{parse_echo, Answer, Echo, Parsed};

/// What a slot's pipeline needs to know, fixed for the run.
pub struct Settings {
    /// The worker's command.
    pub argv: Vec<String>,
    pub slot: usize,
    /// Items in flight at most, once the worker has shown it echoes keys.
    pub depth: usize,
    pub timeout: Option<Duration>,
    pub kill_after: Duration,
    pub max_output: u64,
    pub capture: Capture,
    pub key_field: String,
    pub protocol: Protocol,
    pub progress: Progress,
    pub watchdog: Option<Arc<Watchdog>>,
}

impl Settings {
    /// The settings of `slot`'s pipeline under `cfg`.
    pub fn new(
        cfg: &Config,
        argv: Vec<String>,
        slot: usize,
        progress: Progress,
        watchdog: Option<Arc<Watchdog>>,
    ) -> Settings {
        Settings {
            argv,
            slot,
            depth: cfg.pipeline,
            timeout: cfg.timeout,
            kill_after: cfg.kill_after,
            max_output: cfg.max_output,
            capture: cfg.capture,
            key_field: cfg.key_field.clone(),
            protocol: cfg.protocol,
            progress,
            watchdog,
        }
    }
}

/// One item for a slot's worker.
pub struct Request {
    /// The request line, without its newline.
    pub line: Vec<u8>,
    /// The item's key, which its answer may echo.
    pub key: Value,
    /// Where the answer goes; an `Err` if no worker could be started.
    pub answer: AnswerTo,
}

/// Every pipeline's answers go to the scheduler on one channel, each tagged with the id the
/// scheduler gave its request: no task and no channel per item.
pub type Answers = mpsc::UnboundedSender<(u64, io::Result<Answered>)>;

/// Where one request's answer goes. It answers exactly once: a request dropped unanswered (a
/// pipeline torn down with the run) answers [`Reply::Stopped`], so the scheduler never waits
/// for an item nobody holds.
pub struct AnswerTo {
    id: u64,
    to: Option<Answers>,
}

impl AnswerTo {
    /// The answer to request `id`, sent on `to`.
    pub fn new(id: u64, to: Answers) -> AnswerTo {
        AnswerTo { id, to: Some(to) }
    }

    /// Hands the request its answer.
    pub fn send(mut self, answered: io::Result<Answered>) {
        if let Some(to) = self.to.take() {
            // The receiver is gone only if the run is being torn down.
            let _ = to.send((self.id, answered));
        }
    }
}

impl Drop for AnswerTo {
    fn drop(&mut self) {
        if let Some(to) = self.to.take() {
            let stopped = Answered {
                reply: Reply::Stopped,
                stderr_tail: String::new(),
                duration: Duration::ZERO,
            };
            let _ = to.send((self.id, Ok(stopped)));
        }
    }
}

/// What one item's request came to.
pub struct Answered {
    pub reply: Reply,
    /// The last lines of the worker's stderr.
    pub stderr_tail: String,
    /// From the moment the item became its worker's oldest unanswered one.
    pub duration: Duration,
}

/// The scheduler's handle on a slot's pipeline task.
pub struct Pipeline {
    requests: mpsc::UnboundedSender<Request>,
    task: JoinHandle<()>,
}

impl Pipeline {
    /// Starts the slot's task; its worker starts with the first item.
    pub fn start(settings: Settings, stop: watch::Receiver<Stop>) -> Pipeline {
        let (requests, rx) = mpsc::unbounded_channel();
        if settings.protocol == Protocol::Concurrent {
            let task = tokio::spawn(super::concurrent::run(settings, rx, stop));
            return Pipeline { requests, task };
        }
        let owner = Owner {
            s: settings,
            rx,
            open: true,
            stop,
            stopped: false,
            worker: None,
            waiting: VecDeque::new(),
            flight: VecDeque::new(),
            head_since: Instant::now(),
            echoes: None,
            line: Vec::new(),
        };
        Pipeline {
            requests,
            task: tokio::spawn(owner.run()),
        }
    }

    /// Queues an item; the scheduler sends a slot no more than its depth at once.
    pub fn send(&self, request: Request) {
        // The task ends only once closed; were it gone, the dropped answer reads as stopped.
        let _ = self.requests.send(request);
    }

    /// Ends the pipeline once its items are answered, then its worker (as at the end of a run).
    pub async fn close(self) {
        drop(self.requests);
        if let Err(e) = self.task.await {
            std::panic::resume_unwind(e.into_panic());
        }
    }
}

/// The task that owns a slot's worker.
struct Owner {
    s: Settings,
    rx: mpsc::UnboundedReceiver<Request>,
    /// Whether the scheduler may still send items.
    open: bool,
    stop: watch::Receiver<Stop>,
    stopped: bool,
    worker: Option<Worker>,
    /// Items received and not yet sent to the worker.
    waiting: VecDeque<Request>,
    /// Items sent and not yet answered, oldest first.
    flight: VecDeque<Request>,
    /// When the oldest item in flight became the oldest: its `--timeout` clock.
    head_since: Instant,
    /// Whether this slot's worker echoes keys (unknown until its first answer).
    echoes: Option<bool>,
    /// The answer being read.
    line: Vec<u8>,
}

enum Event {
    Request(Request),
    Closed,
    Stopped,
    Heard(Heard),
}

impl Owner {
    async fn run(mut self) {
        loop {
            self.fill();
            if !self.open && self.flight.is_empty() && self.waiting.is_empty() {
                break;
            }
            let deadline = self.s.timeout.map(|t| (self.head_since + t).into());
            let cap = usize::try_from(self.s.max_output).unwrap_or(usize::MAX);
            let listen = !self.flight.is_empty();
            let event = tokio::select! {
                biased;
                _ = reached(&mut self.stop, Stop::Graceful), if !self.stopped => Event::Stopped,
                heard = next(&mut self.worker, cap, &mut self.line, deadline), if listen => {
                    Event::Heard(heard)
                }
                request = self.rx.recv(), if self.open => match request {
                    Some(request) => Event::Request(request),
                    None => Event::Closed,
                },
            };
            self.handle(event).await;
        }
        if let Some(worker) = self.worker.take() {
            worker.shutdown(self.s.kill_after, self.stop.clone()).await;
        }
    }

    async fn handle(&mut self, event: Event) {
        match event {
            Event::Request(request) => {
                // Requests come in bursts: take all that wait, not one per turn.
                self.waiting.push_back(request);
                while let Ok(request) = self.rx.try_recv() {
                    self.waiting.push_back(request);
                }
            }
            Event::Closed => self.open = false,
            Event::Stopped => self.stop_now().await,
            Event::Heard(Heard::Read(Ok(Line::Whole))) => self.answered_all(),
            Event::Heard(Heard::Read(Ok(Line::OverCap))) => {
                self.line.clear();
                self.fail_head(Reply::TooLong(self.s.max_output));
            }
            Event::Heard(Heard::Read(_)) => self.lost().await,
            Event::Heard(Heard::Exited) => {
                self.drain().await;
                if self.flight.is_empty() {
                    // It exited with nothing owed; the next item starts a new one.
                    self.worker = None;
                } else {
                    self.lost().await;
                }
            }
            Event::Heard(Heard::TimedOut) => {
                if let Some(worker) = &self.worker {
                    worker.terminate(self.s.kill_after, &mut self.stop).await;
                }
                self.fail_head(Reply::TimedOut);
            }
        }
    }

    /// Sends waiting items to the worker while fewer than its depth are in flight.
    fn fill(&mut self) {
        let depth = self.depth();
        // A pipelined worker is refilled in batches, once half its window is free: the waiting
        // items then go out in one write and the worker wakes once for them, instead of
        // pararun and the worker waking each other for every answer (100k context switches
        // on 100k items). An ordered worker takes items one by one anyway, so holding half
        // its window ahead costs it nothing.
        if !self.stopped && self.flight.len() > depth / 2 {
            return;
        }
        let mut lines = Vec::new();
        while self.flight.len() < depth {
            let Some(request) = self.waiting.pop_front() else {
                break;
            };
            if self.stopped {
                self.reply(request, Reply::Stopped);
                continue;
            }
            // A worker is replaced only with nothing in flight, so before any line is queued.
            if let Err(e) = self.ready() {
                request.answer.send(Err(e));
                continue;
            }
            if self.flight.is_empty() {
                self.head_since = Instant::now();
            }
            lines.extend_from_slice(&request.line);
            lines.push(b'\n');
            self.flight.push_back(request);
        }
        if let Some(worker) = &self.worker {
            worker.send(lines);
        }
    }

    fn depth(&self) -> usize {
        match self.echoes {
            Some(true) => self.s.depth,
            _ => 1,
        }
    }

    /// Makes sure there is a worker to send to: with nothing in flight, one that exited or
    /// printed output that answers no item is replaced first.
    fn ready(&mut self) -> io::Result<()> {
        if self.flight.is_empty() {
            if let Some(mut worker) = self.worker.take().filter(Worker::alive) {
                match worker.stray_output() {
                    None => self.worker = Some(worker),
                    Some(stray) => self.s.progress.line(
                        format!(
                            "pararun: the worker in slot {} printed output that answers no item \
                             ({}); restarting it",
                            self.s.slot,
                            escape(&stray)
                        )
                        .as_bytes(),
                    ),
                }
            }
        }
        if self.worker.is_none() {
            let (argv, slot) = (&self.s.argv, self.s.slot);
            let watchdog = self.s.watchdog.clone();
            self.worker = Some(Worker::spawn(argv, slot, &self.s.progress, watchdog)?);
        }
        Ok(())
    }

    /// The oldest item's answer line has been read: it goes to that item if it is in step.
    fn answered(&mut self) {
        let line = std::mem::take(&mut self.line);
        let head = self
            .flight
            .pop_front()
            .expect("an answer is read only with items in flight");
        let alone = self.flight.is_empty();
        let Parsed {
            echo,
            loose,
            answer,
        } = parse_echo(self.s.capture, &self.s.key_field, &head.key, line);
        if let Some(other) = loose.filter(|echoed| self.flight.iter().any(|r| &r.key == echoed)) {
            // Loosely the head's key, but exactly the key of an item behind it (0.1 and
            // 0.1000000000000000055511151231257827, 5 and "5"): a worker out of step.
            let why = format!(
                "the worker answered for {:?} = {}, the key of another item in flight",
                self.s.key_field,
                escape(&other.to_string())
            );
            self.reply(head, Reply::OutOfStep(why));
            self.replace_worker();
            return;
        }
        if echo == Echo::Unnamed && !alone {
            // Nothing shows which item this answers: it and the items behind it go to a new
            // worker, fed one at a time from now on.
            self.echoes = Some(false);
            self.flight.push_front(head);
            self.replace_worker();
            return;
        }
        if self.echoes.is_none() && echo != Echo::Unusable {
            self.echoes = Some(echo == Echo::Same);
        }
        let extra = alone && self.worker.as_ref().is_some_and(Worker::buffered);
        let line =
            |answer: Result<Answer, Vec<u8>>| answer.map_or_else(|line| line, Answer::into_line);
        match echo {
            Echo::Other | Echo::Unusable => {
                self.reply(head, Reply::Answer(line(answer)));
                self.replace_worker();
            }
            _ if extra => {
                self.reply(head, Reply::Extra(line(answer)));
                self.replace_worker();
            }
            _ => {
                let reply = match answer {
                    Ok(answer) => Reply::Result(answer),
                    Err(line) => Reply::Answer(line),
                };
                self.reply(head, reply);
                self.head_since = Instant::now();
            }
        }
    }

    /// The answer just read, then every further one that came in the same read, each without
    /// a turn of the select.
    fn answered_all(&mut self) {
        self.answered();
        let cap = usize::try_from(self.s.max_output).unwrap_or(usize::MAX);
        while !self.flight.is_empty() {
            let more = (self.worker.as_mut()).is_some_and(|w| w.buffered_line(cap, &mut self.line));
            if !more {
                return;
            }
            self.answered();
        }
    }

    /// After the worker exited: answers it wrote before are still in the pipe.
    async fn drain(&mut self) {
        let cap = usize::try_from(self.s.max_output).unwrap_or(usize::MAX);
        while !self.flight.is_empty() {
            let Some(worker) = &mut self.worker else {
                return;
            };
            let read = worker.read_answer(cap, &mut self.line);
            match tokio::time::timeout(DRAIN, read).await {
                Ok(Ok(Line::Whole)) => self.answered(),
                _ => return,
            }
        }
    }

    /// The worker is gone with items in flight: the oldest fails with its exit status.
    async fn lost(&mut self) {
        let Some(worker) = &mut self.worker else {
            return;
        };
        let status = worker.lost(self.s.kill_after, &mut self.stop).await;
        self.fail_head(Reply::Died(status));
    }

    /// The oldest item fails with `reply`; the worker is replaced and the rest resent.
    fn fail_head(&mut self, reply: Reply) {
        if let Some(head) = self.flight.pop_front() {
            self.reply(head, reply);
        }
        self.replace_worker();
    }

    /// Drops the worker (which kills its group); the items it still owed go back to the
    /// scheduler, to be sent again on the same attempt.
    fn replace_worker(&mut self) {
        self.line.clear();
        for request in std::mem::take(&mut self.flight) {
            self.reply(request, Reply::Resend);
        }
        self.worker = None;
    }

    /// Ctrl-C or SIGTERM: what is in flight is unfinished, and runs again next time.
    async fn stop_now(&mut self) {
        self.stopped = true;
        if self.flight.is_empty() {
            return;
        }
        if let Some(worker) = &self.worker {
            worker.terminate(self.s.kill_after, &mut self.stop).await;
        }
        self.worker = None;
        for request in std::mem::take(&mut self.flight) {
            self.reply(request, Reply::Stopped);
        }
    }

    fn reply(&self, request: Request, reply: Reply) {
        answer(self.worker.as_ref(), request, self.head_since, reply);
    }
}

/// Hands an item its reply, with the worker's stderr tail and the time since `since` (when its
/// clock started). Both protocols answer through it.
pub(super) fn answer(worker: Option<&Worker>, request: Request, since: Instant, reply: Reply) {
    // A parsed result is almost always a record: its stderr tail, a copy per item, is only
    // worth making for what may well fail.
    let stderr_tail = match (&reply, worker) {
        (Reply::Result(_), _) | (_, None) => String::new(),
        (_, Some(worker)) => worker.stderr_tail(),
    };
    let answered = Answered {
        reply,
        stderr_tail,
        duration: since.elapsed(),
    };
    request.answer.send(Ok(answered));
}
