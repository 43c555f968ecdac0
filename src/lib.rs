//! pararun: run a command over every item of a JSONL or line input, N at a time, with a
//! crash-safe, resumable JSONL cache.
//!
//! The binary is a thin shell around [`run`]; a Rust program can build a [`Config`] and call it
//! the same way. Data flows one way: [`input`] reads items, the cache index filters them,
//! [`template`] builds each command, [`process`] runs it, and [`runner`] hands each outcome to the
//! [`cache`], stdout and [`report`].

#![deny(missing_docs)]

pub mod cache;
pub mod cli;
pub mod config;
pub mod files;
pub mod input;
pub mod process;
pub mod report;
pub mod result;
pub mod runner;
pub mod template;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};

pub use config::Config;
pub use report::Exit;

use cache::index::KeyIndex;
use cache::{CacheWriter, Loaded};
use config::{Format, InputSource};
use input::{InputEvent, InputReader, Key};
use report::progress::{self, Progress};
use report::{FailureLog, Stats};
use template::Template;

/// Runs a whole job. `Err` is a setup error (bad flag combination, unreadable input, unusable
/// cache), raised before any child starts; everything after that is reported through the
/// returned [`Exit`].
pub fn run(cfg: &Config) -> Result<Exit> {
    let started = Instant::now();
    // A refused command is a usage error (exit 2), found before anything starts. Parsing takes
    // no lock and starts no thread, so the watchdog below is still forked from a small process.
    let template = Template::parse(&cfg.command, cfg.shell, cfg.stdin || cfg.persistent)
        .map_err(anyhow::Error::new)?;
    // Forked first, while the process is small and holds no lock or thread.
    let watchdog = if cfg.dry_run {
        None
    } else {
        Some(process::Watchdog::start(cfg.jobs).context("cannot start the watchdog process")?)
    };
    if cfg.persistent {
        if let Err(placeholder) = template.render_worker(1) {
            bail!(
                "{placeholder} cannot be used with --persistent: a worker gets its items on \
                 stdin, one per line; only <%> (the slot) may appear in the command"
            );
        }
    }
    if let Some(program) = template.literal_program() {
        check_program(program)?;
    }
    let (mut reader, sized) = open_input(cfg)?;
    let format = reader.resolve_format()?;
    if format == Format::Lines {
        if let Some(field) = template.fields().next() {
            bail!(
                "the command uses <{field}>, a field of a JSON item, but the input is read as \
                 plain lines; give JSONL input (or --format jsonl), or use <> for the whole line"
            );
        }
    }
    let stats = Arc::new(Stats::default());
    let display = if cfg.dry_run {
        progress::Display::Off
    } else {
        cfg.display
    };
    let progress = Progress::new(display, stats.clone(), cfg.total);
    if let (None, Some(path), false) = (cfg.total, &sized, display == progress::Display::Off) {
        // Counted on a thread of its own so that the first job does not wait for it.
        let (path, progress) = (path.clone(), progress.clone());
        std::thread::spawn(move || {
            if let Some(total) = progress::count_items(&path) {
                progress.set_total(total);
            }
        });
    }

    if cfg.dry_run {
        let loaded = match &cfg.cache {
            Some(path) => cache::load_read_only(path, &cfg.key_field, cfg.max_line_bytes)?,
            None => Loaded::default(),
        };
        warn_cache(&loaded, cfg, &progress);
        let keep = filter(cfg, sized.as_deref(), loaded.index, stats.clone());
        return dry_run(cfg, &template, reader, keep, &progress);
    }

    let (cache, index) = match &cfg.cache {
        Some(path) => {
            let (writer, loaded) =
                CacheWriter::open(path, &cfg.key_field, cfg.max_line_bytes, cfg.fsync)?;
            warn_cache(&loaded, cfg, &progress);
            (Some(writer), loaded.index)
        }
        None => (None, KeyIndex::default()),
    };
    let failures = cfg.failures.as_deref().map(FailureLog::open).transpose()?;
    process::sys::survive_file_size_limit();
    process::sys::raise_open_file_limit();

    let keep = filter(cfg, sized.as_deref(), index, stats.clone());
    let input = input::feed::spawn(reader, &cfg.input.to_string(), keep, cfg.jobs.clamp(1, 64))?;

    // Measured on 5,000 trivial jobs (scripts/bench.sh): with one or two children a single
    // thread answers a finished child soonest; with more, spawning on two threads overlaps the
    // kernel's share of each spawn and wins by ~15%.
    let mut builder = if cfg.jobs <= 2 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(2);
        builder
    };
    let runtime = builder
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let runner = runner::Runner::new(cfg, template, stats, progress, cache, failures, watchdog);
    Ok(runtime.block_on(runner.run(input, started)))
}

