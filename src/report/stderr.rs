//! Stderr when there is no bar (a log, a pipe): written by a thread of its own, so that a
//! stderr nobody reads (`2>&1 | less`, a stalled log pipe) never blocks the scheduler, and with
//! it timeouts and signals. Children's stderr waits (asynchronously) while more than [`CAP`]
//! bytes are queued, so a slow reader slows the children down, as a terminal would; pararun's
//! own lines never wait, and only past [`HARD_CAP`] are they dropped and counted, with the
//! count written as soon as stderr takes bytes again.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// Past this many bytes waiting, children's stderr waits for room.
pub(super) const CAP: usize = 1 << 20;

/// Past this many bytes waiting, pararun's own lines are dropped (stderr is stuck).
const HARD_CAP: usize = 16 << 20;

/// The handle the display writes through.
pub(super) struct Sink {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    /// Signalled when there is something to write.
    ready: Condvar,
    /// Signalled after each write.
    wrote: Condvar,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Vec<u8>>,
    bytes: usize,
    dropped: u64,
    /// A write is under way (its bytes are out of the queue but not yet written).
    writing: bool,
    /// Writes done so far, to tell a slow stderr from a stuck one.
    written: u64,
}

impl Sink {
    /// Starts the writer thread; `None` if it cannot start (then stderr is written in place).
    pub(super) fn start() -> Option<Sink> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            ready: Condvar::new(),
            wrote: Condvar::new(),
        });
        let theirs = shared.clone();
        std::thread::Builder::new()
            .name("pararun-stderr".into())
            .spawn(move || write_out(&theirs))
            .ok()?;
        Some(Sink { shared })
    }

    /// Queues bytes for stderr, or drops (and counts) them when too many wait already.
    pub(super) fn write(&self, bytes: Vec<u8>) {
        let mut state = lock(&self.shared.state);
        if state.bytes + bytes.len() > HARD_CAP && state.bytes > 0 {
            state.dropped += 1;
            return;
        }
        state.bytes += bytes.len();
        state.queue.push_back(bytes);
        self.shared.ready.notify_one();
    }

    /// How many bytes wait for stderr.
    pub(super) fn backlog(&self) -> usize {
        lock(&self.shared.state).bytes
    }

    /// Waits until everything queued is written, giving up once stderr takes nothing for
    /// `stuck` (nobody reads it: the run must still end).
    pub(super) fn flush(&self, stuck: Duration) {
        let mut state = lock(&self.shared.state);
        while !state.queue.is_empty() || state.writing {
            let before = state.written;
            let (next, timeout) = self
                .shared
                .wrote
                .wait_timeout(state, stuck)
                .unwrap_or_else(|e| e.into_inner());
            state = next;
            if timeout.timed_out() && state.written == before {
                return;
            }
        }
    }
}

impl Drop for Sink {
    /// The display is gone (the run ended, or setup failed): what it queued goes out first,
    /// unless stderr is stuck.
    fn drop(&mut self) {
        self.flush(Duration::from_secs(2));
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// The thread: writes what is queued, in order, and says how many lines were dropped.
fn write_out(shared: &Shared) {
    let mut stderr = std::io::stderr();
    loop {
        let (bytes, dropped) = {
            let mut state = lock(&shared.state);
            while state.queue.is_empty() {
                state = shared.ready.wait(state).unwrap_or_else(|e| e.into_inner());
            }
            let bytes = state.queue.pop_front().expect("not empty");
            state.bytes -= bytes.len();
            state.writing = true;
            (bytes, std::mem::take(&mut state.dropped))
        };
        if dropped > 0 {
            let note = format!(
                "pararun: {dropped} lines for stderr were dropped: stderr was not being read\n"
            );
            let _ = stderr.write_all(note.as_bytes());
        }
        // A closed stderr must not stop the run; there is nowhere left to report it.
        let _ = stderr.write_all(&bytes);
        let mut state = lock(&shared.state);
        state.writing = false;
        state.written += 1;
        shared.wrote.notify_all();
    }
}
