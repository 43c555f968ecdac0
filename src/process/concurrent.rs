//! The concurrent protocol (`--protocol concurrent`): one task per slot owns the slot's
//! worker, which may answer its up to `--pipeline` items in any order.
//!
//! Wire format, one JSON object per line each way:
//! - request: `{"pararun_id": 17, "item": ITEM}`, where ITEM is the item's JSON line as read
//!   (or a plain line as a JSON string);
//! - answer: `{"pararun_id": 17, "result": RESULT}`, or `{"pararun_id": 17, "error": "why"}`,
//!   which fails that item alone with the message.
//!
//! The id is chosen by pararun, never by the item, so it cannot collide with the user's key
//! field, and an answer is handed only to the item its id names:
//! - an answer with an id not in flight (unknown, or answered already), or with no usable id,
//!   shows the worker out of step: the item it names (else its oldest item) fails, the worker
//!   is replaced and its other items are resent on the same attempt, so a worker that is always
//!   out of step costs one attempt of one item each time and cannot resend items for ever;
//! - a worker that dies or answers past `--max-output-bytes` fails its oldest item likewise;
//! - `--timeout` counts per item from when its request was sent; an item past it fails alone
//!   and the worker keeps the others (an async worker is slow on one request, not stuck), its
//!   late answer being dropped. A worker holding more expired items than `--pipeline` is
//!   taken as stuck and replaced.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::io;
use std::time::Instant;

use serde_json::Value;
use tokio::sync::{mpsc, watch};

use super::pipeline::{answer, Request, Settings};
use super::pipes::Line;
use super::worker::{next, Heard, Reply, Worker};
use super::{reached, Stop, DRAIN};
use crate::config::Capture;
use crate::result::Answer;

/// The field that carries a request's id, both ways: named so that no user's key field is
/// likely to be called the same.
pub const ID: &str = "pararun_id";

/// Runs the slot's concurrent pipeline until the scheduler closes it and its items are
/// answered, then ends its worker.
pub(super) async fn run(
    s: Settings,
    rx: mpsc::UnboundedReceiver<Request>,
    stop: watch::Receiver<Stop>,
) {
    let owner = Owner {
        s,
        rx,
        open: true,
        stop,
        stopped: false,
        worker: None,
        waiting: VecDeque::new(),
        flight: BTreeMap::new(),
        next_id: 1,
        expired: HashSet::new(),
        line: Vec::new(),
    };
    owner.run().await;
}

/// One item sent to the worker.
struct Sent {
    request: Request,
    /// When its request was sent: its `--timeout` clock.
    at: Instant,
}

struct Owner {
    s: Settings,
    rx: mpsc::UnboundedReceiver<Request>,
    open: bool,
    stop: watch::Receiver<Stop>,
    stopped: bool,
    worker: Option<Worker>,
    waiting: VecDeque<Request>,
    /// Items sent and not yet answered, by id; ids grow, so the first is the oldest.
    flight: BTreeMap<u64, Sent>,
    next_id: u64,
    /// Ids of items that timed out on this worker, whose late answers are dropped.
    expired: HashSet<u64>,
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
            let oldest = self.flight.values().next().map(|sent| sent.at);
            let deadline = self.s.timeout.zip(oldest).map(|(t, at)| (at + t).into());
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
                self.fail_oldest(Reply::TooLong(self.s.max_output));
            }
            Event::Heard(Heard::Read(_)) => self.lost().await,
            Event::Heard(Heard::Exited) => {
                self.drain().await;
                if self.flight.is_empty() {
                    self.worker = None;
                } else {
                    self.lost().await;
                }
            }
            Event::Heard(Heard::TimedOut) => self.expire(),
        }
    }

    /// Sends waiting items while fewer than `--pipeline` are in flight.
    fn fill(&mut self) {
        let mut lines = Vec::new();
        while self.flight.len() < self.s.depth {
            let Some(request) = self.waiting.pop_front() else {
                break;
            };
            if self.stopped {
                self.reply(request, Instant::now(), Reply::Stopped);
                continue;
            }
            // A worker is replaced only with nothing in flight, so before any line is queued.
            if let Err(e) = self.ready() {
                request.answer.send(Err(e));
                continue;
            }
            let id = self.next_id;
            self.next_id += 1;
            envelope(&mut lines, id, &request.line);
            let at = Instant::now();
            self.flight.insert(id, Sent { request, at });
        }
        if let Some(worker) = &self.worker {
            worker.send(lines);
        }
    }

    /// Makes sure there is a worker: one that exited with nothing owed is replaced.
    fn ready(&mut self) -> io::Result<()> {
        if self.flight.is_empty() && !self.worker.as_ref().is_some_and(Worker::alive) {
            self.worker = None;
            self.expired.clear();
        }
        if self.worker.is_none() {
            let (argv, slot) = (&self.s.argv, self.s.slot);
            let watchdog = self.s.watchdog.clone();
            self.worker = Some(Worker::spawn(argv, slot, &self.s.progress, watchdog)?);
        }
        Ok(())
    }

    /// An answer line was read: it goes to the item its id names.
    fn answered(&mut self) {
        let line = std::mem::take(&mut self.line);
        match parse_answer(self.s.capture, &line) {
            Ok((id, reply)) => {
                if let Some(sent) = self.flight.remove(&id) {
                    self.reply(sent.request, sent.at, reply);
                } else if !self.expired.remove(&id) {
                    let why = format!("the worker answered {ID} {id}, which is not in flight");
                    self.out_of_step(why, None);
                }
            }
            Err((why, id)) => self.out_of_step(why, id),
        }
    }

    /// The worker cannot be trusted to answer the right ids: the item the answer names (else
    /// the oldest) fails, and the others go to a new worker.
    fn out_of_step(&mut self, why: String, id: Option<u64>) {
        let id = id.filter(|id| self.flight.contains_key(id));
        let victim = id.or_else(|| self.flight.keys().next().copied());
        if let Some(sent) = victim.and_then(|id| self.flight.remove(&id)) {
            self.reply(sent.request, sent.at, Reply::OutOfStep(why));
        }
        self.replace_worker();
    }

    /// `--timeout` ran out for the oldest items: they fail, and the worker keeps the rest.
    fn expire(&mut self) {
        let Some(timeout) = self.s.timeout else {
            return;
        };
        let now = Instant::now();
        while let Some(entry) = self.flight.first_entry() {
            if entry.get().at + timeout > now {
                break;
            }
            let (id, sent) = entry.remove_entry();
            self.expired.insert(id);
            self.reply(sent.request, sent.at, Reply::Expired);
        }
        if self.expired.len() > self.s.depth {
            self.replace_worker();
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
        self.fail_oldest(Reply::Died(status));
    }

    fn fail_oldest(&mut self, reply: Reply) {
        if let Some((_, sent)) = self.flight.pop_first() {
            self.reply(sent.request, sent.at, reply);
        }
        self.replace_worker();
    }

    /// Drops the worker (which kills its group); its other items are resent on the same
    /// attempt.
    fn replace_worker(&mut self) {
        self.line.clear();
        for (_, sent) in std::mem::take(&mut self.flight) {
            self.reply(sent.request, sent.at, Reply::Resend);
        }
        self.expired.clear();
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
        for (_, sent) in std::mem::take(&mut self.flight) {
            self.reply(sent.request, sent.at, Reply::Stopped);
        }
    }

    fn reply(&self, request: Request, at: Instant, reply: Reply) {
        answer(self.worker.as_ref(), request, at, reply);
    }
}

