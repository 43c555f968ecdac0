//! On a terminal (issue 12): a Ctrl-C leaves no frozen bar above the stop messages, records
//! stay off a terminal when the cache keeps them, and log lines carry no timestamp there.
//!
//! pararun runs under a real pseudo-terminal (`script`), keys are typed into it, and what the
//! terminal received is replayed through [`Screen`], a small terminal model that wraps lines
//! as a terminal does, so that what stays visible can be asserted.

use std::io::Write;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{wait_until, TestEnv, BIN};

/// The pseudo-terminal's width: wide enough for the bar on one line.
const COLS: usize = 100;

/// pararun running under a pseudo-terminal of [`COLS`] columns.
struct Pty {
    child: Child,
    keys: Option<ChildStdin>,
    log: std::path::PathBuf,
}

impl Pty {
    /// Runs `sh -c "exec pararun ARGS"` under `script` in the test's directory; the terminal
    /// is both its stdout and stderr unless `args` redirects them.
    fn start(env: &TestEnv, args: &str) -> Pty {
        let log = env.path("pty.log");
        let child = Command::new("script")
            .current_dir(env.path("."))
            .env("TERM", "xterm")
            .env_remove("NO_COLOR")
            .args([
                "-qfec",
                &format!("stty cols {COLS} rows 40; exec {BIN} {args}"),
                log.to_str().unwrap(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("run script(1)");
        let mut pty = Pty {
            child,
            keys: None,
            log,
        };
        pty.keys = pty.child.stdin.take();
        pty
    }

    /// What the terminal received so far, without the lines `script` adds around it.
    fn received(&self) -> String {
        let log =
            String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned();
        let body = match log.strip_prefix("Script started") {
            Some(rest) => rest.split_once('\n').map_or("", |(_, body)| body),
            None => &log,
        };
        body.split("\nScript done").next().unwrap_or("").to_owned()
    }

    /// Types `bytes` on the terminal's keyboard.
    fn press(&mut self, bytes: &[u8]) {
        let keys = self.keys.as_mut().expect("the terminal is open");
        keys.write_all(bytes).unwrap();
        keys.flush().unwrap();
    }

    /// Waits (at most 30 s) for pararun to exit; its status and what the terminal received.
    fn finish(mut self) -> (i32, String) {
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if start.elapsed() > Duration::from_secs(30) {
                let _ = self.child.kill();
                panic!("pararun hung under the pty:\n{}", self.received());
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        drop(self.keys.take());
        (status.code().unwrap_or(-1), self.received())
    }
}

/// What stays visible of `received` on a terminal [`COLS`] wide: one string per row.
struct Screen {
    rows: Vec<Vec<char>>,
    row: usize,
    col: usize,
    /// A character was written in the last column: the next one starts a new row.
    wrap_pending: bool,
}

impl Screen {
    fn render(received: &str) -> Vec<String> {
        let mut screen = Screen {
            rows: vec![],
            row: 0,
            col: 0,
            wrap_pending: false,
        };
        let mut chars = received.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\u{1b}' if chars.peek() == Some(&'[') => {
                    chars.next();
                    let mut params = String::new();
                    while let Some(&p) = chars.peek() {
                        chars.next();
                        if ('\u{40}'..='\u{7e}').contains(&p) {
                            screen.csi(&params, p);
                            break;
                        }
                        params.push(p);
                    }
                }
                '\r' => (screen.col, screen.wrap_pending) = (0, false),
                '\n' => (screen.row, screen.wrap_pending) = (screen.row + 1, false),
                c if c.is_control() => {}
                c => screen.put(c),
            }
        }
        let rows = screen.rows.iter().map(|r| r.iter().collect::<String>());
        rows.map(|r| r.trim_end().to_owned()).collect()
    }

    fn cells(&mut self) -> &mut Vec<char> {
        if self.rows.len() <= self.row {
            self.rows.resize(self.row + 1, vec![]);
        }
        let row = &mut self.rows[self.row];
        row.resize(COLS, ' ');
        row
    }

    fn put(&mut self, c: char) {
        if self.wrap_pending {
            (self.row, self.col, self.wrap_pending) = (self.row + 1, 0, false);
        }
        let col = self.col;
        self.cells()[col] = c;
        if col + 1 == COLS {
            self.wrap_pending = true;
        } else {
            self.col += 1;
        }
    }

    /// A control sequence: cursor moves and line clearing; colours and modes change nothing.
    fn csi(&mut self, params: &str, last: char) {
        let n = params.parse::<usize>().unwrap_or(0);
        self.wrap_pending = false;
        match last {
            'A' => self.row = self.row.saturating_sub(n.max(1)),
            'B' => self.row += n.max(1),
            'C' => self.col = (self.col + n.max(1)).min(COLS - 1),
            'D' => self.col = self.col.saturating_sub(n.max(1)),
            'G' => self.col = n.saturating_sub(1).min(COLS - 1),
            'K' => {
                let col = self.col;
                let range = match n {
                    1 => 0..col + 1,
                    2 => 0..COLS,
                    _ => col..COLS,
                };
                self.cells()[range].fill(' ');
            }
            _ => {}
        }
    }
}

/// Whether a visible row is (part of) the progress bar.
fn is_bar(row: &str) -> bool {
    row.contains(" ok, ") && row.contains(" cached)")
}

#[test]
fn the_screen_model_wraps_like_a_terminal() {
    let full = "x".repeat(COLS);
    let rows = Screen::render(&format!("{full}^C\r\u{1b}[2Kmsg\r\n"));
    assert_eq!(rows, [full.as_str(), "msg"]);
}

#[test]
fn ctrl_c_leaves_no_frozen_bar_above_the_stop_messages() {
    let env = TestEnv::new();
    env.write(
        "in.txt",
        (1..=50).map(|i| format!("{i}\n")).collect::<String>(),
    );
    let child = env.script("child.sh", "echo $$ >> pids; sleep 0.2; echo {}");
    let mut pty = Pty::start(
        &env,
        &format!("-j 2 -i in.txt --cache c.jsonl --kill-after 1s -- {child} > out.jsonl"),
    );
    wait_until(Duration::from_secs(20), "the bar to count items", || {
        pty.received().contains("(2 ok, 0 failed, 0 cached)")
    });
    pty.press(b"\x03");
    let (code, received) = pty.finish();
    assert_eq!(code, 130, "{received}");
    assert!(
        received.contains("^C"),
        "the pty did not echo ^C:\n{received}"
    );
    let rows = Screen::render(&received);
    let stop = rows
        .iter()
        .position(|r| r.starts_with("pararun: SIGINT: starting nothing new"))
        .unwrap_or_else(|| panic!("no stop message:\n{}", rows.join("\n")));
    assert!(
        rows.iter().all(|r| !is_bar(r)),
        "a frozen bar is left on the screen:\n{}",
        rows.join("\n")
    );
    // Nothing but the bar was ever shown before the stop message: it is the first row.
    assert_eq!(stop, 0, "{}", rows.join("\n"));
    assert!(
        rows.iter().any(|r| r.starts_with("pararun: ran ")),
        "{}",
        rows.join("\n")
    );
}

#[test]
fn a_terminal_gets_the_summary_and_not_the_records_the_cache_keeps() {
    let env = TestEnv::new();
    env.write("in.txt", "a\nb\nc\n");
    let args = "-i in.txt --cache c.jsonl -- sh -c 'echo {}'";
    let (code, received) = Pty::start(&env, args).finish();
    assert_eq!(code, 0, "{received}");
    assert!(
        !received.contains("{\"id\""),
        "records on the terminal:\n{received}"
    );
    // On a terminal, no timestamp either: the summary starts its row.
    let rows = Screen::render(&received);
    assert!(
        rows.iter()
            .any(|r| r.starts_with("pararun: ran 3 (3 succeeded")
                && r.ends_with("; records in c.jsonl")),
        "{}",
        rows.join("\n")
    );
    assert_eq!(env.json_lines("c.jsonl").len(), 3);
    // Asked for, they come; without a cache they are the only copy, so they come anyway.
    std::fs::remove_file(env.path("c.jsonl")).unwrap();
    let (code, received) = Pty::start(&env, &format!("--records {args}")).finish();
    assert_eq!(
        (code, received.matches("{\"id\"").count()),
        (0, 3),
        "{received}"
    );
    let (code, received) = Pty::start(&env, "-i in.txt -- sh -c 'echo {}'").finish();
    assert_eq!(
        (code, received.matches("{\"id\"").count()),
        (0, 3),
        "{received}"
    );
}
