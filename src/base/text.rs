//! Text helpers for messages: durations for people, excerpts of long text, and escaping of
//! what a child or an item wrote.

use std::time::Duration;

use serde_json::Value;

/// Formats a duration for people: `850ms`, `12.3s`, `4m05s`, `2h03m`.
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs >= 3600 {
        format!("{}h{:02}m", secs / 3600, secs % 3600 / 60)
    } else if secs >= 60 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else if d.as_millis() >= 1000 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// A count for people, in groups of three digits: `1,000`, `12,345,678`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// At most 200 characters of a key or item for a message, so that a huge item cannot flood
/// stderr; the cut is marked with its full length.
pub fn excerpt(text: &str) -> std::borrow::Cow<'_, str> {
    const MAX: usize = 200;
    match text.char_indices().nth(MAX) {
        None => text.into(),
        Some((cut, _)) => format!("{}...({} bytes)", &text[..cut], text.len()).into(),
    }
}

/// Quotes text as a JSON string, so that keys, items and child output inside our messages can't
/// carry terminal escapes or fake line breaks.
pub fn escape(text: &str) -> String {
    Value::String(text.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(human_duration(Duration::from_millis(850)), "850ms");
        assert_eq!(human_duration(Duration::from_millis(12_340)), "12.3s");
        assert_eq!(human_duration(Duration::from_secs(245)), "4m05s");
        assert_eq!(human_duration(Duration::from_secs(7380)), "2h03m");
    }

    #[test]
    fn thousands_are_grouped() {
        for (n, text) in [
            (0, "0"),
            (999, "999"),
            (1000, "1,000"),
            (12_345_678, "12,345,678"),
        ] {
            assert_eq!(thousands(n), text);
        }
    }

    #[test]
    fn excerpts_cut_long_text() {
        assert_eq!(excerpt("short"), "short");
        let long = "é".repeat(300);
        let cut = excerpt(&long);
        assert!(
            cut.starts_with(&"é".repeat(200)) && cut.ends_with("...(600 bytes)"),
            "{cut}"
        );
    }

    #[test]
    fn escape_neutralises_control_characters() {
        assert_eq!(escape("a\u{1b}[31mb\n"), "\"a\\u001b[31mb\\n\"");
    }
}
