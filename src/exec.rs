//! Spawning one child, feeding and reading it, and ending it: timeouts and shutdown signal the
//! child's whole process group (SIGTERM, then SIGKILL after the grace period), so nothing it
//! started outlives it.
//!
//! Each child leads a process group of its own, and a [`Watchdog`] kills those groups if
//! pararun dies, so that even a SIGKILL of pararun leaves nothing running unattended.

use std::io;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicI32, Ordering as AtomicOrdering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::ChildStderr;
use tokio::sync::watch;

use crate::progress::Progress;

/// How far a shutdown has gone; children watch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stop {
    /// Keep running.
    Run,
    /// SIGTERM every group, SIGKILL after the grace period.
    Graceful,
    /// SIGKILL every group now.
    Kill,
}

/// One child to start.
pub struct Job {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Extra environment variables.
    pub env: Vec<(&'static str, String)>,
    /// Bytes written to the child's stdin (then closed); `None` gives it /dev/null.
    pub stdin: Option<Vec<u8>>,
}

/// Time limits of one attempt.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The attempt's time limit.
    pub timeout: Option<Duration>,
    /// Grace between SIGTERM and SIGKILL.
    pub kill_after: Duration,
}

/// Why a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// On its own.
    Exited,
    /// Killed by us when `--timeout` ran out.
    TimedOut,
    /// Killed by us because the run is shutting down.
    Stopped,
}

/// What a finished child left.
pub struct Finished {
    /// Its exit status.
    pub status: ExitStatus,
    /// Its whole stdout.
    pub stdout: Vec<u8>,
    /// The last lines of its stderr (all of which went through to our stderr).
    pub stderr_tail: String,
    /// Wall time from spawn to exit.
    pub duration: Duration,
    /// Why it ended.
    pub ending: Ending,
}

impl Finished {
    /// The signal that killed it, if any.
    pub fn signal(&self) -> Option<i32> {
        self.status.signal()
    }
}

const TAIL_BYTES: usize = 2048;

/// Runs one child to its end, registering its group with the watchdog (if any) under its slot
/// while it runs. An `Err` means it could not be started (or its pipes failed).
pub async fn run(
    job: Job,
    limits: Limits,
    mut stop: watch::Receiver<Stop>,
    progress: &Progress,
    guard: Option<(&Watchdog, usize)>,
) -> io::Result<Finished> {
    let start = Instant::now();
    let mut child = command(&job.argv, &job.env, job.stdin.is_some()).spawn()?;
    let pid = child.id().map(|p| p as i32);
    if let (Some((dog, slot)), Some(pid)) = (guard, pid) {
        dog.set(slot, pid);
    }

    let stdin = child.stdin.take();
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let tail = Mutex::new(Tail::default());
    let feed = async move {
        if let (Some(mut pipe), Some(bytes)) = (stdin, job.stdin) {
            // A child that exits without reading its stdin is its own business, not an error.
            let _ = pipe.write_all(&bytes).await;
        }
    };
    let read_out = async move {
        let mut buf = Vec::new();
        stdout.read_to_end(&mut buf).await.map(|_| buf)
    };
    let reap = async {
        let status = child.wait().await;
        // Whatever the child left running in its group (a backgrounded `sleep`, a daemon)
        // would outlive the item and could hold its pipes open: it goes with the child.
        signal_group(pid, libc::SIGKILL);
        status
    };
    let all = async {
        let (_, out, _, status) =
            tokio::join!(feed, read_out, pump_stderr(stderr, progress, &tail), reap);
        (out, status)
    };
    tokio::pin!(all);

    let deadline = limits
        .timeout
        .map(|t| tokio::time::Instant::from_std(start + t));
    let mut ending = Ending::Exited;
    let (out, status) = tokio::select! {
        done = &mut all => done,
        _ = sleep_until(deadline) => {
            ending = Ending::TimedOut;
            terminate(pid, &mut all, limits.kill_after, &mut stop).await
        }
        _ = reached(&mut stop, Stop::Graceful) => {
            ending = Ending::Stopped;
            terminate(pid, &mut all, limits.kill_after, &mut stop).await
        }
    };
    if let Some((dog, slot)) = guard {
        dog.set(slot, 0);
    }
    let stderr_tail = lock(&tail).text();
    Ok(Finished {
        status: status?,
        stdout: out?,
        stderr_tail,
        duration: start.elapsed(),
        ending,
    })
}

