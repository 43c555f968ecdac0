//! Spawning from a small descriptor table, for runs with many children at once.
//!
//! Every spawn copies the spawning thread's descriptor table into the child (the kernel's
//! `dup_fd`, a reference taken on each open file), and exec then closes each close-on-exec
//! copy: a cost per descriptor open in pararun. At `-j 1000` pararun holds some 4,000 (each
//! running child's pipes and pidfd), which made each spawn from the scheduler's thread cost
//! about a millisecond and capped starts well below a thousand a second.
//!
//! The spawner is a thread with a descriptor table of its own (`unshare(CLONE_FILES)`), in
//! which it closes everything but the standard streams and its socket: it spawns each child
//! from that nearly empty table and passes the parent's ends of the child's pipes to the
//! scheduler's table over a Unix socket (`SCM_RIGHTS`). The children are still pararun's own:
//! the same process reaps them, through [`super::group::Group`].

use std::collections::HashMap;
use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};
use rustix::process::Pid;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::oneshot;

/// From this many jobs at once, per-item children are spawned by the spawner thread: below
/// it the descriptor table is small and the hand-off would cost more than it saves.
pub const SPAWNER_FROM_JOBS: usize = 64;

/// The scheduler's handle on the spawner thread.
///
/// Replies come back on the socket, not through a channel: waking a task from the spawner's
/// thread would make tokio write to its own wake-up descriptor by number, and that number
/// means nothing (or another file) in the spawner's table.
pub struct Spawner {
    orders: mpsc::Sender<Order>,
    /// The spawns waiting for their reply, by id, which the task reading the socket hands
    /// out.
    waiting: Arc<Mutex<Waiting>>,
    next_id: AtomicU64,
    replies: tokio::task::JoinHandle<()>,
}

/// The spawns waiting for their reply; `None` once the replies can no longer be read, so that a
/// spawn asked for after that fails at once instead of waiting for a reply that never comes.
type Waiting = Option<HashMap<u64, oneshot::Sender<io::Result<Spawned>>>>;

impl Drop for Spawner {
    fn drop(&mut self) {
        self.replies.abort();
    }
}

/// One child to spawn.
struct Order {
    id: u64,
    argv: Vec<String>,
    env: Vec<(&'static str, String)>,
    pipe_stdin: bool,
}

/// A child the spawner started: its pid and our ends of its pipes.
pub struct Spawned {
    /// The child, which leads a process group of its own.
    pub pid: Pid,
    /// Its stdin's write end, when it reads the item from stdin.
    pub stdin: Option<OwnedFd>,
    /// Its stdout's read end.
    pub stdout: OwnedFd,
    /// Its stderr's read end.
    pub stderr: OwnedFd,
}

impl Spawner {
    /// Starts the thread; call it within the runtime. An `Err` (no `unshare` under a seccomp
    /// filter, say) means children are spawned directly instead.
    pub fn start() -> io::Result<Spawner> {
        let (ours, theirs) = rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
            None,
        )?;
        let (orders, inbox) = mpsc::channel();
        let (ready_tx, ready) = mpsc::channel();
        let raw = theirs.as_raw_fd();
        std::thread::Builder::new()
            .name("pararun-spawn".into())
            .spawn(move || {
                let table = own_table(raw);
                let failed =
                    (table.as_ref().err()).map(|e| io::Error::new(e.kind(), e.to_string()));
                let _ = ready_tx.send(failed);
                if let Ok(socket) = table {
                    serve(&socket, &inbox);
                }
            })?;
        let started = (ready.recv()).map_err(|_| io::Error::other("the spawner thread died"))?;
        // The thread has its own copy of `theirs` now (or failed): ours goes.
        drop(theirs);
        if let Some(e) = started {
            return Err(e);
        }
        // SAFETY: an OwnedFd is a valid open descriptor that keeps naming the same socket until
        // the AsyncFd that owns it is dropped.
        let socket = unsafe { AsyncFd::register_with_interest(ours, Interest::READABLE) }?;
        let waiting = Arc::new(Mutex::new(Some(HashMap::new())));
        Ok(Spawner {
            orders,
            replies: tokio::spawn(hand_out(socket, waiting.clone())),
            waiting,
            next_id: AtomicU64::new(0),
        })
    }

