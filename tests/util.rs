//! The test environment: a temp dir, the real binary, and failure messages that are bug reports.

use std::fmt::Write as _;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_pararun");

/// A temp dir in which the binary runs.
pub struct TestEnv {
    dir: tempfile::TempDir,
}

impl TestEnv {
    pub fn new() -> TestEnv {
        TestEnv {
            dir: tempfile::Builder::new()
                .prefix("pararun-test-")
                .tempdir()
                .unwrap(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, content).unwrap();
        path
    }

    /// Writes an executable `sh` script and returns its path as a string.
    pub fn script(&self, name: &str, body: &str) -> String {
        let path = self.write(name, format!("#!/bin/sh\n{body}\n"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path.to_str().unwrap().to_owned()
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }

    /// The JSON lines of a file; panics on a line that is not JSON.
    pub fn json_lines(&self, name: &str) -> Vec<Value> {
        parse_lines(&self.read(name), name)
    }

    pub fn cmd(&self) -> Cmd {
        self.cmd_under(&[])
    }

    /// The binary run by a wrapper: `wrapper` then pararun's path then the args (e.g.
    /// `sh -c 'ulimit -n 48; exec "$0" "$@"'`, for limits that must hold from its start).
    pub fn cmd_under(&self, wrapper: &[&str]) -> Cmd {
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(BIN);
                command
            }
            None => Command::new(BIN),
        };
        command
            .current_dir(self.dir.path())
            .env_remove("NO_COLOR")
            .env_remove("PARARUN_KEY")
            .env_remove("PARARUN_SEQ")
            .env_remove("PARARUN_SLOT")
            .env_remove("PARARUN_ATTEMPT");
        Cmd {
            command,
            stdin: None,
            stdin_stdio: None,
            dir: self.dir.path().to_owned(),
        }
    }
}

pub fn parse_lines(text: &str, what: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {l:?}\n{text}"))
        })
        .collect()
}

/// One invocation of the binary.
pub struct Cmd {
    pub command: Command,
    stdin: Option<Vec<u8>>,
    stdin_stdio: Option<Stdio>,
    dir: PathBuf,
}

impl Cmd {
    pub fn args<I: IntoIterator<Item = S>, S: AsRef<std::ffi::OsStr>>(mut self, args: I) -> Cmd {
        self.command.args(args);
        self
    }

    /// Sets an environment variable of the binary.
    pub fn env(mut self, name: &str, value: &str) -> Cmd {
        self.command.env(name, value);
        self
    }

    /// Removes an environment variable of the binary.
    pub fn env_remove(mut self, name: &str) -> Cmd {
        self.command.env_remove(name);
        self
    }

    pub fn stdin(mut self, input: impl AsRef<[u8]>) -> Cmd {
        self.stdin = Some(input.as_ref().to_vec());
        self
    }

    /// Gives the binary this stdin (a pipe from another process, a file).
    pub fn stdin_from(mut self, stdio: impl Into<Stdio>) -> Cmd {
        self.stdin_stdio = Some(stdio.into());
        self
    }

    /// Starts the binary in the background (stdin from the given bytes or /dev/null).
    pub fn spawn(mut self) -> Running {
        let stdin = match (self.stdin_stdio.take(), &self.stdin) {
            (Some(stdio), _) => stdio,
            (None, Some(_)) => Stdio::piped(),
            (None, None) => Stdio::null(),
        };
        self.command
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = self.command.spawn().expect("start pararun");
        if let Some(input) = self.stdin.take() {
            let mut pipe = child.stdin.take().unwrap();
            std::thread::spawn(move || {
                let _ = pipe.write_all(&input);
            });
        }
        Running {
            child,
            description: describe(&self.command, &self.dir),
        }
    }

    pub fn run(self) -> Output {
        self.spawn().wait()
    }
}

fn describe(command: &Command, dir: &Path) -> String {
    let args: Vec<String> = command
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut listing = String::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
            let _ = write!(
                listing,
                "{} ({len} bytes) ",
                entry.file_name().to_string_lossy()
            );
        }
    }
    format!(
        "command: pararun {}\ncwd: {}\nfiles: {listing}",
        shell_words::join(&args),
        dir.display()
    )
}

pub struct Running {
    pub child: Child,
    description: String,
}

impl Running {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: i32) {
        unsafe {
            libc::kill(self.pid(), sig);
        }
    }

    /// Waits at most `limit`; past it, kills the binary and fails the test (a hang).
    #[track_caller]
    pub fn wait_within(mut self, limit: Duration) -> Output {
        let start = Instant::now();
        while self.child.try_wait().expect("poll pararun").is_none() {
            if start.elapsed() > limit {
                let _ = self.child.kill();
                let out = self.wait();
                panic!("pararun hung for {limit:?}\n{}", out.report());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.wait()
    }

    pub fn wait(self) -> Output {
        let out = self.child.wait_with_output().expect("wait for pararun");
        Output {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            description: self.description,
        }
    }
}

/// What a finished run left.
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    description: String,
}

impl Output {
    pub fn report(&self) -> String {
        format!(
            "{}\nstatus: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.description, self.code, self.stdout, self.stderr
        )
    }

    #[track_caller]
    pub fn code(&self, expected: i32) -> &Output {
        assert_eq!(
            self.code,
            Some(expected),
            "unexpected exit status\n{}",
            self.report()
        );
        self
    }

    #[track_caller]
    pub fn success(&self) -> &Output {
        self.code(0)
    }

    #[track_caller]
    pub fn stderr_has(&self, fragment: &str) -> &Output {
        assert!(
            self.stderr.contains(fragment),
            "stderr lacks {fragment:?}\n{}",
            self.report()
        );
        self
    }

    /// The JSON records printed on stdout.
    pub fn records(&self) -> Vec<Value> {
        parse_lines(&self.stdout, "stdout")
    }
}

/// Polls `check` until it holds or `limit` passes; the synchronisation for background runs.
#[track_caller]
pub fn wait_until(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The keys (`id` fields) of records, sorted, as JSON text.
pub fn keys(records: &[Value]) -> Vec<String> {
    let mut keys: Vec<String> = records.iter().map(|r| r["id"].to_string()).collect();
    keys.sort();
    keys
}

/// Whether a process is alive (and not a zombie).
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        })
        .unwrap_or(false)
}

/// A small tmpfs of our own, for a real ENOSPC; `None` where mounting is not allowed.
pub struct SmallDisk(pub PathBuf);

impl SmallDisk {
    pub fn mount(env: &TestEnv, size: &str) -> Option<SmallDisk> {
        let dir = env.path("disk");
        std::fs::create_dir(&dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(SmallDisk(dir))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// Says that a test could not run here, and why: `SKIPPED: test: why` goes straight to stderr
/// (past the test harness's capture, so it shows in every run) and into
/// `target/tmp/skipped.txt`, which `scripts/test` prints at the end. A test that returns after
/// this has checked nothing, and says so.
pub fn skipped(test: &str, why: &str) {
    let line = format!("SKIPPED: {test}: {why}\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
    let list = Path::new(env!("CARGO_TARGET_TMPDIR")).join("skipped.txt");
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(list)
    {
        let _ = file.write_all(line.as_bytes());
    }
}
