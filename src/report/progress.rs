//! Everything pararun writes to stderr goes through [`Progress`], so that child stderr lines and
//! warnings print above the bar, whole, and never through it.
//!
//! Three displays: an indicatif bar (stderr is a terminal, or `--progress`), a plain line every
//! `--log-interval` (stderr is a file or pipe: cron, CI), or nothing (`-q`, `--no-progress`).
//! The wrapper holds an `Option<ProgressBar>`: callers never branch on which is shown.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};

use super::stderr::Sink;
use crate::report::{clock, human_duration, Stats};

pub use crate::config::Display;

/// The stderr writer and progress display of one run. Cheap to clone.
#[derive(Clone)]
pub struct Progress {
    inner: Arc<Inner>,
}

struct Inner {
    bar: Option<ProgressBar>,
    /// Without a bar, stderr is written by a thread of its own (see [`super::stderr`]).
    sink: Option<Sink>,
    /// Start each line with the local time (stderr is a log, not a terminal).
    timestamps: bool,
    color: bool,
    log_every: Option<Duration>,
    stats: Arc<Stats>,
    /// The number of items, once known (0: not known).
    total: AtomicU64,
    started: Instant,
    last_log: Mutex<Instant>,
}

/// How often the bar's counts are refreshed when nothing else happens.
const BAR_REFRESH: Duration = Duration::from_millis(200);

impl Progress {
    /// A display for a run; `total` is the number of items when known up front. With
    /// `timestamps`, each line starts with the local time (see [`clock`]).
    pub fn new(
        display: Display,
        timestamps: bool,
        stats: Arc<Stats>,
        total: Option<u64>,
    ) -> Progress {
        let (bar, color, log_every) = match display {
            Display::Bar { color, .. } => {
                // A term-like target is drawn whether or not stderr is a terminal (which is
                // what --progress wants; otherwise it is one). indicatif then takes stdout's
                // colour setting instead of stderr's, so stderr's is copied there.
                let target =
                    ProgressDrawTarget::term_like_with_hz(Box::new(EchoRoom::stderr()), 10);
                console::set_colors_enabled(color && console::colors_enabled_stderr());
                let bar = ProgressBar::with_draw_target(None, target);
                bar.enable_steady_tick(Duration::from_millis(100));
                (Some(bar), color, None)
            }
            Display::Log(every) => (None, false, Some(every)),
            Display::Off => (None, false, None),
        };
        let sink = match bar {
            Some(_) => None,
            None => Sink::start(),
        };
        let progress = Progress {
            inner: Arc::new(Inner {
                bar,
                sink,
                timestamps,
                color,
                log_every,
                stats,
                total: AtomicU64::new(0),
                started: Instant::now(),
                last_log: Mutex::new(Instant::now()),
            }),
        };
        progress.set_total(total.unwrap_or(0));
        progress
    }

    /// Sets the number of items (0: unknown), e.g. once a background count of the input ends.
    pub fn set_total(&self, total: u64) {
        self.inner.total.store(total, Ordering::Relaxed);
        if let Some(bar) = &self.inner.bar {
            let (c1, c2) = if self.inner.color {
                (".cyan", ".green")
            } else {
                ("", "")
            };
            let template = if total > 0 {
                bar.set_length(total);
                format!(
                    "{{spinner{c2}}} [{{elapsed_precise}}] {{bar:30{c1}}} {{pos}}/{{len}} {{msg}}"
                )
            } else {
                format!("{{spinner{c2}}} [{{elapsed_precise}}] {{pos}} done {{msg}}")
            };
            bar.set_style(
                ProgressStyle::with_template(&template)
                    .expect("the progress templates are valid")
                    .progress_chars("=> "),
            );
            self.refresh();
        }
    }

    /// Writes one whole line (the trailing newline is added if missing) to stderr, above the
    /// bar, after the time when lines are timestamped.
    pub fn line(&self, text: &[u8]) {
        let mut buf = Vec::with_capacity(text.len() + 27);
        if self.inner.timestamps {
            buf.extend_from_slice(clock::now().as_bytes());
            buf.push(b' ');
        }
        buf.extend_from_slice(text);
        if buf.last() != Some(&b'\n') {
            buf.push(b'\n');
        }
        if let Some(sink) = &self.inner.sink {
            return sink.write(buf);
        }
        self.suspend(|| {
            // A closed stderr must not stop the run; there is nowhere left to report it.
            let _ = std::io::stderr().lock().write_all(&buf);
        });
    }

