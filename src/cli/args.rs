//! The flags, one flattened struct per help heading.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum, ValueHint};

use super::shard::{parse_shard_arg, ShardArg};

use crate::config::{
    parse_duration, parse_rate, parse_size, Capture, Format, Fsync, Protocol, DEFAULT_MAX_LINE,
};

#[derive(Debug, Args)]
#[command(next_help_heading = "Input")]
pub(super) struct InputArgs {
    /// Read items from FILE instead of stdin (`-` is stdin).
    #[arg(short, long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub(super) input: Option<PathBuf>,

    /// How to read items: `auto` picks jsonl when the first non-blank line starts with `{`.
    #[arg(hide_short_help = true, long, value_enum, default_value_t = FormatArg::Auto, value_name = "FORMAT")]
    pub(super) format: FormatArg,

    /// The top-level field that keys a JSON item and every cache record.
    ///
    /// Keys are compared by their compact JSON text: `5` and `"5"` are different keys, and so
    /// are `1`, `1.0` and `1e0`; a number keeps all its digits. A line item's key is the line
    /// itself, stored under this name in its record.
    #[arg(long, default_value = "id", value_name = "NAME")]
    pub(super) key_field: String,

    /// The longest line read from the input or the cache, and the longest record written.
    ///
    /// An input line over SIZE fails alone as bad-input and is skipped without being held in
    /// memory; a cache line over it is skipped as damaged; a result whose record would be over
    /// it fails as bad-output (it could not be read back). SIZE is bytes, or a number with K,
    /// M or G (binary: 1K = 1024).
    #[arg(hide_short_help = true, long, default_value = DEFAULT_MAX_LINE, value_parser = parse_size, value_name = "SIZE")]
    pub(super) max_line_bytes: usize,

    /// Run only shard I of N: the items whose key hashes to I modulo N (0 <= I < N).
    ///
    /// The hash is XXH3-64 of the key's compact JSON text, the same on every machine and
    /// version. `auto` takes I and N from a Slurm job array (SLURM_ARRAY_TASK_*); `auto/N` pins
    /// N, and is how a Kubernetes Indexed Job (JOB_COMPLETION_INDEX) gives it. Outside an array
    /// `auto` is an error.
    #[arg(long, value_name = "I/N|auto[/N]", value_parser = parse_shard_arg)]
    pub(super) shard: Option<ShardArg>,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Command")]
pub(super) struct CommandArgs {
    /// Children running at once [default: the number of CPUs].
    ///
    /// Cut, with a warning, to what the open-file limit holds (4 descriptors a child; see
    /// `ulimit -Hn`).
    // Hidden aliases: --workers, and --n-workers as the Python library spells it.
    #[arg(short, long, value_name = "N", aliases = ["workers", "n-workers"])]
    pub(super) jobs: Option<NonZeroUsize>,

    /// Write the item's input line to the child's stdin (otherwise stdin is /dev/null).
    #[arg(long)]
    pub(super) stdin: bool,

    /// Run the command through `sh -c` even when given as several words.
    #[arg(hide_short_help = true, long)]
    pub(super) shell: bool,

    /// Start COMMAND once per slot as a long-lived worker: each item goes to a free worker as
    /// one line on its stdin (the JSON line, or a JSON string for lines input), and the worker
    /// answers with one JSON line on stdout.
    ///
    /// A worker that exits, times out or answers with something that is not JSON fails its item
    /// and is restarted. Only the slot placeholder (`{%}` or `<%>`) may be used; PARARUN_SLOT is
    /// set.
    #[arg(long)]
    pub(super) persistent: bool,

    /// With --persistent: how many items each worker holds at once, sent and not yet answered;
    /// 1 waits for each answer (give 1 when item times vary widely in no known order).
    ///
    /// The worker still reads one line and answers one line, in order. A worker whose answers
    /// do not echo the key gets one at a time, and an ordered worker only about 20 ms of work
    /// ahead (by its measured time per item), so slow items are not queued behind one
    /// another; items sent while quick ones came stay with their worker.
    #[arg(hide_short_help = true, long, value_name = "K", default_value_t = crate::config::DEFAULT_PIPELINE, value_parser = clap::builder::TypedValueParser::map(clap::value_parser!(u16).range(1..=1024), usize::from), requires = "persistent")]
    pub(super) pipeline: usize,

