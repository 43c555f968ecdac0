//! The subcommands that read a job's files: `status`, `failures`, `merge`, `check`. Each is
//! turned into the plain options of [`crate::inspect`].

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueHint};

use super::args::FormatArg;
use crate::config::{parse_size, DEFAULT_MAX_LINE};
use crate::inspect::{CheckOptions, FailuresOptions, MergeOptions, StatusOptions};

/// A subcommand. A program of the same name runs after `--` (`pararun -- status`).
#[derive(Debug, Subcommand)]
pub(super) enum Sub {
    /// How far a job is: done, failed, given up, remaining, in flight, live or ended.
    ///
    /// Reads the caches (one row each, and a total), the failures files their runs name (or
    /// --failures), and the input (-i) or its size (--total) for what remains. For a run going
    /// on now, in another terminal or on another node, it shows its pid, host, start, -j, rate
    /// over the last minute and ETA, from the state file the run keeps beside its cache
    /// (CACHE.state). A run is going on when it holds the cache's lock.
    ///
    /// Exit status: 0 when the job is complete (nothing remaining, nothing failed), 1 when it
    /// is not, 2 on an error, so `pararun status 'out.*.jsonl' -i items.jsonl && next-step`
    /// works in a Slurm afterany job or a cron line.
    Status(StatusArgs),
    /// The items failing now: their latest attempt failed and they have no record since.
    ///
    /// `--items` prints just their input lines, to pipe back into a run that retries exactly
    /// those: `pararun failures --items --failures f.jsonl c.jsonl | pararun --cache c.jsonl
    /// -- ./work {}`. Exit status: 0 when nothing fails, 1 when something does.
    Failures(FailuresArgs),
    /// Merges caches into one (OUT): one record per key, whole records only.
    ///
    /// Torn and damaged lines are skipped and counted. Two records of one key with different
    /// content are a conflict, reported by key; the first is kept (--prefer last keeps the
    /// last). OUT is written beside itself and renamed into place, so a crash never leaves half
    /// of it. Exit status: 0, or 1 when there were conflicts or (-i) input keys in no cache.
    Merge(MergeArgs),
    /// What a cache holds that a run would skip or warn about.
    ///
    /// Torn or garbage lines (with their line numbers), records without the key field, and
    /// duplicate keys. --repair writes a clean copy beside the cache and renames it into place,
    /// keeping the original as CACHE.bak; it refuses while a run holds the cache. Exit status:
    /// 0 when clean (or repaired), 1 when not.
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub(super) struct StatusArgs {
    /// The caches: one per shard. A quoted glob (`'out.*.jsonl'`) is expanded by pararun.
    #[arg(required = true, value_name = "CACHE", value_hint = ValueHint::FilePath)]
    caches: Vec<PathBuf>,
    /// A failures file, besides those the runs' state files name (a glob is expanded; give
    /// the flag once per file).
    #[arg(long, value_name = "FILE", action = clap::ArgAction::Append, value_hint = ValueHint::FilePath)]
    failures: Vec<PathBuf>,
    /// The job's input, to count what remains [default: the runs' own, when it is a file].
    #[arg(short, long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    input: Option<PathBuf>,
    /// How to read the input [default: as the runs did].
    #[arg(long, value_enum, value_name = "FORMAT")]
    format: Option<FormatArg>,
    /// The input's item count, when the input is not at hand.
    #[arg(long, value_name = "N", conflicts_with = "input")]
    total: Option<u64>,
    #[command(flatten)]
    common: Common,
    /// Items with N failed attempts count as given up [default: the runs' own].
    #[arg(long, value_name = "N")]
    give_up_after: Option<u32>,
    /// Print one JSON object: done, failed, given_up, remaining, in_flight, running,
    /// rate_per_s, eta_s, reasons, and shards (one object per cache with the same fields).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(super) struct FailuresArgs {
    /// The caches: an item with a record in one of them is not failing.
    #[arg(value_name = "CACHE", value_hint = ValueHint::FilePath)]
    caches: Vec<PathBuf>,
    /// A failures file [default: those the caches' runs name]; give the flag once per file.
    #[arg(long, value_name = "FILE", action = clap::ArgAction::Append, value_hint = ValueHint::FilePath)]
    failures: Vec<PathBuf>,
    /// Print only the failing items' input lines, one per line.
    #[arg(long, conflicts_with = "json")]
    items: bool,
    /// Print one JSON object per failing item.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
pub(super) struct MergeArgs {
    /// The caches to merge (globs expanded).
    #[arg(required = true, value_name = "CACHE", value_hint = ValueHint::FilePath)]
    caches: Vec<PathBuf>,
    /// The merged cache.
    #[arg(short, long, value_name = "OUT", value_hint = ValueHint::FilePath)]
    output: PathBuf,
    /// Which record of a conflicting key to keep.
    #[arg(long, value_name = "WHICH", default_value = "first", value_parser = ["first", "last"])]
    prefer: String,
    /// Report the keys of this input that are in no cache.
    #[arg(short, long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    input: Option<PathBuf>,
    /// How to read the input [default: as the runs did].
    #[arg(long, value_enum, value_name = "FORMAT")]
    format: Option<FormatArg>,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
pub(super) struct CheckArgs {
    /// The cache.
    #[arg(value_name = "CACHE", value_hint = ValueHint::FilePath)]
    cache: PathBuf,
    /// Write a clean copy and rename it into place, keeping the original as CACHE.bak.
    #[arg(long)]
    repair: bool,
    #[command(flatten)]
    common: Common,
}

/// The flags every subcommand shares with a run.
#[derive(Debug, Args)]
struct Common {
    /// The field that keys items and records [default: the run's own, else `id`].
    #[arg(long, value_name = "NAME")]
    key_field: Option<String>,
    /// The longest line read.
    #[arg(long, default_value = DEFAULT_MAX_LINE, value_parser = parse_size, value_name = "SIZE")]
    max_line_bytes: usize,
}

/// What a subcommand asks of [`crate::inspect`].
#[derive(Debug)]
pub enum Inspect {
    /// `pararun status`.
    Status(StatusOptions),
    /// `pararun failures`.
    Failures(FailuresOptions),
    /// `pararun merge`.
    Merge(MergeOptions),
    /// `pararun check`.
    Check(CheckOptions),
}

impl Sub {
    pub(super) fn into_inspect(self) -> Inspect {
        match self {
            Sub::Status(a) => Inspect::Status(StatusOptions {
                caches: a.caches,
                failures: a.failures,
                input: a.input,
                total: a.total,
                key_field: a.common.key_field,
                give_up_after: a.give_up_after,
                json: a.json,
                format: a.format.map(Into::into),
                max_line: a.common.max_line_bytes,
            }),
            Sub::Failures(a) => Inspect::Failures(FailuresOptions {
                caches: a.caches,
                failures: a.failures,
                items: a.items,
                json: a.json,
                key_field: a.common.key_field,
                max_line: a.common.max_line_bytes,
            }),
            Sub::Merge(a) => Inspect::Merge(MergeOptions {
                key_field: a.common.key_field,
                format: a.format.map(Into::into),
                caches: a.caches,
                output: a.output,
                prefer_last: a.prefer == "last",
                input: a.input,
                max_line: a.common.max_line_bytes,
            }),
            Sub::Check(a) => Inspect::Check(CheckOptions {
                key_field: a.common.key_field,
                cache: a.cache,
                repair: a.repair,
                max_line: a.common.max_line_bytes,
            }),
        }
    }
}
