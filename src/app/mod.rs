//! The application: everything one run sets up from a [`Config`] before the first child
//! starts (the template, the watchdog, the input, the cache, the failures file, the progress
//! display), then the run itself, or the dry run ([`dry_run`]).
//!
//! Setup errors are `Err`s (exit 2, nothing has run); from the first child on, everything is
//! reported through the returned [`Exit`].

mod checks;
mod dry_run;
mod limits;
mod notes;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::base::index::KeyIndex;
use crate::cache::{self, CacheWriter, Loaded};
use crate::cli::{Inspect, Invocation};
use crate::config::{Config, Format, InputSource};
use crate::files;
use crate::filter::given_up;
use crate::filter::skip_filter;
use crate::input::{self, InputReader};
use crate::process::{self, Watchdog};
use crate::report::progress::{self, Display, Progress};
use crate::report::state::{RunFacts, StateFile};
use crate::report::{human_duration, Exit, FailureLog, Stats};
use crate::runner::{Runner, Signals, Stopped};
use crate::template::Template;

/// Does what the command line asked for. A subcommand adds its arm here, and its module
/// beside this one.
pub(crate) fn invoke(invocation: Invocation) -> Result<Exit> {
    match invocation {
        Invocation::Run(cfg) => run(&cfg),
        Invocation::Inspect(Inspect::Status(opts)) => crate::inspect::status(&opts),
        Invocation::Inspect(Inspect::Failures(opts)) => crate::inspect::failures(&opts),
        Invocation::Inspect(Inspect::Merge(opts)) => crate::inspect::merge(&opts),
        Invocation::Inspect(Inspect::Check(opts)) => crate::inspect::check(&opts),
    }
}

/// Runs a whole job; see [`crate::run`].
pub(crate) fn run(cfg: &Config) -> Result<Exit> {
    // A run drives its own runtime; inside another one, tokio would panic. Say so instead.
    if tokio::runtime::Handle::try_current().is_ok() {
        bail!(
            "pararun::run was called from inside a tokio runtime, which cannot start another; \
             call it from a blocking thread (tokio::task::spawn_blocking)"
        );
    }
    let started = Instant::now();
    // A refused command is a usage error (exit 2), found before anything starts.
    let template = checks::command_template(cfg)?;
    // Before the progress display exists (nothing to clear), and before anything is read:
    // a terminal read from would otherwise look like a hang.
    let (fitted, jobs_note) = limits::fit_jobs(cfg)?;
    let cfg = &fitted;
    for note in notes::stdin_notes(cfg).into_iter().chain(jobs_note) {
        match cfg.output.timestamps {
            true => eprintln!("{} {note}", crate::report::clock::now()),
            false => eprintln!("{note}"),
        }
    }
    // Forked early, while the process is small (the fork itself is sound at any time).
    let watchdog = match cfg.launch.dry_run {
        true => None,
        false => {
            Some(Watchdog::start(cfg.launch.jobs).context("cannot start the watchdog process")?)
        }
    };
    // Any two of stdout, input, cache and failures file that are one file are refused, each
    // checked on its open descriptor before a byte of it is read or written.
    let mut seen = files::Seen::default();
    if !cfg.output.stdout_closed {
        seen.claim("stdout", &fd_path(1), std::io::stdout())?;
    }
    // A log (`2>> out.jsonl`) written into the cache would be read back as damage.
    seen.claim("stderr", &fd_path(2), std::io::stderr())?;
    let (mut reader, sized) = open_input(cfg, &mut seen)?;
    reader.keep_values(template.fields().next().is_some());
    checks::format_fits(&mut reader, &template)?;
    let stats = Arc::new(Stats::default());
    let progress = start_progress(cfg, &stats, sized.as_deref());
    // Whichever way the run returns, what it queued for stderr goes out first (another clone
    // of the display, the background count's, may outlive this function).
    let _flush = FlushOnReturn(progress.clone());
    let setup = Setup {
        template,
        reader,
        sized,
        stats,
        progress,
        seen,
    };
    match cfg.launch.dry_run {
        true => dry(cfg, setup),
        false => run_job(cfg, setup, watchdog, started),
    }
}