    /// With --persistent: `ordered` answers one line per request line, in order; `concurrent`
    /// wraps each item as {"pararun_id": N, "item": ITEM} and takes answers
    /// {"pararun_id": N, "result": R} (or "error": MESSAGE) in any order (an async program).
    #[arg(
        hide_short_help = true,
        long,
        value_name = "P",
        default_value = "ordered",
        requires = "persistent"
    )]
    pub(super) protocol: ProtocolArg,

    /// Start at most N items per second, minute or hour (`10/s`, `100/m`, `5000/h`), evenly
    /// spaced; retries count too.
    #[arg(long, value_name = "N/UNIT", value_parser = parse_rate)]
    pub(super) rate: Option<Duration>,

    /// With --rate: how many items may start back to back after a pause.
    #[arg(hide_short_help = true, long, value_name = "B", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..), requires = "rate")]
    pub(super) burst: u32,

    /// Make -j a ceiling: start at 1 and double while nothing is throttled, then cut the number
    /// running at once on a throttle and raise it by one after a window of successes.
    #[arg(hide_short_help = true, long)]
    pub(super) adaptive: bool,

    /// Print each command that would run (after skipping cached keys), shell-quoted, one per
    /// line; run nothing and write nothing.
    #[arg(long)]
    pub(super) dry_run: bool,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Results and cache")]
pub(super) struct ResultArgs {
    /// The JSONL cache: keys found in it are skipped; each new result is appended as it arrives.
    ///
    /// Created if missing. A torn or unreadable line is skipped with a warning, never fatal.
    /// The same file as the input, the failures file or stdout is refused (exit 2).
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub(super) cache: Option<PathBuf>,

    /// What a child's stdout is: a JSON result, or text stored as a string.
    ///
    /// Either way it is kept exactly: output that is not valid UTF-8 (as JSON must be) fails
    /// the item as bad-output instead of being altered.
    #[arg(long, value_enum, default_value_t = CaptureArg::Json, value_name = "MODE")]
    pub(super) capture: CaptureArg,

    /// The most a child may print on stdout (a persistent worker: per answer line); past it
    /// the child is killed and the item fails as bad-output.
    ///
    /// SIZE is bytes, or a number with K, M or G (powers of 1024), e.g. `256M`.
    #[arg(hide_short_help = true, long, default_value = "64M", value_parser = parse_size, value_name = "SIZE")]
    pub(super) max_output_bytes: usize,

    /// How hard each cache append is pushed to disk (against power loss, not crashes: a crash
    /// of pararun loses no finished result in any mode).
    #[arg(hide_short_help = true, long, value_enum, default_value_t = FsyncArg::Batch, value_name = "WHEN")]
    pub(super) fsync: FsyncArg,

    /// When another run holds the cache's lock, wait up to DUR for it (as `flock -w` does)
    /// instead of giving up at once; then exit as --conflict-exit-code says.
    ///
    /// SIGINT, SIGTERM or SIGHUP ends the wait at once (exit 130, 143, 129); nothing runs.
    ///
    /// DUR is seconds (`2.5`) or a number with `ms`, `s`, `m` or `h`.
    #[arg(hide_short_help = true, long, default_value = "0", value_parser = parse_duration, value_name = "DUR", requires = "cache")]
    pub(super) lock_wait: Duration,

    /// The exit status when another run holds the cache's lock (as `flock -E` sets it).
    ///
    /// 0 skips the run quietly, with a one-line note (none with -q): for a cron job that may
    /// overlap the previous one. Nothing is read, written or run either way.
    #[arg(
        hide_short_help = true,
        long,
        default_value_t = 2,
        value_name = "CODE",
        requires = "cache"
    )]
    pub(super) conflict_exit_code: u8,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Faults")]
