//! Launch: turning a prepared job into a running child (a task of its own) or a request to the
//! slot's persistent worker, and bringing each attempt back when it ends. It owns everything
//! that runs: the tasks, the pipelines and the items on them, the watchdog's
//! handle and the channel that tells running items to stop.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::io;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::signals;
use super::wait::OrdinalHasher;
use crate::config::Config;
use crate::input::Item;
use crate::job::{self, Launch};
use crate::process::pipeline::{AnswerTo, Answered, Answers, Pipeline, Request, Settings};
use crate::process::{self, Finished, Job, Limits, Stop, Watchdog};
use crate::report::progress::Progress;
use crate::report::Failure;
use crate::template::Template;

/// Starts attempts and collects their ends.
pub(super) struct Launcher<'a> {
    cfg: &'a Config,
    template: Template,
    progress: Progress,
    /// The per-item children running, a task each.
    tasks: JoinSet<Ended>,
    /// With `--persistent`, each slot's pipeline, which owns its worker (index: slot; grown as
    /// slots are first used).
    pipelines: Vec<Option<Pipeline>>,
    /// Items sent to a worker and not answered yet, by ordinal.
    on_workers: HashMap<u64, Started, BuildHasherDefault<OrdinalHasher>>,
    /// Where every pipeline sends its answers, tagged with the item's ordinal.
    answers_tx: Answers,
    answers: mpsc::UnboundedReceiver<(u64, io::Result<Answered>)>,
    watchdog: Option<Arc<Watchdog>>,
    /// How hard running items are being stopped.
    stop_tx: watch::Sender<Stop>,
}

/// An attempt on its way: which item, in which slot.
pub(super) struct Started {
    ordinal: u64,
    slot: usize,
    item: Item,
    attempt: u32,
}

impl Started {
    pub(super) fn new(ordinal: u64, slot: usize, item: Item, attempt: u32) -> Started {
        Started {
            ordinal,
            slot,
            item,
            attempt,
        }
    }

    fn ended(self, program: String, result: Attempt) -> Ended {
        Ended {
            ordinal: self.ordinal,
            slot: self.slot,
            item: self.item,
            attempt: self.attempt,
            program,
            result,
        }
    }
}

/// A finished attempt, as launch hands it back to the loop.
pub(super) struct Ended {
    pub(super) ordinal: u64,
    pub(super) slot: usize,
    pub(super) item: Item,
    pub(super) attempt: u32,
    /// The program, named in a message if it could not start.
    pub(super) program: String,
    pub(super) result: Attempt,
}

/// What an attempt brings back.
pub(super) enum Attempt {
    /// A per-item child ended (or could not start).
    Process(io::Result<Finished>),
    /// A persistent worker replied (or could not start).
    Worker(io::Result<Box<Answered>>),
}

impl Ended {
    /// How long the worker took over the item, if it answered in a way that measures it.
    pub(super) fn took(&self) -> Option<std::time::Duration> {
        match &self.result {
            Attempt::Worker(Ok(w)) if w.reply.measures() => Some(w.duration),
            _ => None,
        }
    }
}

/// What the wait for an attempt's end brought.
enum Landed {
    Answer(u64, io::Result<Answered>),
    Task(Ended),
}