/// A child's command: its own process group, stdout and stderr piped, stdin piped or
/// /dev/null.
pub(crate) fn command(
    argv: &[String],
    env: &[(&'static str, String)],
    pipe_stdin: bool,
) -> tokio::process::Command {
    let mut cmd = std::process::Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(if pipe_stdin {
            Stdio::piped()
        } else {
            dev_null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    tokio::process::Command::from(cmd)
}

/// A child's stdin when it gets no input: a duplicate of one /dev/null opened for the run, which
/// is cheaper than opening the path again for every child.
fn dev_null() -> Stdio {
    static DEV_NULL: std::sync::OnceLock<Option<std::fs::File>> = std::sync::OnceLock::new();
    DEV_NULL
        .get_or_init(|| std::fs::File::open("/dev/null").ok())
        .as_ref()
        .and_then(|file| file.try_clone().ok())
        .map_or_else(Stdio::null, Stdio::from)
}

/// The last lines of a child's stderr, for failure reports.
#[derive(Debug, Default)]
pub struct Tail(Vec<u8>);

impl Tail {
    fn push(&mut self, line: &[u8]) {
        self.0.extend_from_slice(line);
        if self.0.len() > 2 * TAIL_BYTES {
            self.0.drain(..self.0.len() - TAIL_BYTES);
        }
    }

    /// At most the last 2 KiB, starting at a line boundary when cut.
    pub fn text(&self) -> String {
        let mut tail = &self.0[self.0.len().saturating_sub(TAIL_BYTES)..];
        if tail.len() == TAIL_BYTES {
            if let Some(nl) = tail.iter().position(|&b| b == b'\n') {
                tail = &tail[nl + 1..];
            }
        }
        String::from_utf8_lossy(tail).into_owned()
    }
}

pub(crate) fn lock(tail: &Mutex<Tail>) -> std::sync::MutexGuard<'_, Tail> {
    tail.lock().unwrap_or_else(|e| e.into_inner())
}

/// Passes a child's stderr through to ours a whole line at a time, keeping its tail.
pub(crate) async fn pump_stderr(stderr: ChildStderr, progress: &Progress, tail: &Mutex<Tail>) {
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                progress.line(&line);
                lock(tail).push(&line);
            }
        }
    }
}

/// Ends a child's group: SIGTERM, then SIGKILL after `grace` or as soon as the run escalates to
/// [`Stop::Kill`]; returns once the child and its pipes are done.
pub(crate) async fn terminate<F: std::future::Future + Unpin>(
    pid: Option<i32>,
    all: &mut F,
    grace: Duration,
    stop: &mut watch::Receiver<Stop>,
) -> F::Output {
    if *stop.borrow() == Stop::Kill {
        signal_group(pid, libc::SIGKILL);
        return all.await;
    }
    signal_group(pid, libc::SIGTERM);
    tokio::select! {
        done = &mut *all => return done,
        _ = tokio::time::sleep(grace) => {}
        _ = reached(stop, Stop::Kill) => {}
    }
    signal_group(pid, libc::SIGKILL);
    all.await
}

