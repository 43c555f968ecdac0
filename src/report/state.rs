//! The run's state file, `CACHE.state`: a small JSON object that the running pararun replaces
//! about once a second, and marks finished at the end, so that `pararun status` in another
//! terminal, or on another node of a shared filesystem, can tell how far the run is without a
//! daemon or a socket.
//!
//! Whether a run is going on is never taken from this file: it is the cache's lock (a run
//! killed with `kill -9` leaves `"finished": false` here, and its lock free). The file only
//! adds what the lock cannot say: the pid and host, the start, the rate and `-j`.
//!
//! One thread owns the file. Each version is written to a temporary file beside it and renamed
//! over it, so a reader sees a whole version, old or new, never a torn one.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::stats::Stats;

/// How often the file is replaced.
pub const EVERY: Duration = Duration::from_secs(1);

/// The window of the rate: the items settled over the last minute.
const WINDOW: Duration = Duration::from_secs(60);

/// The state file of the cache at `cache`: its path with `.state` added. Give the cache's
/// canonical path, so that every name of the cache (a symlink, `./`) finds the same file.
pub fn path_for(cache: &Path) -> PathBuf {
    let mut name = cache.as_os_str().to_owned();
    name.push(".state");
    PathBuf::from(name)
}

/// Who holds the cache, as its state file says: `pid 4242 on node7, started …`; `None` when
/// the file is missing, unreadable or from a run that finished (the holder has not written
/// its own yet).
pub fn holder(cache: &Path) -> Option<String> {
    let cache = std::fs::canonicalize(cache).ok()?;
    let path = path_for(&cache);
    let mut file =
        crate::files::open_regular(&path, std::fs::OpenOptions::new().read(true)).ok()?;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut file, &mut bytes).ok()?;
    let state: Value = serde_json::from_slice(&bytes).ok()?;
    if state["finished"] != Value::Bool(false) {
        return None;
    }
    Some(format!(
        "pid {} on {}, started {}",
        state["pid"],
        state["host"].as_str()?,
        state["started"].as_str()?
    ))
}

/// What a run says about itself once, at the start.
#[derive(Debug, Clone)]
pub struct RunFacts {
    /// `-j`.
    pub jobs: usize,
    /// The input's name (`-` for stdin).
    pub input: String,
    /// `--key-field`.
    pub key_field: String,
    /// `--shard I/N`, as written.
    pub shard: Option<String>,
    /// `--failures`.
    pub failures: Option<PathBuf>,
    /// `--give-up-after`.
    pub give_up_after: Option<u32>,
    /// `--format`: `auto`, `jsonl` or `lines`.
    pub format: &'static str,
    /// The job's input file: this run's, or, for a run on stdin, the one the last state file
    /// named (set when the state file starts).
    pub job_input: Option<String>,
}

/// The thread that keeps the state file; [`StateFile::finish`] writes the last version.
pub struct StateFile {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// What the run tells the thread: stop, and with which exit code (none: the run did not end
/// by itself, so the file stays unfinished).
#[derive(Default)]
struct Control {
    stop: bool,
    exit_code: Option<u8>,
}

struct Shared {
    control: Mutex<Control>,
    wake: Condvar,
}

impl StateFile {
    /// Starts keeping the state file of `cache`. A state file that cannot be written is not
    /// worth failing a run for: the thread stops trying after the first error, which `status`
    /// then sees as a stale file.
    pub fn start(cache: &Path, facts: RunFacts, stats: Arc<Stats>) -> StateFile {
        let cache = std::fs::canonicalize(cache).unwrap_or_else(|_| cache.to_owned());
        let shared = Arc::new(Shared {
            control: Mutex::new(Control::default()),
            wake: Condvar::new(),
        });
        let mut keeper = Keeper::new(path_for(&cache), facts, stats);
        let inner = shared.clone();
        let thread = std::thread::Builder::new()
            .name("pararun-state".into())
            .spawn(move || keeper.run(&inner))
            .ok();
        StateFile { shared, thread }
    }

    /// Writes the last version, marked finished with the run's exit code.
    pub fn finish(mut self, exit_code: u8) {
        self.stop(Some(exit_code));
    }