/// What setup has opened and checked, handed to the run or the dry run.
struct Setup {
    template: Template,
    reader: InputReader,
    /// The input's path when it is a regular file (see [`open_input`]).
    sized: Option<PathBuf>,
    stats: Arc<Stats>,
    progress: Progress,
    seen: files::Seen,
}

/// `--dry-run`: the commands that would run, with nothing locked, written or run.
fn dry(cfg: &Config, mut setup: Setup) -> Result<Exit> {
    dry_run::claim_files(cfg, &mut setup.seen)?;
    let loaded = match &cfg.results.cache {
        Some(path) => cache::load_read_only(path, &cfg.items.key_field, cfg.items.max_line_bytes)?,
        None => Loaded::default(),
    };
    let Setup {
        template,
        reader,
        sized,
        stats,
        progress,
        ..
    } = setup;
    warn_cache(&loaded, cfg, &progress);
    let given_up = load_given_up(cfg, &progress)?;
    let keep = skip_filter(cfg, sized.as_deref(), loaded.index, given_up, stats.clone());
    dry_run::print(cfg, &template, reader, keep, &progress, &stats)
}

/// The run itself: the runtime and signals, the cache (locked and loaded), the failures file,
/// the reader thread, the state file and the scheduler.
fn run_job(
    cfg: &Config,
    mut setup: Setup,
    watchdog: Option<Watchdog>,
    started: Instant,
) -> Result<Exit> {
    // The runtime and the signal handlers come before the cache is loaded, which can take
    // seconds: a Ctrl-C meanwhile is then a clean stop (the runner sees it first thing),
    // not a silent death.
    let runtime = runtime(cfg.launch.jobs)?;
    let mut signals = {
        let _enter = runtime.enter();
        Signals::install().context("cannot install signal handlers")?
    };
    let progress = setup.progress.clone();
    // A signal during `--lock-wait` ends the wait at once, with its own status.
    let nap = |gap| Ok(signals.nap(&runtime, gap)?);
    let (cache, index) = match open_cache(cfg, &progress, nap, &mut setup.seen) {
        Err(e) => return refused_cache(cfg, e, &progress),
        Ok(opened) => opened,
    };
    // Read once the cache is ours: a run that skips a busy cache reads nothing. Opened (and
    // its torn end repaired) before it is read back for --give-up-after.
    let failures = open_failures(cfg, &mut setup.seen)?;
    let given_up = load_given_up(cfg, &progress)?;
    process::sys::survive_file_size_limit();
    if cfg.output.timestamps && !cfg.output.quiet {
        progress.line(start_line(cfg, index.len()).as_bytes());
    }
    let Setup {
        template,
        reader,
        sized,
        stats,
        ..
    } = setup;
    let keep = skip_filter(cfg, sized.as_deref(), index, given_up, stats.clone());
    let batch = input::feed::BATCH_ITEMS;
    let input = input::feed::spawn(reader, &cfg.items.input.to_string(), keep, batch)?;
    let state = cfg
        .results
        .cache
        .as_deref()
        .map(|path| start_state(cfg, path, &stats));
    let runner = Runner::new(cfg, template, stats, progress, cache, failures, watchdog)?;
    let exit = runtime.block_on(runner.run(signals, input, started));
    if let Some(state) = state {
        state.finish(exit.code());
    }
    Ok(exit)
}

/// The cache could not be had: busy (another run holds it), a signal during `--lock-wait`, or
/// an error.
fn refused_cache(cfg: &Config, e: anyhow::Error, progress: &Progress) -> Result<Exit> {
    if let Some(busy) = e.downcast_ref::<cache::Busy>() {
        return Ok(cache_busy(cfg, busy, progress));
    }
    match e.downcast::<Stopped>() {
        Ok(stopped) => Ok(stopped_waiting(cfg, &stopped, progress)),
        Err(e) => Err(e),
    }
}

/// The line a logged run starts with: where its items come from, `-j`, and the cache with how
/// much of it is already done.
fn start_line(cfg: &Config, done: usize) -> String {
    let cache = match &cfg.results.cache {
        Some(path) => format!("cache {} ({done} records already done)", path.display()),
        None => "no cache".into(),
    };
    let shard = match cfg.items.shard {
        Some(s) => format!(", shard {}/{}", s.index, s.count),
        None => String::new(),
    };
    format!(
        "pararun: starting: items from {}, -j {}{shard}, {cache}",
        cfg.items.input, cfg.launch.jobs
    )
}

