//! The command-line definition: the only module that knows about clap.
//!
//! Doc comments here are the `--help` text, the man page and the completions, so they are
//! written for users. `Cli::into_config` turns the parsed flags into the plain [`Config`] the
//! engine takes; checks that span several flags live there and name the flags they involve.

use std::io::IsTerminal;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::{Args, Parser, ValueEnum, ValueHint};

use crate::config::{
    parse_duration, parse_rate, parse_shard, parse_size, Capture, Config, Display, Format, Fsync,
    InputSource, Rate, Shard, DEFAULT_MAX_LINE,
};

const EXAMPLES: &str = "\
Examples:
  Run work.py on every JSONL item, 8 at a time, resumable:
    cat items.jsonl | pararun -j 8 --cache out.jsonl -- python work.py <>

  Pass one field of each item; the program is run directly, no shell:
    pararun -i items.jsonl --cache out.jsonl -- ./score --text <text> --lang <lang>

  One word after -- runs through sh -c; values go in as arguments, never as code:
    pararun -i urls.txt --capture text -- 'curl -s <> | sha256sum'

  Survive flaky children and record what still fails:
    pararun -i items.jsonl --cache out.jsonl --retries 3 --timeout 2m \\
      --failures failed.jsonl -- python call_api.py <>

  See what would run, without running it:
    pararun -i items.jsonl --cache out.jsonl --dry-run -- python work.py <>
";

/// Run a command over every item of a JSONL or line input, N at a time, with a crash-safe,
/// resumable JSONL cache.
///
/// Each item (a JSON object per line, or a plain line) is put into COMMAND; the child's JSON
/// stdout is its result, appended to the --cache file the moment the child finishes. Run the
/// same command again and every item whose key is already in the cache is skipped.
#[derive(Debug, Parser)]
#[command(
    name = "pararun",
    version,
    after_long_help = EXAMPLES,
    after_help = "Use --help for the details of each option and examples.",
    args_override_self = true
)]
pub struct Cli {
    #[command(flatten)]
    input: InputArgs,
    #[command(flatten)]
    command: CommandArgs,
    #[command(flatten)]
    results: ResultArgs,
    #[command(flatten)]
    faults: FaultArgs,
    #[command(flatten)]
    output: OutputArgs,

    /// The command to run for each item, after `--`.
    ///
    /// Placeholders: `<>` the item (the line as read), `<NAME>` a top-level field of a JSON
    /// item, `<#>` the item's input line number, `<%>` the slot (1..N) running it. Several
    /// words: the program is run directly and each placeholder is replaced inside its own
    /// argument. One word (or --shell): run with `sh -c`; each value is passed to the script as
    /// an argument and reaches the child whole wherever its placeholder stands (unquoted, in
    /// "…", '…' or $'…', in a here-document), never run. Inside backticks or arithmetic no value
    /// is safe, so such a command is refused (exit 2) with what to write instead. With no
    /// placeholder and no --stdin the item is appended as the last argument, as xargs does.
    #[arg(
        help_heading = "Command",
        required = true,
        trailing_var_arg = true,
        value_name = "COMMAND",
        value_hint = ValueHint::CommandWithArguments,
        num_args = 1..
    )]
    cmd: Vec<String>,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Input")]
struct InputArgs {
    /// Read items from FILE instead of stdin (`-` is stdin).
    #[arg(short, long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    input: Option<PathBuf>,

    /// How to read items: `auto` picks jsonl when the first non-blank line starts with `{`.
    #[arg(hide_short_help = true, long, value_enum, default_value_t = FormatArg::Auto, value_name = "FORMAT")]
    format: FormatArg,

    /// The top-level field that keys a JSON item and every cache record.
    ///
    /// Keys are compared by their compact JSON text: `5` and `"5"` are different keys, and so
    /// are `1`, `1.0` and `1e0`; a number keeps all its digits. A line item's key is the line
    /// itself, stored under this name in its record.
    #[arg(long, default_value = "id", value_name = "NAME")]
    key_field: String,

    /// The longest line read from the input or the cache, and the longest record written.
    ///
    /// An input line over SIZE fails alone as bad-input and is skipped without being held in
    /// memory; a cache line over it is skipped as damaged; a result whose record would be over
    /// it fails as bad-output (it could not be read back). SIZE is bytes, or a number with K,
    /// M or G (binary: 1K = 1024).
    #[arg(hide_short_help = true, long, default_value = DEFAULT_MAX_LINE, value_parser = parse_size, value_name = "SIZE")]
    max_line_bytes: usize,

    /// Run only shard I of N: the items whose key hashes to I modulo N (0 <= I < N).
    ///
    /// The hash is XXH3-64 of the key's compact JSON text, the same on every machine and
    /// version, so N runs with 0/N .. N-1/N split any input into disjoint parts. Other items
    /// are skipped and counted as "other shards". Example: `--shard $SLURM_ARRAY_TASK_ID/4`.
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    shard: Option<Shard>,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Command")]
struct CommandArgs {
    /// Children running at once [default: the number of CPUs].
    #[arg(short, long, value_name = "N")]
    jobs: Option<NonZeroUsize>,

