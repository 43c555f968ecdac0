//! The environment, sensed once while the command line becomes a [`Config`](crate::Config):
//! what pararun's own stdin and stdout are. The engine never looks; it reads the fields.

use std::io::IsTerminal;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::{FileType, OFlags};

use crate::config::StdinKind;

/// A terminal, a regular file opened read-write (as `<> FILE` opens it), or anything else.
pub(super) fn stdin_kind() -> StdinKind {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return StdinKind::Terminal;
    }
    let fd = stdin.as_fd();
    // `< FILE` opens read-only; only the shell's `<>` (or a program that means it) opens stdin
    // read-write. The access mode is in the open file description, so fcntl sees it.
    let read_write =
        rustix::fs::fcntl_getfl(fd).is_ok_and(|flags| flags & OFlags::RWMODE == OFlags::RDWR);
    let regular = rustix::fs::fstat(fd)
        .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::RegularFile);
    match read_write && regular {
        true => StdinKind::ReadWrite(std::fs::read_link("/proc/self/fd/0").ok()),
        false => StdinKind::Other,
    }
}

/// Set before `main` when stdout was closed at start (see [`stdout_was_closed`]).
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Notes that stdout was closed when the process started (`>&-`). The binary learns it before
/// `main`, from a constructor: by `main`, Rust's runtime has put `/dev/null` on the closed
/// descriptor, and it looks like a `> /dev/null`.
pub fn stdout_was_closed() {
    STDOUT_CLOSED.store(true, Ordering::Relaxed);
}

/// What pararun's stdout is, as far as printing records goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stdout {
    /// `/dev/null`, where printing records would only cost time (GNU grep takes the same
    /// shortcut): a cron job's `> /dev/null` keeps the records in the cache alone.
    Null,
    /// Closed when pararun started (`>&-`): writes to it fail, as they would have.
    Closed,
    /// Anything else.
    Other,
}

/// What stdout is: closed at start, `/dev/null` (compared by device), or anything else.
pub(super) fn stdout() -> Stdout {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return Stdout::Closed;
    }
    let is_null = match (
        rustix::fs::fstat(std::io::stdout().as_fd()),
        rustix::fs::stat("/dev/null"),
    ) {
        (Ok(out), Ok(null)) => {
            FileType::from_raw_mode(out.st_mode) == FileType::CharacterDevice
                && out.st_rdev == null.st_rdev
        }
        _ => false,
    };
    if is_null {
        Stdout::Null
    } else {
        Stdout::Other
    }
}