/// Starts keeping the state file beside the cache, for `pararun status` (see
/// [`crate::report::state`]). Paths are made absolute: `status` may run elsewhere.
fn start_state(cfg: &Config, cache: &Path, stats: &Arc<Stats>) -> StateFile {
    let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_owned());
    let facts = RunFacts {
        jobs: cfg.launch.jobs,
        input: match &cfg.items.input {
            InputSource::Stdin => "-".into(),
            InputSource::File(path) => absolute(path).display().to_string(),
        },
        key_field: cfg.items.key_field.clone(),
        shard: cfg.items.shard.map(|s| format!("{}/{}", s.index, s.count)),
        failures: cfg.faults.failures.as_deref().map(absolute),
        give_up_after: cfg.faults.give_up_after,
        // `auto` is decided on the reader thread; `status` decides it again the same way.
        job_input: None,
        format: match cfg.items.format {
            Format::Auto => "auto",
            Format::Jsonl => "jsonl",
            Format::Lines => "lines",
        },
    };
    StateFile::start(cache, facts, stats.clone())
}

/// Opens the input; also returns its path when it is a regular file, the only kind that may be
/// opened a second time to count or estimate its lines: a FIFO or a pipe (`-i <(cmd)`) read
/// twice would lose to the second reader the items it took.
fn open_input(cfg: &Config, seen: &mut files::Seen) -> Result<(InputReader, Option<PathBuf>)> {
    let (source, sized): (Box<dyn Read + Send>, _) = match &cfg.items.input {
        InputSource::Stdin => {
            seen.claim(
                "input",
                &format!("- (stdin, {})", fd_path(0)),
                std::io::stdin(),
            )?;
            (Box::new(std::io::stdin()), None)
        }
        InputSource::File(path) => {
            let (file, regular) = files::open_input(path)?;
            seen.claim("input", &path.display().to_string(), &file)?;
            (Box::new(file), regular.then(|| path.clone()))
        }
    };
    let reader = InputReader::new(
        source,
        &cfg.items.input.to_string(),
        cfg.items.format,
        &cfg.items.key_field,
        cfg.items.max_line_bytes,
    );
    Ok((reader, sized))
}

/// The progress display; with a regular input file and no `--total`, the items are counted on
/// a thread of their own, so that the first job does not wait for the count.
fn start_progress(cfg: &Config, stats: &Arc<Stats>, sized: Option<&Path>) -> Progress {
    let display = if cfg.launch.dry_run {
        Display::Off
    } else {
        cfg.output.display
    };
    let progress = Progress::new(
        display,
        cfg.output.timestamps,
        stats.clone(),
        cfg.output.total,
    );
    if let (None, Some(path), false) = (cfg.output.total, sized, display == Display::Off) {
        let (path, progress) = (path.to_owned(), progress.clone());
        std::thread::spawn(move || {
            if let Some(total) = progress::count_items(&path) {
                progress.set_total(total);
            }
        });
    }
    progress
}

/// How messages name what one of pararun's own descriptors is open on.
fn fd_path(fd: i32) -> String {
    std::fs::read_link(format!("/proc/self/fd/{fd}")).map_or_else(
        |_| format!("(descriptor {fd})"),
        |p| p.display().to_string(),
    )
}

/// Opens, locks and loads the cache (if any): its writer and the index of done keys.
fn open_cache(
    cfg: &Config,
    progress: &Progress,
    pause: impl FnMut(std::time::Duration) -> Result<()>,
    seen: &mut files::Seen,
) -> Result<(Option<CacheWriter>, KeyIndex)> {
    Ok(match &cfg.results.cache {
        Some(path) => {
            let waiting = || {
                if !cfg.output.quiet {
                    let note = format!(
                        "pararun: cache {} is in use by another pararun; waiting up to {} for \
                         it (--lock-wait)",
                        path.display(),
                        human_duration(cfg.results.lock_wait)
                    );
                    progress.line(note.as_bytes());
                }
            };
            let (writer, loaded) = CacheWriter::open(
                path,
                &cfg.items.key_field,
                cfg.items.max_line_bytes,
                cfg.results.fsync,
                cache::lock::Wait {
                    limit: cfg.results.lock_wait,
                    note: waiting,
                    pause,
                },
                |file| seen.claim("cache", &path.display().to_string(), file),
            )?;
            warn_cache(&loaded, cfg, progress);
            (Some(writer), loaded.index)
        }
        None => (None, KeyIndex::default()),
    })
}

