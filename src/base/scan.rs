//! The fast path of loading a cache: a record's key hash without serde.
//!
//! Parsing every record with serde_json, building the key's `Value` and printing it back took
//! most of a cache load. Most records are plain: a flat object whose key is an integer, a
//! decimal or a string without escapes, and then the key's canonical text (what
//! [`Key::new`](crate::base::key::Key::new) hashes) is the bytes of the line as written. This
//! scanner checks the whole line's syntax (a damaged line must still count as damaged), finds
//! the top-level key field and hashes its text.
//!
//! It accepts only a subset of what serde_json accepts and answers `None` for anything else
//! (an exponent, an escape in the key or in a top-level field name, a repeated key field, deep
//! nesting, a key that is not a number or a string, any syntax error): the caller then parses
//! the line in full, which gives the key, or the error message, of old. So a `Some` is always
//! the hash the full parse gives; the tests in `scan_tests.rs` pin that.

use std::ops::Range;

use xxhash_rust::xxh3::xxh3_128;

/// Nesting deeper than this goes to the full parse: its recursion limit (128) applies to a
/// key's value, and a bound keeps this scanner's recursion small.
const MAX_DEPTH: u32 = 32;

/// The XXH3-128 hash of the canonical text of the top-level `field` of a JSON object line
/// (trimmed of surrounding whitespace), or `None` when the line needs the full parse.
pub fn key_hash(line: &[u8], field: &str) -> Option<u128> {
    key_text(line, field).map(xxh3_128)
}

/// The canonical text of the top-level `field` of a JSON object line, as it stands in the
/// line, or `None` when the line needs the full parse. A `Some` is the text [`Key::new`]
/// gives for the key the full parse reads, and the full parse of the line would succeed.
///
/// [`Key::new`]: crate::base::key::Key::new
pub fn key_text<'a>(line: &'a [u8], field: &str) -> Option<&'a [u8]> {
    // The full parse reads a `&str`: a line that is not UTF-8 is damage, and only it says so.
    // Outside strings the scanner takes ASCII bytes only, so inside them this check suffices.
    if !line.is_ascii() {
        std::str::from_utf8(line).ok()?;
    }
    let span = Scanner { b: line, i: 0 }.record(field.as_bytes())?;
    let text = &line[span.0..span.1];
    let plain = match text.first()? {
        // serde_json prints a string back with escapes only for `"`, `\` and control bytes;
        // the scanner refused raw control bytes, so without a `\` the text is as written.
        b'"' => memchr::memchr(b'\\', text).is_none(),
        // Integers and decimals keep every digit as written (arbitrary_precision); only an
        // exponent is respelled (`1E5` is `1e+5`), so those take the full parse.
        b'-' | b'0'..=b'9' => !text.iter().any(|&b| b == b'e' || b == b'E'),
        _ => false,
    };
    plain.then_some(text)
}

/// A top-level field of a scalar-only object: its name (inside the quotes) and its value's
/// text, as ranges of the line.
pub struct Field {
    /// The name, without its quotes.
    pub name: Range<usize>,
    /// The value as written (a string with its quotes).
    pub value: Range<usize>,
}

/// The fields of `line` when it is a JSON object whose values are all scalars without escapes
/// (strings, numbers, `true`, `false`, `null`) and whose names are distinct and at most `max`:
/// the usual answer of a trivial worker, read in place. `None` for anything else, JSON or
/// not: the caller then takes the full parse. The same scanner as [`key_text`], so the two fast
/// paths accept JSON by one grammar.
pub fn scalar_fields(line: &[u8], max: usize) -> Option<Vec<Field>> {
    let mut s = Scanner { b: line, i: 0 };
    s.ws();
    s.eat(b'{')?;
    s.ws();
    let mut fields: Vec<Field> = Vec::with_capacity(4);
    if !s.eat_if(b'}') {
        loop {
            s.eat(b'"')?;
            let start = s.i;
            if s.string()? {
                return None;
            }
            let name = start..s.i - 1;
            s.ws();
            s.eat(b':')?;
            s.ws();
            let at = s.i;
            s.scalar()?;
            let same = |f: &Field| line[f.name.clone()] == line[name.clone()];
            if fields.len() == max || fields.iter().any(same) {
                return None;
            }
            fields.push(Field {
                name,
                value: at..s.i,
            });
            s.ws();
            if s.eat_if(b'}') {
                break;
            }
            s.eat(b',')?;
            s.ws();
        }
    }
    s.ws();
    (s.i == line.len()).then_some(fields)
}

