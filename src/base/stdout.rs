//! What a child's stdout becomes: its JSON result, or its text; never an altered copy.

use serde_json::Value;

use crate::base::depth;
use crate::base::text::escape;
use crate::config::Capture;

/// A child's result from its stdout, as `--capture` says.
pub fn result_of(capture: Capture, stdout: &[u8]) -> Result<Value, String> {
    match capture {
        Capture::Text => {
            // Text is kept exactly or not at all: a JSON string can only hold UTF-8.
            let text = std::str::from_utf8(stdout).map_err(|e| not_utf8(stdout, e))?;
            Ok(Value::String(
                text.trim_end_matches(['\n', '\r']).to_owned(),
            ))
        }
        Capture::Json => parse_result(stdout),
    }
}

/// Why output that is not UTF-8 is refused: it would have to be altered to become JSON.
fn not_utf8(bytes: &[u8], e: std::str::Utf8Error) -> String {
    let at = e.valid_up_to();
    let len = e.error_len().unwrap_or(bytes.len() - at);
    let bad: Vec<String> = bytes[at..at + len.min(4)]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!(
        "the output is not valid UTF-8: byte offset {at} starts an invalid sequence ({}); a \
         result must be UTF-8, as JSON is, and pararun never replaces bytes",
        bad.join(" ")
    )
}

/// A child's JSON result: its whole stdout when that is one JSON document, else its last
/// non-empty line when that is JSON (so log lines before it are fine).
///
/// Output that is not UTF-8 is refused rather than altered, unless the result is a last line
/// that is UTF-8 itself: then only log lines before it hold the stray bytes, and no byte of the
/// result is changed.
pub fn parse_result(stdout: &[u8]) -> Result<Value, String> {
    let text = match std::str::from_utf8(stdout) {
        Ok(text) => text,
        Err(e) => {
            let last = stdout
                .split(|&b| b == b'\n')
                .rev()
                .find(|l| !l.trim_ascii().is_empty())
                .unwrap_or_default();
            return std::str::from_utf8(last)
                .ok()
                .and_then(|l| serde_json::from_str(l).ok())
                .ok_or_else(|| not_utf8(stdout, e));
        }
    };
    if text.trim().is_empty() {
        return Err(
            "empty stdout (expected a JSON result; use --capture text for plain text)".into(),
        );
    }
    if let Ok(value) = serde_json::from_str(text) {
        return Ok(value);
    }
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    serde_json::from_str(last).map_err(|e| {
        let excerpt: String = last.chars().take(120).collect();
        if depth::too_deep(last.as_bytes()) {
            return format!("{}: {}", depth::too_deep_message(), escape(&excerpt));
        }
        format!(
            "stdout's last line is not JSON ({e}): {}; if the program prints plain text, add \
             --capture text to keep it as the result",
            escape(&excerpt)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn results_from_stdout() {
        assert_eq!(parse_result(b"{\n  \"a\": 1\n}\n"), Ok(json!({"a": 1})));
        assert_eq!(
            parse_result(b"loading...\nstep 2\n{\"a\":1}\n\n"),
            Ok(json!({"a": 1}))
        );
        assert_eq!(parse_result(b"42\n"), Ok(json!(42)));
        assert!(parse_result(b"").unwrap_err().contains("empty stdout"));
        let err = parse_result(b"{\"a\":1}\ndone\n").unwrap_err();
        assert!(err.contains("\"done\""), "{err}");
        assert!(
            err.ends_with("add --capture text to keep it as the result"),
            "{err}"
        );
    }

    #[test]
    fn output_that_is_not_utf8_is_refused_not_altered() {
        let err = parse_result(b"{\"a\": \"caf\xe9\"}\n").unwrap_err();
        assert!(err.contains("not valid UTF-8: byte offset 10"), "{err}");
        assert!(err.contains("sequence (e9)"), "{err}");
        // Stray bytes in a log line before a clean last line change nothing in the result.
        assert_eq!(
            parse_result(b"log \xff\xfe\n{\"a\":1}\n"),
            Ok(json!({"a": 1}))
        );
        let err = result_of(Capture::Text, b"ok\n\xc3(\n").unwrap_err();
        assert!(
            err.contains("byte offset 3 starts an invalid sequence (c3)"),
            "{err}"
        );
        assert_eq!(
            result_of(Capture::Text, "caf\u{e9}\n".as_bytes()),
            Ok(json!("caf\u{e9}"))
        );
    }
}
