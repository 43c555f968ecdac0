//! The task per slot that owns the slot's persistent worker: it keeps up to `--pipeline` items
//! in flight on it, hands out answers as they are read, and replaces a worker that is lost or
//! out of step. What a request and an answer look like and when an item times out are the
//! [`Wire`]'s ([`super::ordered`], [`super::concurrent`]); the task is generic over it, so
//! the per-item path (`fill`, `answered_all`) makes direct calls.

use std::collections::VecDeque;
use std::io;
use std::time::Instant;

use tokio::sync::{mpsc, watch};

use super::pipeline::{answer, Request, Settings};
use super::pipes::AnswerLine;
use super::worker::{next, Heard, Reply, Worker};
use super::{reached, Stop, DRAIN};
use crate::report::escape;

/// One worker protocol's rules, and the items in flight under them.
pub(super) trait Wire {
    /// Whether a worker with nothing in flight owes no output, so that anything it printed
    /// answers no item and it is replaced before it gets another.
    const IDLE_IS_SILENT: bool;

    /// How many items are in flight.
    fn in_flight(&self) -> usize;

    /// How many items may be in flight once refilled, `--pipeline` being `depth`; `None` to
    /// wait for more answers before refilling.
    fn window(&self, depth: usize) -> Option<usize>;

    /// Appends `request`'s line and newline to `lines` (one write) and takes it in flight.
    fn send(&mut self, request: Request, lines: &mut Vec<u8>);

    /// When the `--timeout` clock that runs out first started.
    fn clock(&self) -> Option<Instant>;

    /// Hands the answer `line` to the item it answers; `false` when it shows the worker out of
    /// step, to be replaced.
    fn answered(&mut self, line: Vec<u8>, s: &Settings, worker: Option<&Worker>) -> bool;

    /// `--timeout` ran out on the clock [`Wire::clock`] gave.
    fn overdue(&mut self, s: &Settings, worker: Option<&Worker>) -> Overdue;

    /// An answer line passed `--max-output-bytes`; `head` is its first bytes. `true` when the
    /// item it answers is known from them, and was failed alone: the rest of the line is then
    /// dropped and the worker kept. `false` (the default) replaces the worker.
    fn oversized(&mut self, _head: &[u8], _s: &Settings, _worker: Option<&Worker>) -> bool {
        false
    }

    /// Whether an answer may name its item anywhere in it (an id, not its order), so that an
    /// over-long one is read to its end to find out whose it is.
    const NAMES_BY_ID: bool = false;

    /// An over-long answer whose start named no item, by its last bytes: whether it went to
    /// the item they name. `false` leaves it to the oldest item.
    fn oversized_tail(&mut self, _tail: &[u8], _s: &Settings, _worker: Option<&Worker>) -> bool {
        false
    }

    /// Takes every item in flight to `each`, oldest first, with the start of its clock.
    fn take_all(&mut self, each: impl FnMut(Request, Instant));

    /// A new worker starts: it owes nothing the old one was asked.
    fn new_worker(&mut self) {}
}

/// What `--timeout` running out comes to.
pub(super) enum Overdue {
    /// The worker is stuck on its oldest item: it is killed, that item fails, the rest resent.
    Worker,
    /// The overdue items failed alone; the worker keeps the others.
    Items,
    /// As `Items`, but the worker holds too many it will never answer: it is replaced.
    Stuck,
}

/// The task that owns a slot's worker.
pub(super) struct Owner<P> {
    s: Settings,
    rx: mpsc::UnboundedReceiver<Request>,
    /// Whether the scheduler may still send items.
    open: bool,
    stop: watch::Receiver<Stop>,
    /// Whether the run is stopping: nothing more is sent, so nothing is in flight.
    stopped: bool,
    worker: Option<Worker>,
    /// Items received and not yet sent to the worker.
    waiting: VecDeque<Request>,
    /// The answer being read.
    line: Vec<u8>,
    /// While the rest of an over-long answer, whose item has failed, is being dropped (the
    /// worker's next answer starts after its newline): how many more bytes of it may be.
    skipping: Option<u64>,
    /// Whether the answer being skipped named no item at its start: its end may.
    unowned: bool,
    /// The protocol, with the items in flight.
    p: P,
}

