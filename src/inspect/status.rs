//! `pararun status`: how far a job is, from its own files, for a run going on now (in another
//! terminal, or on another node) as well as for one that has ended.
//!
//! Counts come from the caches (done), the failures files (failed, given up) and, when given,
//! the input (remaining); the live figures (pid, host, start, rate, `-j`, items in flight)
//! from each cache's state file, and whether a run is going on from its lock alone.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde_json::{json, Value};

use super::failing::{Failing, FailureHistory};
use super::job::{expand, Shard};
use super::keys::{input_keys, Class};
use crate::config::{parse_shard, Format};
use crate::report::{excerpt, human_duration, Exit};

/// What `pararun status` was asked. Plain data: the CLI fills it in.
#[derive(Debug, Clone)]
pub struct StatusOptions {
    /// The caches, one per shard; globs are expanded here.
    pub caches: Vec<PathBuf>,
    /// Failures files, besides those the runs' state files name.
    pub failures: Vec<PathBuf>,
    /// The job's input, to count what remains.
    pub input: Option<PathBuf>,
    /// The input's item count, when the input itself is not at hand.
    pub total: Option<u64>,
    /// `--key-field`; else each run's own, from its state file; else `id`.
    pub key_field: Option<String>,
    /// `--give-up-after`; else each run's own.
    pub give_up_after: Option<u32>,
    /// Print one JSON object instead of a table.
    pub json: bool,
    /// How to read the input; `None`: as the runs did.
    pub format: Option<Format>,
    /// The longest line read.
    pub max_line: usize,
}

/// The figures of one shard, or of the total.
#[derive(Debug, Default, Clone)]
struct Row {
    name: String,
    done: u64,
    failed: u64,
    given_up: u64,
    remaining: Option<u64>,
    in_flight: u64,
    running: bool,
    rate: Option<f64>,
    eta: Option<f64>,
    reasons: Vec<Value>,
    live: Option<String>,
}

/// Runs `pararun status`: prints the table (or the JSON object) and returns 0 when the job is
/// complete (nothing remaining, nothing failed), 1 when it is not.
pub fn status(opts: &StatusOptions) -> Result<Exit> {
    let paths = expand(&opts.caches, "cache")?;
    let shards: Vec<Shard> = paths
        .iter()
        .map(|p| Shard::open(p, opts.key_field.as_deref(), opts.max_line))
        .collect::<Result<_>>()?;
    let history = FailureHistory::read(&failure_files(opts, &shards)?, opts.max_line)?;
    let failing = failing_now(opts, &shards, &history);
    let classes: HashMap<u128, Class> = failing
        .iter()
        .map(|(hash, _, given_up)| {
            (
                *hash,
                if *given_up {
                    Class::GivenUp
                } else {
                    Class::Failed
                },
            )
        })
        .collect();
    // Without -i or --total, the runs' own input, when they all read the same regular file.
    let input = match (&opts.input, opts.total) {
        (Some(input), _) => Some(input.clone()),
        (None, None) => runs_input(&shards),
        (None, Some(_)) => None,
    };
    let counted = match &input {
        Some(input) => Some(input_keys(input, &shards, &classes, opts)?),
        None => None,
    };
    let mut rows: Vec<Row> = shards
        .iter()
        .enumerate()
        .map(|(i, shard)| shard_row(i, shard, &shards, &failing, counted.as_ref()))
        .collect();
    let mut total = total_row(&rows, &failing, counted.as_ref(), opts.total);
    if let [row] = &mut rows[..] {
        // One cache is the whole job: its row is the total.
        (row.done, row.failed, row.given_up) = (total.done, total.failed, total.given_up);
        row.remaining = total.remaining;
    }
    if let (Some(input), None) = (&input, &opts.input) {
        total.live = Some(format!("counted from the runs' input, {}", input.display()));
    }
    for row in rows.iter_mut().chain([&mut total]) {
        row.eta = match (row.remaining, row.rate) {
            (Some(left), Some(rate)) if rate > 0.0 => Some((left as f64 / rate).round()),
            _ => None,
        };
    }
    // Complete only when nothing is known to remain: without an input or a total, how much
    // there was is not known, and exit 0 would be a guess.
    let complete = total.failed == 0 && total.remaining == Some(0);
    if opts.json {
        let mut object = row_json(&total);
        object["shards"] = rows.iter().map(row_json).collect();
        println!("{object}");
    } else {
        print_table(&rows, &total);
    }
    Ok(if complete {
        Exit::Success
    } else {
        Exit::ItemsFailed
    })
}

