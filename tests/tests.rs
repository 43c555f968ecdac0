//! Integration tests: every file drives the real binary for one capability.

mod util;

mod core;
mod faults;
mod generated;
mod rate;
mod resume;
mod shard;
mod signals;