enum WorkerEvent {
    Request(Request),
    Closed,
    Stopped,
    Heard(Heard),
}

impl<P: Wire> Owner<P> {
    /// The task for the slot `s` describes, speaking `p`, taking requests from `rx`.
    pub(super) fn new(
        s: Settings,
        p: P,
        rx: mpsc::UnboundedReceiver<Request>,
        stop: watch::Receiver<Stop>,
    ) -> Owner<P> {
        Owner {
            s,
            rx,
            open: true,
            stop,
            stopped: false,
            worker: None,
            waiting: VecDeque::new(),
            line: Vec::new(),
            skipping: None,
            unowned: false,
            p,
        }
    }

    /// Runs until the scheduler closes the pipeline and its items are answered, then ends the
    /// worker.
    pub(super) async fn run(mut self) {
        loop {
            self.fill();
            if !self.open && self.p.in_flight() == 0 && self.waiting.is_empty() {
                break;
            }
            let clock = self.s.timeout.zip(self.p.clock());
            let deadline = clock.map(|(timeout, since)| (since + timeout).into());
            let cap = self.cap();
            // The rest of an over-long answer is read even with nothing in flight: a worker
            // blocked writing it could not answer the next item.
            let listen = self.p.in_flight() > 0 || self.skipping.is_some();
            let skip = self.skipping.as_mut();
            let event = tokio::select! {
                biased;
                _ = reached(&mut self.stop, Stop::Graceful), if !self.stopped => WorkerEvent::Stopped,
                heard = next(&mut self.worker, cap, &mut self.line, deadline, skip), if listen => {
                    WorkerEvent::Heard(heard)
                }
                request = self.rx.recv(), if self.open => match request {
                    Some(request) => WorkerEvent::Request(request),
                    None => WorkerEvent::Closed,
                },
            };
            self.handle(event).await;
        }
        if self.skipping.is_some() {
            // Mid-way through an over-long answer, owing nothing: it is not worth reading the
            // rest (which might never end) to let it exit on its own; dropping it kills it.
            self.worker = None;
        }
        if let Some(worker) = self.worker.take() {
            let stray = worker.shutdown(self.s.kill_after, self.stop.clone()).await;
            if let Some(stray) = stray.filter(|_| P::IDLE_IS_SILENT && !self.stopped) {
                self.s.progress.line(
                    stray_message(self.s.slot, &stray, "after its last answer (which stands)")
                        .as_bytes(),
                );
            }
        }
    }

    async fn handle(&mut self, event: WorkerEvent) {
        match event {
            WorkerEvent::Request(request) => {
                // Requests come in bursts: take all that wait, not one per turn.
                self.waiting.push_back(request);
                while let Ok(request) = self.rx.try_recv() {
                    self.waiting.push_back(request);
                }
            }
            WorkerEvent::Closed => self.open = false,
            WorkerEvent::Stopped => self.stop_now().await,
            WorkerEvent::Heard(Heard::Read(read)) => self.on_read(read).await,
            WorkerEvent::Heard(Heard::Exited) => {
                self.drain().await;
                if self.p.in_flight() == 0 {
                    // It exited with nothing owed; the next item starts a new one.
                    self.worker = None;
                    self.skipping = None;
                } else {
                    self.lost().await;
                }
            }
            WorkerEvent::Heard(Heard::TimedOut) => match self.answer_waiting().await {
                // Written before the deadline was looked at (pararun itself was stopped while
                // the worker ran on): it answers, and the deadline is looked at again.
                Some(read) => self.on_read(read).await,
                None => self.overdue().await,
            },
        }
    }

