//! The command-line definition: the only module that knows about clap.
//!
//! Doc comments here are the `--help` text, the man page and the completions, so they are
//! written for users. `Cli::into_config` turns the parsed flags into the plain [`Config`] the
//! engine takes; checks that span several flags live there and name the flags they involve.

mod args;
mod manual;
mod sense;
mod shard;
mod subcommands;

use std::ffi::OsString;
use std::io::IsTerminal;
use std::num::NonZeroUsize;

use anyhow::{bail, Result};
use clap::{CommandFactory, Parser, ValueHint};

use crate::config::{
    Config, FaultsConfig, InputSource, ItemsConfig, LaunchConfig, OutputConfig, Rate, ResultsConfig,
};
pub use manual::{EXAMPLES, EXIT_STATUS};
pub use sense::stdout_was_closed;

use args::{CommandArgs, FaultArgs, InputArgs, OutputArgs, ResultArgs};
pub use subcommands::Inspect;
use subcommands::Sub;

/// Names kept for pararun's own subcommands. As a command's first word they must come after
/// `--` (`pararun -- stats`), so that adding a subcommand later never changes what an
/// existing command line does.
pub const RESERVED: [&str; 9] = [
    "cache",
    "check",
    "completions",
    "failures",
    "help",
    "man",
    "merge",
    "stats",
    "status",
];

/// What a command line asks for. Plain data: the engine gets it, never clap's types. A
/// subcommand becomes a variant here (see `RESERVED`).
#[derive(Debug)]
pub enum Invocation {
    /// `pararun [OPTIONS] -- COMMAND...`: run a job.
    Run(Box<Config>),
    /// `pararun status|failures|merge|check ...`: look at a job's files.
    Inspect(Inspect),
}

impl Invocation {
    /// Whether error lines get a timestamp (stderr is a log, or --timestamps).
    pub fn timestamps(&self) -> bool {
        match self {
            Invocation::Run(config) => config.output.timestamps,
            Invocation::Inspect(_) => false,
        }
    }
}

/// Parses the process's own arguments. A bad flag prints clap's message and exits 2 here; a
/// reserved word used as the command without `--`, or flags that do not go together, are an
/// `Err`.
pub fn parse() -> Result<Invocation> {
    let raw: Vec<OsString> = std::env::args_os().collect();
    if asks_for_full_help(&raw) {
        print!("{}", full_help());
        std::process::exit(0);
    }
    let mut cli = Cli::parse_from(&raw);
    if let Some(sub) = cli.sub.take() {
        return Ok(Invocation::Inspect(sub.into_inspect()));
    }
    check_reserved(&raw, &cli.cmd)?;
    Ok(Invocation::Run(Box::new(cli.into_config()?)))
}

/// Whether the command line asks for the run's `--help` (not a subcommand's, and not a
/// `--help` that belongs to the command after `--`).
fn asks_for_full_help(raw: &[OsString]) -> bool {
    let before_command = raw.iter().skip(1).take_while(|a| *a != "--");
    let mut words = before_command.clone();
    let subcommand = words.next().is_some_and(|first| {
        Cli::command()
            .get_subcommands()
            .any(|s| first == s.get_name())
            || first == "help"
    });
    !subcommand && before_command.into_iter().any(|a| a == "--help")
}

/// `--help`: every option with the first paragraph of its text (the rest is in the man page
/// and `docs/`), then the examples. `-h` is the same without the less used options and the
/// examples.
pub fn full_help() -> String {
    let mut cmd = Cli::command()
        .mut_args(|arg| arg.hide_short_help(false))
        .after_help(manual::examples_help());
    cmd.render_help().to_string()
}

