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

/// Whether stdout was closed at start (`>&-`) is visible only before `main`: by then Rust's
/// runtime has opened `/dev/null` on the closed descriptor, which would pass for a
/// `> /dev/null` and throw the records away without a word. This runs from `.init_array`,
/// before that.
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

/// Items' strings are made on one thread and freed on another; mimalloc's per-thread heaps
/// keep those threads from queueing on one allocator lock (see Cargo.toml).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