    /// Writes `bytes` to stderr as they are (a child's stderr, maybe a piece of a long line),
    /// with the bar cleared. Never timestamped: a piece may start mid-line, and the child's
    /// bytes are passed on unchanged.
    pub fn write_raw(&self, bytes: &[u8]) {
        if let Some(sink) = &self.inner.sink {
            return sink.write(bytes.to_vec());
        }
        self.suspend(|| {
            // A closed stderr must not stop the run; there is nowhere left to report it.
            let _ = std::io::stderr().lock().write_all(bytes);
        });
    }

    /// Runs `write` with the bar cleared, so that output to the terminal (stdout too, when it
    /// is the same terminal) never mixes with the bar.
    pub fn suspend<R>(&self, write: impl FnOnce() -> R) -> R {
        match &self.inner.bar {
            Some(bar) => bar.suspend(write),
            None => write(),
        }
    }

    /// How often [`Progress::tick`] wants to be called, if at all.
    pub fn tick_every(&self) -> Option<Duration> {
        match (&self.inner.bar, self.inner.log_every) {
            (Some(_), _) => Some(BAR_REFRESH),
            (None, every) => every,
        }
    }

    /// Refreshes the bar, or prints the log line when its interval has passed.
    pub fn tick(&self) {
        self.refresh();
        if let Some(every) = self.inner.log_every {
            let mut last = self
                .inner
                .last_log
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            // The tick that calls this comes every `every`, give or take a timer's jitter.
            if last.elapsed() >= every.mul_f64(0.9) {
                *last = Instant::now();
                drop(last);
                self.line(self.log_line().as_bytes());
            }
        }
    }

    /// Updates the bar from the counters.
    pub fn refresh(&self) {
        if let Some(bar) = &self.inner.bar {
            let s = &self.inner.stats;
            bar.set_position(s.settled());
            let mut msg = format!(
                "({} ok, {} failed, {} cached) {:.1}/s",
                Stats::get(&s.succeeded),
                Stats::get(&s.failed),
                Stats::get(&s.cached),
                self.rate(),
            );
            if let Some(eta) = self.eta() {
                msg += &format!(" ETA {}", human_duration(eta));
            }
            bar.set_message(msg);
        }
    }

    /// Items run (not skipped) per second since the start.
    fn rate(&self) -> f64 {
        let s = &self.inner.stats;
        let ran = Stats::get(&s.succeeded) + Stats::get(&s.failed);
        ran as f64 / self.inner.started.elapsed().as_secs_f64().max(1e-9)
    }

    /// The time left at the rate items have run so far (skipped items are instant, so they do
    /// not count towards the rate); `None` while the total or the rate is unknown.
    fn eta(&self) -> Option<Duration> {
        let total = self.inner.total.load(Ordering::Relaxed);
        let settled = self.inner.stats.settled();
        let rate = self.rate();
        (total > settled && rate > 0.0)
            .then(|| Duration::from_secs_f64((total - settled) as f64 / rate))
    }

    /// The plain progress line for logs: counts, rate, elapsed time and ETA.
    fn log_line(&self) -> String {
        let s = &self.inner.stats;
        let settled = s.settled();
        let elapsed = self.inner.started.elapsed();
        let rate = self.rate();
        let total = self.inner.total.load(Ordering::Relaxed);
        let mut line = if total > 0 {
            format!(
                "pararun: progress {settled}/{total} ({:.0}%)",
                settled as f64 * 100.0 / total as f64
            )
        } else {
            format!("pararun: progress {settled} done")
        };
        line += &format!(
            ": {} ok, {} failed, {} cached; {rate:.1}/s; elapsed {}",
            Stats::get(&s.succeeded),
            Stats::get(&s.failed),
            Stats::get(&s.cached),
            human_duration(elapsed),
        );
        if let Some(eta) = self.eta() {
            line += &format!("; ETA {}", human_duration(eta));
        }
        line
    }

