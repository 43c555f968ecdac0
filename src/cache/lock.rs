//! The cache's lock: an exclusive `flock` held for the whole run, taken at once or, with
//! `--lock-wait`, within a bounded wait, as `flock -n` and `flock -w` take theirs.

use std::fmt;
use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// Another run holds the cache's lock (for the whole of `waited`, if that is not zero). The one
/// setup error a caller branches on: `--conflict-exit-code` decides what it exits with.
#[derive(Debug)]
pub struct Busy {
    /// The cache.
    pub path: PathBuf,
    /// How long this run waited for the lock (`--lock-wait`).
    pub waited: Duration,
}

impl fmt::Display for Busy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cache {} is in use by another pararun (it holds the file's lock)",
            self.path.display()
        )?;
        if !self.waited.is_zero() {
            write!(
                f,
                " after waiting {} (--lock-wait)",
                crate::base::text::human_duration(self.waited)
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for Busy {}

/// The first pause between two tries; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(10);

/// The longest pause between two tries: how late at most a run notices that the lock is free.
const MAX_PAUSE: Duration = Duration::from_millis(250);

/// How long a run waits for another to let go of the cache (`--lock-wait`), what it says
/// when it starts waiting, and how it sleeps between tries (an error ends the wait).
pub struct Wait<N, P> {
    /// The longest wait; zero tries once.
    pub limit: Duration,
    /// Called once, before the first pause.
    pub note: N,
    /// Sleeps between two tries.
    pub pause: P,
}

/// How often, and how long, a run waits for a `status` that only glanced at the lock.
const GLANCES: u32 = 50;
const GLANCE: Duration = Duration::from_millis(2);

/// Whether the lock's holder only shares it: a run holds it exclusively, `status` shares it
/// for an instant. The shared lock taken to find out is given back at once.
fn only_glanced_at(file: &File) -> bool {
    let shared = file.try_lock_shared().is_ok();
    if shared {
        let _ = file.unlock();
    }
    shared
}

/// Takes the exclusive lock on `file`, trying again for up to `wait`; `waiting` is called once,
/// before the first pause, and `pause` sleeps between two tries. Fails with [`Busy`] when the
/// lock is still held at the end, or with `pause`'s error (a signal ends the wait at once).
///
/// A blocking `flock` could not be given a deadline without a signal (flock(1) uses SIGALRM),
/// nor be interrupted by Ctrl-C (the handlers are tokio's, which restart it); tries a few times
/// a second cost nothing by comparison, and a run that gives up leaves nothing behind.
pub fn lock(
    file: &File,
    path: &Path,
    wait: Duration,
    waiting: impl FnOnce(),
    mut pause: impl FnMut(Duration) -> Result<()>,
) -> Result<()> {
    let start = Instant::now();
    let mut waiting = Some(waiting);
    let mut gap = FIRST_PAUSE;
    let mut glances = 0;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(()),
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock cache {}", path.display()))
            }
            Err(TryLockError::WouldBlock) => {}
        }
        let left = wait.saturating_sub(start.elapsed());
        if left.is_zero() && glances < GLANCES && only_glanced_at(file) {
            // `pararun status` holds a shared lock for an instant to see whether a run holds
            // this one (on a filesystem where /proc/locks cannot tell); that is no run.
            glances += 1;
            pause(GLANCE)?;
            continue;
        }
        if left.is_zero() {
            return Err(Busy {
                path: path.to_owned(),
                waited: wait,
            }
            .into());
        }
        if let Some(note) = waiting.take() {
            note();
        }
        pause(gap.min(left))?;
        gap = (gap * 2).min(MAX_PAUSE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_is_busy_within_the_wait() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.jsonl");
        let holder = File::create(&path).unwrap();
        holder.lock().unwrap();
        let other = File::open(&path).unwrap();
        let mut noted = 0;
        let started = Instant::now();
        let err = lock(
            &other,
            &path,
            Duration::from_millis(100),
            || noted += 1,
            sleep,
        )
        .unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(100));
        assert_eq!(noted, 1);
        let busy = err.downcast_ref::<Busy>().expect("a Busy error");
        assert!(
            busy.to_string()
                .ends_with("after waiting 100ms (--lock-wait)"),
            "{busy}"
        );
        // At once, without a wait: no note, and the message says nothing of waiting.
        let err = lock(&other, &path, Duration::ZERO, || panic!("no wait"), sleep).unwrap_err();
        assert!(
            err.to_string().ends_with("(it holds the file's lock)"),
            "{err}"
        );
        drop(holder);
        lock(&other, &path, Duration::ZERO, || {}, sleep).unwrap();
    }

    fn sleep(gap: Duration) -> Result<()> {
        std::thread::sleep(gap);
        Ok(())
    }

    #[test]
    fn an_error_from_the_pause_ends_the_wait_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.jsonl");
        let holder = File::create(&path).unwrap();
        holder.lock().unwrap();
        let other = File::open(&path).unwrap();
        let started = Instant::now();
        let stop = |_| Err(anyhow::anyhow!("a signal"));
        let err = lock(&other, &path, Duration::from_secs(60), || {}, stop).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(err.to_string(), "a signal");
    }
}
