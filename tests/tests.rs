//! Integration tests: every file drives the real binary for one capability.

mod util;

mod architecture;
mod cli;
mod concurrent;
mod core;
mod data;
mod docs;
mod examples;
mod faults;
mod files;
mod first_contact;
mod fiu;
mod generated;
mod lifecycle;
mod limits;
mod log;
mod merge;
mod order;
mod persistent;
mod pipeline;
mod progress;
mod quoting;
mod rate;
mod resume;
mod same_file;
mod shard;
mod signals;
mod slurm;
mod status;
mod stopped;
mod terminal;
mod throttle;
mod throughput;
mod unattended;
mod worker_lies;
