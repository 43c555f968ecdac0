//! `$'…'` strings: pararun decodes their escapes itself and writes the text back in plain single
//! quotes.
//!
//! POSIX.1-2024 added `$'…'`, and bash, ksh and zsh have long had it, but dash (Debian's and
//! Ubuntu's `/bin/sh`, 0.5.12) reads `$'a\tb'` as a `$` and the text `a\tb`. Decoding here makes
//! the string mean the same on every sh, and lets a placeholder stand inside one. The escapes
//! follow bash's `ansicstr` (lib/sh/strtrans.c), with `\u`/`\U` always written as UTF-8.

/// Decodes the escape after a backslash. `rest` is the text that follows the backslash, up to
/// the next placeholder or the closing quote (which a first `'` escapes). Returns the bytes and
/// how many characters of `rest` the escape used; `Err` says why it cannot be written as text.
pub(super) fn escape(rest: &[char]) -> Result<(Vec<u8>, usize), &'static str> {
    let Some(&c) = rest.first() else {
        // A lone backslash before a placeholder or the end stays a backslash.
        return Ok((b"\\".to_vec(), 0));
    };
    let byte = |b: u8, used: usize| Ok((vec![b], used));
    let decoded = match c {
        'a' => byte(7, 1),
        'b' => byte(8, 1),
        'e' | 'E' => byte(0x1b, 1),
        'f' => byte(0x0c, 1),
        'n' => byte(b'\n', 1),
        'r' => byte(b'\r', 1),
        't' => byte(b'\t', 1),
        'v' => byte(0x0b, 1),
        '\\' | '\'' | '"' | '?' => byte(c as u8, 1),
        '0'..='7' => {
            let (value, used) = digits(rest, 8, 3);
            // bash keeps the low byte of \400 and above.
            byte((value & 0xff) as u8, used)
        }
        'x' if rest.get(1) == Some(&'{') => braced_hex(&rest[2..]),
        'x' => match digits(&rest[1..], 16, 2) {
            (_, 0) => Ok((b"\\x".to_vec(), 1)),
            (value, used) => byte(value as u8, used + 1),
        },
        'u' | 'U' => {
            let max = if c == 'u' { 4 } else { 8 };
            match digits(&rest[1..], 16, max) {
                (_, 0) => Ok((format!("\\{c}").into_bytes(), 1)),
                (value, used) => {
                    let ch = char::from_u32(value).ok_or("names no Unicode character")?;
                    Ok((ch.to_string().into_bytes(), used + 1))
                }
            }
        }
        'c' => control(rest),
        other => Ok((format!("\\{other}").into_bytes(), 1)),
    }?;
    if decoded.0 == [0] {
        return Err("makes a NUL byte, which no command argument can carry");
    }
    Ok(decoded)
}

/// `\cX`: the control character of X, as bash's `TOCTRL` (`\c?` is DEL, `\c\\` is FS).
fn control(rest: &[char]) -> Result<(Vec<u8>, usize), &'static str> {
    match rest.get(1) {
        // At the end of the string bash makes a NUL of it.
        None => Err("makes a NUL byte, which no command argument can carry"),
        Some('?') => Ok((vec![0x7f], 2)),
        Some('\\') => {
            let used = if rest.get(2) == Some(&'\\') { 3 } else { 2 };
            Ok((vec![0x1c], used))
        }
        Some(x) if x.is_ascii() => Ok((vec![(x.to_ascii_uppercase() as u8) & 0x1f], 2)),
        Some(_) => Err("puts \\c before a character that is not ASCII"),
    }
}

/// `\x{H…}` (bash 5.2, after ksh93): any number of hex digits, of which the low byte counts,
/// and the `}` if it follows. `rest` starts after the `{`; none is a NUL, as in bash.
fn braced_hex(rest: &[char]) -> Result<(Vec<u8>, usize), &'static str> {
    let mut value = 0u32;
    let mut used = 0;
    for digit in rest.iter().map_while(|c| c.to_digit(16)) {
        // Only the low byte is kept, so it is enough to keep it all along.
        value = (value * 16 + digit) & 0xff;
        used += 1;
    }
    if rest.get(used) == Some(&'}') {
        used += 1;
    }
    Ok((vec![value as u8], used + 2))
}

/// Reads up to `max` digits of `radix`; returns their value and how many were read.
fn digits(text: &[char], radix: u32, max: usize) -> (u32, usize) {
    let mut value = 0u32;
    let mut used = 0;
    for digit in text.iter().take(max).map_while(|c| c.to_digit(radix)) {
        value = value * radix + digit;
        used += 1;
    }
    (value, used)
}

#[cfg(test)]
mod tests {
    use super::escape;

    fn decode(text: &str) -> Result<(Vec<u8>, usize), &'static str> {
        escape(&text.chars().collect::<Vec<_>>())
    }

    #[test]
    fn escapes_decode_as_bash_does() {
        assert_eq!(decode("tx"), Ok((b"\t".to_vec(), 1)));
        assert_eq!(decode("101x"), Ok((b"A".to_vec(), 3)));
        assert_eq!(decode("7778"), Ok((vec![0xff], 3)));
        assert_eq!(decode("x41g"), Ok((b"A".to_vec(), 3)));
        assert_eq!(decode("x4g"), Ok((vec![4], 2)));
        assert_eq!(decode("xg"), Ok((b"\\x".to_vec(), 1)));
        assert_eq!(decode("u00e9"), Ok(("é".as_bytes().to_vec(), 5)));
        assert_eq!(decode("U0001F600"), Ok(("😀".as_bytes().to_vec(), 9)));
        assert_eq!(decode("ca"), Ok((vec![1], 2)));
        assert_eq!(decode("c?"), Ok((vec![0x7f], 2)));
        assert_eq!(decode("c\\\\"), Ok((vec![0x1c], 3)));
        assert_eq!(decode("z"), Ok((b"\\z".to_vec(), 1)));
        assert_eq!(decode(""), Ok((b"\\".to_vec(), 0)));
        assert_eq!(decode("x{41}z"), Ok((b"A".to_vec(), 5)));
        assert_eq!(decode("x{0000041}"), Ok((b"A".to_vec(), 10)));
        assert_eq!(decode("x{141"), Ok((b"A".to_vec(), 5)));
        assert_eq!(decode("x{4}"), Ok((vec![4], 4)));
        assert!(decode("x{}").is_err());
        assert!(decode("x{g}").is_err());
        assert!(decode("x{100}").is_err());
        assert!(decode("0").is_err());
        assert!(decode("x00").is_err());
        assert!(decode("c").is_err());
        assert!(decode("c@").is_err());
        assert!(decode("uD800").is_err());
    }
}