/// The failures files: those given, and those the runs' state files name, each once.
fn failure_files(opts: &StatusOptions, shards: &[Shard]) -> Result<Vec<PathBuf>> {
    let mut files = expand(&opts.failures, "failures file")?;
    super::job::all_exist(&files, "failures file")?;
    for shard in shards {
        if let Some(path) = shard.live.text("failures") {
            files.push(PathBuf::from(path));
        }
    }
    dedupe(&mut files);
    Ok(files)
}

/// The items failing now (a failure line and no record since), oldest first, each marked
/// given up when it has `--give-up-after` attempts or more.
fn failing_now<'a>(
    opts: &StatusOptions,
    shards: &[Shard],
    history: &'a FailureHistory,
) -> Vec<(u128, &'a Failing, bool)> {
    let limit = opts.give_up_after.or_else(|| {
        let limits = shards.iter().filter_map(|s| s.live.get("give_up_after"));
        limits.filter_map(Value::as_u64).min().map(|n| n as u32)
    });
    let in_cache = |hash: u128| shards.iter().any(|s| s.index.contains_hash(hash));
    // A line the run could not read has no key: it is failing only while it is in the input,
    // which the input's own pass counts (and the failures file cannot tell).
    let mut failing: Vec<(u128, &Failing, bool)> = history
        .by_key
        .iter()
        .filter(|(hash, f)| !f.key.is_null() && !in_cache(**hash))
        .map(|(hash, f)| (*hash, f, limit.is_some_and(|n| f.attempts >= u64::from(n))))
        .collect();
    failing.sort_by(|a, b| a.1.at.cmp(&b.1.at));
    failing
}

/// The input every cache's last run read, when that is one regular file.
fn runs_input(shards: &[Shard]) -> Option<PathBuf> {
    let mut inputs = shards
        .iter()
        .map(|s| s.live.text("job_input").or(s.live.text("input")));
    let first = inputs.next()??;
    let same = inputs.all(|i| i == Some(first));
    let path = PathBuf::from(first);
    (same && first != "-" && path.metadata().is_ok_and(|m| m.is_file())).then_some(path)
}

fn dedupe(paths: &mut Vec<PathBuf>) {
    let mut seen = Vec::new();
    paths.retain(|p| {
        let id = std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
        let new = !seen.contains(&id);
        seen.push(id);
        new
    });
}

/// Whether shard `i` owns a failure: by its failures file when its run named one, else by its
/// `--shard`, else when it is the only cache.
fn owns(i: usize, shards: &[Shard], failing: &Failing, hash_key: &Value) -> bool {
    let shard = &shards[i];
    if let Some(file) = shard.live.text("failures") {
        let same = |a: &Path, b: &Path| {
            std::fs::canonicalize(a)
                .ok()
                .is_some_and(|a| std::fs::canonicalize(b).ok() == Some(a))
        };
        return same(Path::new(file), &failing.at.0);
    }
    if let Some(Ok(spec)) = shard.live.text("shard").map(parse_shard) {
        if hash_key.is_null() {
            return false;
        }
        return crate::base::key::Key::new(hash_key.clone()).shard(spec.count) == spec.index;
    }
    shards.len() == 1
}

fn shard_row(
    i: usize,
    shard: &Shard,
    shards: &[Shard],
    failing: &[(u128, &Failing, bool)],
    counted: Option<&super::keys::Counted>,
) -> Row {
    let mine: Vec<&(u128, &Failing, bool)> = failing
        .iter()
        .filter(|(_, f, _)| owns(i, shards, f, &f.key))
        .collect();
    let live = &shard.live;
    let mut row = Row {
        name: shard.path.display().to_string(),
        done: shard.index.len() as u64,
        failed: mine.iter().filter(|f| !f.2).count() as u64,
        given_up: mine.iter().filter(|f| f.2).count() as u64,
        running: live.running,
        reasons: reasons(mine.iter().map(|f| f.1)),
        ..Row::default()
    };
    if let Some(counted) = counted {
        let shard_counts = &counted.per_shard[i];
        row.done = shard_counts.done;
        row.remaining = shard_counts.remaining;
    }
    row.live = Some(live_text(live));
    if let Some(state) = live.live_state() {
        row.in_flight = state.get("in_flight").and_then(Value::as_u64).unwrap_or(0);
        row.rate = state.get("rate_per_s").and_then(Value::as_f64);
    }
    row
}

