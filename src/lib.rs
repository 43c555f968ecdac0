//! pararun: run a command over every item of a JSONL or line input, N at a time, with a
//! crash-safe, resumable JSONL cache.
//!
//! The binary is a thin shell around [`run`]; a Rust program can build a [`Config`] and call it
//! the same way. Data flows one way: [`input`] reads items, the cache index filters them,
//! [`template`] builds each command, [`process`] runs it, and [`runner`] hands each outcome to the
//! [`cache`], stdout and [`report`].

#![deny(missing_docs)]

mod app;
pub mod cache;
pub mod cli;
pub mod config;
pub mod files;
mod filter;
pub mod input;
mod job;
pub mod process;
pub mod report;
pub mod result;
pub mod runner;
pub mod template;

pub use config::Config;
pub use report::Exit;

/// Runs a whole job. `Err` is a setup error (bad flag combination, unreadable input, unusable
/// cache), raised before any child starts; everything after that is reported through the
/// returned [`Exit`].
pub fn run(cfg: &Config) -> anyhow::Result<Exit> {
    app::run(cfg)
}
