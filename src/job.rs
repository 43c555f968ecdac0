//! What runs for one item: the single place that turns an item into a launch (argv,
//! environment and stdin bytes for a child, or the request line for a persistent worker).
//! The run and `--dry-run` both build their launches here, so a dry-run line shows exactly
//! what would run.

use serde_json::Value;

use crate::config::Config;
use crate::input::Item;
use crate::process::Job;
use crate::report::{Failure, Reason};
use crate::template::{MissingField, Template};

/// The longest `PARARUN_KEY` handed to a child (the kernel's limit for one string is 128 KiB).
const MAX_ENV_KEY: usize = 32 * 1024;

/// What one attempt of an item starts.
pub(crate) enum Launch {
    /// A child of its own.
    Process(Job),
    /// A request line (without its newline) for the slot's persistent worker, whose command is
    /// [`worker_argv`] (rendered only when a worker starts, not for every item).
    Worker {
        /// The line the worker reads for this item.
        request: Vec<u8>,
    },
}

/// Builds the launch of `item`'s attempt number `attempt` in `slot`; `marker` is the watchdog's
/// environment variable for the slot, if any. `Err` is the item's bad-input failure (a
/// missing field, a NUL byte no argument can carry).
pub(crate) fn prepare(
    cfg: &Config,
    template: &Template,
    item: &Item,
    slot: usize,
    attempt: u32,
    marker: Option<(&'static str, String)>,
) -> Result<Launch, Failure> {
    if cfg.launch.persistent {
        return Ok(Launch::Worker {
            request: worker_request(item).into_bytes(),
        });
    }
    let argv = template
        .render(item, slot)
        .map_err(|MissingField(reason)| Failure::new(Reason::BadInput, reason))?;
    if argv.iter().any(|arg| arg.contains('\0')) {
        return Err(Failure::new(
            Reason::BadInput,
            "the item holds a NUL byte, which no command argument can carry (use --stdin)",
        ));
    }
    let mut env = vec![
        ("PARARUN_SEQ", item.seq.to_string()),
        ("PARARUN_SLOT", slot.to_string()),
        ("PARARUN_ATTEMPT", attempt.to_string()),
    ];
    // Linux caps one environment string at 128 KiB: a longer key (a huge plain line) is left
    // out rather than making the item impossible to run.
    let key = item.key.env_text();
    if key.len() <= MAX_ENV_KEY && !key.contains('\0') {
        env.push(("PARARUN_KEY", key.to_owned()));
    }
    env.extend(marker);
    let stdin = cfg.launch.stdin.then(|| {
        let mut line = item.line.clone().into_bytes();
        line.push(b'\n');
        line
    });
    // A key that holds a tab or a line break would break the line it tags: it is escaped.
    let tag = cfg.output.tag.then(|| {
        let text = match key.contains(|c: char| c.is_control()) {
            true => crate::report::escape(key),
            false => key.to_owned(),
        };
        format!("{}\t", crate::report::excerpt(&text)).into_bytes()
    });
    Ok(Launch::Process(Job {
        argv,
        env,
        stdin,
        tag,
    }))
}

/// The command of `slot`'s persistent worker.
pub(crate) fn worker_argv(template: &Template, slot: usize) -> Vec<String> {
    template
        .render_worker(slot)
        .unwrap_or_else(|_| unreachable!("the worker command was checked at setup"))
}

/// The line a persistent worker gets for an item: the JSON line as read, or a plain line as a
/// JSON string.
fn worker_request(item: &Item) -> String {
    if item.json {
        item.line.clone()
    } else {
        Value::String(item.line.clone()).to_string()
    }
}

impl Launch {
    /// The line `--dry-run` prints: the command shell-quoted, with what it reads on stdin shown
    /// as a pipe in front, so that the line can be pasted into a shell. The `PARARUN_*`
    /// environment is not shown. `template` and `slot` give a worker's command.
    pub(crate) fn dry_run_line(&self, template: &Template, slot: usize) -> String {
        let (command, stdin) = match self {
            Launch::Process(job) => (shell_words::join(&job.argv), job.stdin.as_deref()),
            Launch::Worker { request } => (
                shell_words::join(worker_argv(template, slot)),
                Some(&request[..]),
            ),
        };
        match stdin {
            Some(bytes) => {
                let line = String::from_utf8_lossy(bytes);
                let line = line.strip_suffix('\n').unwrap_or(&line);
                format!("printf '%s\\n' {} | {command}", shell_words::quote(line))
            }
            None => command,
        }
    }
}
