//! What an attempt means: success with a record, a failure with its reason, or unfinished.
//!
//! Pure decisions on what a child (or a persistent worker) left behind; nothing here writes.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::Duration;

use crate::config::Config;
use crate::input::line::{exact_size, human_size};
use crate::input::Item;
use crate::process::worker::Reply;
use crate::process::{Ending, Finished};
use crate::report::{escape, human_duration, Failure, Reason};

use crate::process::answer::echo::{loose_key, same_key};
use crate::process::answer::throttle::retry_after_in;
use crate::process::answer::Answer;

#[cfg(test)]
use crate::base::record::make_record;
use crate::base::stdout::result_of;

/// The verdict on one attempt.
pub enum Outcome {
    /// Success: the record line (without its newline).
    Record(String),
    /// A failure, maybe to be retried.
    Failed(Failure),
    /// The service said to slow down (`--throttle-exit-code`, or a worker's `"reason":
    /// "throttled"`): the item goes back to the queue without using up an attempt, and
    /// starts pause for `retry_after` when given. The failure says what happened, should
    /// the item be throttled past `--max-throttled`.
    Throttled(Failure, Option<Duration>),
    /// Cut short by a shutdown: neither done nor failed.
    Unfinished,
}

/// Judges a per-item child that has ended.
pub fn judge_process(cfg: &Config, item: &Item, finished: Finished) -> Outcome {
    let base = |reason, detail: String| Failure {
        reason,
        detail,
        code: finished.status.code(),
        signal: finished.signal(),
        stderr_tail: finished.stderr_tail.clone(),
        duration: finished.duration,
    };
    if finished.ending == Ending::TimedOut {
        return Outcome::Failed(base(Reason::Timeout, timed_out(cfg)));
    }
    if finished.ending == Ending::TooMuchOutput {
        return Outcome::Failed(base(
            Reason::BadOutput,
            too_much_output(cfg.results.max_output),
        ));
    }
    if !finished.status.success() {
        if finished.ending == Ending::Stopped {
            return Outcome::Unfinished;
        }
        let code = finished.status.code();
        if code == Some(cfg.faults.throttle_exit_code) {
            let after = retry_after_in(&finished.stdout);
            let detail = format!("exit code {} (throttled)", cfg.faults.throttle_exit_code);
            return Outcome::Throttled(base(Reason::Throttled, detail), after);
        }
        let (reason, detail) = status_failure(finished.status);
        return Outcome::Failed(base(reason, detail));
    }
    let result = result_of(cfg.results.capture, &finished.stdout);
    match result.and_then(|value| record_of(cfg, item, Answer::from_value(value))) {
        Ok(record) => Outcome::Record(record),
        Err(why) => Outcome::Failed(base(Reason::BadOutput, why)),
    }
}

/// Judges a persistent worker's reply. Anything but a record means the worker must go.
pub fn judge_reply(
    cfg: &Config,
    item: &Item,
    reply: Reply,
    stderr_tail: String,
    duration: Duration,
) -> Outcome {
    let failed = |reason, detail: String, status: Option<ExitStatus>| Failure {
        reason,
        detail,
        code: status.and_then(|s| s.code()),
        signal: status.and_then(|s| s.signal()),
        stderr_tail: stderr_tail.clone(),
        duration,
    };
    let failure = |reason, detail, status| Outcome::Failed(failed(reason, detail, status));
    let throttled = |(message, after): (String, Option<Duration>)| {
        let detail = format!("the worker answered throttled: {}", escape(&message));
        Outcome::Throttled(failed(Reason::Throttled, detail, None), after)
    };
    let judged = |answer: Answer| match answer.throttle() {
        Some(throttle) => throttled(throttle),
        None => match judge_result(cfg, item, answer) {
            Ok(record) => Outcome::Record(record),
            Err(why) => failure(Reason::BadOutput, why, None),
        },
    };
    match reply {
        Reply::Answer(line) => match answer_of(cfg, &line) {
            Ok(answer) => judged(answer),
            Err(why) => failure(Reason::BadOutput, why, None),
        },
        Reply::Result(answer) => judged(answer),
        Reply::Throttled(message, after) => throttled((message, after)),
        Reply::Extra(line) => failure(
            Reason::BadOutput,
            format!(
                "the worker printed more than one line for this item (first: {}), so it is \
                 restarted; a worker must answer each item with exactly one line",
                escape(
                    &String::from_utf8_lossy(&line)
                        .chars()
                        .take(120)
                        .collect::<String>()
                )
            ),
            None,
        ),
        Reply::Died(Ok(status)) => {
            let (reason, detail) = status_failure(status);
            let reason = if status.success() {
                Reason::Exit
            } else {
                reason
            };
            failure(
                reason,
                format!("the worker ended before answering ({detail}); it is restarted"),
                Some(status),
            )
        }
        Reply::Expired => failure(Reason::Timeout, timed_out(cfg), None),
        Reply::Refused(message, timeout) => failure(
            if timeout {
                Reason::Timeout
            } else {
                Reason::Exit
            },
            format!("the worker answered with an error: {}", escape(&message)),
            None,
        ),
        Reply::OutOfStep(why) => failure(
            Reason::BadOutput,
            format!("{why}, so the worker is out of step and is restarted"),
            None,
        ),
        Reply::Died(Err(e)) => failure(Reason::Exit, format!("the worker was lost: {e}"), None),
        Reply::TimedOut => failure(
            Reason::Timeout,
            timed_out(cfg) + "; the worker is restarted",
            None,
        ),
        Reply::TooLong(cap) => failure(
            Reason::BadOutput,
            too_much_output(cap) + "; the worker is restarted",
            None,
        ),
        Reply::Oversized(cap) => failure(
            Reason::BadOutput,
            format!(
                "the worker's answer passed {} (--max-output-bytes), so it was dropped and \
                 the worker goes on with its other items; raise --max-output-bytes, or write \
                 big results to a file and return its path",
                human_size(cap)
            ),
            None,
        ),
        // The runner sends a resent item back before judging; were one judged, it would run
        // again next time rather than count against its attempts.
        Reply::Stopped | Reply::Resend => Outcome::Unfinished,
    }
}

