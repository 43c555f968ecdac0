//! Finding and killing every process that carries a run's marker.
//!
//! Each child's environment holds `PARARUN_RUNS`, a list of `TOKEN.SLOT;` entries: the
//! inherited list of any pararun above this one, plus this run's random token and the slot.
//! Descendants inherit it, including those that left the child's process group (`setsid`,
//! a daemon), so a scan of `/proc/*/environ` finds them: one slot's leftovers
//! ([`Marker::slot`]), or a whole run's ([`Marker::run`]), nested runs below it included.
//!
//! Each candidate is opened as a pidfd first, its environment checked after, and the signal
//! sent through the pidfd: a pid recycled in between makes the signal fail (the pidfd's own
//! process is gone) instead of reaching a stranger.
//!
//! The scan allocates nothing and takes no lock, because the watchdog runs it in a forked
//! child of a process that may have had other threads.

use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::{Mode, OFlags, RawDir};
use rustix::process::{Pid, PidfdFlags, Signal};

/// The environment variable that carries the markers.
pub const VAR: &str = "PARARUN_RUNS";

/// The longest marker pattern: a 16-digit token, a dot, a slot number and `;`.
const MAX_PATTERN: usize = 48;

/// A byte pattern that marks a run's (or one slot's) processes.
#[derive(Clone, Copy)]
pub struct Marker {
    bytes: [u8; MAX_PATTERN],
    len: usize,
}

impl Marker {
    /// Matches every process of the run with `token`.
    pub fn run(token: u64) -> Marker {
        let mut m = Marker {
            bytes: [0; MAX_PATTERN],
            len: 0,
        };
        m.push_hex(token);
        m.push(b'.');
        m
    }

    /// Matches the processes started in `slot` by the run with `token`.
    pub fn slot(token: u64, slot: usize) -> Marker {
        let mut m = Marker::run(token);
        m.push_decimal(slot as u64);
        m.push(b';');
        m
    }

    /// The pattern's bytes: also the entry put into a child's `PARARUN_RUNS` (for a slot).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    fn push(&mut self, b: u8) {
        self.bytes[self.len] = b;
        self.len += 1;
    }

    fn push_hex(&mut self, value: u64) {
        for shift in (0..16).rev() {
            self.push(b"0123456789abcdef"[((value >> (shift * 4)) & 0xf) as usize]);
        }
    }

    fn push_decimal(&mut self, value: u64) {
        let mut digits = [0u8; 20];
        let mut n = value;
        let mut len = 0;
        loop {
            digits[len] = b'0' + (n % 10) as u8;
            len += 1;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        for i in (0..len).rev() {
            self.push(digits[i]);
        }
    }
}

/// Kills (SIGKILL) every process but this one whose environment contains `marker`, repeating
/// the scan until it finds none (a process may fork while we scan), at most a few times.
/// Returns how many were signalled.
pub fn kill_marked(marker: &Marker) -> usize {
    let mut total = 0;
    for _ in 0..5 {
        let found = scan(marker);
        total += found;
        if found == 0 {
            break;
        }
    }
    total
}

/// One pass over `/proc`.
fn scan(marker: &Marker) -> usize {
    let Ok(proc_dir) = rustix::fs::open(
        "/proc",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return 0;
    };
    let me = rustix::process::getpid();
    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 8192];
    let mut dir = RawDir::new(&proc_dir, &mut buf);
    let mut killed = 0;
    while let Some(Ok(entry)) = dir.next() {
        let Some(pid) = parse_pid(entry.file_name().to_bytes()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        // The pidfd comes first: if the pid is recycled after the check, the pidfd still
        // names the process that was checked (and the signal fails, as it is gone).
        let Ok(pidfd) = rustix::process::pidfd_open(pid, PidfdFlags::empty()) else {
            continue;
        };
        if carries(&proc_dir, pid, marker)
            && rustix::process::pidfd_send_signal(&pidfd, Signal::KILL).is_ok()
        {
            killed += 1;
        }
        drop::<OwnedFd>(pidfd);
    }
    killed
}

fn parse_pid(name: &[u8]) -> Option<Pid> {
    if name.is_empty() || name.len() > 10 || !name.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = name.iter().fold(0i64, |n, &d| n * 10 + i64::from(d - b'0'));
    Pid::from_raw(i32::try_from(n).ok()?)
}

/// Whether the process `pid` carries `marker` in its environment.
pub fn carries_pid(pid: Pid, marker: &Marker) -> bool {
    rustix::fs::open(
        "/proc",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .is_ok_and(|proc_dir| carries(&proc_dir, pid, marker))
}

/// Whether `/proc/PID/environ` contains `marker`, read in chunks on the stack.
fn carries(proc_dir: &impl AsFd, pid: Pid, marker: &Marker) -> bool {
    let mut path = [0u8; 32];
    let mut len = 0;
    let mut digits = Marker {
        bytes: [0; MAX_PATTERN],
        len: 0,
    };
    digits.push_decimal(pid.as_raw_nonzero().get() as u64);
    for &b in digits.as_bytes().iter().chain(b"/environ") {
        path[len] = b;
        len += 1;
    }
    let Ok(cpath) = std::ffi::CStr::from_bytes_with_nul(&path[..=len]) else {
        return false;
    };
    let Ok(file) = rustix::fs::openat(
        proc_dir,
        cpath,
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return false;
    };
    let pattern = marker.as_bytes();
    // The last `pattern.len() - 1` bytes of a chunk are kept, so a match across two reads
    // is still found.
    let mut buf = [0u8; 4096 + MAX_PATTERN];
    let mut kept = 0;
    loop {
        let Ok(n) = rustix::io::read(&file, &mut buf[kept..]) else {
            return false;
        };
        if n == 0 {
            return false;
        }
        let filled = kept + n;
        if buf[..filled].windows(pattern.len()).any(|w| w == pattern) {
            return true;
        }
        kept = (pattern.len() - 1).min(filled);
        buf.copy_within(filled - kept..filled, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_spell_token_and_slot() {
        assert_eq!(Marker::run(0xab).as_bytes(), b"00000000000000ab.");
        assert_eq!(Marker::slot(0xab, 12).as_bytes(), b"00000000000000ab.12;");
        assert_eq!(Marker::slot(1, 0).as_bytes(), b"0000000000000001.0;");
    }

    #[test]
    fn pids_parse() {
        assert_eq!(
            parse_pid(b"123").map(|p| p.as_raw_nonzero().get()),
            Some(123)
        );
        assert!(parse_pid(b"self").is_none());
        assert!(parse_pid(b"0").is_none());
    }

    #[test]
    fn finds_and_kills_a_marked_process() {
        let marker = Marker::slot(0x5eed_1234_abcd_0001, 3);
        let value = format!("x;{}", std::str::from_utf8(marker.as_bytes()).unwrap());
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .env(VAR, value)
            .spawn()
            .unwrap();
        // The child may not have exec'ed yet: until it has, its environ is ours.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while kill_marked(&Marker::run(0x5eed_1234_abcd_0001)) == 0 {
            assert!(std::time::Instant::now() < deadline, "never found");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let status = child.wait().unwrap();
        assert!(!status.success());
        assert_eq!(kill_marked(&Marker::slot(0x5eed_1234_abcd_0001, 3)), 0);
    }
}
