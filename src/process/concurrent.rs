//! The concurrent protocol (`--protocol concurrent`): the slot's worker may answer its up to
//! `--pipeline` items in any order.
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
//! - an answer past `--max-output-bytes` that starts with its id (`{"pararun_id": 17, ...`, as
//!   pararun's Python worker writes it) fails that item alone: the rest of the line is dropped
//!   unread, and the worker keeps its other items, since the next line is the next answer
//!   (unless the rest goes on for as much again as the cap: then the worker is replaced and
//!   its other items are resent on the same attempt);
//! - a worker that dies, or answers past `--max-output-bytes` with no id first, fails its
//!   oldest item likewise;
//! - `--timeout` counts per item from when its request was sent; an item past it fails alone
//!   and the worker keeps the others (an async worker is slow on one request, not stuck), its
//!   late answer being dropped. A worker holding more expired items than `--pipeline` is
//!   taken as stuck and replaced.

use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

use serde_json::Value;

use super::answer::throttle::retry_after;
use super::answer::{raw_fields, Answer};
use super::owner::{Overdue, Wire};
use super::pipeline::{answer, Request, Settings};
use super::worker::{Reply, Worker};
use crate::config::Capture;

/// The field that carries a request's id, both ways: named so that no user's key field is
/// likely to be called the same.
pub const ID: &str = "pararun_id";

/// One item sent to the worker.
struct Sent {
    request: Request,
    /// When its request was sent: its `--timeout` clock.
    at: Instant,
}

/// The concurrent protocol's state for one slot.
#[derive(Default)]
pub(super) struct Concurrent {
    /// Items sent and not yet answered, by id; ids grow, so the first is the oldest.
    flight: BTreeMap<u64, Sent>,
    /// The id of the last request sent; the first gets 1.
    last_id: u64,
    /// Ids of items that timed out on this worker, whose late answers are dropped.
    expired: HashSet<u64>,
}

impl Wire for Concurrent {
    // A worker may answer an expired item late, with nothing else in flight: its id, not the
    // timing, shows the answer is stray.
    const IDLE_IS_SILENT: bool = false;

    fn in_flight(&self) -> usize {
        self.flight.len()
    }

    fn window(&self, depth: usize) -> Option<usize> {
        // Refilled at every answer, not by halves as an ordered worker is: this worker works on
        // all its items at once, and a place left empty is concurrency lost.
        Some(depth)
    }

    fn send(&mut self, request: Request, lines: &mut Vec<u8>) {
        self.last_id += 1;
        let id = self.last_id;
        envelope(lines, id, &request.line);
        let at = Instant::now();
        self.flight.insert(id, Sent { request, at });
    }

    fn clock(&self) -> Option<Instant> {
        self.flight.values().next().map(|sent| sent.at)
    }

    /// An answer line was read: it goes to the item its id names.
    fn answered(&mut self, line: Vec<u8>, s: &Settings, worker: Option<&Worker>) -> bool {
        let (why, id) = match parse_answer(s.capture, &line) {
            Ok((id, reply)) => {
                if let Some(sent) = self.flight.remove(&id) {
                    answer(worker, sent.request, sent.at, reply);
                    return true;
                }
                if self.expired.remove(&id) {
                    return true;
                }
                let why = format!("the worker answered {ID} {id}, which is not in flight");
                (why, None)
            }
            Err(broken) => broken,
        };
        // The worker cannot be trusted to answer the right ids: the item the answer names
        // (else the oldest) fails, and the others go to a new worker.
        let id = id.filter(|id| self.flight.contains_key(id));
        let victim = id.or_else(|| self.flight.keys().next().copied());
        if let Some(sent) = victim.and_then(|id| self.flight.remove(&id)) {
            answer(worker, sent.request, sent.at, Reply::OutOfStep(why));
        }
        false
    }

    /// The oldest items ran past `--timeout`: they fail, and the worker keeps the rest.
    fn overdue(&mut self, s: &Settings, worker: Option<&Worker>) -> Overdue {
        let Some(timeout) = s.timeout else {
            return Overdue::Items;
        };
        let now = Instant::now();
        while let Some(entry) = self.flight.first_entry() {
            if entry.get().at + timeout > now {
                break;
            }
            let (id, sent) = entry.remove_entry();
            self.expired.insert(id);
            answer(worker, sent.request, sent.at, Reply::Expired);
        }
        if self.expired.len() > s.depth {
            Overdue::Stuck
        } else {
            Overdue::Items
        }
    }

