//! The pararun binary: parse the command line, run, map the outcome to an exit code.

use std::process::ExitCode;

fn main() -> ExitCode {
    let config = match pararun::cli::parse() {
        Ok(config) => config,
        Err(err) => return fail(&err),
    };
    match pararun::run(&config) {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(err) => fail(&err),
    }
}

/// Setup and usage errors: one line, the anyhow chain read left to right, exit 2.
fn fail(err: &anyhow::Error) -> ExitCode {
    eprintln!("pararun: {err:#}");
    ExitCode::from(pararun::Exit::Error.code())
}