/// The length of the run of bytes at the start of `rest` that a string holds as they are: up
/// to a `"`, a `\\` or a control byte. Strings are mostly such runs, so this looks at eight
/// bytes at a time.
fn plain_run(rest: &[u8]) -> usize {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    // High bit of each byte of x that is zero; exact up to the first such byte, which is all
    // that is read from it.
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let mut done = 0;
    for word in rest.chunks_exact(8) {
        let x = u64::from_le_bytes(word.try_into().expect("eight bytes"));
        let stop = zero(x ^ (ONES * u64::from(b'"')))
            | zero(x ^ (ONES * u64::from(b'\\')))
            | (x.wrapping_sub(ONES * 0x20) & !x & HIGH);
        if stop != 0 {
            return done + stop.trailing_zeros() as usize / 8;
        }
        done += 8;
    }
    done + rest[done..]
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .unwrap_or(rest.len() - done)
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

impl Scanner<'_> {
    /// A whole line holding one object; the span of its `field`'s value.
    fn record(&mut self, field: &[u8]) -> Option<(usize, usize)> {
        self.ws();
        self.eat(b'{')?;
        self.ws();
        let mut found = None;
        if !self.eat_if(b'}') {
            loop {
                self.eat(b'"')?;
                let name = self.i;
                // An escaped name might spell the field: only the full parse decodes it.
                if self.string()? {
                    return None;
                }
                let name = &self.b[name..self.i - 1];
                self.ws();
                self.eat(b':')?;
                self.ws();
                let start = self.i;
                self.value(1)?;
                if name == field {
                    // serde_json keeps the last of repeated fields, after parsing each in
                    // full: an earlier one may fail there while passing here.
                    if found.is_some() {
                        return None;
                    }
                    found = Some((start, self.i));
                }
                self.ws();
                if self.eat_if(b'}') {
                    break;
                }
                self.eat(b',')?;
                self.ws();
            }
        }
        self.ws();
        // A record without the field is damage; the full parse words the message.
        (self.i == self.b.len()).then_some(())?;
        found
    }

    fn value(&mut self, depth: u32) -> Option<()> {
        match *self.b.get(self.i)? {
            b'"' => {
                self.i += 1;
                self.string().map(drop)
            }
            b'-' | b'0'..=b'9' => self.number(),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'[' if depth < MAX_DEPTH => {
                self.i += 1;
                self.ws();
                if self.eat_if(b']') {
                    return Some(());
                }
                loop {
                    self.value(depth + 1)?;
                    self.ws();
                    if self.eat_if(b']') {
                        return Some(());
                    }
                    self.eat(b',')?;
                    self.ws();
                }
            }
            b'{' if depth < MAX_DEPTH => {
                self.i += 1;
                self.ws();
                if self.eat_if(b'}') {
                    return Some(());
                }
                loop {
                    self.eat(b'"')?;
                    self.string()?;
                    self.ws();
                    self.eat(b':')?;
                    self.ws();
                    self.value(depth + 1)?;
                    self.ws();
                    if self.eat_if(b'}') {
                        return Some(());
                    }
                    self.eat(b',')?;
                    self.ws();
                }
            }
            _ => None,
        }
    }

    /// A scalar: a string without escapes, a number, `true`, `false` or `null`.
    fn scalar(&mut self) -> Option<()> {
        match *self.b.get(self.i)? {
            b'"' => {
                self.i += 1;
                (!self.string()?).then_some(())
            }
            b'-' | b'0'..=b'9' => self.number(),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => None,
        }
    }

    /// The rest of a string after its opening quote, with the checks serde_json makes on a
    /// string it skips: no raw control bytes, only JSON's escapes, four hex digits after `\u`.
    /// Whether it held an escape.
    fn string(&mut self) -> Option<bool> {
        let mut escaped = false;
        loop {
            self.i += plain_run(&self.b[self.i..]);
            let byte = *self.b.get(self.i)?;
            self.i += 1;
            match byte {
                b'"' => return Some(escaped),
                b'\\' => match *self.b.get(self.i)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.i += 1,
                    b'u' => {
                        let hex = self.b.get(self.i + 1..self.i + 5)?;
                        if !hex.iter().all(u8::is_ascii_hexdigit) {
                            return None;
                        }
                        self.i += 5;
                    }
                    _ => return None,
                },
                _ => return None,
            }
            escaped = true;
        }
    }

    /// A number by JSON's grammar: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    fn number(&mut self) -> Option<()> {
        self.eat_if(b'-');
        match *self.b.get(self.i)? {
            // A leading zero stands alone: a digit after it fails at the caller's separator.
            b'0' => self.i += 1,
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.eat_if(b'.') {
            self.some_digits()?;
        }
        if self.eat_if(b'e') || self.eat_if(b'E') {
            if !self.eat_if(b'+') {
                self.eat_if(b'-');
            }
            self.some_digits()?;
        }
        Some(())
    }

    fn some_digits(&mut self) -> Option<()> {
        let start = self.i;
        self.digits();
        (self.i > start).then_some(())
    }

    fn digits(&mut self) {
        while self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        self.b[self.i..].starts_with(word).then_some(())?;
        self.i += word.len();
        Some(())
    }

    /// JSON's whitespace, as serde_json reads it.
    fn ws(&mut self) {
        while matches!(self.b.get(self.i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn eat_if(&mut self, byte: u8) -> bool {
        let here = self.b.get(self.i) == Some(&byte);
        self.i += usize::from(here);
        here
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        self.eat_if(byte).then_some(())
    }
}

#[cfg(test)]
#[path = "scan_tests.rs"]
mod tests;
