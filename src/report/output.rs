//! Stdout: one JSON record per line, in completion order or, with `--keep-order`, in input
//! order. This module is the only writer of stdout during a run.
//!
//! In input order, every item the scheduler receives gets an ordinal and must be resolved
//! exactly once (with a record, or with nothing when it failed or was cut short); records wait
//! until every earlier ordinal is resolved. The scheduler asks [`window_admits`] (through the
//! stdout thread's position) before taking a new item, so at most a window of results is ever
//! held back.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::os::fd::AsFd;

use crate::report::progress::Progress;

/// Whether the item with ordinal `next` may be taken now, when stdout waits for ordinal
/// `next_to_print`: with `-k`, at most `window` items wait behind the slowest.
pub fn window_admits(keep_order: bool, window: u64, next_to_print: u64, next: u64) -> bool {
    !keep_order || next < next_to_print + window
}

/// The stdout writer of one run.
pub struct Output {
    print: bool,
    keep_order: bool,
    window: u64,
    next_to_print: u64,
    held: BTreeMap<u64, Option<String>>,
    progress: Progress,
    out: RawStdout,
    /// A write failed: nothing more is printed.
    failed: bool,
    /// Records not printed because a write failed (the failed one included).
    lost: u64,
}

impl Output {
    /// `print` false discards records (`-q`); `window` bounds what `keep_order` holds back.
    /// Writes clear `progress`'s bar first, in case stdout is the bar's terminal, and go to
    /// `out`.
    pub fn new(
        print: bool,
        keep_order: bool,
        window: usize,
        progress: Progress,
        out: RawStdout,
    ) -> Output {
        Output {
            print,
            keep_order,
            window: window as u64,
            next_to_print: 0,
            held: BTreeMap::new(),
            progress,
            out,
            failed: false,
            lost: 0,
        }
    }

    /// Whether records are printed at all.
    pub fn prints(&self) -> bool {
        self.print
    }

    /// Whether records are printed in input order (`-k`).
    pub fn keep_order(&self) -> bool {
        self.keep_order
    }

    /// How many items may wait behind the slowest with `-k`.
    pub fn window(&self) -> u64 {
        self.window
    }

    /// The ordinal stdout waits for next with `-k`.
    pub fn next_to_print(&self) -> u64 {
        self.next_to_print
    }

    #[cfg(test)]
    pub fn window_open(&self, next: u64) -> bool {
        window_admits(self.keep_order, self.window, self.next_to_print, next)
    }

    /// Resolves the item with `ordinal`: `record` is its line (ending in `\n`), or `None` when
    /// it produced no record. Errors are stdout's (a broken pipe among them); after one, records
    /// are no longer printed.
    pub fn resolve(&mut self, ordinal: u64, record: Option<&str>) -> io::Result<()> {
        if !self.keep_order {
            return match record {
                Some(line) => self.write(line),
                None => Ok(()),
            };
        }
        self.held.insert(ordinal, record.map(str::to_owned));
        let mut ready = String::new();
        while let Some(entry) = self.held.remove(&self.next_to_print) {
            if let Some(line) = entry {
                ready += &line;
            }
            self.next_to_print += 1;
        }
        if ready.is_empty() {
            Ok(())
        } else {
            self.write(&ready)
        }
    }

    /// At the end of a run: prints whatever is still held, in order, gaps and all.
    pub fn finish(&mut self) -> io::Result<()> {
        let rest: String = std::mem::take(&mut self.held)
            .into_values()
            .flatten()
            .collect();
        if rest.is_empty() {
            Ok(())
        } else {
            self.write(&rest)
        }
    }

    /// Records lost so far: not printed because a write to stdout failed.
    pub fn lost(&self) -> u64 {
        self.lost
    }

    fn write(&mut self, text: &str) -> io::Result<()> {
        if self.failed {
            self.lost += records_in(text);
            return Ok(());
        }
        if !self.print {
            return Ok(());
        }
        let out = &mut self.out;
        let result = self.progress.suspend(|| out.write_all(text.as_bytes()));
        if result.is_err() {
            // Part of the text may have gone out; its records count as lost all the same.
            self.failed = true;
            self.lost += records_in(text);
        }
        result
    }
}

/// How many records `text` holds: one a line.
fn records_in(text: &str) -> u64 {
    text.bytes().filter(|&b| b == b'\n').count() as u64
}

/// Stdout's descriptor, written to directly. std's `Stdout` takes a write that fails with
/// EBADF for a success (stdout opened read-only, `1<file`), so records would be lost without a
/// word; this reports it. It buffers nothing: wrap it in a `BufWriter` for many small writes.
pub struct RawStdout {
    closed: bool,
}

impl RawStdout {
    /// Stdout; `closed` when it was closed at start (`Config::stdout_closed`), so that every
    /// write fails as it would have.
    pub fn new(closed: bool) -> RawStdout {
        RawStdout { closed }
    }
}

impl io::Write for RawStdout {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if self.closed {
            return Err(io::Error::from_raw_os_error(libc::EBADF));
        }
        // `write_all` retries an interrupted write.
        Ok(rustix::io::write(io::stdout().as_fd(), bytes)?)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quiet(keep_order: bool, window: usize) -> Output {
        let progress = Progress::new(
            crate::report::progress::Display::Off,
            false,
            Default::default(),
            None,
        );
        Output::new(false, keep_order, window, progress, RawStdout::new(false))
    }

    #[test]
    fn the_window_bounds_what_is_held() {
        let mut out = quiet(true, 3);
        assert!(out.window_open(2));
        assert!(!out.window_open(3));
        out.resolve(1, Some("b\n")).unwrap();
        out.resolve(2, None).unwrap();
        assert_eq!(out.held.len(), 2);
        out.resolve(0, Some("a\n")).unwrap();
        assert!(out.held.is_empty());
        assert_eq!(out.next_to_print, 3);
        assert!(out.window_open(5));
    }

    #[test]
    fn completion_order_holds_nothing() {
        let mut out = quiet(false, 1);
        out.resolve(5, Some("x\n")).unwrap();
        assert!(out.held.is_empty());
        assert!(out.window_open(100));
    }
}
