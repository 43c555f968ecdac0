//! The engine's configuration: plain paths, numbers and enums, built once from the command line
//! (or by a Rust caller) and passed by reference. Nothing here reads the environment.

use std::path::PathBuf;
use std::time::Duration;

/// Everything a run needs to know, decided before the first item is read, in the groups
/// `--help` shows the flags in; a part of the engine reads the group it needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where items come from and how they are read and keyed (`--help`'s Input).
    pub items: ItemsConfig,
    /// What runs for each item, and how many at once (`--help`'s Command).
    pub launch: LaunchConfig,
    /// How a result is taken and kept (`--help`'s Results and cache).
    pub results: ResultsConfig,
    /// What failures cost (`--help`'s Faults).
    pub faults: FaultsConfig,
    /// What the user is shown (`--help`'s Output).
    pub output: OutputConfig,
}

/// Where items come from and how they are read and keyed (`--help`'s Input).
#[derive(Debug, Clone)]
pub struct ItemsConfig {
    /// Where items come from.
    pub input: InputSource,
    /// What pararun's own stdin was at start, sensed once at the edge; only for warnings.
    pub stdin_kind: StdinKind,
    /// How input lines are read.
    pub format: Format,
    /// The top-level field that keys JSON items and cache records.
    pub key_field: String,
    /// The longest line read from the input or the cache, and the longest record written.
    pub max_line_bytes: usize,
    /// Run only this shard of the keys.
    pub shard: Option<Shard>,
}

/// What runs for each item, and how many at once (`--help`'s Command).
#[derive(Debug, Clone)]
pub struct LaunchConfig {
    /// Children running at once (at least 1).
    pub jobs: usize,
    /// The command template: one word means a shell script, several a direct argv.
    pub command: Vec<String>,
    /// Feed the item's line to the child's stdin.
    pub stdin: bool,
    /// Force `sh -c` even for several words.
    pub shell: bool,
    /// Print the commands instead of running them.
    pub dry_run: bool,
    /// Run the command once per slot as a long-lived worker fed one item per stdin line.
    pub persistent: bool,
    /// With `persistent`: how many items each worker may hold at once (sent, not yet answered).
    pub pipeline: usize,
    /// With `persistent`: whether answers come in order or carry the id of their request.
    pub protocol: Protocol,
    /// Start at most this many items per unit of time.
    pub rate: Option<Rate>,
    /// `-j` is a ceiling: the number running at once starts at 1, is cut on a throttle and grows back
    /// after successes (AIMD).
    pub adaptive: bool,
}

/// How a result is taken and kept (`--help`'s Results and cache).
#[derive(Debug, Clone)]
pub struct ResultsConfig {
    /// The JSONL cache, if any.
    pub cache: Option<PathBuf>,
    /// How a child's stdout becomes its result.
    pub capture: Capture,
    /// The most stdout kept from one child (or one worker answer); more fails the item.
    pub max_output: u64,
    /// Durability of cache appends.
    pub fsync: Fsync,
    /// How long to wait for another run to release the cache's lock.
    pub lock_wait: Duration,
    /// The exit status when another run holds the cache's lock after `lock_wait`.
    pub conflict_exit_code: u8,
}

/// What failures cost (`--help`'s Faults).
#[derive(Debug, Clone)]
pub struct FaultsConfig {
    /// Extra attempts for a failed item.
    pub retries: u32,
    /// Delay before the first retry (doubled for each further one).
    pub retry_delay: Duration,
    /// Per-attempt time limit.
    pub timeout: Option<Duration>,
    /// Grace between SIGTERM and SIGKILL.
    pub kill_after: Duration,
    /// Where failed items are appended as JSON lines.
    pub failures: Option<PathBuf>,
    /// Stop starting items after this many failures.
    pub max_failures: Option<u64>,
    /// Skip an item once the `failures` file holds this many failed attempts of it.
    pub give_up_after: Option<u32>,
    /// The exit code by which a per-item child says the service throttled it (75,
    /// `EX_TEMPFAIL`): the item goes back to the queue without using up an attempt.
    pub throttle_exit_code: i32,
    /// How many throttles one item may take before it fails as `throttled`.
    pub max_throttled: u32,
}

