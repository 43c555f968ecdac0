//! A child's pipes: its stdout read up to a cap, its stderr passed through in bounded pieces.
//!
//! Nothing a child prints is held whole when it is large: stdout stops at `--max-output`
//! (the item fails as bad output), stderr goes through a line at a time, and a line longer
//! than [`PIECE`] is passed on in pieces of that size.

use std::sync::{Mutex, MutexGuard};

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt};

use crate::report::progress::Progress;

/// The longest piece of stderr passed through at once.
pub const PIECE: usize = 64 * 1024;

/// How much of a child's stderr is kept for failure reports.
const TAIL_BYTES: usize = 2048;

/// How reading a child's stdout ended.
#[derive(Debug, Default)]
pub struct Captured {
    /// What was read, at most the cap.
    pub bytes: Vec<u8>,
    /// The child printed more than the cap (and the rest was not read).
    pub over_cap: bool,
    /// Reading failed.
    pub error: Option<std::io::Error>,
}

/// Reads `pipe` to its end into `out`, but no further than `cap` bytes. Returns `true` when
/// the cap was passed.
pub async fn read_capped(pipe: impl AsyncRead + Unpin, cap: u64, out: &mut Captured) -> bool {
    let mut limited = pipe.take(cap.saturating_add(1));
    match limited.read_to_end(&mut out.bytes).await {
        Ok(_) if out.bytes.len() as u64 > cap => {
            out.bytes.truncate(cap as usize);
            out.over_cap = true;
        }
        Ok(_) => {}
        Err(e) => out.error = Some(e),
    }
    out.over_cap
}

/// What reading one answer line from a worker came to.
#[derive(Debug, PartialEq, Eq)]
pub enum AnswerLine {
    /// A whole line (its newline removed).
    Whole,
    /// The end of the stream came first (what was read is left in the buffer).
    Eof,
    /// The line grew past the cap; the stream is left mid-line.
    OverCap,
}

/// Reads one line into `out`, stopping once it passes `cap` bytes.
pub async fn read_line_capped(
    reader: &mut (impl AsyncBufRead + Unpin),
    cap: usize,
    out: &mut Vec<u8>,
) -> std::io::Result<AnswerLine> {
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(AnswerLine::Eof);
        }
        let (used, done) = match available.iter().position(|&b| b == b'\n') {
            Some(nl) => (nl + 1, true),
            None => (available.len(), false),
        };
        let room = cap.saturating_sub(out.len());
        let take = used.min(room.saturating_add(1));
        out.extend_from_slice(&available[..take]);
        reader.consume(take);
        if done && take == used {
            out.pop();
            return Ok(AnswerLine::Whole);
        }
        if out.len() > cap {
            return Ok(AnswerLine::OverCap);
        }
    }
}

/// Reads and drops the rest of a line that passed the cap, through its newline, holding none
/// of it and at most `budget` bytes of it (less what it drops): `Whole` once the newline is
/// consumed, `OverCap` when the budget runs out first, `Eof` if the stream ends first.
/// Cancel-safe: what was dropped stays dropped, and the next call goes on from there.
pub async fn skip_line(
    reader: &mut (impl AsyncBufRead + Unpin),
    budget: &mut u64,
    tail: &mut Vec<u8>,
) -> std::io::Result<AnswerLine> {
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(AnswerLine::Eof);
        }
        let (used, done) = match memchr::memchr(b'\n', available) {
            Some(nl) => (nl + 1, true),
            None => (available.len(), false),
        };
        let used64 = used as u64;
        if used64 > *budget {
            return Ok(AnswerLine::OverCap);
        }
        // The line's last bytes are kept: an answer that names its item at its end
        // (`{"result": ..., "pararun_id": 7}`) says there whose it is.
        let piece = &available[..used - usize::from(done)];
        tail.extend_from_slice(&piece[piece.len().saturating_sub(TAIL_KEPT)..]);
        let excess = tail.len().saturating_sub(TAIL_KEPT);
        tail.drain(..excess);
        *budget -= used64;
        reader.consume(used);
        if done {
            return Ok(AnswerLine::Whole);
        }
    }
}

/// How many of an over-long answer's last bytes [`skip_line`] keeps.
pub const TAIL_KEPT: usize = 64;

/// The last lines of a child's stderr, for failure reports.
#[derive(Debug, Default)]
pub struct Tail(Vec<u8>);

impl Tail {
    fn push(&mut self, line: &[u8]) {
        self.0.extend_from_slice(line);
        if self.0.len() > 2 * TAIL_BYTES {
            self.0.drain(..self.0.len() - TAIL_BYTES);
        }
    }

    /// At most the last 2 KiB, starting at a line boundary when cut.
    pub fn text(&self) -> String {
        let mut tail = &self.0[self.0.len().saturating_sub(TAIL_BYTES)..];
        if tail.len() == TAIL_BYTES {
            if let Some(nl) = tail.iter().position(|&b| b == b'\n') {
                tail = &tail[nl + 1..];
            }
        }
        String::from_utf8_lossy(tail).into_owned()
    }
}

/// Locks a tail, even one a panicking task left poisoned (it is only text).
pub fn lock(tail: &Mutex<Tail>) -> MutexGuard<'_, Tail> {
    tail.lock().unwrap_or_else(|e| e.into_inner())
}

