//! Everything pararun writes to stderr goes through [`Progress`], so that child stderr lines and
//! warnings print above the bar, whole, and never through it.
//!
//! The wrapper holds an `Option<ProgressBar>`: callers never branch on whether a bar is shown.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::report::Stats;

/// The stderr writer and (optional) progress bar of one run. Cheap to clone.
#[derive(Clone)]
pub struct Progress {
    bar: Option<ProgressBar>,
    stats: Arc<Stats>,
}

impl Progress {
    /// A bar on stderr when `show` is set, otherwise plain stderr.
    pub fn new(show: bool, stats: Arc<Stats>) -> Progress {
        let bar = show.then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(10));
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} {pos} done {msg} [{elapsed_precise}] {per_sec}",
                )
                .expect("the progress template is valid"),
            );
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        });
        let progress = Progress { bar, stats };
        progress.refresh();
        progress
    }

    /// Writes one whole line (the trailing newline is added if missing) to stderr.
    pub fn line(&self, text: &[u8]) {
        let mut buf = Vec::with_capacity(text.len() + 1);
        buf.extend_from_slice(text);
        if buf.last() != Some(&b'\n') {
            buf.push(b'\n');
        }
        let write = || {
            // A closed stderr must not stop the run; there is nowhere left to report it.
            let _ = std::io::stderr().lock().write_all(&buf);
        };
        match &self.bar {
            Some(bar) => bar.suspend(write),
            None => write(),
        }
    }

    /// Updates the bar from the counters.
    pub fn refresh(&self) {
        if let Some(bar) = &self.bar {
            bar.set_position(self.stats.settled());
            bar.set_message(format!(
                "({} ok, {} failed, {} cached)",
                Stats::get(&self.stats.succeeded),
                Stats::get(&self.stats.failed),
                Stats::get(&self.stats.cached),
            ));
        }
    }

    /// Removes the bar before the summary is printed.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
