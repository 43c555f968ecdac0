//! The throttle signal in a worker's or a child's words: `"reason": "throttled"` on an error
//! answer, and the `"retry_after": SECONDS` that may come with it (or alone on the stdout of a
//! child that exited with `--throttle-exit-code`).

use std::time::Duration;

use serde_json::Value;

use super::Answer;

/// The longest pause a `retry_after` may ask for: a service that names a day is better
/// answered by a person than by a run that sits still.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// `retry_after`'s value as a delay: a number of seconds (a fraction allowed), at most an hour;
/// anything else (negative, not a number) is no delay given.
pub fn retry_after(value: &Value) -> Option<Duration> {
    let secs = value.as_f64().filter(|s| s.is_finite() && *s >= 0.0)?;
    Some(Duration::from_secs_f64(
        secs.min(MAX_RETRY_AFTER.as_secs_f64()),
    ))
}

/// A child's stdout when it said "throttled": `{"retry_after": SECONDS}`, or anything else
/// (no delay given).
pub fn retry_after_in(stdout: &[u8]) -> Option<Duration> {
    let value: Value = serde_json::from_slice(stdout.trim_ascii()).ok()?;
    value.get("retry_after").and_then(retry_after)
}

impl Answer {
    /// With the ordered protocol, an answer that is an error saying `"reason": "throttled"`:
    /// its message and its `retry_after`, if any (`None` for any other answer).
    pub fn throttle(&self) -> Option<(String, Option<Duration>)> {
        // `names_exactly` reads a read-in-place answer without building a `Value`: the check
        // costs an ordinary answer one scan of its field names.
        if self.names_exactly("reason", &Value::from("throttled")) != Some(true) {
            return None;
        }
        let error = self.field("error")?;
        let message = match error.as_ref() {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        let after = self.field("retry_after").and_then(|v| retry_after(&v));
        Some((message, after))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn retry_after_is_seconds_capped_at_an_hour() {
        assert_eq!(retry_after(&json!(1.5)), Some(Duration::from_millis(1500)));
        assert_eq!(retry_after(&json!(-1)), None);
        assert_eq!(retry_after(&json!("2")), None);
        assert_eq!(retry_after(&json!(1e9)), Some(MAX_RETRY_AFTER));
        assert_eq!(
            retry_after_in(b"{\"retry_after\": 2}\n"),
            Some(Duration::from_secs(2))
        );
        assert_eq!(retry_after_in(b"slow down"), None);
    }

    #[test]
    fn only_a_throttled_error_is_a_throttle() {
        let flat =
            Answer::flat(br#"{"error":"429","reason":"throttled","retry_after":3}"#.to_vec());
        let (message, after) = flat.ok().unwrap().throttle().unwrap();
        assert_eq!(
            (message.as_str(), after),
            ("429", Some(Duration::from_secs(3)))
        );
        let plain = Answer::from_value(json!({"reason": "throttled"}));
        assert!(plain.throttle().is_none());
        let other = Answer::from_value(json!({"error": "x", "reason": "timeout"}));
        assert!(other.throttle().is_none());
    }
}
