//! The input's keys sorted into done, failed, given up and remaining, read with the run's own
//! reader so that a key is what a run would make of the line.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use anyhow::Result;

use super::job::Shard;
use super::status::StatusOptions;
use crate::base::index::KeyIndex;
use crate::config::parse_shard;
use crate::files;
use crate::input::{InputEvent, InputReader, Key};

/// What a failing key is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Its latest attempt failed.
    Failed,
    /// It failed `--give-up-after` times.
    GivenUp,
}

/// One shard's part of the input.
#[derive(Debug, Default, Clone)]
pub struct ShardCount {
    /// The input's keys recorded in this shard's cache.
    pub done: u64,
    /// The shard's keys that are neither done, failed nor given up; unknown when the shard's
    /// part of the input is (several caches, and no `--shard` in its state file).
    pub remaining: Option<u64>,
}

/// The input's distinct keys, sorted: `done + failed + given_up + remaining` is their count.
#[derive(Debug, Default)]
pub struct Counted {
    /// In some cache.
    pub done: u64,
    /// Failing now (a line the run cannot read, bad input, counts here too).
    pub failed: u64,
    /// Given up.
    pub given_up: u64,
    /// None of these.
    pub remaining: u64,
    /// Per cache, in order.
    pub per_shard: Vec<ShardCount>,
}

/// Reads `input` once and sorts its keys.
pub fn input_keys(
    input: &Path,
    shards: &[Shard],
    classes: &HashMap<u128, Class>,
    opts: &StatusOptions,
) -> Result<Counted> {
    let source: Box<dyn Read + Send> = match input.as_os_str() == "-" {
        true => Box::new(std::io::stdin()),
        false => Box::new(files::open_input(input)?.0),
    };
    let field = opts
        .key_field
        .as_deref()
        .or_else(|| shards.iter().find_map(|s| s.live.text("key_field")))
        .unwrap_or("id");
    let name = input.display().to_string();
    let paths: Vec<_> = shards.iter().map(|s| s.path.clone()).collect();
    let format = super::job::format_of(opts.format, &paths);
    let mut reader = InputReader::new(source, &name, format, field, opts.max_line);
    // Which part of the key space each shard owns, when its run said so.
    let specs: Vec<Option<crate::config::Shard>> = shards
        .iter()
        .map(|s| s.live.text("shard").and_then(|t| parse_shard(t).ok()))
        .collect();
    let known = |i: usize| specs[i].is_some() || shards.len() == 1;
    let mut counted = Counted {
        per_shard: (0..shards.len())
            .map(|i| ShardCount {
                done: 0,
                remaining: known(i).then_some(0),
            })
            .collect(),
        ..Counted::default()
    };
    let mut seen = KeyIndex::with_capacity(1 << 16);
    let mut sort = |key: &Key| {
        if !seen.insert(key) {
            return false;
        }
        let owner = |i: usize| match specs[i] {
            Some(spec) => key.shard(spec.count) == spec.index,
            None => shards.len() == 1,
        };
        if let Some(i) = shards.iter().position(|s| s.index.contains(key)) {
            counted.done += 1;
            counted.per_shard[i].done += 1;
            return false;
        }
        match classes.get(&key.hash) {
            Some(Class::Failed) => counted.failed += 1,
            Some(Class::GivenUp) => counted.given_up += 1,
            None => {
                counted.remaining += 1;
                for (i, part) in counted.per_shard.iter_mut().enumerate() {
                    if let (Some(left), true) = (part.remaining.as_mut(), owner(i)) {
                        *left += 1;
                    }
                }
            }
        }
        false
    };
    let mut bad = 0;
    while let Some(event) = reader.next_event(&mut sort)? {
        if let InputEvent::Bad { .. } = event {
            bad += 1;
        }
    }
    counted.failed += bad;
    Ok(counted)
}
