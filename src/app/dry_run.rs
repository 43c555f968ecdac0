//! `--dry-run`: prints the launch of each item that would run, one per line, built by the same
//! [`job::prepare`] as a real run.

use std::io::Write;

use anyhow::{Context, Result};

use crate::config::Config;
use crate::files;
use crate::input::{InputEvent, InputReader, Key};
use crate::job;
use crate::report::progress::Progress;
use crate::report::repeats::{Repeats, Show};
use crate::report::{Exit, Stats};
use crate::template::Template;

/// Refuses a cache or failures file that is the input or stdout, as a run does: a dry run
/// writes neither, but its stdout may be one of them (`>> cache.jsonl`). Each is opened
/// read-only, only to be checked; one that does not exist yet cannot be any other file.
pub(super) fn claim_files(cfg: &Config, seen: &mut files::Seen) -> Result<()> {
    let roles = [
        (&cfg.results.cache, files::CACHE),
        (&cfg.faults.failures, files::FAILURES),
    ];
    for (path, role) in roles {
        let Some(path) = path else { continue };
        match files::open_regular(path, std::fs::OpenOptions::new().read(true)) {
            Ok(file) => seen.claim(role.name, &path.display().to_string(), &file)?,
            Err(e) if e.io_kind() == Some(std::io::ErrorKind::NotFound) => {}
            Err(e) => return Err(e.describe(role, path, || format!("read {}", path.display()))),
        }
    }
    Ok(())
}

/// Prints every item's launch; bad items are reported on stderr and make the exit 1.
pub(super) fn print(
    cfg: &Config,
    template: &Template,
    mut reader: InputReader,
    mut keep: impl FnMut(&Key) -> bool,
    progress: &Progress,
    stats: &Stats,
) -> Result<Exit> {
    let mut out = std::io::BufWriter::new(crate::report::output::RawStdout::new(
        cfg.output.stdout_closed,
    ));
    let input_name = cfg.items.input.to_string();
    let mut failed = false;
    // Slots as a run hands them out when every item takes as long: 1, 2, ... N, 1, 2, ...
    let mut shown = 0usize;
    let mut repeats = Repeats::default();
    while let Some(event) = reader.next_event(&mut keep)? {
        let (seq, reason) = match event {
            InputEvent::Item(item) => {
                let slot = shown % cfg.launch.jobs + 1;
                match job::prepare(cfg, template, &item, slot, 1, None) {
                    Ok(launch) => {
                        shown += 1;
                        match writeln!(out, "{}", launch.dry_run_line(template, slot)) {
                            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                                return Ok(Exit::Success)
                            }
                            other => other.context("cannot write to stdout")?,
                        }
                        continue;
                    }
                    Err(failure) => (item.seq, failure.detail),
                }
            }
            InputEvent::Bad { seq, reason, .. } => (seq, reason),
        };
        failed = true;
        let show = repeats.note(&reason);
        if show != Show::Counted {
            progress.line(format!("pararun: {input_name}:{seq}: bad-input: {reason}").as_bytes());
        }
        if let Show::LineThenNote(note) = show {
            progress.line(note.as_bytes());
        }
    }
    out.flush().context("cannot write to stdout")?;
    for line in repeats.summary() {
        progress.line(line.as_bytes());
    }
    if !cfg.output.quiet {
        progress.line(count_line(shown as u64, stats).as_bytes());
    }
    Ok(if failed {
        Exit::ItemsFailed
    } else {
        Exit::Success
    })
}

/// `pararun: would run 12; 30 cached; 58 other shards`: what the listing above adds up to.
fn count_line(shown: u64, stats: &Stats) -> String {
    let mut line = format!(
        "pararun: would run {shown}; {} cached",
        Stats::get(&stats.cached)
    );
    for (n, what) in [
        (Stats::get(&stats.duplicates), "duplicates"),
        (Stats::get(&stats.other_shards), "other shards"),
        (Stats::get(&stats.given_up), "given up"),
    ] {
        if n > 0 {
            line += &format!("; {n} {what}");
        }
    }
    line
}
