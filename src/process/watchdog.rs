//! The watchdog: a forked process that kills every child of a run once pararun is gone,
//! however it went (even SIGKILL, even an OOM kill).
//!
//! Linux's PR_SET_PDEATHSIG would reach only the direct child, not a shell's own children, and
//! only by giving up the fast posix_spawn path; the watchdog covers whole groups and every
//! marked descendant. pararun keeps each slot's group id in a table of shared memory (no
//! system call per child); the watchdog sleeps on a pipe that nobody writes, and when its last
//! write end closes (pararun exited) it kills every group still in the table, then every
//! process carrying the run's marker (see [`super::sweep`]), and exits.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};

use rustix::process::{Pid, PidfdFlags, Signal};

use super::sweep::{self, Marker};

/// A running watchdog and the table it reads.
pub struct Watchdog {
    pipe: OwnedFd,
    table: std::ptr::NonNull<AtomicI32>,
    slots: usize,
    token: u64,
    inherited: String,
}

// SAFETY: the table is a fixed mapping of atomics, valid until `drop`, and only ever accessed
// through atomic operations, so sharing it between threads is sound.
unsafe impl Send for Watchdog {}
// SAFETY: as above.
unsafe impl Sync for Watchdog {}

impl Watchdog {
    /// Forks the watchdog for slots `0..=slots`. Sound from any program, threads or not: the
    /// forked child runs only system calls on memory prepared before the fork (it allocates
    /// nothing and takes no lock), closes every inherited descriptor but its pipe, and ends
    /// with `_exit`.
    pub fn start(slots: usize) -> io::Result<Watchdog> {
        let len = slots + 1;
        // SAFETY: a fresh anonymous shared mapping, zero-filled by the kernel; checked below.
        let table = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len * std::mem::size_of::<AtomicI32>(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if table == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let table = std::ptr::NonNull::new(table.cast::<AtomicI32>()).expect("mmap succeeded");
        // O_CLOEXEC keeps the write end out of children, so only pararun's own exit closes it.
        let (read_end, write_end) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
        let token = random_token();
        let marker = Marker::run(token);
        let read_fd = read_end.as_raw_fd();
        // SAFETY: the child runs only async-signal-safe system calls on the stack copy of
        // `marker`, the mapping and `read_fd` (see `watch`), and never returns.
        match unsafe { libc::fork() } {
            -1 => Err(io::Error::last_os_error()),
            0 => unsafe { watch(read_fd, table, len, &marker) },
            _ => {
                drop(read_end);
                Ok(Watchdog {
                    pipe: write_end,
                    table,
                    slots: len,
                    token,
                    inherited: std::env::var(sweep::VAR).unwrap_or_default(),
                })
            }
        }
    }

    /// The environment variable a child in `slot` carries: the markers inherited from any
    /// pararun above this one, plus this run's token and the slot.
    pub fn marker(&self, slot: usize) -> (&'static str, String) {
        let own = Marker::slot(self.token, slot);
        let mut value = self.inherited.clone();
        value.push_str(std::str::from_utf8(own.as_bytes()).expect("ASCII"));
        (sweep::VAR, value)
    }

    /// Kills every process left from `slot` (descendants that escaped the group).
    pub fn sweep_slot(&self, slot: usize) -> usize {
        sweep::kill_marked(&Marker::slot(self.token, slot))
    }

    /// Kills every process any item of this run started that is still running.
    pub fn sweep_run(&self) -> usize {
        sweep::kill_marked(&Marker::run(self.token))
    }

    /// Tells the watchdog the run ended in order (every child reaped, leftovers swept): it
    /// exits without killing or searching anything.
    pub fn disarm(&self) {
        // A dead watchdog (EPIPE) needs no word.
        let _ = rustix::io::write(&self.pipe, b"Q");
    }

    /// Records that `slot` now runs the group led by `pgid` (0: nothing).
    pub fn set(&self, slot: usize, pgid: i32) {
        assert!(slot < self.slots, "slot {slot} out of range");
        // SAFETY: `slot` is within the mapping, which lives as long as `self`.
        unsafe { (*self.table.as_ptr().add(slot)).store(pgid, Ordering::Release) };
    }

    /// The group ids in the table now (for pausing and resuming every child).
    pub fn groups(&self) -> impl Iterator<Item = i32> + '_ {
        (0..self.slots).filter_map(|slot| {
            // SAFETY: as in `set`.
            let pgid = unsafe { (*self.table.as_ptr().add(slot)).load(Ordering::Acquire) };
            (pgid > 0).then_some(pgid)
        })
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `start`; nothing uses it after drop. The
        // watchdog process keeps its own mapping of the same memory.
        unsafe {
            libc::munmap(
                self.table.as_ptr().cast(),
                self.slots * std::mem::size_of::<AtomicI32>(),
            );
        }
    }
}