    /// Whether stderr is behind (more than a megabyte waits for it): children's stderr should
    /// wait before handing over more.
    pub fn stderr_behind(&self) -> bool {
        self.inner
            .sink
            .as_ref()
            .is_some_and(|sink| sink.backlog() > super::stderr::CAP)
    }

    /// Waits until every line queued for stderr is written, or stderr has taken nothing for
    /// `stuck` (nobody reads it).
    pub fn flush(&self, stuck: Duration) {
        if let Some(sink) = &self.inner.sink {
            sink.flush(stuck);
        }
    }

    /// Removes the bar before the summary is printed.
    pub fn finish(&self) {
        if let Some(bar) = &self.inner.bar {
            bar.finish_and_clear();
        }
    }
}

/// The terminal as the bar sees it: [`ECHO_ROOM`] columns narrower than it is.
///
/// indicatif pads the bar to the terminal's full width, which leaves the cursor in the last
/// column: the `^C` the terminal echoes on Ctrl-C then wraps onto a new line, the clearing of
/// the bar clears that line instead, and the bar stays on the screen, frozen above the stop
/// messages. With room left at the end of the line, the echo stays on the bar's line and goes
/// with it.
#[derive(Debug)]
struct EchoRoom(console::Term);

/// Columns left free after the bar: the width of an echoed `^C` or `^Z`.
const ECHO_ROOM: u16 = 2;

impl EchoRoom {
    fn stderr() -> EchoRoom {
        EchoRoom(console::Term::buffered_stderr())
    }
}

impl TermLike for EchoRoom {
    fn width(&self) -> u16 {
        self.0.size().1.saturating_sub(ECHO_ROOM).max(1)
    }
    fn height(&self) -> u16 {
        self.0.size().0
    }
    fn move_cursor_up(&self, n: usize) -> io::Result<()> {
        self.0.move_cursor_up(n)
    }
    fn move_cursor_down(&self, n: usize) -> io::Result<()> {
        self.0.move_cursor_down(n)
    }
    fn move_cursor_right(&self, n: usize) -> io::Result<()> {
        self.0.move_cursor_right(n)
    }
    fn move_cursor_left(&self, n: usize) -> io::Result<()> {
        self.0.move_cursor_left(n)
    }
    fn write_line(&self, s: &str) -> io::Result<()> {
        self.0.write_line(s)
    }
    fn write_str(&self, s: &str) -> io::Result<()> {
        self.0.write_str(s)
    }
    fn clear_line(&self) -> io::Result<()> {
        self.0.clear_line()
    }
    fn flush(&self) -> io::Result<()> {
        self.0.flush()
    }
}

/// Counts the items of an input file (its non-blank lines) for the bar's total, reading it
/// separately from the items themselves; `None` if it cannot be read.
pub fn count_items(path: &std::path::Path) -> Option<u64> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).ok()?;
    let mut buf = vec![0u8; 1 << 20];
    let (mut count, mut blank) = (0u64, true);
    loop {
        let n = file.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        for &b in &buf[..n] {
            if b == b'\n' {
                count += u64::from(!blank);
                blank = true;
            } else if !b.is_ascii_whitespace() {
                blank = false;
            }
        }
    }
    Some(count + u64::from(!blank))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_non_blank_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in");
        std::fs::write(&path, "a\n\n  \nb\r\nc").unwrap();
        assert_eq!(count_items(&path), Some(3));
        std::fs::write(&path, "").unwrap();
        assert_eq!(count_items(&path), Some(0));
    }

    #[test]
    fn log_line_reads_well() {
        let stats = Arc::new(Stats::default());
        Stats::bump(&stats.succeeded);
        Stats::bump(&stats.cached);
        let p = Progress::new(Display::Off, false, stats, Some(4));
        let line = p.log_line();
        assert!(
            line.starts_with("pararun: progress 2/4 (50%): 1 ok, 0 failed, 1 cached;"),
            "{line}"
        );
        assert!(line.contains("ETA"), "{line}");
    }
}
