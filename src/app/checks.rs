//! Checks made at setup, so that a command or input that cannot work fails once, with exit 2,
//! instead of failing every item.

use anyhow::{bail, Result};

use crate::config::{Config, Format};
use crate::input::InputReader;
use crate::process;
use crate::template::{Mode, Template};

/// Parses the command template and checks it fits the mode: a refused quoting context, a
/// per-item placeholder with `--persistent`, or a program that does not exist or cannot be
/// started (no execute bit, no `#!` line, a missing interpreter; in shell mode, `sh`).
pub(super) fn command_template(cfg: &Config) -> Result<Template> {
    let template = Template::parse(
        &cfg.launch.command,
        cfg.launch.shell,
        cfg.launch.stdin || cfg.launch.persistent,
    )
    .map_err(anyhow::Error::new)?;
    if cfg.launch.persistent {
        if let Err(placeholder) = template.render_worker(1) {
            bail!(
                "{placeholder} cannot be used with --persistent: a worker gets its items on \
                 stdin, one per line; only <%> or {{%}} (the slot) may appear in the command"
            );
        }
    }
    if template.mode() == Mode::Shell {
        // Every item would fail to start alike: one setup error instead.
        // Found and executable is all a shell needs (no `#!` line to read): it is not opened,
        // which would add an open(2) before the cache's.
        process::program::check_found("sh").map_err(|why| {
            let path = std::env::var("PATH").unwrap_or_default();
            anyhow::anyhow!(
                "shell mode (one word after --, or --shell) runs the command with sh -c, and sh \
                 cannot be started: {why}. Put the directory that holds sh (usually /bin) on \
                 PATH (now {path:?}), or give the command as separate words after -- to run it \
                 without a shell"
            )
        })?;
    }
    if let Some(program) = template.literal_program() {
        // Once here rather than as a failure of every item.
        process::program::check(program).map_err(anyhow::Error::msg)?;
    }
    Ok(template)
}

/// Settles the input format (reading its first line) and refuses field placeholders for plain
/// lines.
pub(super) fn format_fits(reader: &mut InputReader, template: &Template) -> Result<()> {
    if reader.resolve_format()? == Format::Lines {
        if let Some(field) = template.fields().next() {
            bail!(
                "the command uses <{field}>, a field of a JSON item, but the input is read as \
                 plain lines; give JSONL input (or --format jsonl), or use {{}} (or '<>') for the \
                 whole line"
            );
        }
    }
    Ok(())
}