/// Appends the request line for item line `item` (itself JSON) to `lines`. Written around
/// the item's bytes rather than parsed and serialised again, so the worker reads the item
/// exactly as it was given.
fn envelope(lines: &mut Vec<u8>, id: u64, item: &[u8]) {
    use std::io::Write;
    let _ = write!(lines, "{{\"{ID}\":{id},\"item\":");
    lines.extend_from_slice(item);
    lines.extend_from_slice(b"}\n");
}

/// An answer's id and what it says for its item; `Err` with why (and the id, when it has one)
/// for an answer that breaks the protocol.
fn parse_answer(capture: Capture, line: &[u8]) -> Result<(u64, Reply), (String, Option<u64>)> {
    let value: Value = serde_json::from_slice(line)
        .map_err(|e| (format!("the worker's answer is not JSON ({e})"), None))?;
    let Value::Object(mut map) = value else {
        return Err(("the worker's answer is not a JSON object".into(), None));
    };
    let Some(id) = map.get(ID).and_then(Value::as_u64) else {
        return Err((
            format!(
                "the worker's answer has no {ID:?} that is a whole number written as one (like 17)"
            ),
            None,
        ));
    };
    if let Some(error) = map.remove("error") {
        // A worker that enforces its own time limit says so, and the failure is a timeout.
        let timeout = map.get("reason").and_then(Value::as_str) == Some("timeout");
        return Ok((id, Reply::Refused(text_of(error), timeout)));
    }
    match map.remove("result") {
        Some(Value::String(text)) if capture == Capture::Text => {
            Ok((id, Reply::Answer(text.into_bytes())))
        }
        Some(result) => Ok((id, Reply::Result(Answer::from_value(result)))),
        None => Err((
            "the worker's answer has neither \"result\" nor \"error\"".into(),
            Some(id),
        )),
    }
}

/// An error message as text: a string as it is, anything else as its JSON.
fn text_of(error: Value) -> String {
    match error {
        Value::String(text) => text,
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_may_say_it_is_a_timeout() {
        let line = br#"{"pararun_id": 5, "error": "too slow", "reason": "timeout"}"#;
        assert!(matches!(
            parse_answer(Capture::Json, line),
            Ok((5, Reply::Refused(m, true))) if m == "too slow"
        ));
    }

    #[test]
    fn an_envelope_wraps_the_item_unchanged() {
        let mut line = Vec::new();
        envelope(&mut line, 17, br#"{"id": 5, "x": [1, 2]}"#);
        assert_eq!(line.pop(), Some(b'\n'));
        let value: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(value[ID], 17);
        assert_eq!(value["item"]["x"][1], 2);
    }

    #[test]
    fn answers_name_their_id_and_their_verdict() {
        let parse = |line: &str| parse_answer(Capture::Json, line.as_bytes());
        match parse(r#"{"pararun_id": 3, "result": {"ok": 1}}"#) {
            Ok((3, Reply::Result(result))) => {
                assert_eq!(result.into_value(), serde_json::json!({"ok": 1}))
            }
            _ => panic!("a result"),
        }
        assert!(
            matches!(parse(r#"{"pararun_id": 4, "error": "no"}"#), Ok((4, Reply::Refused(m, false))) if m == "no")
        );
        assert!(matches!(parse(r#"{"pararun_id": 5}"#), Err((_, Some(5)))));
        assert!(matches!(parse(r#"{"result": 1}"#), Err((_, None))));
        assert!(matches!(parse("[1]"), Err((_, None))));
    }
}