/// 64 random bits: the run's token, so that no later run (even with a recycled pid) can take
/// another run's leftovers for its own.
fn random_token() -> u64 {
    let mut bytes = [0u8; 8];
    if rustix::rand::getrandom(&mut bytes, rustix::rand::GetRandomFlags::empty()).is_err() {
        // No getrandom: time and pid still differ between runs.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        return nanos ^ (u64::from(std::process::id()) << 32);
    }
    u64::from_ne_bytes(bytes) | 1
}

/// The watchdog's body, in the forked child.
///
/// # Safety
/// Called only in the child of a fork, with `table` mapped for `len` atomics and `pipe` open.
/// It must stay async-signal-safe: system calls on prepared memory only.
unsafe fn watch(pipe: i32, table: std::ptr::NonNull<AtomicI32>, len: usize, marker: &Marker) -> ! {
    // SAFETY: close_range takes plain integers; with an old kernel (ENOSYS) the loop below
    // does the same, one descriptor at a time.
    unsafe {
        let closed_low = pipe == 0 || libc::syscall(libc::SYS_close_range, 0, pipe - 1, 0) == 0;
        let closed_high = libc::syscall(libc::SYS_close_range, pipe + 1, u32::MAX, 0) == 0;
        if !(closed_low && closed_high) {
            for fd in (0..4096).filter(|&fd| fd != pipe) {
                libc::close(fd);
            }
        }
        // Ctrl-C, SIGTERM, SIGHUP and Ctrl-Z are pararun's to handle; the watchdog must
        // outlive its shutdown.
        for sig in [
            libc::SIGINT,
            libc::SIGTERM,
            libc::SIGHUP,
            libc::SIGQUIT,
            libc::SIGTSTP,
        ] {
            libc::signal(sig, libc::SIG_IGN);
        }
    }
    // SAFETY: `pipe` is open and ours alone in this process.
    let pipe = unsafe { OwnedFd::from_raw_fd(pipe) };
    let mut byte = [0u8; 1];
    let mut disarmed = false;
    loop {
        match rustix::io::read(&pipe, &mut byte) {
            Err(rustix::io::Errno::INTR) => continue,
            Ok(1) => disarmed |= byte[0] == b'Q',
            _ => break,
        }
    }
    if !disarmed {
        for slot in 0..len {
            // SAFETY: within the mapping, which this process keeps until it exits.
            let pgid = unsafe { (*table.as_ptr().add(slot)).load(Ordering::Acquire) };
            kill_group(pgid, marker);
        }
        sweep::kill_marked(marker);
    }
    // SAFETY: ends this process at once, running nothing of the parent's.
    unsafe { libc::_exit(0) }
}

/// Kills the group led by `pgid` if its leader is still the run's child: checked through a
/// pidfd, so a recycled id is left alone.
fn kill_group(pgid: i32, marker: &Marker) {
    let Some(pid) = Pid::from_raw(pgid) else {
        return;
    };
    if let Ok(pidfd) = rustix::process::pidfd_open(pid, PidfdFlags::empty()) {
        if sweep::carries_pid(pid, marker) {
            let _ = rustix::process::kill_process_group(pid, Signal::KILL);
        }
        drop(pidfd);
    }
}
