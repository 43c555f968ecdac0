//! The bottom layer: what every stage shares, importing no stage. A module here may use
//! another of this folder, and `config` for plain types, never `input`, `cache`, `report` or
//! anything above them; `tests/architecture.rs` checks it.
//!
//! - [`key`]: an item's key, its canonical JSON text and its hashes.
//! - [`scan`]: the fast path that finds a plain JSON object's key without serde.
//! - [`depth`]: the one nesting limit for JSON read anywhere.
//! - [`line`]: lines read with a byte cap (input, failures file, a cache read line by line).
//! - [`blocks`]: a file's lines read 1 MiB at a time, for loading a cache in parallel.
//! - [`index`]: the flat table of 128-bit key hashes (the cache's index, the given-up keys).
//! - [`record`]: the cache record, the key field first.
//! - [`stdout`]: a child's stdout (or an answer line) read as its result.
//! - [`text`]: durations, sizes, counts and excerpts as people read them.

pub mod blocks;
pub mod depth;
pub mod index;
pub mod key;
pub mod line;
pub mod record;
pub mod scan;
pub mod stdout;
pub mod text;
