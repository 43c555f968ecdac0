//! The ordered protocol (`--protocol ordered`, the default): the slot's worker reads one line
//! and answers one line, in order, so the oldest unanswered item owns the next answer. Each
//! answer's echoed key is checked as it is read, before the next answer is handed out, so an
//! answer is never taken for an item it does not name:
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
use std::time::Instant;

use super::answer::echo::{parse_echo, Echo, Parsed};
use super::answer::Answer;
use super::owner::{Overdue, Wire};
use super::pipeline::{answer, Request, Settings};
use super::worker::{Reply, Worker};
use crate::report::escape;

/// The ordered protocol's state for one slot.
pub(super) struct Ordered {
    /// Items sent and not yet answered, oldest first.
    flight: VecDeque<Request>,
    /// When the oldest item in flight became the oldest: its `--timeout` clock.
    head_since: Instant,
    /// Whether this slot's worker echoes keys (unknown until its first answer).
    echoes: Option<bool>,
}

impl Ordered {
    /// A slot with nothing in flight and nothing yet known of its worker.
    pub(super) fn new() -> Ordered {
        Ordered {
            flight: VecDeque::new(),
            head_since: Instant::now(),
            echoes: None,
        }
    }
}

impl Wire for Ordered {
    // One line per item: an idle worker owes nothing, and whatever it printed is stray.
    const IDLE_IS_SILENT: bool = true;

    fn in_flight(&self) -> usize {
        self.flight.len()
    }

    fn window(&self, depth: usize) -> Option<usize> {
        let window = if self.echoes == Some(true) { depth } else { 1 };
        // A pipelined worker is refilled in batches, once half its window is free: the waiting
        // items then go out in one write and the worker wakes once for them, instead of
        // pararun and the worker waking each other for every answer (100k context switches
        // on 100k items). An ordered worker takes items one by one anyway, so holding half
        // its window ahead costs it nothing.
        (self.flight.len() <= window / 2).then_some(window)
    }

    fn send(&mut self, request: Request, lines: &mut Vec<u8>) {
        if self.flight.is_empty() {
            self.head_since = Instant::now();
        }
        lines.extend_from_slice(&request.line);
        lines.push(b'\n');
        self.flight.push_back(request);
    }

    fn clock(&self) -> Option<Instant> {
        Some(self.head_since)
    }

    /// The oldest item's answer line has been read: it goes to that item if it is in step.
    fn answered(&mut self, line: Vec<u8>, s: &Settings, worker: Option<&Worker>) -> bool {
        let head = self
            .flight
            .pop_front()
            .expect("an answer is read only with items in flight");
        let alone = self.flight.is_empty();
        let Parsed {
            echo,
            loose,
            answer: parsed,
        } = parse_echo(s.capture, &s.key_field, &head.key, line);
        let since = self.head_since;
        let hand = |head, reply| answer(worker, head, since, reply);
        if let Some(other) = loose.filter(|echoed| self.flight.iter().any(|r| &r.key == echoed)) {
            // Loosely the head's key, but exactly the key of an item behind it (0.1 and
            // 0.1000000000000000055511151231257827, 5 and "5"): a worker out of step.
            let why = format!(
                "the worker answered for {:?} = {}, the key of another item in flight",
                s.key_field,
                escape(&other.to_string())
            );
            hand(head, Reply::OutOfStep(why));
            return false;
        }
        if echo == Echo::Unnamed && !alone {
            // Nothing shows which item this answers: it and the items behind it go to a new
            // worker, fed one at a time from now on.
            self.echoes = Some(false);
            self.flight.push_front(head);
            return false;
        }
        if self.echoes.is_none() && echo != Echo::Unusable {
            self.echoes = Some(echo == Echo::Same);
        }
        let extra = alone && worker.is_some_and(Worker::buffered);
        let line =
            |parsed: Result<Answer, Vec<u8>>| parsed.map_or_else(|line| line, Answer::into_line);
        match echo {
            Echo::Other | Echo::Unusable => {
                hand(head, Reply::Answer(line(parsed)));
                false
            }
            _ if extra => {
                hand(head, Reply::Extra(line(parsed)));
                false
            }
            _ => {
                let reply = match parsed {
                    Ok(parsed) => Reply::Result(parsed),
                    Err(line) => Reply::Answer(line),
                };
                hand(head, reply);
                self.head_since = Instant::now();
                true
            }
        }
    }

    fn overdue(&mut self, _: &Settings, _: Option<&Worker>) -> Overdue {
        // The worker answers in order: past its oldest item's time, it is stuck on it.
        Overdue::Worker
    }

    fn take_all(&mut self, mut each: impl FnMut(Request, Instant)) {
        for request in std::mem::take(&mut self.flight) {
            each(request, self.head_since);
        }
    }
}
