//! The one limit on how deeply JSON may nest, for every line pararun reads: input items,
//! results (a child's stdout, a worker's answers), cache records and the failures file.
//!
//! serde_json refuses to build a value nested deeper than its recursion limit (128: at most
//! 127 arrays and objects inside one another), which keeps its recursive parse off the end of
//! the stack. Paths that only skip a value (a key's extraction, which skips the other fields
//! without recursing) would accept any depth; they apply the same limit here, so that a line
//! nested 128 levels deep is refused alike on every path, in the same words.

/// The deepest nesting of arrays and objects accepted, counting the outermost: 127.
pub const MAX_DEPTH: usize = 127;

/// The start of serde_json's message for its limit, and of ours.
const SERDE_PREFIX: &str = "recursion limit exceeded";

/// Why a line nested too deeply is refused, naming the limit.
pub fn too_deep_message() -> String {
    format!(
        "the JSON is nested deeper than {MAX_DEPTH} levels of arrays and objects, pararun's \
         limit for input, results and cache lines"
    )
}

/// Whether `text` nests arrays and objects more than [`MAX_DEPTH`] deep. A byte scan that
/// skips strings; it assumes, and does not check, that `text` is JSON.
pub fn too_deep(text: &[u8]) -> bool {
    deeper_than(text, MAX_DEPTH)
}

/// Whether `text` nests arrays and objects more than `limit` deep (see [`too_deep`]).
pub fn deeper_than(text: &[u8], limit: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in text {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// A serde_json error in words: its own, or, for its recursion limit, [`too_deep_message`];
/// `what` says what the JSON was, for the other errors ("invalid JSON").
pub fn describe(what: &str, e: &serde_json::Error) -> String {
    match e.to_string().starts_with(SERDE_PREFIX) {
        true => too_deep_message(),
        false => format!("{what}: {e}"),
    }
}

/// The error [`describe`] words as [`too_deep_message`], for a path that found the depth
/// itself.
pub fn too_deep_error() -> serde_json::Error {
    serde::de::Error::custom(SERDE_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> String {
        format!("{}{}", "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn the_limit_is_serde_jsons() {
        for depth in [1, MAX_DEPTH, MAX_DEPTH + 1, 200] {
            let text = nested(depth);
            let parsed = serde_json::from_str::<serde_json::Value>(&text);
            assert_eq!(too_deep(text.as_bytes()), parsed.is_err(), "{depth}");
            if let Err(e) = parsed {
                assert_eq!(describe("invalid JSON", &e), too_deep_message());
            }
        }
        assert!(!too_deep(br#"{"a":"[[[[\"[[[["}"#));
        assert_eq!(describe("x", &too_deep_error()), too_deep_message());
    }
}