/// What the user is shown (`--help`'s Output).
#[derive(Debug, Clone)]
pub struct OutputConfig {
    /// No records on stdout, no summary.
    pub quiet: bool,
    /// Print each record on stdout (unless `quiet`); decided at the edge: not when stdout is
    /// a terminal and the cache keeps the records, unless asked.
    pub records: bool,
    /// stdout was closed when pararun started (`>&-`; Rust's runtime put `/dev/null` there):
    /// every write to it fails with EBADF, as it would have on the closed descriptor.
    pub stdout_closed: bool,
    /// How progress is shown on stderr (decided at the edge from the terminal and flags).
    pub display: Display,
    /// Start each line pararun writes to stderr with the local time (decided at the edge:
    /// stderr is not a terminal, or `--timestamps`).
    pub timestamps: bool,
    /// The number of items, when the user knows it (`--total`).
    pub total: Option<u64>,
    /// Print records in input order rather than completion order.
    pub keep_order: bool,
    /// Prefix each line of a child's stderr with its item's key (`--tag`).
    pub tag: bool,
}

impl Config {
    /// How many items may run at once: one per slot, or with `--persistent` as many as the
    /// workers' pipelines hold.
    pub fn seats(&self) -> usize {
        let launch = &self.launch;
        match launch.persistent {
            true => launch.jobs * launch.pipeline,
            false => launch.jobs,
        }
    }

    /// A configuration with the command line's defaults for `command` (the words after `--`):
    /// one child at a time, items from stdin, `id` keys, no cache, no progress display.
    pub fn new(command: Vec<String>) -> Config {
        Config {
            items: ItemsConfig {
                input: InputSource::Stdin,
                stdin_kind: StdinKind::Other,
                format: Format::Auto,
                key_field: "id".into(),
                max_line_bytes: 64 << 20,
                shard: None,
            },
            launch: LaunchConfig {
                jobs: 1,
                command,
                stdin: false,
                shell: false,
                dry_run: false,
                persistent: false,
                pipeline: DEFAULT_PIPELINE,
                protocol: Protocol::Ordered,
                rate: None,
                adaptive: false,
            },
            results: ResultsConfig {
                cache: None,
                capture: Capture::Json,
                max_output: 64 << 20,
                fsync: Fsync::Batch,
                lock_wait: Duration::ZERO,
                conflict_exit_code: 2,
            },
            faults: FaultsConfig {
                retries: 0,
                retry_delay: Duration::from_secs(1),
                timeout: None,
                kill_after: Duration::from_secs(5),
                failures: None,
                max_failures: None,
                give_up_after: None,
                throttle_exit_code: 75,
                max_throttled: 100,
            },
            output: OutputConfig {
                quiet: false,
                records: true,
                stdout_closed: false,
                display: Display::Off,
                timestamps: false,
                total: None,
                keep_order: false,
                tag: false,
            },
        }
    }
}

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Display {
    /// A live bar on stderr; `color` unless `NO_COLOR` is set.
    Bar {
        /// Whether the bar may use colour.
        color: bool,
        /// Whether stderr is not a terminal (`--progress` asked for the bar all the same).
        forced: bool,
    },
    /// A plain line on stderr at this interval.
    Log(Duration),
    /// Nothing but the summary.
    Off,
}

/// `--shard I/N`: this run owns the keys whose hash is I modulo N.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This shard, `0 <= index < count`.
    pub index: u64,
    /// How many shards there are.
    pub count: u64,
}

/// Parses `I/N` with `0 <= I < N`.
pub fn parse_shard(text: &str) -> Result<Shard, String> {
    let bad = || format!("{text:?} is not a shard: use I/N with 0 <= I < N, e.g. 0/4");
    let (i, n) = text.split_once('/').ok_or_else(bad)?;
    let index: u64 = i.trim().parse().map_err(|_| bad())?;
    let count: u64 = n.trim().parse().map_err(|_| bad())?;
    if count == 0 || index >= count {
        return Err(bad());
    }
    Ok(Shard { index, count })
}

/// `--rate N/UNIT`: the spacing between starts, and how many may start back to back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Time between two starts at the steady rate.
    pub interval: Duration,
    /// Starts allowed at once after an idle spell (`--burst`, at least 1).
    pub burst: u32,
}

/// Parses `N/s`, `N/m` or `N/h` (N may be fractional: `0.5/s`) into a start interval.
pub fn parse_rate(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a rate: use N/s, N/m or N/h, e.g. 10/s");
    let (n, unit) = text.split_once('/').ok_or_else(bad)?;
    let n: f64 = n.trim().parse().map_err(|_| bad())?;
    let unit = match unit.trim() {
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(bad()),
    };
    if !(n.is_finite() && n > 0.0) {
        return Err(bad());
    }
    Duration::try_from_secs_f64(unit / n).map_err(|_| bad())
}

/// What pararun's stdin was at start, as far as warnings care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StdinKind {
    /// A pipe, `/dev/null`, a file opened for reading: nothing to say.
    Other,
    /// A terminal: items would be typed by hand, and a forgotten `-i` looks like a hang.
    Terminal,
    /// A regular file opened for reading and writing, the way the shell's `<>` redirection
    /// opens one (with its path, when known): an unquoted `<>` in the command line was
    /// probably taken for that redirection.
    ReadWrite(Option<PathBuf>),
}