    /// What reading an answer line came to.
    async fn on_read(&mut self, read: io::Result<AnswerLine>) {
        match read {
            // The over-long answer's newline: the worker is in step again.
            Ok(AnswerLine::Whole) if self.skipping.is_some() => self.skipped_to_end(),
            // It goes on and on: the worker is replaced (its other items go to the next one).
            Ok(AnswerLine::OverCap) if self.skipping.is_some() => {
                let owes = std::mem::take(&mut self.unowned);
                self.replace_worker(owes.then_some(Reply::TooLong(self.s.max_output)));
            }
            Ok(AnswerLine::Whole) => self.answered_all(),
            Ok(AnswerLine::OverCap) => self.over_cap(),
            _ => self.lost().await,
        }
    }

    /// At `--timeout`: an answer line the worker already wrote, read if bytes of it wait (a
    /// line cut short waits at most [`DRAIN`] for its end), so that an item whose answer is in
    /// the pipe is judged answered, not overdue. `None` when none waits.
    async fn answer_waiting(&mut self) -> Option<io::Result<AnswerLine>> {
        let cap = self.cap();
        let worker = self.worker.as_mut().filter(|w| w.answer_waiting())?;
        tokio::time::timeout(DRAIN, worker.read_answer(cap, &mut self.line))
            .await
            .ok()
    }

    /// `--timeout` ran out with no answer waiting.
    async fn overdue(&mut self) {
        match self.p.overdue(&self.s, self.worker.as_ref()) {
            Overdue::Worker => {
                if let Some(worker) = &self.worker {
                    worker.terminate(self.s.kill_after, &mut self.stop).await;
                }
                self.replace_worker(Some(Reply::TimedOut));
            }
            Overdue::Items => {}
            Overdue::Stuck => self.replace_worker(None),
        }
    }

    /// The longest answer line, in bytes.
    fn cap(&self) -> usize {
        usize::try_from(self.s.max_output).unwrap_or(usize::MAX)
    }

    /// Sends waiting items to the worker while its window has room, all in one write.
    fn fill(&mut self) {
        if self.stopped {
            for request in self.waiting.drain(..) {
                answer(
                    self.worker.as_ref(),
                    request,
                    Instant::now(),
                    Reply::Stopped,
                );
            }
            return;
        }
        let Some(window) = self.p.window(self.s.depth) else {
            return;
        };
        let mut lines = Vec::new();
        while self.p.in_flight() < window {
            let Some(request) = self.waiting.pop_front() else {
                break;
            };
            // A worker is replaced only with nothing in flight, so before any line is queued.
            if let Err(e) = self.ready() {
                request.answer.send(Err(e));
                continue;
            }
            self.p.send(request, &mut lines);
        }
        if let Some(worker) = &self.worker {
            worker.send(lines);
        }
    }

    /// Makes sure there is a worker to send to: with nothing in flight, one that exited (or,
    /// where an idle worker owes nothing, printed output that answers no item) is replaced.
    fn ready(&mut self) -> io::Result<()> {
        if self.p.in_flight() == 0 {
            if let Some(mut worker) = self.worker.take().filter(Worker::alive) {
                match P::IDLE_IS_SILENT.then(|| worker.stray_output()).flatten() {
                    None => self.worker = Some(worker),
                    Some(stray) => {
                        let why = stray_message(self.s.slot, &stray, "restarting it");
                        self.s.progress.line(why.as_bytes());
                    }
                }
            }
        }
        if self.worker.is_none() {
            self.p.new_worker();
            self.skipping = None;
            let (argv, slot) = (&self.s.argv, self.s.slot);
            let watchdog = self.s.watchdog.clone();
            self.worker = Some(Worker::spawn(argv, slot, &self.s.progress, watchdog)?);
        }
        Ok(())
    }

