//! A cache's lines read in big blocks and lent out in place.
//!
//! [`CappedLines`](crate::base::line::CappedLines) copies every line into the caller's
//! buffer, which is the right trade for the input (a pipe, lines of any length). A cache load
//! reads tens of millions of short lines from a file, so this reader reads 1 MiB at a time and
//! hands out each line as a slice of its block. The lines are the same: the same cap (a line
//! longer than it is never held whole), the same byte order mark rule and the same torn tail;
//! the tests compare the two.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;

/// How much one read asks for, and the buffer's size unless a line needs more.
const BLOCK: usize = 1 << 20;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// One line, without its `\n`.
#[derive(Debug, PartialEq, Eq)]
pub enum LineRef<'a> {
    /// A line of at most the cap; `terminated` is false for a last line with no `\n`.
    Whole {
        /// The line's bytes.
        line: &'a [u8],
        /// Whether a `\n` ended the line.
        terminated: bool,
    },
    /// A line longer than the cap, read past and not kept.
    TooLong {
        /// The line's length, without its `\n`.
        bytes: u64,
        /// Whether a `\n` ended the line.
        terminated: bool,
    },
}

/// The lines of a stream, each at most `cap` bytes, read a block at a time.
pub struct BlockLines<R> {
    reader: R,
    cap: usize,
    buf: Vec<u8>,
    /// The start of the first byte not yet lent out.
    pos: usize,
    /// The end of the bytes read into `buf`.
    filled: usize,
    eof: bool,
    at_start: bool,
}

impl<R: Read> BlockLines<R> {
    /// Reads `reader` with lines of at most `cap` bytes.
    pub fn new(reader: R, cap: usize) -> BlockLines<R> {
        BlockLines {
            reader,
            cap,
            buf: vec![0; BLOCK],
            pos: 0,
            filled: 0,
            eof: false,
            at_start: true,
        }
    }

    /// Reads `reader`, which starts at a line's start past the beginning of its stream, so
    /// there is no byte order mark to skip.
    pub fn continuing(reader: R, cap: usize) -> BlockLines<R> {
        BlockLines {
            at_start: false,
            ..BlockLines::new(reader, cap)
        }
    }

    /// The cap, in bytes.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// The next line, or `None` at the end of the stream.
    pub fn next_line(&mut self) -> io::Result<Option<LineRef<'_>>> {
        if self.at_start {
            self.skip_bom()?;
        }
        loop {
            let pending = &self.buf[self.pos..self.filled];
            if let Some(len) = memchr::memchr(b'\n', pending) {
                let start = self.pos;
                self.pos += len + 1;
                return Ok(Some(self.line(start, len, true)));
            }
            if pending.len() > self.cap {
                return self.skip_long_line().map(Some);
            }
            if self.eof {
                let (start, len) = (self.pos, pending.len());
                self.pos = self.filled;
                return Ok((len > 0).then(|| self.line(start, len, false)));
            }
            self.fill()?;
        }
    }

    fn line(&self, start: usize, len: usize, terminated: bool) -> LineRef<'_> {
        if len > self.cap {
            LineRef::TooLong {
                bytes: len as u64,
                terminated,
            }
        } else {
            LineRef::Whole {
                line: &self.buf[start..start + len],
                terminated,
            }
        }
    }

    /// Drops a UTF-8 byte order mark at the start of the stream: it is not part of the first
    /// line. Reads until three bytes are in, for a reader that returns fewer.
    fn skip_bom(&mut self) -> io::Result<()> {
        while self.filled < BOM.len() && !self.eof {
            self.fill()?;
        }
        self.at_start = false;
        if self.buf[..self.filled].starts_with(BOM) {
            self.pos = BOM.len();
        }
        Ok(())
    }

    /// Reads more after the pending bytes, moved to the front; the buffer grows only while a
    /// line longer than it but within the cap is pending.
    fn fill(&mut self) -> io::Result<()> {
        self.buf.copy_within(self.pos..self.filled, 0);
        self.filled -= self.pos;
        self.pos = 0;
        if self.buf.len() > BLOCK && self.filled <= BLOCK / 2 {
            // A long line is gone: give its room back.
            self.buf.truncate(BLOCK);
            self.buf.shrink_to_fit();
        } else if self.filled == self.buf.len() {
            let most = self.cap.saturating_add(1).max(BLOCK);
            self.buf.resize((self.buf.len() * 2).min(most), 0);
        }
        let n = read_some(&mut self.reader, &mut self.buf[self.filled..])?;
        self.filled += n;
        self.eof = n == 0;
        Ok(())
    }

    /// Reads past the rest of a line already longer than the cap, keeping none of it, and gives
    /// the buffer back to its usual size.
    fn skip_long_line(&mut self) -> io::Result<LineRef<'static>> {
        let mut bytes = (self.filled - self.pos) as u64;
        self.buf = vec![0; BLOCK];
        (self.pos, self.filled) = (0, 0);
        loop {
            let n = read_some(&mut self.reader, &mut self.buf)?;
            if n == 0 {
                self.eof = true;
                return Ok(LineRef::TooLong {
                    bytes,
                    terminated: false,
                });
            }
            if let Some(len) = memchr::memchr(b'\n', &self.buf[..n]) {
                (self.pos, self.filled) = (len + 1, n);
                return Ok(LineRef::TooLong {
                    bytes: bytes + len as u64,
                    terminated: true,
                });
            }
            bytes += n as u64;
        }
    }
}