    fn stop(&mut self, exit_code: Option<u8>) {
        {
            let mut control = self
                .shared
                .control
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            control.stop = true;
            control.exit_code = exit_code;
        }
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for StateFile {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.stop(None);
        }
    }
}

/// The thread's side: the facts, the counters and the samples of the rate.
struct Keeper {
    path: PathBuf,
    facts: RunFacts,
    stats: Arc<Stats>,
    started: Instant,
    started_text: String,
    started_unix: f64,
    samples: std::collections::VecDeque<(Instant, u64)>,
    broken: bool,
}

impl Keeper {
    fn new(path: PathBuf, mut facts: RunFacts, stats: Arc<Stats>) -> Keeper {
        // The job's input outlives a run that read stdin (`failures --items | pararun ...`):
        // `status` counts what remains against it.
        if facts.input == "-" {
            facts.job_input = previous_job_input(&path);
        } else {
            facts.job_input = Some(facts.input.clone());
        }
        Keeper {
            path,
            facts,
            stats,
            started: Instant::now(),
            started_text: super::clock::now(),
            started_unix: unix_now(),
            samples: Default::default(),
            broken: false,
        }
    }

    fn run(&mut self, shared: &Shared) {
        let mut control = shared.control.lock().unwrap_or_else(|e| e.into_inner());
        while !control.stop {
            drop(control);
            self.write(None);
            control = shared.control.lock().unwrap_or_else(|e| e.into_inner());
            if control.stop {
                break;
            }
            control = shared
                .wake
                .wait_timeout(control, EVERY)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let exit_code = control.exit_code;
        drop(control);
        if exit_code.is_some() {
            self.write(exit_code);
        }
    }

    /// Items per second over the last minute (since the start, in the first minute).
    fn rate(&mut self, settled: u64) -> f64 {
        let now = Instant::now();
        self.samples.push_back((now, settled));
        while self
            .samples
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > WINDOW)
        {
            self.samples.pop_front();
        }
        let (since, from) = match self.samples.front() {
            Some(&(at, n)) if self.samples.len() > 1 => (at, n),
            _ => (self.started, 0),
        };
        let secs = now.duration_since(since).as_secs_f64();
        match secs > 0.0 {
            true => settled.saturating_sub(from) as f64 / secs,
            false => 0.0,
        }
    }

    fn write(&mut self, exit_code: Option<u8>) {
        if self.broken {
            return;
        }
        let get = |c: &std::sync::atomic::AtomicU64| Stats::get(c);
        let s = self.stats.clone();
        let (succeeded, failed) = (get(&s.succeeded), get(&s.failed));
        let in_flight = get(&s.ran)
            .saturating_sub(succeeded + failed)
            .saturating_sub(get(&s.unfinished));
        let rate = self.rate(succeeded + failed);
        let finished = exit_code.is_some();
        let state = json!({
            "pararun_state": 1,
            "pid": std::process::id(),
            "host": hostname(),
            "started": self.started_text,
            "started_unix": self.started_unix,
            "updated_unix": unix_now(),
            "jobs": self.facts.jobs,
            "limit": Value::Null,
            "input": self.facts.input,
            "job_input": self.facts.job_input,
            "key_field": self.facts.key_field,
            "shard": self.facts.shard,
            "failures": self.facts.failures.as_ref().map(|p| p.display().to_string()),
            "give_up_after": self.facts.give_up_after,
            "format": self.facts.format,
            "succeeded": succeeded,
            "failed": failed,
            "cached": get(&s.cached),
            "given_up": get(&s.given_up),
            "retries": get(&s.retries),
            "in_flight": if finished { 0 } else { in_flight },
            "rate_per_s": (rate * 1000.0).round() / 1000.0,
            "finished": finished,
            "exit_code": exit_code,
        });
        if self.replace(state.to_string().as_bytes()).is_err() {
            self.broken = true;
        }
    }

    /// Writes `bytes` beside the file and renames it over the file: a reader sees a whole
    /// version, old or new.
    fn replace(&self, bytes: &[u8]) -> std::io::Result<()> {
        let mut tmp = self.path.as_os_str().to_owned();
        tmp.push(format!(".{}.tmp", std::process::id()));
        let tmp = PathBuf::from(tmp);
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.write_all(b"\n")?;
        drop(file);
        std::fs::rename(&tmp, &self.path).inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
    }
}

/// The job's input file named by the state file at `path`, if any.
fn previous_job_input(path: &Path) -> Option<String> {
    let mut file = crate::files::open_regular(path, std::fs::OpenOptions::new().read(true)).ok()?;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(&mut file, 1 << 20), &mut bytes).ok()?;
    let state: Value = serde_json::from_slice(&bytes).ok()?;
    let input = state
        .get("job_input")
        .or_else(|| state.get("input"))?
        .as_str()?;
    (input != "-").then(|| input.to_owned())
}

/// This machine's name, as `uname -n` prints it.
pub fn hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| (d.as_secs_f64() * 1000.0).round() / 1000.0)
}