    /// The answer being read passed `--max-output-bytes`. If its start names its item, that
    /// item alone fails and the rest of the line is dropped as it comes; otherwise nothing
    /// shows whose answer it is, and the worker is replaced.
    fn over_cap(&mut self) {
        // Taken, not cleared: the cap's worth of bytes is freed now, not kept for the next.
        let head = std::mem::take(&mut self.line);
        // As much again as the cap: a result a little too big costs no new worker, and output
        // that never ends costs a bounded read.
        let budget = Some(self.s.max_output.max(1));
        if self.p.oversized(&head, &self.s, self.worker.as_ref()) {
            (self.skipping, self.unowned) = (budget, false);
        } else if P::NAMES_BY_ID {
            (self.skipping, self.unowned) = (budget, true);
        } else {
            self.replace_worker(Some(Reply::TooLong(self.s.max_output)));
        }
    }

    /// The over-long answer's newline came: the worker is in step again. When its start named
    /// no item, its end may; if that names none either, the oldest item pays, as before.
    fn skipped_to_end(&mut self) {
        self.skipping = None;
        let tail = std::mem::take(&mut self.line);
        if std::mem::take(&mut self.unowned)
            && !self.p.oversized_tail(&tail, &self.s, self.worker.as_ref())
        {
            self.replace_worker(Some(Reply::TooLong(self.s.max_output)));
        }
    }

    /// An answer line has been read: the protocol hands it out.
    fn answered(&mut self) {
        let line = std::mem::take(&mut self.line);
        if !self.p.answered(line, &self.s, self.worker.as_ref()) {
            self.replace_worker(None);
        }
    }

    /// The answer just read, then every further one that came in the same read, each without
    /// a turn of the select.
    fn answered_all(&mut self) {
        self.answered();
        let cap = self.cap();
        while self.p.in_flight() > 0 {
            let more = (self.worker.as_mut()).is_some_and(|w| w.buffered_line(cap, &mut self.line));
            if !more {
                return;
            }
            self.answered();
        }
    }

    /// After the worker exited: answers it wrote before are still in the pipe.
    async fn drain(&mut self) {
        let cap = self.cap();
        if let Some(budget) = &mut self.skipping {
            let Some(worker) = &mut self.worker else {
                return;
            };
            match tokio::time::timeout(DRAIN, worker.skip_answer(budget, &mut self.line)).await {
                Ok(Ok(AnswerLine::Whole)) => self.skipped_to_end(),
                _ => return,
            }
        }
        while self.p.in_flight() > 0 {
            let Some(worker) = &mut self.worker else {
                return;
            };
            let read = worker.read_answer(cap, &mut self.line);
            match tokio::time::timeout(DRAIN, read).await {
                Ok(Ok(AnswerLine::Whole)) => self.answered(),
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
        self.replace_worker(Some(Reply::Died(status)));
    }

    /// Drops the worker (which kills its group). Its oldest item (the one it owed an answer
    /// first) fails with `oldest`, if given: each loss costs one attempt of one item, so a
    /// worker that always fails cannot resend items for ever. The others go back to the
    /// scheduler, to be sent again on the same attempt.
    fn replace_worker(&mut self, mut oldest: Option<Reply>) {
        self.line.clear();
        self.skipping = None;
        let worker = self.worker.as_ref();
        self.p.take_all(|request, since| {
            let reply = oldest.take().unwrap_or(Reply::Resend);
            answer(worker, request, since, reply);
        });
        self.worker = None;
    }

    /// Ctrl-C or SIGTERM: what is in flight is unfinished, and runs again next time.
    async fn stop_now(&mut self) {
        self.stopped = true;
        if self.p.in_flight() == 0 {
            return;
        }
        if let Some(worker) = &self.worker {
            worker.terminate(self.s.kill_after, &mut self.stop).await;
        }
        self.worker = None;
        self.skipping = None;
        let stopped = |request, since| answer(None, request, since, Reply::Stopped);
        self.p.take_all(stopped);
    }
}

/// The message for output a worker printed after answering all it was asked, which answers no
/// item; `then` says what became of the worker.
fn stray_message(slot: usize, stray: &str, then: &str) -> String {
    format!(
        "pararun: the worker in slot {slot} printed output that answers no item ({}); {then}",
        escape(stray)
    )
}
