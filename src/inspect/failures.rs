//! `pararun failures`: the items failing now, for people or, with `--items`, as input lines to
//! pipe back into a run that retries exactly those.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Result};
use serde_json::json;

use super::failing::{Failing, FailureHistory};
use super::job::{expand, Shard};
use crate::report::{escape, excerpt, Exit};

/// What `pararun failures` was asked.
#[derive(Debug, Clone)]
pub struct FailuresOptions {
    /// The caches: an item with a record in one of them is not failing.
    pub caches: Vec<PathBuf>,
    /// The failures files; when none is given, those the caches' state files name.
    pub failures: Vec<PathBuf>,
    /// Print only the items' input lines.
    pub items: bool,
    /// Print one JSON object per item.
    pub json: bool,
    /// `--key-field`; else each run's own; else `id`.
    pub key_field: Option<String>,
    /// The longest line read.
    pub max_line: usize,
}

/// Lists the items failing now, oldest failure first. Exit 0 when there are none, 1 when
/// there are some.
pub fn failures(opts: &FailuresOptions) -> Result<Exit> {
    let caches = expand(&opts.caches, "cache")?;
    let shards: Vec<Shard> = caches
        .iter()
        .map(|p| Shard::open(p, opts.key_field.as_deref(), opts.max_line))
        .collect::<Result<_>>()?;
    let mut files = expand(&opts.failures, "failures file")?;
    super::job::all_exist(&files, "failures file")?;
    if files.is_empty() {
        files.extend(
            shards
                .iter()
                .filter_map(|s| s.live.text("failures").map(PathBuf::from)),
        );
    }
    if files.is_empty() {
        bail!(
            "no failures file: give it with --failures FILE (the run's --failures), or name a \
             cache whose run had one"
        );
    }
    let history = FailureHistory::read(&files, opts.max_line)?;
    // Lines the run could not read have no key and run nowhere: they are counted, not listed
    // (piped back, they would only fail again).
    let bad_lines = history.by_key.values().filter(|f| f.key.is_null()).count();
    let mut failing: Vec<&Failing> = history
        .by_key
        .iter()
        .filter(|(hash, f)| {
            !f.key.is_null() && !shards.iter().any(|s| s.index.contains_hash(**hash))
        })
        .map(|(_, f)| f)
        .collect();
    failing.sort_by(|a, b| a.at.cmp(&b.at));
    if bad_lines > 0 {
        eprintln!(
            "pararun: {bad_lines} input lines could not be read as items (bad-input) and are not \
             listed: fix them in the input"
        );
    }
    // A plain line that starts with `{` would be taken for JSON by a run that reads `auto`.
    let looks_like_json = |item: &str| {
        item.trim_start().starts_with('{')
            && !matches!(serde_json::from_str(item), Ok(serde_json::Value::Object(_)))
    };
    if opts.items && failing.iter().any(|f| looks_like_json(&f.item)) {
        eprintln!(
            "pararun: note: these are plain lines, some starting with '{{': give --format lines \
             to the run they are piped into, or it takes them for JSON"
        );
    }
    print(opts, &failing)
}

/// Prints the failing items, one per line; 0 when there are none, 1 when there are some.
fn print(opts: &FailuresOptions, failing: &[&Failing]) -> Result<Exit> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for f in failing {
        let line = if opts.items {
            f.item.clone()
        } else if opts.json {
            json!({
                "key": f.key,
                "reason": f.reason,
                "attempts": f.attempts,
                "detail": f.detail,
                "stderr_tail": f.stderr_tail,
                "item": f.item,
            })
            .to_string()
        } else {
            describe(f)
        };
        // A reader that left (`| head`) ends the listing, as it would for cat.
        if writeln!(out, "{line}").is_err() {
            return Ok(Exit::BrokenPipe);
        }
    }
    if out.flush().is_err() {
        return Ok(Exit::BrokenPipe);
    }
    Ok(if failing.is_empty() {
        Exit::Success
    } else {
        Exit::ItemsFailed
    })
}

/// `item 7: exit after 3 attempts: exit code 3; stderr ends: "..."`.
fn describe(f: &Failing) -> String {
    let key = match f.key.is_null() {
        true => format!("line {}", excerpt(&f.item)),
        false => format!("item {}", excerpt(&f.key.to_string())),
    };
    let mut text = format!(
        "{key}: {} after {} attempt{}: {}",
        f.reason,
        f.attempts,
        if f.attempts == 1 { "" } else { "s" },
        excerpt(&f.detail)
    );
    if let Some(last) = f.stderr_tail.lines().rev().find(|l| !l.trim().is_empty()) {
        text += &format!("; stderr ends: {}", escape(last));
    }
    text
}