pub(super) struct FaultArgs {
    /// Retry a failed item up to N more times; bad input is never retried.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub(super) retries: u32,

    /// Wait before the first retry, doubling (with jitter) on each further one, capped at 1m.
    ///
    /// DUR is seconds (`2.5`) or a number with `ms`, `s`, `m` or `h`.
    #[arg(hide_short_help = true, long, default_value = "1s", value_parser = parse_duration, value_name = "DUR")]
    pub(super) retry_delay: Duration,

    /// Per attempt: on expiry the child's process group gets SIGTERM, then SIGKILL after
    /// --kill-after.
    ///
    /// Wall time, Ctrl-Z pauses included; what a child finished while pararun itself was
    /// stopped counts as finished (docs/signals.md).
    #[arg(long, value_parser = parse_duration, value_name = "DUR")]
    pub(super) timeout: Option<Duration>,

    /// Grace between SIGTERM and SIGKILL, for timeouts and for shutdown.
    #[arg(hide_short_help = true, long, default_value = "5s", value_parser = parse_duration, value_name = "DUR")]
    pub(super) kill_after: Duration,

    /// Append one JSON line per failed item to FILE (key, line, item, reason, stderr tail...).
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub(super) failures: Option<PathBuf>,

    /// After N failed items start nothing new, let running ones finish, and exit 1.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub(super) max_failures: Option<u64>,

    /// Stop at the first failed item (the same as --max-failures 1).
    #[arg(hide_short_help = true, long)]
    pub(super) halt_on_error: bool,

    /// Skip an item once the --failures file records N failed attempts of it, across runs, so
    /// that an item that always fails stops failing every run (cron mails). Needs --failures.
    ///
    /// Attempts add up over every line of the file with the item's key (retries included),
    /// read once at start. Such items are counted as "given up" in the summary and do not fail
    /// the run. To try them again, run once without --give-up-after (or with a larger N), or
    /// delete their lines from the failures file.
    #[arg(hide_short_help = true, long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub(super) give_up_after: Option<u32>,

    /// The exit code by which a child says "throttled, slow down" (75 is EX_TEMPFAIL).
    ///
    /// The item goes back to the queue without using up --retries, and new starts pause:
    /// for the `{"retry_after": SECONDS}` the child may print, else a backoff from 1s to 1m.
    #[arg(hide_short_help = true, long, default_value_t = 75, value_name = "CODE", value_parser = clap::value_parser!(i32).range(1..=255))]
    pub(super) throttle_exit_code: i32,

    /// Fail an item as `throttled` when it is throttled more than N times.
    #[arg(hide_short_help = true, long, default_value_t = 100, value_name = "N")]
    pub(super) max_throttled: u32,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Output")]
pub(super) struct OutputArgs {
    /// Print no result records on stdout and no summary or progress on stderr (--no-records
    /// hides only the records).
    #[arg(short, long)]
    pub(super) quiet: bool,

    /// Print records on stdout in input order (the cache still gets them as they finish).
    ///
    /// At most 4 x --jobs results wait behind a slow item; past that, new items wait.
    #[arg(short = 'k', long)]
    pub(super) keep_order: bool,

    /// Start each line a child writes to stderr with its item's key and a tab, as GNU
    /// parallel's --tag does, so that the lines of many children can be told apart.
    ///
    /// A persistent worker serves many items at once, so its lines pass through as written.
    #[arg(hide_short_help = true, long)]
    pub(super) tag: bool,

    /// Print the records on stdout even when stdout is a terminal and --cache keeps them.
    ///
    /// By default a terminal gets no records when there is a cache (the summary says where
    /// they are), and any other stdout (a pipe, a file) gets every record.
    #[arg(hide_short_help = true, long, overrides_with = "no_records")]
    pub(super) records: bool,

    /// Print no records on stdout, but the summary and progress as usual (-q hides all).
    #[arg(hide_short_help = true, long, overrides_with = "records")]
    pub(super) no_records: bool,

