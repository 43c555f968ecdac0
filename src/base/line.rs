//! Reading a stream a line at a time with a cap on a line's size, for the input and the cache.
//!
//! A line longer than the cap is not held: once it passes the cap, everything but its first
//! bytes is dropped and the rest of it is read and thrown away as it arrives, so one huge line
//! costs the cap in memory, not its size. A UTF-8 byte order mark at the very start of the
//! stream (which some Windows tools write) is skipped: it is not part of the first line.

use std::io::{self, BufRead};

/// How much of an over-long line is kept, to show in messages and to tell JSON from text.
pub const KEPT: usize = 256;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// What one read found. The line's bytes are in the caller's buffer, without the `\n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line {
    /// The end of the stream: nothing was read.
    End,
    /// A whole line; `terminated` is false for a last line with no `\n` (maybe torn).
    Whole {
        /// Whether a `\n` ended the line.
        terminated: bool,
    },
    /// A line longer than the cap: only its first [`KEPT`] bytes are in the buffer.
    TooLong {
        /// The line's full length, without its `\n`.
        bytes: u64,
        /// Whether a `\n` ended the line.
        terminated: bool,
    },
}

/// Lines of a buffered stream, each at most `cap` bytes (without its `\n`).
pub struct CappedLines<R> {
    reader: R,
    cap: usize,
    at_start: bool,
}

impl<R: BufRead> CappedLines<R> {
    /// Reads `reader` with lines of at most `cap` bytes.
    pub fn new(reader: R, cap: usize) -> CappedLines<R> {
        CappedLines {
            reader,
            cap,
            at_start: true,
        }
    }

    /// The cap, in bytes.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Reads the next line into `buf` (cleared first).
    pub fn read(&mut self, buf: &mut Vec<u8>) -> io::Result<Line> {
        buf.clear();
        let mut len = 0u64;
        let mut terminated = false;
        let mut first = self.at_start;
        self.at_start = false;
        while !terminated {
            let chunk = match self.reader.fill_buf() {
                Ok([]) => break,
                Ok(chunk) => chunk,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let (mut part, used) = match memchr::memchr(b'\n', chunk) {
                Some(end) => {
                    terminated = true;
                    (&chunk[..end], end + 1)
                }
                None => (chunk, chunk.len()),
            };
            if first && buf.len() + part.len() >= BOM.len() {
                // The mark may arrive split over reads from a pipe: it is checked once the
                // line holds its first three bytes.
                first = false;
                let mut head = buf.clone();
                head.extend_from_slice(&part[..BOM.len() - buf.len()]);
                if head == BOM {
                    part = &part[BOM.len() - buf.len()..];
                    // What the line held so far was the start of the mark, not its content.
                    len -= buf.len() as u64;
                    buf.clear();
                }
            }
            len += part.len() as u64;
            if len <= self.cap as u64 {
                buf.extend_from_slice(part);
            } else if buf.len() + part.len() > KEPT {
                let keep = KEPT.saturating_sub(buf.len()).min(part.len());
                buf.extend_from_slice(&part[..keep]);
                buf.truncate(KEPT);
                // Give back what the line had grown to: it may be the whole cap.
                buf.shrink_to(KEPT);
            } else {
                buf.extend_from_slice(part);
            }
            self.reader.consume(used);
        }
        Ok(if len == 0 && !terminated {
            Line::End
        } else if len > self.cap as u64 {
            Line::TooLong {
                bytes: len,
                terminated,
            }
        } else {
            Line::Whole { terminated }
        })
    }
}

impl<R: io::Read> CappedLines<io::BufReader<R>> {
    /// The bytes read from the stream but not yet returned as lines.
    pub fn buffered(&self) -> &[u8] {
        self.reader.buffer()
    }
}

/// A size for messages: bytes below 1 KiB, else KiB, MiB or GiB with one decimal when needed.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (unit, size) in UNITS {
        if bytes >= size {
            let tenths = (bytes * 10 + size / 2) / size;
            return if tenths.is_multiple_of(10) {
                format!("{} {unit}", tenths / 10)
            } else {
                format!("{}.{} {unit}", tenths / 10, tenths % 10)
            };
        }
    }
    format!("{bytes} bytes")
}

/// A size for messages with its exact byte count: `2 MiB (2097152 bytes)`, or `35 bytes`.
pub fn exact_size(bytes: u64) -> String {
    match bytes {
        0..1024 => human_size(bytes),
        _ => format!("{} ({bytes} bytes)", human_size(bytes)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], cap: usize, chunk: usize) -> Vec<(Line, Vec<u8>)> {
        let reader = io::BufReader::with_capacity(chunk, input);
        let mut lines = CappedLines::new(reader, cap);
        let mut buf = Vec::new();
        let mut out = Vec::new();
        loop {
            let line = lines.read(&mut buf).unwrap();
            if line == Line::End {
                return out;
            }
            out.push((line, buf.clone()));
        }
    }

    const WHOLE: Line = Line::Whole { terminated: true };

    #[test]
    fn plain_lines_and_a_torn_tail() {
        for chunk in [1, 2, 3, 7, 1024] {
            assert_eq!(
                lines(b"ab\n\nc", 10, chunk),
                [
                    (WHOLE, b"ab".to_vec()),
                    (WHOLE, vec![]),
                    (Line::Whole { terminated: false }, b"c".to_vec())
                ],
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn a_long_line_fails_alone_and_keeps_only_its_head() {
        let long = vec![b'x'; 1000];
        let input = [&b"ok\n"[..], &long, b"\nnext\n"].concat();
        for chunk in [1, 5, 64, 300, 4096] {
            let got = lines(&input, 999, chunk);
            assert_eq!(got.len(), 3, "chunk {chunk}");
            assert_eq!(got[0], (WHOLE, b"ok".to_vec()));
            assert_eq!(
                got[1].0,
                Line::TooLong {
                    bytes: 1000,
                    terminated: true
                }
            );
            assert_eq!(got[1].1, vec![b'x'; KEPT], "chunk {chunk}");
            assert_eq!(got[2], (WHOLE, b"next".to_vec()));
        }
        // A line of exactly the cap is fine.
        assert_eq!(
            lines(&long, 1000, 64),
            [(Line::Whole { terminated: false }, long)]
        );
    }

    #[test]
    fn a_bom_is_skipped_at_the_start_only() {
        for chunk in [1, 2, 4, 1024] {
            let got = lines(b"\xEF\xBB\xBF{\"id\":1}\n\xEF\xBB\xBFx\n", 100, chunk);
            assert_eq!(got[0], (WHOLE, b"{\"id\":1}".to_vec()), "chunk {chunk}");
            assert_eq!(got[1], (WHOLE, b"\xEF\xBB\xBFx".to_vec()));
        }
        assert_eq!(lines(b"\xEF\xBB\xBF", 100, 1), []);
        assert_eq!(lines(b"\xEF\xBB\xBF\n", 100, 1), [(WHOLE, vec![])]);
        // Two bytes that only start like a mark are kept.
        assert_eq!(
            lines(b"\xEF\xBBx\n", 100, 1),
            [(WHOLE, b"\xEF\xBBx".to_vec())]
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(human_size(5), "5 bytes");
        assert_eq!(human_size(1024), "1 KiB");
        assert_eq!(human_size(2 * 1024 * 1024), "2 MiB");
        assert_eq!(human_size(300_000_000), "286.1 MiB");
        assert_eq!(human_size(1 << 30), "1 GiB");
        assert_eq!(exact_size(35), "35 bytes");
        assert_eq!(exact_size(2 << 20), "2 MiB (2097152 bytes)");
    }
}
