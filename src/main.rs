//! The pararun binary: parse the command line, do what it asks, map the outcome to an exit code.

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

/// Whether stdout was closed at start (`>&-`) is visible only before `main` (`.init_array`):
/// Rust's runtime then opens `/dev/null` there, which would pass for a `> /dev/null`.
extern "C" fn see_closed_stdout() {
    // SAFETY: fcntl(F_GETFD) on a descriptor number only reads its flags (EBADF when it is
    // closed); it touches no memory and changes nothing.
    if unsafe { libc::fcntl(1, libc::F_GETFD) } == -1 {
        pararun::cli::stdout_was_closed();
    }
}

#[used]
#[link_section = ".init_array"]
static SEE_CLOSED_STDOUT: extern "C" fn() = see_closed_stdout;

/// mimalloc's per-thread heaps keep the threads from queueing on one allocator (Cargo.toml).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
