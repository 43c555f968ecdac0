//! pararun: run a command over every item of a JSONL or line input, N at a time, with a
//! crash-safe, resumable JSONL cache.
//!
//! The binary is a thin shell around [`run`]; a Rust program builds a [`Config`] and calls it
//! the same way, then reads the results with [`CacheReader`]. `ARCHITECTURE.md` maps the parts
//! behind this API (input, filter, template, job, process, result, cache, report, runner).
//!
//! ```
//! use pararun::{CacheReader, Config, Exit};
//! use pararun::config::InputSource;
//!
//! # fn main() -> anyhow::Result<()> {
//! let dir = tempfile::tempdir()?;
//! let items = dir.path().join("items.jsonl");
//! std::fs::write(&items, "{\"id\":1,\"n\":2}\n{\"id\":2,\"n\":3}\n")?;
//! // Each child reads its item on stdin and prints it back: the item is its own result.
//! let mut cfg = Config::new(vec!["cat".into()]);
//! cfg.items.input = InputSource::File(items);
//! cfg.launch.stdin = true;
//! cfg.results.cache = Some(dir.path().join("out.jsonl"));
//! cfg.output.quiet = true;
//! assert_eq!(pararun::run(&cfg)?, Exit::Success);
//! let records: Vec<_> = CacheReader::open(&dir.path().join("out.jsonl"), 1 << 20)?
//!     .collect::<anyhow::Result<_>>()?;
//! assert_eq!(records.len(), 2);
//! // A second run finds both keys in the cache and runs nothing.
//! assert_eq!(pararun::run(&cfg)?, Exit::Success);
//! # Ok(())
//! # }
//! ```
//!
//! [`run`] is sound to call from any program, threads or not. It changes a few process-wide
//! settings while it runs, and leaves them: the soft limit on open files is raised to the hard
//! limit, SIGXFSZ gets a no-op handler, the `console` crate's colour switch for stdout is set
//! from stderr's when a progress bar is shown (the bar draws through it), and SIGINT, SIGTERM, SIGHUP and SIGTSTP are handled
//! through tokio (whose handlers stay installed once the run returns).
//!
//! While a run goes on, the calling program must not change the process environment
//! (`std::env::set_var`) from another thread: the timestamps of log lines read `TZ` through
//! libc's `localtime_r`, as every C library caller does, and glibc's environment is not
//! guarded against a concurrent write.

#![deny(missing_docs)]

mod app;
mod base;
mod cache;
pub mod cli;
pub mod config;
mod files;
mod filter;
mod input;
pub mod inspect;
mod job;
mod process;
mod report;
mod result;
mod runner;
mod template;

pub use cache::CacheReader;
pub use config::Config;
pub use report::Exit;

/// Runs a whole job. `Err` is a setup error (bad flag combination, unreadable input, unusable
/// cache), raised before any child starts; everything after that is reported through the
/// returned [`Exit`].
pub fn run(cfg: &Config) -> anyhow::Result<Exit> {
    app::run(cfg)
}

/// Does what a parsed command line asks for ([`cli::parse`]): the binary's one call.
pub fn invoke(invocation: cli::Invocation) -> anyhow::Result<Exit> {
    app::invoke(invocation)
}
