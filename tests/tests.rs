//! Integration tests: every file drives the real binary for one capability.

mod util;

mod cli;
mod core;
mod examples;
mod faults;
mod generated;
mod order;
mod persistent;
mod progress;
mod quoting;
mod rate;
mod resume;
mod shard;
mod signals;
mod slurm;