/// Why a child printing more than `--max-output-bytes` failed.
fn too_much_output(cap: u64) -> String {
    format!(
        "the output passed {} on stdout, so the child was killed; raise --max-output-bytes, or \
         write big results to a file and print its path",
        human_size(cap)
    )
}

/// A worker's answer line read as its result, or why it cannot be.
fn answer_of(cfg: &Config, line: &[u8]) -> Result<Answer, String> {
    let value = result_of(cfg.results.capture, line)
        .map_err(|why| format!("the worker's answer is unusable, so it is restarted: {why}"))?;
    Ok(Answer::from_value(value))
}

/// A worker's parsed result made into the item's record, or why it cannot be.
fn judge_result(cfg: &Config, item: &Item, answer: Answer) -> Result<String, String> {
    // An exact echo (the usual case) is told without reading the key's value.
    let exact = answer.echo_checked
        || answer.names_exactly(&cfg.items.key_field, &item.key.value) != Some(false);
    let echoed = (!exact)
        .then(|| answer.field(&cfg.items.key_field))
        .flatten();
    if let Some(key) = echoed {
        // A worker that echoes the key shows which item it answered: a different key means it
        // is out of step (it printed an extra line earlier).
        if !same_key(&key, &item.key.value) {
            return Err(format!(
                "the worker answered for {:?} = {}, not for this item: it is out of step (one \
                 line per item), so it is restarted",
                cfg.items.key_field,
                escape(&loose_key(&key))
            ));
        }
    }
    record_of(cfg, item, answer)
}

fn timed_out(cfg: &Config) -> String {
    format!(
        "timed out after {}",
        human_duration(cfg.faults.timeout.unwrap_or_default())
    )
}

fn status_failure(status: ExitStatus) -> (Reason, String) {
    match (status.code(), status.signal()) {
        (Some(code), _) => (Reason::Exit, format!("exit code {code}")),
        (None, Some(sig)) => (Reason::Signal, format!("killed by {}", signal_name(sig))),
        (None, None) => (Reason::Exit, format!("ended with {status}")),
    }
}

/// The record of an item's result, unless it is longer than a cache line may be.
fn record_of(cfg: &Config, item: &Item, answer: Answer) -> Result<String, String> {
    let record = answer.record(&cfg.items.key_field, &item.key.value, &item.key.text);
    // A result that is not an object is wrapped in one: one level more than the result.
    if crate::input::depth::too_deep(record.as_bytes()) {
        return Err(format!(
            "{} (the record around the result adds a level), so it could not be read back \
             from the cache",
            crate::input::depth::too_deep_message()
        ));
    }
    if record.len() > cfg.items.max_line_bytes {
        return Err(format!(
            "the record would be {}, over --max-line-bytes ({}), so it could not be read back \
             from the cache; raise --max-line-bytes",
            exact_size(record.len() as u64),
            human_size(cfg.items.max_line_bytes as u64)
        ));
    }
    Ok(record)
}

fn signal_name(sig: i32) -> String {
    let name = match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGTERM => "SIGTERM",
        _ => return format!("signal {sig}"),
    };
    format!("{name} (signal {sig})")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::stdout::parse_result;
    use serde_json::json;
    use serde_json::Value;

    #[test]
    fn records_put_the_key_first() {
        assert_eq!(
            make_record("id", &json!(5), json!({"z": 1, "id": "other", "a": 2})),
            r#"{"id":5,"z":1,"a":2}"#
        );
        assert_eq!(
            make_record("k", &json!("x"), json!([1])),
            r#"{"k":"x","result":[1]}"#
        );
    }

    fn item(key: Value) -> Item {
        Item {
            seq: 1,
            line: String::new(),
            json: true,
            value: None,
            key: crate::input::Key::new(key),
        }
    }

    #[test]
    fn numbers_reach_the_record_exactly() {
        let out = b"{\"x\": 0.1000000000000000055511151231257827, \"big\": 123456789012345678901234567890, \"e\": 1.50e-3}\n";
        let key: Value = serde_json::from_str("3.141592653589793238").unwrap();
        let record = make_record("id", &key, parse_result(out).unwrap());
        assert_eq!(
            record,
            r#"{"id":3.141592653589793238,"x":0.1000000000000000055511151231257827,"big":123456789012345678901234567890,"e":1.50e-3}"#
        );
    }

    #[test]
    fn a_record_over_the_line_cap_fails() {
        // The engine's own Config, as a Rust caller builds it: no command line involved.
        let mut cfg = Config::new(vec!["true".into()]);
        cfg.items.max_line_bytes = 30;
        assert_eq!(
            record_of(&cfg, &item(json!(1)), Answer::from_value(json!("short"))).unwrap(),
            r#"{"id":1,"result":"short"}"#.to_owned()
        );
        let answer = Answer::from_value(json!("a longer result"));
        let err = record_of(&cfg, &item(json!(1)), answer).unwrap_err();
        assert!(
            err.contains("would be 35 bytes, over --max-line-bytes (30 bytes)"),
            "{err}"
        );
    }
}