    /// An over-long answer goes to the item its leading id names, if that is in flight (or
    /// expired: a late answer, dropped); any other shows nothing about whose answer it is.
    fn oversized(&mut self, head: &[u8], s: &Settings, worker: Option<&Worker>) -> bool {
        leading_id(head).is_some_and(|id| self.fail_oversized(id, s, worker))
    }

    const NAMES_BY_ID: bool = true;

    /// `{"result": ..., "pararun_id": 7}`: the id at the end names the item.
    fn oversized_tail(&mut self, tail: &[u8], s: &Settings, worker: Option<&Worker>) -> bool {
        trailing_id(tail).is_some_and(|id| self.fail_oversized(id, s, worker))
    }

    fn take_all(&mut self, mut each: impl FnMut(Request, Instant)) {
        for (_, sent) in std::mem::take(&mut self.flight) {
            each(sent.request, sent.at);
        }
    }

    fn new_worker(&mut self) {
        self.expired.clear();
    }
}

impl Concurrent {
    /// The item `id` names fails for its over-long answer, if it is in flight (or expired: a
    /// late answer, dropped); whether the id named one at all.
    fn fail_oversized(&mut self, id: u64, s: &Settings, worker: Option<&Worker>) -> bool {
        if let Some(sent) = self.flight.remove(&id) {
            answer(
                worker,
                sent.request,
                sent.at,
                Reply::Oversized(s.max_output),
            );
            return true;
        }
        self.expired.remove(&id)
    }
}

/// Appends the request line for item line `item` (itself JSON) to `lines`. Written around
/// the item's bytes rather than parsed and serialised again, so the worker reads the item
/// exactly as it was given.
fn envelope(lines: &mut Vec<u8>, id: u64, item: &[u8]) {
    lines.extend_from_slice(b"{\"pararun_id\":");
    put_decimal(lines, id);
    lines.extend_from_slice(b",\"item\":");
    lines.extend_from_slice(item);
    lines.extend_from_slice(b"}\n");
}

/// Appends `n` in decimal: `write!` cost more than the rest of a request.
fn put_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// An answer's id and what it says for its item; `Err` with why (and the id, when it has one)
/// for an answer that breaks the protocol.
fn parse_answer(capture: Capture, line: &[u8]) -> Result<(u64, Reply), (String, Option<u64>)> {
    if let Some(answer) = plain_result(capture, line) {
        return Ok(answer);
    }
    let value: Value =
        serde_json::from_slice(line).map_err(|e| match crate::input::depth::too_deep(line) {
            true => (crate::input::depth::too_deep_message(), None),
            false => (format!("the worker's answer is not JSON ({e})"), None),
        })?;
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
        let reason = map.get("reason").and_then(Value::as_str);
        if reason == Some("throttled") {
            let after = map.get("retry_after").and_then(retry_after);
            return Ok((id, Reply::Throttled(text_of(error), after)));
        }
        return Ok((
            id,
            Reply::Refused(text_of(error), reason == Some("timeout")),
        ));
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

/// The usual answer, `{"pararun_id": N, "result": {...}}` with no backslash anywhere, read
/// without building a `Value` (its result is read in place, as the ordered protocol's
/// answers are); `None` sends anything else, errors included, to the full parse above, which
/// says the same for it.
fn plain_result(capture: Capture, line: &[u8]) -> Option<(u64, Reply)> {
    if capture != Capture::Json || memchr::memchr(b'\\', line).is_some() {
        return None;
    }
    // A field named twice fails here (the full parse keeps the last).
    let fields = raw_fields(line)?;
    let field = |name: &str| {
        fields
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.get())
    };
    // Only the id and the result: any other field (an error, or one nested past serde_json's
    // limit, which the full parse refuses) is the full parse's to judge.
    if fields.len() != 2 {
        return None;
    }
    // Digits only, as `Value::as_u64` reads a number (JSON has no `+`).
    let id = field(ID)?.parse::<u64>().ok()?;
    let result = field("result")?.as_bytes().to_vec();
    let answer = Answer::flat(result).ok()?;
    Some((id, Reply::Result(answer)))
}