/// Refuses a reserved name as the command's first word unless `--` stands right before it.
/// The command is the last of the arguments (it takes everything after its first word).
fn check_reserved(raw: &[OsString], cmd: &[String]) -> Result<()> {
    let Some(first) = cmd.first().filter(|w| RESERVED.contains(&w.as_str())) else {
        return Ok(());
    };
    let before = raw.len().checked_sub(cmd.len() + 1).map(|i| &raw[i]);
    if before.is_some_and(|arg| arg == "--") {
        return Ok(());
    }
    bail!(
        "{first:?} is a name kept for a future pararun subcommand (there is none yet; see \
         pararun help); to run a program named {first}, put it after --: pararun [OPTIONS] -- \
         {first} ..."
    )
}

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
    after_long_help = manual::examples_help(),
    after_help = "Use --help for the details of each option and examples.",
    args_override_self = true,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    subcommand_value_name = "SUBCOMMAND",
    subcommand_help_heading = "Subcommands (a program of the same name runs after --)"
)]
pub struct Cli {
    #[command(subcommand)]
    sub: Option<Sub>,

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
    /// Placeholders: `{}` or `<>` the item (the line as read), `{#}` or `<#>` the item's input
    /// line number, `{%}` or `<%>` the slot (1..N) running it, `<NAME>` a top-level field of a
    /// JSON item. Quote the `<…>` ones (`'<>'`, `'<NAME>'`): unquoted, the shell reads `<` and `>`
    /// as redirections. `{}` is left as written beside a `<…>` placeholder (for find and xargs)
    /// and in a direct-mode argument holding a space (`sh -c 'echo {}'`), and `${…}` is always
    /// the shell's. Several words: the program is run directly and each placeholder is replaced
    /// inside its own argument. One word (or --shell): run with `sh -c`; each value is passed to
    /// the script as an argument and reaches the child whole wherever its placeholder stands
    /// (unquoted, in "…", '…' or $'…', in a here-document), never run. Inside backticks or
    /// arithmetic no value is safe, so such a command is refused (exit 2) with what to write
    /// instead. With no placeholder and no --stdin the item is appended as the last argument,
    /// as xargs does. A program that reads its argument as code (`python3 -c`, `awk`, `jq`)
    /// runs a value put into that code: pass values to it as arguments or on stdin. The names
    /// cache, check, completions, failures, help, man, merge, stats and status are kept for
    /// subcommands: as the command's first word they must come after `--`.
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

impl Cli {
    /// Checks the flags that depend on each other and senses the environment (CPU count,
    /// what stdin is) once, producing the engine's [`Config`].
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
        check_give_up(&self.faults)?;
        let max_failures = if self.faults.halt_on_error {
            Some(1)
        } else {
            self.faults.max_failures
        };
        let stdout = sense::stdout();
        let records = print_records(&self.output, self.results.cache.is_some(), stdout);
        let shard = (self.input.shard)
            .map(|arg| shard::resolve(arg, |name| std::env::var(name).ok()))
            .transpose()?;
        Ok(Config {
            items: ItemsConfig {
                input,
                stdin_kind: sense::stdin_kind(),
                format: self.input.format.into(),
                key_field: self.input.key_field,
                max_line_bytes: self.input.max_line_bytes,
                shard,
            },
            launch: LaunchConfig {
                jobs,
                command: self.cmd,
                stdin: self.command.stdin,
                shell: self.command.shell,
                dry_run: self.command.dry_run,
                persistent: self.command.persistent,
                pipeline: self.command.pipeline,
                protocol: self.command.protocol.into(),
                rate: self.command.rate.map(|interval| Rate {
                    interval,
                    burst: self.command.burst,
                }),
                adaptive: self.command.adaptive,
            },
            results: results_config(self.results),
            faults: faults_config(self.faults, max_failures),
            output: OutputConfig {
                quiet: self.output.quiet,
                records,
                stdout_closed: stdout == sense::Stdout::Closed,
                display: self.output.display(),
                timestamps: stamp_lines(&self.output),
                total: self.output.total,
                keep_order: self.output.keep_order,
                tag: self.output.tag,
            },
        })
    }
}

fn results_config(results: ResultArgs) -> ResultsConfig {
    ResultsConfig {
        cache: results.cache,
        capture: results.capture.into(),
        max_output: results.max_output_bytes as u64,
        fsync: results.fsync.into(),
        lock_wait: results.lock_wait,
        conflict_exit_code: results.conflict_exit_code,
    }
}