    /// Write the item's input line to the child's stdin (otherwise stdin is /dev/null).
    #[arg(long)]
    stdin: bool,

    /// Run the command through `sh -c` even when given as several words.
    #[arg(hide_short_help = true, long)]
    shell: bool,

    /// Start COMMAND once per slot as a long-lived worker: each item goes to a free worker as
    /// one line on its stdin (the JSON line, or a JSON string for lines input), and the worker
    /// answers with one JSON line on stdout.
    ///
    /// A worker that exits, times out or answers with something that is not JSON fails its item
    /// and is restarted. Only the `<%>` placeholder may be used; PARARUN_SLOT is set.
    #[arg(long)]
    persistent: bool,

    /// Start at most N items per second, minute or hour (`10/s`, `100/m`, `5000/h`), evenly
    /// spaced; retries count too.
    #[arg(long, value_name = "N/UNIT", value_parser = parse_rate)]
    rate: Option<Duration>,

    /// With --rate: how many items may start back to back after a pause.
    #[arg(hide_short_help = true, long, value_name = "B", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..), requires = "rate")]
    burst: u32,

    /// Print each command that would run (after skipping cached keys), shell-quoted, one per
    /// line; run nothing and write nothing.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Results and cache")]
struct ResultArgs {
    /// The JSONL cache: keys found in it are skipped; each new result is appended as it arrives.
    ///
    /// Created if missing. A torn or unreadable line is skipped with a warning, never fatal.
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    cache: Option<PathBuf>,

    /// What a child's stdout is: a JSON result, or text stored as a string.
    ///
    /// Either way it is kept exactly: output that is not valid UTF-8 (as JSON must be) fails
    /// the item as bad-output instead of being altered.
    #[arg(long, value_enum, default_value_t = CaptureArg::Json, value_name = "MODE")]
    capture: CaptureArg,

    /// The most a child may print on stdout (a persistent worker: per answer line); past it
    /// the child is killed and the item fails as bad-output.
    ///
    /// SIZE is bytes, or a number with K, M or G (powers of 1024), e.g. `256M`.
    #[arg(hide_short_help = true, long, default_value = "64M", value_parser = parse_size, value_name = "SIZE")]
    max_output_bytes: usize,

    /// How hard each cache append is pushed to disk (against power loss, not crashes: a crash
    /// of pararun loses no finished result in any mode).
    #[arg(hide_short_help = true, long, value_enum, default_value_t = FsyncArg::Batch, value_name = "WHEN")]
    fsync: FsyncArg,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Faults")]
struct FaultArgs {
    /// Retry a failed item up to N more times; bad input is never retried.
    #[arg(long, default_value_t = 0, value_name = "N")]
    retries: u32,

    /// Wait before the first retry, doubling (with jitter) on each further one, capped at 1m.
    ///
    /// DUR is seconds (`2.5`) or a number with `ms`, `s`, `m` or `h`.
    #[arg(hide_short_help = true, long, default_value = "1s", value_parser = parse_duration, value_name = "DUR")]
    retry_delay: Duration,

    /// Per attempt: on expiry the child's process group gets SIGTERM, then SIGKILL after
    /// --kill-after.
    #[arg(long, value_parser = parse_duration, value_name = "DUR")]
    timeout: Option<Duration>,

    /// Grace between SIGTERM and SIGKILL, for timeouts and for shutdown.
    #[arg(hide_short_help = true, long, default_value = "5s", value_parser = parse_duration, value_name = "DUR")]
    kill_after: Duration,

    /// Append one JSON line per failed item to FILE (key, line, item, reason, stderr tail...).
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    failures: Option<PathBuf>,

    /// After N failed items start nothing new, let running ones finish, and exit 1.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    max_failures: Option<u64>,

    /// Stop at the first failed item (the same as --max-failures 1).
    #[arg(hide_short_help = true, long)]
    halt_on_error: bool,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Output")]
struct OutputArgs {
    /// Print no result records on stdout and no summary or progress on stderr.
    #[arg(short, long)]
    quiet: bool,

    /// Print records on stdout in input order (the cache still gets them as they finish).
    ///
    /// At most 4 x --jobs results wait behind a slow item; past that, new items wait.
    #[arg(short = 'k', long)]
    keep_order: bool,

    /// Show the progress bar even when stderr is not a terminal.
    #[arg(hide_short_help = true, long, overrides_with = "no_progress")]
    progress: bool,

    /// Show no progress bar and no progress lines.
    #[arg(hide_short_help = true, long, overrides_with = "progress")]
    no_progress: bool,