    /// Show the progress bar even when stderr is not a terminal.
    #[arg(hide_short_help = true, long, overrides_with = "no_progress")]
    pub(super) progress: bool,

    /// Show no progress bar and no progress lines.
    #[arg(hide_short_help = true, long, overrides_with = "progress")]
    pub(super) no_progress: bool,

    /// The number of items, for the bar's ETA [default: counted in the background when the
    /// input is a regular file].
    #[arg(hide_short_help = true, long, value_name = "N")]
    pub(super) total: Option<u64>,

    /// Start each of pararun's own stderr lines with the local time, even on a terminal.
    ///
    /// The default is to do so when stderr is not a terminal (a log file, cron, CI), as
    /// `2026-11-25T13:34:56+01:00 pararun: ...` (RFC 3339, local time with its UTC offset). A
    /// child's stderr is passed on as it is, never timestamped.
    #[arg(hide_short_help = true, long, overrides_with = "no_timestamps")]
    pub(super) timestamps: bool,

    /// Never timestamp stderr lines (e.g. when the log already adds its own, as journald does).
    #[arg(hide_short_help = true, long, overrides_with = "timestamps")]
    pub(super) no_timestamps: bool,

    /// When stderr is not a terminal, print a plain progress line this often.
    #[arg(hide_short_help = true, long, default_value = "30s", value_parser = parse_duration, value_name = "DUR")]
    pub(super) log_interval: Duration,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(super) enum FormatArg {
    /// jsonl when the first non-blank line starts with `{`, else lines.
    Auto,
    /// One JSON value per line.
    Jsonl,
    /// Each line is an item, keyed by itself.
    Lines,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(super) enum CaptureArg {
    /// The child's stdout is one JSON document, or its last JSON line.
    Json,
    /// The child's stdout, as a string, is the result.
    Text,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(super) enum FsyncArg {
    /// fdatasync after every write of records, before any of them counts as done.
    Always,
    /// fdatasync at most once a second, and at exit.
    Batch,
    /// Leave it to the operating system.
    Never,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(super) enum ProtocolArg {
    /// One answer line per request line, in order.
    Ordered,
    /// Requests and answers carry a pararun_id; answers in any order.
    Concurrent,
}

impl From<ProtocolArg> for Protocol {
    fn from(arg: ProtocolArg) -> Protocol {
        match arg {
            ProtocolArg::Ordered => Protocol::Ordered,
            ProtocolArg::Concurrent => Protocol::Concurrent,
        }
    }
}

impl From<FormatArg> for Format {
    fn from(arg: FormatArg) -> Format {
        match arg {
            FormatArg::Auto => Format::Auto,
            FormatArg::Jsonl => Format::Jsonl,
            FormatArg::Lines => Format::Lines,
        }
    }
}

impl From<CaptureArg> for Capture {
    fn from(arg: CaptureArg) -> Capture {
        match arg {
            CaptureArg::Json => Capture::Json,
            CaptureArg::Text => Capture::Text,
        }
    }
}

impl From<FsyncArg> for Fsync {
    fn from(arg: FsyncArg) -> Fsync {
        match arg {
            FsyncArg::Always => Fsync::Always,
            FsyncArg::Batch => Fsync::Batch,
            FsyncArg::Never => Fsync::Never,
        }
    }
}

impl OutputArgs {
    /// How progress is shown: a bar on a terminal (or with --progress), plain lines in a log,
    /// or nothing. Senses stderr and `NO_COLOR` here, at the edge.
    pub(super) fn display(&self) -> crate::config::Display {
        use crate::config::Display;
        use std::io::IsTerminal;
        if self.quiet || self.no_progress {
            Display::Off
        } else if self.progress || std::io::stderr().is_terminal() {
            Display::Bar {
                color: std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
                forced: !std::io::stderr().is_terminal(),
            }
        } else if self.log_interval.is_zero() {
            Display::Off
        } else {
            Display::Log(self.log_interval)
        }
    }
}