    /// Spawns `argv` in a process group of its own, stdout and stderr piped, stdin piped or
    /// /dev/null.
    pub async fn spawn(
        &self,
        argv: &[String],
        env: &[(&'static str, String)],
        pipe_stdin: bool,
    ) -> io::Result<Spawned> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (reply, replied) = oneshot::channel();
        let gone = || io::Error::other("the spawner thread is gone");
        match lock(&self.waiting).as_mut() {
            Some(waiting) => waiting.insert(id, reply),
            None => return Err(gone()),
        };
        let order = Order {
            id,
            argv: argv.to_vec(),
            env: env.to_vec(),
            pipe_stdin,
        };
        if self.orders.send(order).is_err() {
            lock(&self.waiting).as_mut().map(|w| w.remove(&id));
            return Err(gone());
        }
        replied.await.unwrap_or_else(|_| Err(gone()))
    }
}

/// Reads the spawner thread's replies as they come and hands each to its spawn. Ends only when
/// the socket fails (the thread is gone); the spawns still waiting then fail, and so does every
/// later one. A reply whose pipes could not be received (no descriptor free here) fails that
/// spawn alone.
async fn hand_out(socket: AsyncFd<OwnedFd>, waiting: Arc<Mutex<Waiting>>) {
    loop {
        let Ok(mut guard) = socket.readable().await else {
            break;
        };
        match guard.try_io(|socket| receive(socket.get_ref())) {
            Ok(Ok((id, spawned))) => {
                let reply = lock(&waiting).as_mut().and_then(|w| w.remove(&id));
                let unclaimed = match reply {
                    Some(reply) => reply.send(spawned).err(),
                    None => Some(spawned),
                };
                // Its spawn was given up (the task cancelled): the child must not outlive that
                // unreaped, so it goes, reaped by its group in the background.
                if let Some(Ok(orphan)) = unclaimed {
                    drop(super::group::Group::of_raw(orphan.pid, None));
                }
            }
            Ok(Err(_)) => break,
            Err(_would_block) => {}
        }
    }
    // Dropping the senders fails the spawns waiting; `None` fails those asked for later.
    lock(&waiting).take();
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Gives the calling thread a descriptor table of its own, holding only the standard streams
/// and the socket `raw` (which it returns, owned in the new table).
fn own_table(raw: i32) -> io::Result<OwnedFd> {
    // SAFETY: from here on this thread uses only descriptors it opens itself, the standard
    // streams (never closed by pararun) and the socket, whose number is the same in the copy
    // of the table it gets. It hands descriptors to other threads only through SCM_RIGHTS,
    // which installs them in the receiver's table. No descriptor of another thread's is used
    // here, so none is observed through the wrong table.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::FILES)? };
    // SAFETY: `raw` is the socket, open in the copied table and owned by nothing here.
    let socket = unsafe { OwnedFd::from_raw_fd(raw) };
    // The other copies go, so that this table stays small and holds no pipe end whose close
    // another thread relies on (an EOF). close_range takes plain integers; no object of this
    // thread owns those descriptors.
    let raw = raw as u32;
    // SAFETY: see above; a failure (ENOSYS before Linux 5.9) only leaves the copies open.
    unsafe {
        if raw > 3 {
            libc::syscall(libc::SYS_close_range, 3u32, raw - 1, 0u32);
        }
        libc::syscall(libc::SYS_close_range, raw + 1, u32::MAX, 0u32);
    }
    Ok(socket)
}

/// The thread's loop: spawns each order and sends its outcome (its pid and pipes, or the
/// error) back over the socket.
fn serve(socket: &OwnedFd, inbox: &mpsc::Receiver<Order>) {
    let null = std::fs::File::open("/dev/null").ok();
    for order in inbox {
        let spawned = spawn_one(&order, null.as_ref());
        let sent = send(
            socket,
            order.id,
            spawned.as_ref().map(|(pid, fds)| (*pid, &fds[..])),
        );
        if let (Err(_), Ok((pid, _))) = (sent, &spawned) {
            // The reply is lost (the run is being torn down): the child goes, reaped here.
            let _ = rustix::process::kill_process_group(*pid, rustix::process::Signal::KILL);
            let _ = rustix::process::waitpid(Some(*pid), rustix::process::WaitOptions::empty());
        }
        // Our copies of the pipes close here; the scheduler's table has its own.
    }
}

/// Spawns one child; returns its pid and our ends of its stdout, stderr and (maybe) stdin.
fn spawn_one(order: &Order, null: Option<&std::fs::File>) -> io::Result<(Pid, Vec<OwnedFd>)> {
    let mut cmd = Command::new(&order.argv[0]);
    cmd.args(&order.argv[1..])
        .envs(order.env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if order.pipe_stdin {
        cmd.stdin(Stdio::piped());
    } else {
        match null.map(std::fs::File::try_clone) {
            Some(Ok(null)) => cmd.stdin(null),
            _ => cmd.stdin(Stdio::null()),
        };
    }
    let mut child = cmd.spawn()?;
    let pid = Pid::from_raw(child.id() as i32).ok_or_else(|| io::Error::other("pid 0"))?;
    let mut fds: Vec<OwnedFd> = Vec::with_capacity(3);
    fds.extend(child.stdout.take().map(OwnedFd::from));
    fds.extend(child.stderr.take().map(OwnedFd::from));
    fds.extend(child.stdin.take().map(OwnedFd::from));
    // Dropping a std Child neither waits for nor kills it: the scheduler reaps it.
    Ok((pid, fds))
}

/// Sends spawn `id`'s outcome over the socket: the pid with the pipes, or the error's errno
/// (negated).
fn send(
    socket: &OwnedFd,
    id: u64,
    spawned: Result<(Pid, &[OwnedFd]), &io::Error>,
) -> io::Result<()> {
    use std::os::fd::AsFd;
    let (code, fds) = match spawned {
        Ok((pid, fds)) => (pid.as_raw_nonzero().get(), fds),
        Err(e) => (-e.raw_os_error().unwrap_or(libc::EIO), &[][..]),
    };
    let borrowed: Vec<_> = fds.iter().map(AsFd::as_fd).collect();
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(3))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !borrowed.is_empty() && !control.push(SendAncillaryMessage::ScmRights(&borrowed)) {
        return Err(io::Error::other("too many pipes for one message"));
    }
    let mut bytes = [0u8; 12];
    bytes[..8].copy_from_slice(&id.to_le_bytes());
    bytes[8..].copy_from_slice(&code.to_le_bytes());
    // The socket is non-blocking in the scheduler's table only (O_NONBLOCK is on the open
    // file, shared): a full socket buffer waits here, briefly, for the scheduler to read.
    loop {
        match rustix::net::sendmsg(
            socket,
            &[IoSlice::new(&bytes)],
            &mut control,
            SendFlags::empty(),
        ) {
            Err(rustix::io::Errno::AGAIN) => {
                std::thread::sleep(std::time::Duration::from_millis(1))
            }
            Err(e) => return Err(e.into()),
            Ok(_) => return Ok(()),
        }
    }
}

/// Receives one spawn's outcome: its id, and its pid and pipes (now in this thread's table)
/// or its error.
fn receive(socket: &OwnedFd) -> io::Result<(u64, io::Result<Spawned>)> {
    let mut bytes = [0u8; 12];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(3))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let got = rustix::net::recvmsg(
        socket,
        &mut [IoSliceMut::new(&mut bytes)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    if got.bytes != bytes.len() {
        return Err(io::Error::other("a short message from the spawner thread"));
    }
    let truncated = got.flags.contains(rustix::net::ReturnFlags::CTRUNC);
    let mut fds = Vec::with_capacity(3);
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(rights) = message {
            fds.extend(rights);
        }
    }
    let id = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
    let code = i32::from_le_bytes(bytes[8..].try_into().expect("4 bytes"));
    let Some(pid) = Pid::from_raw(code).filter(|_| code > 0) else {
        return Ok((id, Err(io::Error::from_raw_os_error(-code))));
    };
    let mut fds = fds.into_iter();
    let (Some(stdout), Some(stderr), false) = (fds.next(), fds.next(), truncated) else {
        // The kernel could not install the pipes here (EMFILE: this table is full, though the
        // spawner's own had room) and closed them: the child runs with nobody at the other end.
        // It goes, reaped by its group in the background; this spawn fails, the next may not.
        drop(super::group::Group::of_raw(pid, None));
        return Ok((id, Err(io::Error::from_raw_os_error(libc::EMFILE))));
    };
    let stdin = fds.next();
    Ok((
        id,
        Ok(Spawned {
            pid,
            stdin,
            stdout,
            stderr,
        }),
    ))
}