/// Passes a child's stderr through to ours as it arrives, whole lines at a time: everything up
/// to the last newline of each read goes out in one write (a chatty child is not slowed to a
/// write per line), and a line longer than [`PIECE`] goes out in pieces of that size. Keeps
/// the tail for failure reports. With a `tag`, each line starts with it (the tail keeps the
/// child's own bytes).
pub async fn pump_stderr(
    mut stderr: impl AsyncRead + Unpin,
    progress: &Progress,
    tail: &Mutex<Tail>,
    tag: Option<&[u8]>,
) {
    let mut tagged = Tagger::new(tag);
    // Small to start with: a thousand children at once must not cost a thousand big buffers.
    // It grows (to a piece) only for a child that writes long lines.
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    loop {
        if buf.len() == buf.capacity() {
            buf.reserve(buf.capacity().min(PIECE));
        }
        match stderr.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        // Whole lines go out now; a partial line waits for its end unless it fills a piece.
        let cut = match buf.iter().rposition(|&b| b == b'\n') {
            Some(nl) => nl + 1,
            None if buf.len() >= PIECE => buf.len(),
            None => 0,
        };
        if cut > 0 {
            // A reader slower than the child slows the child down (its pipe fills), as a
            // terminal would; the scheduler never waits for stderr.
            while progress.stderr_behind() {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            progress.write_raw(tagged.lines(&buf[..cut]));
            lock(tail).push(&buf[..cut]);
            buf.drain(..cut);
        }
    }
    if !buf.is_empty() {
        // A last line without a newline gets one when the stream ends: the next line, a
        // child's or one of ours with its timestamp, then starts a line of its own.
        buf.push(b'\n');
        progress.write_raw(tagged.lines(&buf));
        lock(tail).push(&buf);
    }
}

/// Puts a tag at the start of every line of a stream cut into pieces: a piece that ends in the
/// middle of a line leaves the next one without a tag.
struct Tagger<'a> {
    tag: Option<&'a [u8]>,
    at_line_start: bool,
    out: Vec<u8>,
}

impl<'a> Tagger<'a> {
    fn new(tag: Option<&'a [u8]>) -> Tagger<'a> {
        Tagger {
            tag,
            at_line_start: true,
            out: Vec::new(),
        }
    }

    /// `piece` with the tag before each line that starts in it.
    fn lines<'b>(&'b mut self, piece: &'b [u8]) -> &'b [u8] {
        let Some(tag) = self.tag else {
            return piece;
        };
        self.out.clear();
        for line in piece.split_inclusive(|&b| b == b'\n') {
            if self.at_line_start {
                self.out.extend_from_slice(tag);
            }
            self.out.extend_from_slice(line);
            self.at_line_start = line.ends_with(b"\n");
        }
        &self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn lines_stop_at_the_cap() {
        let mut r = tokio::io::BufReader::with_capacity(4, &b"abc\nabcdefgh\nxy"[..]);
        let mut out = Vec::new();
        assert_eq!(
            read_line_capped(&mut r, 5, &mut out).await.unwrap(),
            AnswerLine::Whole
        );
        assert_eq!(out, b"abc");
        out.clear();
        assert_eq!(
            read_line_capped(&mut r, 5, &mut out).await.unwrap(),
            AnswerLine::OverCap
        );
        assert_eq!(out.len(), 6);
        let mut r = tokio::io::BufReader::with_capacity(4, &b"abcde\nxy"[..]);
        out.clear();
        assert_eq!(
            read_line_capped(&mut r, 5, &mut out).await.unwrap(),
            AnswerLine::Whole
        );
        assert_eq!(out, b"abcde");
        out.clear();
        assert_eq!(
            read_line_capped(&mut r, 5, &mut out).await.unwrap(),
            AnswerLine::Eof
        );
        assert_eq!(out, b"xy");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_rest_of_a_long_line_is_skipped_to_its_newline() {
        let mut r = tokio::io::BufReader::with_capacity(4, &b"abcdefghij\nxy\nlast"[..]);
        let (mut budget, mut tail) = (11, Vec::new());
        assert_eq!(
            skip_line(&mut r, &mut budget, &mut tail).await.unwrap(),
            AnswerLine::Whole
        );
        assert_eq!(budget, 0);
        // The line's end is kept, without its newline, across the reader's small reads.
        assert_eq!(tail, b"abcdefghij");
        let mut out = Vec::new();
        assert_eq!(
            read_line_capped(&mut r, 5, &mut out).await.unwrap(),
            AnswerLine::Whole
        );
        assert_eq!(out, b"xy");
        let mut budget = 100;
        assert_eq!(
            skip_line(&mut r, &mut budget, &mut tail).await.unwrap(),
            AnswerLine::Eof
        );
        let mut r = tokio::io::BufReader::with_capacity(4, &b"abcdefghij\n"[..]);
        let mut budget = 10;
        assert_eq!(
            skip_line(&mut r, &mut budget, &mut tail).await.unwrap(),
            AnswerLine::OverCap
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn stdout_stops_at_the_cap() {
        let mut out = Captured::default();
        assert!(read_capped(&b"0123456789"[..], 4, &mut out).await);
        assert_eq!(out.bytes, b"0123");
        let mut out = Captured::default();
        assert!(!read_capped(&b"0123"[..], 4, &mut out).await);
        assert_eq!(out.bytes, b"0123");
    }
}