fn faults_config(faults: FaultArgs, max_failures: Option<u64>) -> FaultsConfig {
    FaultsConfig {
        retries: faults.retries,
        retry_delay: faults.retry_delay,
        timeout: faults.timeout,
        kill_after: faults.kill_after,
        failures: faults.failures,
        max_failures,
        give_up_after: faults.give_up_after,
        throttle_exit_code: faults.throttle_exit_code,
        max_throttled: faults.max_throttled,
    }
}

/// `--give-up-after` counts attempts in the failures file: without one it has no memory.
fn check_give_up(faults: &FaultArgs) -> Result<()> {
    if faults.give_up_after.is_some() && faults.failures.is_none() {
        bail!(
            "--give-up-after needs --failures FILE: failed attempts are counted across runs in \
             that file (e.g. --failures failed.jsonl)"
        );
    }
    Ok(())
}

/// Whether records go to stdout: as asked (`--records`, `--no-records`), else everywhere but
/// on a terminal when the cache keeps them, where they would only bury the summary. Never to
/// `/dev/null`, which throws them away anyway.
fn print_records(output: &OutputArgs, cache: bool, stdout: sense::Stdout) -> bool {
    if stdout == sense::Stdout::Null {
        return false;
    }
    match (output.records, output.no_records) {
        (true, _) => true,
        (_, true) => false,
        _ => !cache || !std::io::stdout().is_terminal(),
    }
}

/// Whether pararun's stderr lines start with the time: as asked, else when stderr is a log.
fn stamp_lines(output: &OutputArgs) -> bool {
    match (output.timestamps, output.no_timestamps) {
        (true, _) => true,
        (_, true) => false,
        _ => stderr_is_a_log(),
    }
}

/// Whether stderr is not a terminal (a file, a pipe: cron, CI), where lines get timestamps
/// unless the flags say otherwise.
pub fn stderr_is_a_log() -> bool {
    !std::io::stderr().is_terminal()
}

/// An error that ends the run before it starts, as the binary prints it: one line, the anyhow
/// chain read left to right, after the local time when `timestamps`, like a run's own lines.
pub fn error_line(err: &anyhow::Error, timestamps: bool) -> String {
    match timestamps {
        true => format!("{} pararun: {err:#}", crate::report::clock::now()),
        false => format!("pararun: {err:#}"),
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
    fn reserved_names_need_a_separator() {
        let raw = |args: &[&str]| -> Vec<OsString> { args.iter().map(OsString::from).collect() };
        let cmd = |args: &[&str]| -> Vec<String> { args.iter().map(|s| s.to_string()).collect() };
        assert!(check_reserved(&raw(&["pararun", "stats", "x"]), &cmd(&["stats", "x"])).is_err());
        assert!(check_reserved(&raw(&["pararun", "-j", "2", "stats"]), &cmd(&["stats"])).is_err());
        assert!(check_reserved(&raw(&["pararun", "--", "stats"]), &cmd(&["stats"])).is_ok());
        assert!(check_reserved(
            &raw(&["pararun", "echo", "stats"]),
            &cmd(&["echo", "stats"])
        )
        .is_ok());
        assert!(check_reserved(&raw(&["pararun", "--", "--"]), &cmd(&["--"])).is_ok());
    }

    #[test]
    fn workers_and_n_workers_are_jobs() {
        for flag in ["--workers", "--n-workers", "--jobs", "-j"] {
            let cli = Cli::try_parse_from(["pararun", flag, "3", "--", "true"]).unwrap();
            assert_eq!(cli.command.jobs.map(NonZeroUsize::get), Some(3), "{flag}");
        }
    }

    #[test]
    fn halt_on_error_means_one_failure() {
        let cli = Cli::try_parse_from(["pararun", "--halt-on-error", "--", "true"]).unwrap();
        assert_eq!(cli.into_config().unwrap().faults.max_failures, Some(1));
    }
}
