//! Which item an answer names: the key a worker echoes, compared with the item's loosely
//! (a worker given `5` may answer `"id": "5"`), and exactly where two items in flight are
//! loosely equal.

use serde_json::Value;

use super::Answer;
use crate::base::stdout::result_of;
use crate::config::Capture;

/// Which item a worker's answer says it answers, decided as the answer is read: in a pipeline
/// the next answer must not be handed to an item before this one is known to be in step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Echo {
    /// It names this item's key.
    Same,
    /// It names another key: the worker is out of step.
    Other,
    /// It names no key, so it cannot show which item it answers.
    Unnamed,
    /// It is no result at all (not JSON): its item fails and the worker is restarted.
    Unusable,
}

/// An answer line as the pipeline reads it: which item it names, and the answer itself.
pub struct Parsed {
    pub echo: Echo,
    /// The key it echoes when that is the item's key only loosely (5 for "5"): it may be
    /// exactly the key of another item in flight.
    pub loose: Option<Value>,
    /// The parsed answer, or the line when it is no result.
    pub answer: Result<Answer, Vec<u8>>,
}

/// Judges the key an answer line echoes against the key of the item it is taken for; gives the
/// parsed result too when the line is one, so it need not be parsed again.
pub fn parse_echo(capture: Capture, key_field: &str, key: &Value, line: Vec<u8>) -> Parsed {
    let answer = match capture {
        Capture::Json => Answer::flat(line),
        Capture::Text => Err(line),
    }
    .or_else(|line| match result_of(capture, &line) {
        Ok(value) => Ok(Answer::parsed(line, value)),
        Err(_) => Err(line),
    });
    let Ok(mut answer) = answer else {
        let (echo, loose) = (Echo::Unusable, None);
        return Parsed {
            echo,
            loose,
            answer,
        };
    };
    let (echo, loose) = match answer.names_exactly(key_field, key) {
        None => (Echo::Unnamed, None),
        Some(true) => (Echo::Same, None),
        Some(false) => match answer.field(key_field) {
            Some(answered) if *answered == *key => (Echo::Same, None),
            Some(answered) if same_key(&answered, key) => (Echo::Same, Some(answered.into_owned())),
            _ => (Echo::Other, None),
        },
    };
    answer.echo_checked = echo == Echo::Same;
    Parsed {
        echo,
        loose,
        answer: Ok(answer),
    }
}

/// Whether a key a worker echoed is this item's key, compared loosely. As text, since a worker
/// given the line `5` may well answer `"id": 5`. Numbers also by their value as doubles, since
/// many JSON libraries read numbers as doubles: such a worker echoes
/// `123456789012345678901234567890` as `1.2345678901234568e+29`, and `1.0` as `1`.
pub fn same_key(answered: &Value, key: &Value) -> bool {
    // The usual case, an exact echo, needs no text made.
    if answered == key || loose_key(answered) == loose_key(key) {
        return true;
    }
    match (answered, key) {
        // A float echoed as a double (Python's 3.141592653589793 for 3.141592653589793238)
        // is the same key; an integer must match exactly, since past 2^53 distinct integers
        // share a double (9007199254740992 and 9007199254740993).
        (Value::Number(a), Value::Number(b)) if is_integer(a) && is_integer(b) => false,
        (Value::Number(a), Value::Number(b)) => match (a.as_f64(), b.as_f64()) {
            // Distinct keys that underflow (1e-400 and 2e-400) share 0.0: a zero matches
            // only a zero.
            (Some(x), Some(y)) if x == 0.0 && y == 0.0 => is_zero(a) && is_zero(b),
            (Some(x), Some(y)) => x == y,
            _ => false,
        },
        _ => false,
    }
}

/// Whether a number is written as zero (every digit before its exponent a 0).
fn is_zero(n: &serde_json::Number) -> bool {
    let text = n.to_string();
    let mantissa = text.split(['e', 'E']).next().unwrap_or_default();
    mantissa.bytes().all(|b| matches!(b, b'0' | b'-' | b'.'))
}

/// Whether a number is written as an integer (no fraction, no exponent).
fn is_integer(n: &serde_json::Number) -> bool {
    !n.to_string().contains(['.', 'e', 'E'])
}

/// A key as text: a string bare, anything else as its JSON.
pub fn loose_key(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_answer_shows_which_item_it_answers() {
        let echo =
            |line: &str| parse_echo(Capture::Json, "id", &json!(5), line.as_bytes().to_vec()).echo;
        assert_eq!(echo(r#"{"id": "5", "x": 1}"#), Echo::Same);
        assert_eq!(echo(r#"{"id": 6}"#), Echo::Other);
        assert_eq!(echo(r#"{"x": 1}"#), Echo::Unnamed);
        assert_eq!(echo("[5]"), Echo::Unnamed);
        assert_eq!(echo("not json"), Echo::Unusable);
    }

    #[test]
    fn echoed_keys_compare_loosely() {
        let parse = |t: &str| -> Value { serde_json::from_str(t).unwrap() };
        assert!(same_key(&json!("5"), &json!(5)));
        assert!(same_key(&json!(5), &json!("5")));
        assert!(same_key(
            &parse("1.2345678901234568e+29"),
            &parse("123456789012345678901234567890")
        ));
        assert!(same_key(&json!(1), &parse("1.0")));
        assert!(!same_key(&json!(2), &json!(1)));
        assert!(!same_key(&json!("1.0"), &json!(1)));
        assert!(!same_key(&parse("1e400"), &parse("2e400")));
        assert!(!same_key(&parse("1e-400"), &parse("2e-400")));
        assert!(!same_key(&parse("0.0"), &parse("1e-400")));
        assert!(same_key(&parse("0.0"), &parse("0e5")));
        assert!(same_key(&parse("-0.0"), &parse("0.0")));
    }
}