/// Another run holds the cache: nothing has been read, written or run. With
/// `--conflict-exit-code 0` that is a quiet skip (a cron job that overlaps the previous one);
/// otherwise an error that says what to do.
fn cache_busy(cfg: &Config, busy: &cache::Busy, progress: &Progress) -> Exit {
    progress.finish();
    let code = cfg.results.conflict_exit_code;
    let holder = busy.path.as_path();
    let busy = match crate::report::state::holder(holder) {
        Some(run) => format!("{busy}: {run}"),
        None => busy.to_string(),
    };
    if code != 0 {
        let msg = format!(
            "pararun: {busy}; wait for it to finish or use another --cache file \
             (--lock-wait DUR waits for it, --conflict-exit-code 0 skips quietly)"
        );
        progress.line(msg.as_bytes());
    } else if !cfg.output.quiet {
        let msg = format!("pararun: {busy}; skipping this run (--conflict-exit-code 0)");
        progress.line(msg.as_bytes());
    }
    Exit::CacheBusy(code)
}

/// A signal came while waiting for the cache's lock (`--lock-wait`): nothing has been read,
/// written or run, and the run exits with the signal's status (130, 143, 129).
fn stopped_waiting(cfg: &Config, stopped: &Stopped, progress: &Progress) -> Exit {
    progress.finish();
    let path = cfg
        .results
        .cache
        .as_deref()
        .unwrap_or(Path::new("?"))
        .display();
    let msg = format!(
        "pararun: {}: stopped waiting for the lock on cache {path} (--lock-wait); nothing ran",
        stopped.signal
    );
    progress.line(msg.as_bytes());
    stopped.exit
}

/// Opens the failures file (if any), refused when it is one of the run's other files.
fn open_failures(cfg: &Config, seen: &mut files::Seen) -> Result<Option<FailureLog>> {
    let Some(path) = &cfg.faults.failures else {
        return Ok(None);
    };
    let claim =
        |file: &std::fs::File| seen.claim("failures file", &path.display().to_string(), file);
    FailureLog::open(path, cfg.items.max_line_bytes, claim).map(Some)
}

/// With `--give-up-after`, the keys that the failures file says failed too often.
fn load_given_up(cfg: &Config, progress: &Progress) -> Result<KeyIndex> {
    let (Some(limit), Some(path)) = (cfg.faults.give_up_after, &cfg.faults.failures) else {
        return Ok(KeyIndex::default());
    };
    let found = given_up::load(path, limit, cfg.items.max_line_bytes)?;
    if let (Some(warning), false) = (found.warning(path), cfg.output.quiet) {
        progress.line(warning.as_bytes());
    }
    Ok(found.index)
}

fn warn_cache(loaded: &Loaded, cfg: &Config, progress: &Progress) {
    if let (Some(path), false) = (&cfg.results.cache, cfg.output.quiet) {
        if let Some(warning) = loaded.warning(path) {
            progress.line(warning.as_bytes());
        }
    }
}

/// The async runtime. Measured on 5,000 trivial jobs (scripts/bench.sh): with one or two
/// children a single thread answers a finished child soonest; with more, spawning on two
/// threads overlaps the kernel's share of each spawn and wins by ~15%.
fn runtime(jobs: usize) -> Result<tokio::runtime::Runtime> {
    let mut builder = if jobs <= 2 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(2);
        builder
    };
    builder
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Flushes the display's stderr queue when dropped: at every return from [`run`].
struct FlushOnReturn(Progress);

impl Drop for FlushOnReturn {
    fn drop(&mut self) {
        self.0.flush(std::time::Duration::from_secs(2));
    }
}