/// Where items are read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputSource {
    /// Standard input.
    Stdin,
    /// A file, read lazily.
    File(PathBuf),
}

impl std::fmt::Display for InputSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InputSource::Stdin => f.write_str("<stdin>"),
            InputSource::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// How input lines are interpreted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Decide from the first non-blank line.
    Auto,
    /// One JSON value per line.
    Jsonl,
    /// Each line is an item keyed by itself.
    Lines,
}

/// How a child's stdout becomes its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capture {
    /// One JSON document, or the last JSON line.
    Json,
    /// The text itself, as a JSON string.
    Text,
}

/// When cache appends are fdatasync'ed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    /// After every record.
    Always,
    /// At most once a second, and at exit.
    Batch,
    /// Never: the OS decides.
    Never,
}

/// How a persistent worker's answers are matched to its items (`--protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// One answer line per request line, in order (any line-by-line worker).
    Ordered,
    /// Requests and answers carry a `pararun_id`, so answers may come in any order (an async
    /// worker holding many items at once).
    Concurrent,
}

/// Items in flight per persistent worker unless `--pipeline` says otherwise: enough that a
/// worker always has the next item waiting when it finishes one (the round trip, not the item,
/// was the cost of trivial items), and that a refill (half the window) is one write worth
/// waking for; few enough that a dying worker sends back little work. On 100k trivial Python
/// items at -j 2, 128 took a quarter less CPU than 32 and a third of the context switches.
/// An ordered worker whose items are slow gets fewer (`runner/seats.rs`).
pub const DEFAULT_PIPELINE: usize = 128;

/// The default `--max-line-bytes`: far above any sane item, far below the machine's memory.
pub const DEFAULT_MAX_LINE: &str = "64M";

/// Parses a size in bytes: a whole number with an optional binary unit, `K`, `M` or `G` (also
/// written `KiB`, `MiB`, `GiB`, or `KB`...; any case), e.g. `512K`, `64M`, `1G`. At least 1.
pub fn parse_size(text: &str) -> Result<usize, String> {
    let bad = || format!("{text:?} is not a size: use a number of bytes with K, M or G, e.g. 64M");
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return Err(bad()),
    };
    let bytes = number
        .checked_mul(1 << shift)
        .and_then(|b| usize::try_from(b).ok())
        .ok_or_else(|| format!("{text:?} is too large a size for this machine"))?;
    if bytes == 0 {
        return Err(format!("{text:?}: the size must be at least 1 byte"));
    }
    Ok(bytes)
}

/// Parses a duration: a number of seconds (`2.5`) or a number with `ms`, `s`, `m` or `h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration: use e.g. 2.5, 500ms, 30s, 5m or 1h"))?;
    let scale = match unit.trim() {
        "" | "s" => 1.0,
        "ms" => 0.001,
        "m" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?}: use ms, s, m or h"
            ))
        }
    };
    // Past a century a duration only overflows the clock (a deadline of now + it).
    const CENTURY: f64 = 100.0 * 365.25 * 86_400.0;
    if value * scale > CENTURY {
        return Err(format!(
            "{text:?} is too long a duration: at most 100 years"
        ));
    }
    Duration::try_from_secs_f64(value * scale).map_err(|e| format!("{text:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2.5"), Ok(Duration::from_millis(2500)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn shards() {
        assert_eq!(parse_shard("0/4"), Ok(Shard { index: 0, count: 4 }));
        assert_eq!(parse_shard("3/4"), Ok(Shard { index: 3, count: 4 }));
        for bad in ["4/4", "a/b", "1", "-1/4", "0/0", "1/", "/2"] {
            assert!(parse_shard(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("10/s"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_rate("30/m"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_rate("0.5/s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_rate("3600/h"), Ok(Duration::from_secs(1)));
        for bad in ["10", "10/d", "0/s", "-1/s", "x/s", "inf/s"] {
            assert!(parse_rate(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size(DEFAULT_MAX_LINE), Ok(64 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("2MiB"), Ok(2 << 20));
        assert_eq!(parse_size("3 mb"), Ok(3 << 20));
        assert_eq!(parse_size("1000"), Ok(1000));
        for bad in [
            "",
            "0",
            "0M",
            "M",
            "1.5M",
            "-1M",
            "1T",
            "1e6",
            "99999999999999999999G",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn bad_durations() {
        for bad in ["", "abc", "5d", "-1s", "1.2.3", "ms"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
