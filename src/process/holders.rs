//! Finding the processes that hold one of a child's pipes, whatever their group or
//! environment: the last resort against a descendant that left the child's group and cleared
//! its environment (`env -i setsid daemon &`), which no marker finds, but which still holds
//! the item's pipe and would otherwise outlive it.

use std::os::fd::AsFd;

use rustix::process::{Pid, PidfdFlags, Signal};

/// The inode of a pipe, by which `/proc/PID/fd/*` names it (`pipe:[INODE]`).
pub fn pipe_inode(fd: impl AsFd) -> Option<u64> {
    let stat = rustix::fs::fstat(fd).ok()?;
    let is_fifo = rustix::fs::FileType::from_raw_mode(stat.st_mode) == rustix::fs::FileType::Fifo;
    is_fifo.then_some(stat.st_ino)
}

/// Kills (SIGKILL, through a pidfd) every other process holding one of the pipes `inodes`.
/// Returns how many. Reads all of `/proc`, so it is for the rare path only.
pub fn kill_holders(inodes: &[u64]) -> usize {
    if inodes.is_empty() {
        return 0;
    }
    let names: Vec<String> = inodes.iter().map(|i| format!("pipe:[{i}]")).collect();
    let me = std::process::id();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut killed = 0;
    for entry in procs.flatten() {
        let Some(raw) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Some(pid) = Pid::from_raw(raw).filter(|_| raw as u32 != me) else {
            continue;
        };
        // pararun's own children are never the escaped holder: those left their child's
        // group, so their parent is the child or init. And one that is being spawned holds a
        // copy of all of pararun's descriptors, this pipe among them, until its exec closes
        // them: killing it there would fail another slot's new worker.
        if parent_of(raw) == Some(me) {
            continue;
        }
        // The pidfd first: if the pid is recycled after the check, the signal fails instead of
        // reaching a stranger.
        let Ok(pidfd) = rustix::process::pidfd_open(pid, PidfdFlags::empty()) else {
            continue;
        };
        if holds_any(raw, &names)
            && rustix::process::pidfd_send_signal(&pidfd, Signal::KILL).is_ok()
        {
            killed += 1;
        }
    }
    killed
}

/// A process's parent, from `/proc/PID/stat` (after the command name, which may hold
/// anything: the fields start after its last `)`).
fn parent_of(pid: i32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')')
        .next()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn holds_any(pid: i32, names: &[String]) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .is_ok_and(|target| names.iter().any(|n| target.as_os_str() == n.as_str()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    #[test]
    fn kills_whoever_holds_the_pipe() {
        // The holder is a grandchild that outlived its parent, as an escaped daemon does (a
        // direct child of ours is never taken for one).
        let mut child = Command::new("sh")
            .args(["-c", "sleep 30 &"])
            .env_clear()
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = child.stdout.take().unwrap();
        assert!(child.wait().unwrap().success());
        let inode = pipe_inode(&out).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while kill_holders(&[inode]) == 0 {
            assert!(std::time::Instant::now() < deadline, "never found");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        // With its last holder gone, the pipe ends.
        let mut rest = Vec::new();
        std::io::Read::read_to_end(&mut out, &mut rest).unwrap();
        assert!(rest.is_empty());
    }

    #[test]
    fn spares_our_own_children() {
        let mut child = Command::new("sleep")
            .arg("30")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let inode = pipe_inode(child.stdout.as_ref().unwrap()).unwrap();
        assert_eq!(kill_holders(&[inode]), 0);
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
