//! The skip filter: which items run. It sees each key before the item is fully parsed.

pub mod given_up;

use std::path::Path;
use std::sync::Arc;

use crate::base::index::KeyIndex;
use crate::config::Config;
use crate::input::{self, Key};
use crate::report::Stats;

/// The skip rule: a key another shard owns is skipped; with a cache, a key already in it is
/// skipped as cached, and a key seen earlier in this input as a duplicate. Without a cache
/// every item runs, as with xargs. Then a key in `given_up` (`--give-up-after`) is skipped.
/// `sized` is the input's path when it is a regular file.
pub(crate) fn skip_filter(
    cfg: &Config,
    sized: Option<&Path>,
    cached: KeyIndex,
    given_up: KeyIndex,
    stats: Arc<Stats>,
) -> impl FnMut(&Key) -> bool + Send {
    let dedupe = cfg.results.cache.is_some();
    let shard = cfg.items.shard;
    // Sized up front from the input file (when it is a regular one), so the set rarely has to
    // grow (growing holds the old and the new table at once).
    let expected = match (sized, dedupe) {
        (Some(path), true) => {
            let lines = input::estimate_lines(path).saturating_sub(cached.len());
            lines / cfg.items.shard.map_or(1, |s| s.count as usize)
        }
        _ => 0,
    };
    let mut seen = KeyIndex::with_capacity(expected);
    move |key: &Key| {
        if shard.is_some_and(|s| key.shard(s.count) != s.index) {
            Stats::bump(&stats.other_shards);
            false
        } else if dedupe && cached.contains(key) {
            Stats::bump(&stats.cached);
            false
        } else if dedupe && !seen.insert(key) {
            Stats::bump(&stats.duplicates);
            false
        } else if given_up.contains(key) {
            // After the cache: an item that failed often and then succeeded is done.
            Stats::bump(&stats.given_up);
            false
        } else {
            true
        }
    }
}