impl<'a> Launcher<'a> {
    pub(super) fn new(
        cfg: &'a Config,
        template: Template,
        progress: Progress,
        watchdog: Option<Watchdog>,
    ) -> Launcher<'a> {
        let (answers_tx, answers) = mpsc::unbounded_channel();
        Launcher {
            cfg,
            template,
            progress,
            tasks: JoinSet::new(),
            pipelines: Vec::new(),
            on_workers: HashMap::default(),
            answers_tx,
            answers,
            watchdog: watchdog.map(Arc::new),
            stop_tx: watch::channel(Stop::Run).0,
        }
    }

    /// What runs for `item` in `slot`, as [`job::prepare`] decides.
    pub(super) fn prepare(
        &self,
        item: &Item,
        slot: usize,
        attempt: u32,
    ) -> Result<Launch, Failure> {
        // A worker gets its marker when it starts, not with each item.
        let marker = (self.watchdog.as_ref())
            .filter(|_| !self.cfg.launch.persistent)
            .map(|dog| dog.marker(slot));
        job::prepare(self.cfg, &self.template, item, slot, attempt, marker)
    }

    /// Starts the attempt: a child of its own, or a request to the slot's persistent worker.
    pub(super) fn launch(&mut self, started: Started, launch: Launch) {
        match launch {
            Launch::Process(job) => self.start_process(started, job),
            Launch::Worker { request } => self.start_on_worker(started, request),
        }
    }

    /// Runs a child of its own for the attempt.
    fn start_process(&mut self, started: Started, job: Job) {
        let limits = Limits {
            timeout: self.cfg.faults.timeout,
            kill_after: self.cfg.faults.kill_after,
            max_output: self.cfg.results.max_output,
        };
        let stop = self.stop_tx.subscribe();
        let progress = self.progress.clone();
        let program = job.argv[0].clone();
        let guard = self.watchdog.clone().map(|dog| (dog, started.slot));
        self.tasks.spawn(async move {
            let ran = process::run(job, limits, stop, &progress, guard).await;
            started.ended(program, Attempt::Process(ran))
        });
    }

    /// Queues the request on the slot's pipeline, which starts the slot's worker if there is
    /// none; the answer comes back on the answer channel.
    fn start_on_worker(&mut self, started: Started, request: Vec<u8>) {
        let slot = started.slot;
        // Grown as slots are first used, like the seats: memory follows the workers started.
        if self.pipelines.len() <= slot {
            self.pipelines.resize_with(slot + 1, || None);
        }
        let pipeline = self.pipelines[slot].get_or_insert_with(|| {
            let settings = Settings::new(
                self.cfg,
                job::worker_argv(&self.template, slot),
                slot,
                self.progress.clone(),
                self.watchdog.clone(),
            );
            Pipeline::start(settings, self.stop_tx.subscribe())
        });
        pipeline.send(Request {
            line: request,
            key: started.item.key.value.clone(),
            answer: AnswerTo::new(started.ordinal, self.answers_tx.clone()),
        });
        // One attempt of an item at a time, so its ordinal names the request.
        self.on_workers.insert(started.ordinal, started);
    }

    /// Whether nothing runs: no child, no item on a worker.
    pub(super) fn idle(&self) -> bool {
        self.tasks.is_empty() && self.on_workers.is_empty()
    }

    /// The next attempt to end: a worker's answer first, then a child's task. Waits for ever
    /// while nothing runs.
    pub(super) async fn ended(&mut self) -> Ended {
        let on_workers = !self.on_workers.is_empty();
        let tasks = !self.tasks.is_empty();
        let landed = tokio::select! {
            biased;
            Some((id, answered)) = self.answers.recv(), if on_workers => {
                Landed::Answer(id, answered)
            }
            Some(joined) = self.tasks.join_next(), if tasks => match joined {
                Ok(ended) => Landed::Task(ended),
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            },
            else => std::future::pending().await,
        };
        match landed {
            Landed::Answer(id, answered) => self.answered(id, answered),
            Landed::Task(ended) => ended,
        }
    }

    /// An answer that is already in, without waiting.
    pub(super) fn ready(&mut self) -> Option<Ended> {
        let (id, answered) = self.answers.try_recv().ok()?;
        Some(self.answered(id, answered))
    }

    /// A worker's answer to the request `id` (the item's ordinal).
    fn answered(&mut self, id: u64, result: io::Result<Answered>) -> Ended {
        let Some(started) = self.on_workers.remove(&id) else {
            unreachable!("every request is answered once")
        };
        // The worker's program names it in a message only if it could not start.
        let program = match &result {
            Err(_) => job::worker_argv(&self.template, started.slot).swap_remove(0),
            Ok(_) => String::new(),
        };
        started.ended(program, Attempt::Worker(result.map(Box::new)))
    }

    /// What is running, for a message: per-item children, or items in flight on workers.
    pub(super) fn running(&self) -> String {
        if !self.cfg.launch.persistent {
            return format!("{} running children", self.tasks.len());
        }
        let workers = self.pipelines.iter().flatten().count();
        let items = self.on_workers.len();
        format!(
            "{items} item{} in flight on {workers} worker{}",
            if items == 1 { "" } else { "s" },
            if workers == 1 { "" } else { "s" }
        )
    }

    /// Tells every running item to stop, at `level` or harder (never softer than before).
    pub(super) fn stop(&mut self, level: Stop) {
        self.stop_tx.send_if_modified(|s| {
            let raise = level > *s;
            if raise {
                *s = level;
            }
            raise
        });
    }

    /// Ctrl-Z: pauses every child and pararun; returns once continued.
    pub(super) fn pause(&mut self) {
        let running = self.running();
        self.progress.line(
            format!(
                "pararun: SIGTSTP: pausing {running} and pararun; `fg` or \
                 SIGCONT resumes them (paused time counts toward --timeout)"
            )
            .as_bytes(),
        );
        // The message goes out before pararun stops (the stderr thread stops with it).
        self.progress.flush(std::time::Duration::from_millis(500));
        signals::pause(self.watchdog.as_deref());
        self.progress
            .line(format!("pararun: continued: resuming {running}").as_bytes());
    }

    /// After the last attempt: every worker ends, and what the items started outside their
    /// groups is killed; the watchdog is then disarmed.
    pub(super) async fn finish(&mut self) {
        self.shut_down_workers().await;
        if let Some(dog) = &self.watchdog {
            // Every child has been reaped. What an item started outside its group (a `setsid`
            // daemon that closed its descriptors) goes now, so nothing outlives the run; then
            // nothing is left for the watchdog to clean up.
            dog.sweep_run();
            dog.disarm();
        }
    }

    /// Ends every worker, idle by now: EOF on stdin, then SIGTERM and SIGKILL if it lingers.
    async fn shut_down_workers(&mut self) {
        let mut ending = JoinSet::new();
        for pipeline in self.pipelines.iter_mut().filter_map(Option::take) {
            ending.spawn(pipeline.close());
        }
        while let Some(joined) = ending.join_next().await {
            if let Err(e) = joined {
                std::panic::resume_unwind(e.into_panic());
            }
        }
    }
}