/// The id of an answer that starts `{"pararun_id": N,` (JSON whitespace allowed between the
/// tokens), read from the first bytes of a line too long to parse; `None` for any other start.
fn leading_id(head: &[u8]) -> Option<u64> {
    fn ws(rest: &[u8]) -> &[u8] {
        let n = rest
            .iter()
            .take_while(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
            .count();
        &rest[n..]
    }
    let rest = ws(head).strip_prefix(b"{")?;
    let rest = ws(rest).strip_prefix(b"\"pararun_id\"")?;
    let rest = ws(rest).strip_prefix(b":")?;
    let rest = ws(rest);
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    // JSON writes no leading zeros: "017" is not a number serde_json would read.
    if digits == 0 || (digits > 1 && rest[0] == b'0') {
        return None;
    }
    ws(&rest[digits..]).strip_prefix(b",")?;
    std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
}

/// The id of an answer line that ends `"pararun_id": N}` (its last field), from its last
/// bytes.
fn trailing_id(tail: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(tail).ok()?.trim_end();
    let body = text.strip_suffix('}')?.trim_end();
    let digits = body.len() - body.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let (rest, number) = body.split_at(body.len() - digits);
    if digits == 0 || (digits > 1 && number.starts_with('0')) {
        return None;
    }
    let rest = rest.trim_end().strip_suffix(':')?.trim_end();
    let rest = rest.strip_suffix("\"pararun_id\"")?.trim_end();
    // The field before it ended, and this one starts after a comma: `..., "pararun_id": 7}`.
    rest.ends_with(',').then(|| number.parse().ok())?
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
        let line =
            br#"{"pararun_id": 6, "error": "429", "reason": "throttled", "retry_after": 2.5}"#;
        assert!(matches!(
            parse_answer(Capture::Json, line),
            Ok((6, Reply::Throttled(m, Some(d)))) if m == "429" && d.as_millis() == 2500
        ));
    }

    #[test]
    fn a_plain_result_is_read_in_place_as_the_full_parse_reads_it() {
        for line in [
            r#"{"pararun_id": 3, "result": {"id": 1, "x": 2E3}}"#,
            r#"{"result": {"a": "b"}, "pararun_id": 18446744073709551615}"#,
        ] {
            let Ok((id, Reply::Result(fast))) = parse_answer(Capture::Json, line.as_bytes()) else {
                panic!("a result: {line}")
            };
            let value: Value = serde_json::from_str(line).unwrap();
            assert_eq!(Some(id), value[ID].as_u64());
            let key = serde_json::json!(1);
            let slow = Answer::from_value(value["result"].clone());
            assert_eq!(fast.record("id", &key, "1"), slow.record("id", &key, "1"));
        }
        for line in [
            r#"{"pararun_id": 3, "result": {"a": "\u0062"}}"#,
            r#"{"pararun_id": 3, "pararun_id": 4, "result": {}}"#,
            r#"{"pararun_id": -3, "result": {}}"#,
            r#"{"pararun_id": 3.0, "result": {}}"#,
            r#"{"pararun_id": 3, "result": 5}"#,
            r#"{"pararun_id": 3, "result": {}, "error": "no"}"#,
            r#"{"pararun_id": 3, "result": {"a": {"b": 1, "b": 2}}}"#,
            r#"{"pararun_id": 3, "result": {}, "x": 1}"#,
        ] {
            assert!(
                plain_result(Capture::Json, line.as_bytes()).is_none(),
                "{line}"
            );
        }
    }

    #[test]
    fn an_over_long_answer_is_named_only_by_a_leading_id() {
        assert_eq!(leading_id(br#"{"pararun_id":17,"result":"xxxx"#), Some(17));
        assert_eq!(leading_id(b" {\n \"pararun_id\" : 0 , \"re"), Some(0));
        for head in [
            &br#"{"result":"x","pararun_id":17,"#[..],
            br#"{"pararun_id":017,"#,
            br#"{"pararun_id":17.5,"#,
            br#"{"pararun_id":-1,"#,
            br#"{"pararun_id":"17","#,
            br#"{"pararun_id":99999999999999999999,"#,
            br#"{"pararun_id":17"#,
            br#"["pararun_id",17,"#,
        ] {
            assert_eq!(leading_id(head), None, "{}", String::from_utf8_lossy(head));
        }
    }

    #[test]
    fn ids_are_written_in_decimal() {
        for n in [0, 7, 10, 1234567890, u64::MAX] {
            let mut out = Vec::new();
            put_decimal(&mut out, n);
            assert_eq!(out, n.to_string().into_bytes());
        }
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