/// One read, retried when a signal interrupts it.
fn read_some(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match reader.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

/// A file that can be read at any offset, by two threads at once.
pub trait ReadAt: Sync {
    /// Reads from `offset` on, as `pread` does.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// The file's size now.
    fn size(&self) -> io::Result<u64>;
}

impl ReadAt for File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        FileExt::read_at(self, buf, offset)
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }
}

impl ReadAt for [u8] {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let rest = self.get(offset as usize..).unwrap_or_default();
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        Ok(n)
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.len() as u64)
    }
}

/// A part of a file as a stream: from `pos` to `end`, or to the end of the file.
pub struct FilePart<'a, F: ?Sized> {
    /// The file.
    pub file: &'a F,
    /// Where the next read starts.
    pub pos: u64,
    /// Where the part ends; `None` reads on to the end of the file.
    pub end: Option<u64>,
}

impl<F: ReadAt + ?Sized> Read for FilePart<'_, F> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end.map_or(usize::MAX, |end| {
            usize::try_from(end.saturating_sub(self.pos)).unwrap_or(usize::MAX)
        });
        let want = buf.len().min(left);
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Where a file can be cut in two at a line's start near its middle: just past the first
/// `\n` from the middle on, or `None` when the file is small or there is none.
pub fn middle_line_start(file: &(impl ReadAt + ?Sized)) -> io::Result<Option<u64>> {
    let size = file.size()?;
    if size < 2 * BLOCK as u64 {
        return Ok(None);
    }
    let mut part = FilePart {
        file,
        pos: size / 2,
        end: Some(size),
    };
    let mut buf = vec![0; 64 << 10];
    loop {
        let start = part.pos;
        match read_some(&mut part, &mut buf)? {
            0 => return Ok(None),
            n => {
                if let Some(at) = memchr::memchr(b'\n', &buf[..n]) {
                    return Ok(Some(start + at as u64 + 1).filter(|&cut| cut < size));
                }
            }
        }
    }
}

/// The number of `\n` in a stream, read to its end; sizes an index before it is filled.
pub fn count_lines(reader: &mut impl Read) -> io::Result<usize> {
    let mut buf = vec![0u8; BLOCK];
    let mut lines = 0;
    loop {
        match read_some(reader, &mut buf)? {
            0 => return Ok(lines),
            n => lines += memchr::memchr_iter(b'\n', &buf[..n]).count(),
        }
    }
}

#[cfg(test)]
#[path = "blocks_tests.rs"]
mod tests;
