//! The scheduler's side of the slots' persistent workers (`--persistent`): a [`Pipeline`] is
//! its handle on the task that owns a slot's worker ([`super::owner`]); it sends that task
//! [`Request`]s, and every such task answers on the one [`Answers`] channel.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::concurrent::Concurrent;
use super::ordered::Ordered;
use super::owner::Owner;
use super::worker::{Reply, Worker};
use super::{Stop, Watchdog};
use crate::config::{Capture, Config, Protocol};
use crate::report::progress::Progress;

/// What a slot's pipeline needs to know, fixed for the run.
pub struct Settings {
    /// The worker's command.
    pub argv: Vec<String>,
    /// The slot the worker serves (its `PARARUN_SLOT`).
    pub slot: usize,
    /// Items in flight at most (`--pipeline`); the ordered protocol allows that many only once
    /// the worker has shown it echoes keys.
    pub depth: usize,
    /// `--timeout`, per item; when its clock starts is the protocol's.
    pub timeout: Option<Duration>,
    /// How long a worker asked to stop gets before SIGKILL.
    pub kill_after: Duration,
    /// `--max-output-bytes`: the longest answer line.
    pub max_output: u64,
    /// Whether an answer is JSON or text.
    pub capture: Capture,
    /// The field an ordered worker's answer echoes the item's key in.
    pub key_field: String,
    /// How requests and answers are matched.
    pub protocol: Protocol,
    /// Where messages about the worker go.
    pub progress: Progress,
    /// The watchdog each worker is registered with.
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
            depth: cfg.launch.pipeline,
            timeout: cfg.faults.timeout,
            kill_after: cfg.faults.kill_after,
            max_output: cfg.results.max_output,
            capture: cfg.results.capture,
            key_field: cfg.items.key_field.clone(),
            protocol: cfg.launch.protocol,
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
    /// The worker's answer, or why there is none.
    pub reply: Reply,
    /// The last lines of the worker's stderr.
    pub stderr_tail: String,
    /// From the moment the item's `--timeout` clock started.
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
        let task = match settings.protocol {
            Protocol::Ordered => tokio::spawn(Owner::new(settings, Ordered::new(), rx, stop).run()),
            Protocol::Concurrent => {
                tokio::spawn(Owner::new(settings, Concurrent::default(), rx, stop).run())
            }
        };
        Pipeline { requests, task }
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
