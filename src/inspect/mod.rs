//! The subcommands that look at a job from its own files, with no daemon: `status` (how far it
//! is, live or ended), `failures` (what fails now), `merge` (one cache from several) and
//! `check` (what a cache holds that a run would skip). They read what a run writes (the cache,
//! its state file, the failures file) and never take part in a run.

mod check;
mod failing;
mod failures;
mod job;
mod keys;
mod merge;
mod records;
mod status;

pub use check::{check, CheckOptions};
pub use failures::{failures, FailuresOptions};
pub use merge::{merge, MergeOptions};
pub use status::{status, StatusOptions};