    /// The number of items, for the bar's ETA [default: counted in the background when the
    /// input is a regular file].
    #[arg(hide_short_help = true, long, value_name = "N")]
    total: Option<u64>,

    /// When stderr is not a terminal, print a plain progress line this often.
    #[arg(hide_short_help = true, long, default_value = "30s", value_parser = parse_duration, value_name = "DUR")]
    log_interval: Duration,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FormatArg {
    /// jsonl when the first non-blank line starts with `{`, else lines.
    Auto,
    /// One JSON value per line.
    Jsonl,
    /// Each line is an item, keyed by itself.
    Lines,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum CaptureArg {
    /// The child's stdout is one JSON document, or its last JSON line.
    Json,
    /// The child's stdout, as a string, is the result.
    Text,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FsyncArg {
    /// fdatasync after every record.
    Always,
    /// fdatasync at most once a second, and at exit.
    Batch,
    /// Leave it to the operating system.
    Never,
}

impl Cli {
    /// Checks the flags that depend on each other and senses the environment (CPU count)
    /// once, producing the engine's [`Config`].
    pub fn into_config(self) -> Result<Config> {
        let jobs = match self.command.jobs {
            Some(n) => n.get(),
            None => std::thread::available_parallelism().map_or(1, NonZeroUsize::get),
        };
        if self.input.key_field.is_empty() {
            bail!("--key-field must not be empty");
        }
        let input = match self.input.input {
            None => InputSource::Stdin,
            Some(p) if p.as_os_str() == "-" => InputSource::Stdin,
            Some(p) => InputSource::File(p),
        };
        if self.faults.timeout.is_some_and(|t| t.is_zero()) {
            bail!("--timeout 0 would fail every item at once; give a positive duration, or leave --timeout out for none");
        }
        if self.command.persistent && self.command.stdin {
            bail!("--stdin and --persistent do not go together: a persistent worker always gets its items on stdin");
        }
        let max_failures = if self.faults.halt_on_error {
            Some(1)
        } else {
            self.faults.max_failures
        };
        Ok(Config {
            jobs,
            input,
            format: match self.input.format {
                FormatArg::Auto => Format::Auto,
                FormatArg::Jsonl => Format::Jsonl,
                FormatArg::Lines => Format::Lines,
            },
            key_field: self.input.key_field,
            max_line_bytes: self.input.max_line_bytes,
            command: self.cmd,
            stdin: self.command.stdin,
            shell: self.command.shell,
            dry_run: self.command.dry_run,
            cache: self.results.cache,
            capture: match self.results.capture {
                CaptureArg::Json => Capture::Json,
                CaptureArg::Text => Capture::Text,
            },
            max_output: self.results.max_output_bytes as u64,
            fsync: match self.results.fsync {
                FsyncArg::Always => Fsync::Always,
                FsyncArg::Batch => Fsync::Batch,
                FsyncArg::Never => Fsync::Never,
            },
            retries: self.faults.retries,
            retry_delay: self.faults.retry_delay,
            timeout: self.faults.timeout,
            kill_after: self.faults.kill_after,
            failures: self.faults.failures,
            max_failures,
            quiet: self.output.quiet,
            display: if self.output.quiet || self.output.no_progress {
                Display::Off
            } else if self.output.progress || std::io::stderr().is_terminal() {
                Display::Bar {
                    color: std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
                    forced: !std::io::stderr().is_terminal(),
                }
            } else if self.output.log_interval.is_zero() {
                Display::Off
            } else {
                Display::Log(self.output.log_interval)
            },
            total: self.output.total,
            keep_order: self.output.keep_order,
            persistent: self.command.persistent,
            shard: self.input.shard,
            rate: self.command.rate.map(|interval| Rate {
                interval,
                burst: self.command.burst,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn zero_jobs_is_rejected() {
        let err = Cli::try_parse_from(["pararun", "-j", "0", "--", "true"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn child_flags_are_not_ours() {
        let cli =
            Cli::try_parse_from(["pararun", "-j", "2", "--", "grep", "-q", "--jobs"]).unwrap();
        assert_eq!(cli.cmd, ["grep", "-q", "--jobs"]);
    }

    #[test]
    fn attached_short_values_and_flags_without_a_separator() {
        // Regression: `-j1` was taken for the command's first word.
        let cli = Cli::try_parse_from(["pararun", "-j1", "-qk", "grep", "-c", "x"]).unwrap();
        assert_eq!(cli.command.jobs.map(NonZeroUsize::get), Some(1));
        assert!(cli.output.quiet && cli.output.keep_order);
        assert_eq!(cli.cmd, ["grep", "-c", "x"]);
    }

    #[test]
    fn halt_on_error_means_one_failure() {
        let cli = Cli::try_parse_from(["pararun", "--halt-on-error", "--", "true"]).unwrap();
        assert_eq!(cli.into_config().unwrap().max_failures, Some(1));
    }
}
