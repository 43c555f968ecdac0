//! Process-wide settings made once at the start of a run.

/// Raises the soft limit on open files to the hard limit: every running child holds three
/// pipes and a pidfd, and a high `-j` would otherwise fail to spawn with EMFILE at the common
/// 1024.
pub fn raise_open_file_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let limit = getrlimit(Resource::Nofile);
    // No hard limit: the kernel's own ceiling (fs.nr_open) is 1,048,576 by default.
    let target = limit.maximum.unwrap_or(1 << 20);
    if limit.current.is_some_and(|current| current < target) {
        let raised = rustix::process::Rlimit {
            current: Some(target),
            maximum: limit.maximum,
        };
        // Staying at the old limit is not an error: -j is then fitted to it (`app/limits.rs`).
        let _ = setrlimit(Resource::Nofile, raised);
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

/// The descriptors pararun holds for each running child: the parent's ends of its stdout and
/// stderr pipes, of its stdin pipe (`--stdin`, a worker), and its pidfd.
pub const DESCRIPTORS_PER_CHILD: u64 = 4;

/// The open-file limit now (the soft one, which is the one enforced), if there is one.
pub fn open_file_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

/// What went wrong and what to do when pararun ran out of descriptors (EMFILE) starting a
/// child, naming the limit.
pub fn out_of_descriptors() -> String {
    let limit = open_file_limit().map_or_else(|| "none".to_owned(), |n| n.to_string());
    format!(
        "pararun is out of file descriptors (open-file limit {limit}, `ulimit -n`; each running \
         child holds {DESCRIPTORS_PER_CHILD}): lower -j, or raise the hard limit (`ulimit -Hn`, \
         LimitNOFILE= in a systemd unit, nofile in /etc/security/limits.conf)"
    )
}