pub(crate) async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Resolves once the shutdown level is at least `level`; never, if the sender is gone.
pub async fn reached(stop: &mut watch::Receiver<Stop>, level: Stop) {
    if stop.wait_for(|s| *s >= level).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Sends `signal` to the process group led by `pid`.
pub(crate) fn signal_group(pid: Option<i32>, signal: i32) {
    if let Some(pid) = pid.filter(|&p| p > 0) {
        // SAFETY: kill(2) takes plain integers and touches no memory of ours. The group may be
        // gone already (ESRCH), which is fine.
        unsafe {
            libc::kill(-pid, signal);
        }
    }
}

/// Kills every process whose environment holds `marker`, with its process group: children
/// spawned too late for the table, and descendants that left their group.
fn kill_marked(marker: &str) {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let marked = std::fs::read(format!("/proc/{pid}/environ"))
            .is_ok_and(|env| env.split(|&b| b == 0).any(|var| var == marker.as_bytes()));
        if marked {
            // SAFETY: kill(2) on integers; a pid that is no group leader makes the first fail.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

/// Raises the soft limit on open files to the hard limit: every running child holds three
/// pipes, and a high `-j` would otherwise fail to spawn with EMFILE at the common 1024.
pub fn raise_open_file_limit() {
    // SAFETY: getrlimit/setrlimit read and write a plain struct on our stack.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// Makes writing past a file-size limit return EFBIG (a clear error) instead of killing
/// pararun with a half-written record. A no-op handler rather than SIG_IGN, because an ignored
/// signal stays ignored in children, while a handled one is reset to default by exec.
pub fn survive_file_size_limit() {
    extern "C" fn ignore(_: libc::c_int) {}
    // SAFETY: the handler is async-signal-safe (it does nothing); sigaction gets a fully
    // initialised struct.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = ignore as extern "C" fn(libc::c_int) as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGXFSZ, &action, std::ptr::null_mut());
    }
}

/// A watchdog process that SIGKILLs the process group of every running child once pararun is
/// gone, however it went (even SIGKILL, even an OOM kill).
///
/// Linux's PR_SET_PDEATHSIG would reach only the direct child, not a shell's own children, and
/// only by giving up the fast posix_spawn path; the watchdog covers whole groups. pararun keeps
/// each slot's group id in a table of shared memory (no system call per child); the watchdog
/// sleeps on a pipe that nobody writes, and when its last write end closes (pararun exited)
/// it kills every group still in the table and exits.
pub struct Watchdog {
    pipe: std::os::fd::OwnedFd,
    table: std::ptr::NonNull<AtomicI32>,
    slots: usize,
    pid: libc::pid_t,
}

// SAFETY: the table is a fixed mapping of atomics, valid until `drop`, and only ever accessed
// through atomic operations, so sharing it between threads is sound.
unsafe impl Send for Watchdog {}
// SAFETY: as above.
unsafe impl Sync for Watchdog {}

impl Watchdog {
    /// Forks the watchdog for `slots` slots. Call it while the process has a single thread
    /// (the watchdog's clean-up after a crash allocates), and before opening files it should
    /// not hold (it closes every descriptor but its pipe anyway).
    pub fn start(slots: usize) -> io::Result<Watchdog> {
        use std::os::fd::FromRawFd;
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
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: pipe2 fills the two-element array on success. O_CLOEXEC keeps the write end
        // out of children, so only pararun's own exit closes it.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the child runs only async-signal-safe calls (see `watch`) and never returns.
        match unsafe { libc::fork() } {
            -1 => Err(io::Error::last_os_error()),
            0 => watch(fds[0], table, len),
            pid => {
                // SAFETY: fds[0] and fds[1] are open descriptors that nothing else owns.
                unsafe {
                    libc::close(fds[0]);
                    Ok(Watchdog {
                        pipe: std::os::fd::OwnedFd::from_raw_fd(fds[1]),
                        table,
                        slots: len,
                        pid,
                    })
                }
            }
        }
    }

    /// The environment variable every child carries, by which the watchdog finds children
    /// that were not in its table yet when pararun died (spawned a moment before), and
    /// descendants that left their group.
    pub fn marker(&self) -> (&'static str, String) {
        (MARKER, self.pid.to_string())
    }

    /// Tells the watchdog the run ended in order (every child reaped): it exits without
    /// killing or searching anything.
    pub fn disarm(&self) {
        use std::os::fd::AsRawFd;
        // SAFETY: writes one byte from a live buffer. A dead watchdog (EPIPE) needs no word.
        unsafe {
            libc::write(self.pipe.as_raw_fd(), b"Q".as_ptr().cast(), 1);
        }
    }

    /// Records that `slot` now runs the group led by `pgid` (0: nothing).
    pub fn set(&self, slot: usize, pgid: i32) {
        assert!(slot < self.slots, "slot {slot} out of range");
        // SAFETY: `slot` is within the mapping, which lives as long as `self`.
        unsafe { (*self.table.as_ptr().add(slot)).store(pgid, AtomicOrdering::Release) };
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

/// The name of the environment variable that marks a run's children.
const MARKER: &str = "PARARUN_WATCHDOG";

/// The watchdog's body: it waits on the pipe with plain system calls; only after pararun died
/// does it search /proc (see [`Watchdog::start`] on threads).
fn watch(pipe: libc::c_int, table: std::ptr::NonNull<AtomicI32>, len: usize) -> ! {
    // SAFETY: plain system calls on integers and a stack buffer; the table is mapped for `len`
    // atomics in this process too.
    unsafe {
        for fd in 0..4096 {
            if fd != pipe {
                libc::close(fd);
            }
        }
        // Ctrl-C and SIGTERM are pararun's to handle; the watchdog must outlive its shutdown.
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
            libc::signal(sig, libc::SIG_IGN);
        }
        let mut byte = 0u8;
        let mut disarmed = false;
        loop {
            let n = libc::read(pipe, (&mut byte as *mut u8).cast(), 1);
            if n < 0 && *libc::__errno_location() == libc::EINTR {
                continue;
            }
            if n <= 0 {
                break;
            }
            disarmed |= byte == b'Q';
        }
        if !disarmed {
            for slot in 0..len {
                let pgid = (*table.as_ptr().add(slot)).load(AtomicOrdering::Acquire);
                if pgid > 0 {
                    libc::kill(-pgid, libc::SIGKILL);
                }
            }
            kill_marked(&format!("{MARKER}={}", libc::getpid()));
        }
        libc::_exit(0)
    }
}
