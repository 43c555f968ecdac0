//! The pararun binary: parse the command line, do what it asks, map the outcome to an exit
//! code.

use std::process::ExitCode;

fn main() -> ExitCode {
    let invocation = match pararun::cli::parse() {
        Ok(invocation) => invocation,
        // The flags did not go together, so --timestamps is not known: the default applies.
        Err(err) => return fail(&err, pararun::cli::stderr_is_a_log()),
    };
    let timestamps = invocation.timestamps();
    match pararun::invoke(invocation) {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(err) => fail(&err, timestamps),
    }
}

/// Setup and usage errors: one line, exit 2.
fn fail(err: &anyhow::Error, timestamps: bool) -> ExitCode {
    eprintln!("{}", pararun::cli::error_line(err, timestamps));
    ExitCode::from(pararun::Exit::Error.code())
}

/// Items' strings are made on one thread and freed on another; mimalloc's per-thread heaps
/// keep those threads from queueing on one allocator lock (see Cargo.toml).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