/// The skip rule: a key another shard owns is skipped; with a cache, a key already in it is
/// skipped as cached, and a key seen earlier in this input as a duplicate. Without a cache
/// every item runs, as with xargs. `sized` is the input's path when it is a regular file.
fn filter(
    cfg: &Config,
    sized: Option<&Path>,
    cached: KeyIndex,
    stats: Arc<Stats>,
) -> impl FnMut(&Key) -> bool + Send {
    let dedupe = cfg.cache.is_some();
    let shard = cfg.shard;
    // Sized up front from the input file (when it is a regular one), so the set rarely has to
    // grow (growing holds the old and the new table at once).
    let expected = match (sized, dedupe) {
        (Some(path), true) => {
            let lines = input::estimate_lines(path).saturating_sub(cached.len());
            lines / cfg.shard.map_or(1, |s| s.count as usize)
        }
        _ => 0,
    };
    let mut seen = KeyIndex::with_capacity(expected);
    move |key: &Key| {
        if shard.is_some_and(|s| key.shard(s.count) != s.index) {
            Stats::bump(&stats.other_shards);
            false
        } else if !dedupe {
            true
        } else if cached.contains(key) {
            Stats::bump(&stats.cached);
            false
        } else if !seen.insert(key) {
            Stats::bump(&stats.duplicates);
            false
        } else {
            true
        }
    }
}

/// Opens the input; also returns its path when it is a regular file, the only kind that may be
/// opened a second time to count or estimate its lines: a FIFO or a pipe (`-i <(cmd)`) read
/// twice would lose to the second reader the items it took.
fn open_input(cfg: &Config) -> Result<(InputReader, Option<PathBuf>)> {
    let (source, sized): (Box<dyn Read + Send>, _) = match &cfg.input {
        InputSource::Stdin => (Box::new(std::io::stdin()), None),
        InputSource::File(path) => {
            let (file, regular) = files::open_input(path)?;
            (Box::new(file), regular.then(|| path.clone()))
        }
    };
    let reader = InputReader::new(
        source,
        &cfg.input.to_string(),
        cfg.format,
        &cfg.key_field,
        cfg.max_line_bytes,
    );
    Ok((reader, sized))
}

fn warn_cache(loaded: &Loaded, cfg: &Config, progress: &Progress) {
    if let (Some(path), false) = (&cfg.cache, cfg.quiet) {
        if let Some(warning) = loaded.warning(path) {
            progress.line(warning.as_bytes());
        }
    }
}

/// Fails early, with exit 2, when a directly run program cannot be found, instead of failing
/// every item.
fn check_program(program: &str) -> Result<()> {
    let found = if program.contains('/') {
        Path::new(program).is_file()
    } else {
        std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
    };
    if !found {
        bail!("command not found: {program:?} (not a file, and not on PATH)");
    }
    Ok(())
}

/// `--dry-run`: prints each command that would run, shell-quoted, one per line.
fn dry_run(
    cfg: &Config,
    template: &Template,
    mut reader: InputReader,
    mut keep: impl FnMut(&Key) -> bool,
    progress: &Progress,
) -> Result<Exit> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let input_name = cfg.input.to_string();
    let mut failed = false;
    // A persistent worker's command is the same for every item (checked at setup).
    let worker = cfg
        .persistent
        .then(|| template.render_worker(1).unwrap_or_default());
    while let Some(event) = reader.next_event(&mut keep)? {
        let problem = match event {
            InputEvent::Item(item) => {
                match worker.clone().map_or_else(|| template.render(&item, 1), Ok) {
                    Ok(argv) => {
                        let command = shell_words::join(&argv);
                        // What the child reads on stdin, shown as a pipe so the line can be pasted.
                        let stdin = if cfg.persistent {
                            Some(item.worker_request())
                        } else {
                            cfg.stdin.then(|| item.line.clone())
                        };
                        let shown = match stdin {
                            Some(line) => {
                                format!("printf '%s\\n' {} | {command}", shell_words::quote(&line))
                            }
                            None => command,
                        };
                        match writeln!(out, "{shown}") {
                            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                                return Ok(Exit::Success)
                            }
                            other => other.context("cannot write to stdout")?,
                        }
                        continue;
                    }
                    Err(template::MissingField(reason)) => (item.seq, reason),
                }
            }
            InputEvent::Bad { seq, reason, .. } => (seq, reason),
        };
        failed = true;
        progress.line(
            format!(
                "pararun: {input_name}:{}: bad-input: {}",
                problem.0, problem.1
            )
            .as_bytes(),
        );
    }
    out.flush().context("cannot write to stdout")?;
    Ok(if failed {
        Exit::ItemsFailed
    } else {
        Exit::Success
    })
}