/// What a shard's run is doing: its pid, host, start and `-j` while it runs, how it ended
/// otherwise.
fn live_text(live: &super::job::Live) -> String {
    if let Some(state) = live.live_state() {
        let get = |name: &str| state.get(name).and_then(Value::as_u64).unwrap_or(0);
        let text = |name: &str| state.get(name).and_then(Value::as_str).unwrap_or("?");
        let limit = match state.get("limit").and_then(Value::as_u64) {
            Some(limit) => format!(" (limit now {limit})"),
            None => String::new(),
        };
        return format!(
            "running: pid {} on {}, started {}, -j {}{limit}",
            get("pid"),
            text("host"),
            text("started"),
            get("jobs")
        );
    }
    if live.running {
        // A run that has not written its state yet, or `check --repair`.
        return "running: another process holds the cache's lock (no live figures yet)".into();
    }
    match (live.get("finished"), live.get("exit_code")) {
        (Some(Value::Bool(true)), Some(code)) => format!("not running; the last run exited {code}"),
        (Some(_), _) => "not running; the last run did not finish (killed?)".into(),
        _ => "not running".into(),
    }
}

fn total_row(
    rows: &[Row],
    failing: &[(u128, &Failing, bool)],
    counted: Option<&super::keys::Counted>,
    total: Option<u64>,
) -> Row {
    let failed = failing.iter().filter(|f| !f.2).count() as u64;
    let given_up = failing.iter().filter(|f| f.2).count() as u64;
    let mut row = Row {
        name: "total".into(),
        done: rows.iter().map(|r| r.done).sum(),
        failed,
        given_up,
        in_flight: rows.iter().map(|r| r.in_flight).sum(),
        running: rows.iter().any(|r| r.running),
        reasons: reasons(failing.iter().map(|f| f.1)),
        ..Row::default()
    };
    let rates: Vec<f64> = rows.iter().filter_map(|r| r.rate).collect();
    row.rate = (!rates.is_empty()).then(|| rates.iter().sum());
    if let Some(counted) = counted {
        row.done = counted.done;
        row.failed = counted.failed;
        row.given_up = counted.given_up;
        row.remaining = Some(counted.remaining);
    } else if let Some(total) = total {
        row.remaining = Some(total.saturating_sub(row.done + row.failed + row.given_up));
    }
    row
}

/// The top failure reasons: count, and one example each (the earliest failing item).
fn reasons<'a>(failing: impl Iterator<Item = &'a Failing>) -> Vec<Value> {
    let mut by_reason: Vec<(String, u64, &Failing)> = Vec::new();
    for f in failing {
        match by_reason.iter_mut().find(|r| r.0 == f.reason) {
            Some(r) => r.1 += 1,
            None => by_reason.push((f.reason.clone(), 1, f)),
        }
    }
    by_reason.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    by_reason
        .into_iter()
        .take(5)
        .map(|(reason, count, example)| {
            json!({
                "reason": reason,
                "count": count,
                "example": {"key": example.key, "detail": example.detail},
            })
        })
        .collect()
}

fn row_json(row: &Row) -> Value {
    json!({
        "done": row.done,
        "failed": row.failed,
        "given_up": row.given_up,
        "remaining": row.remaining,
        "in_flight": row.in_flight,
        "running": row.running,
        "rate_per_s": row.rate,
        "eta_s": row.eta,
        "reasons": row.reasons,
    })
}

fn print_table(rows: &[Row], total: &Row) {
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(5).max(5);
    println!(
        "{:<width$}  {:>9}  {:>7}  {:>8}  {:>9}  {:>9}  state",
        "cache", "done", "failed", "given up", "remaining", "in flight"
    );
    let show = |row: &Row| {
        let remaining = row.remaining.map_or("?".into(), |n| n.to_string());
        let mut state = row.live.clone().unwrap_or_default();
        if let Some(rate) = row.rate {
            state += &format!(", {rate:.1}/s");
        }
        if let Some(eta) = row.eta {
            state += &format!(
                ", ETA {}",
                human_duration(std::time::Duration::from_secs_f64(eta))
            );
        }
        println!(
            "{:<width$}  {:>9}  {:>7}  {:>8}  {:>9}  {:>9}  {state}",
            row.name, row.done, row.failed, row.given_up, remaining, row.in_flight
        );
    };
    rows.iter().for_each(show);
    if rows.len() > 1 || total.remaining.is_some() {
        let mut total = total.clone();
        if total.live.is_none() {
            total.live = Some(if total.running {
                "running".into()
            } else {
                String::new()
            });
        }
        show(&total);
    }
    if !total.reasons.is_empty() {
        println!("failing now, by reason:");
        for reason in &total.reasons {
            let example = &reason["example"];
            println!(
                "  {:>7}  {}: e.g. item {}: {}",
                reason["count"],
                reason["reason"].as_str().unwrap_or("?"),
                excerpt(&example["key"].to_string()),
                excerpt(example["detail"].as_str().unwrap_or("")),
            );
        }
    }
}
