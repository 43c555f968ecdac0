//! The command template: placeholders, and how values are put into a command safely.
//!
//! Direct mode (several words) replaces placeholders inside their own argument, so a value is
//! never split or interpreted. Shell mode (one word, or `--shell`) builds a `sh -c` script that
//! never contains a value: values follow the script as arguments, and each placeholder becomes a
//! reference to a shell variable, quoted for where it stands (`shell`, `lexer`); a place
//! where no reference is safe refuses the template with a [`TemplateError`]. Anything in angle
//! brackets or braces that is not a placeholder (`2>&1`, `<<EOF`, `<in.txt`, `${x}`,
//! `awk '{print}'`) is left as written.
//!
//! The parts: `words` finds the placeholders in each word; this file renders direct mode;
//! `shell` compiles and renders a shell-mode script; `lexer` (with `command`, `expand`,
//! `heredoc`, and `names` for where bash reads a variable name) follows the script's quoting
//! contexts; `ansi_c` decodes `$'…'`; `error` words the refusals. `props` and `fuzz` run
//! rendered scripts through real shells.

mod ansi_c;
mod error;
mod lexer;
mod shell;
mod words;

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;

use serde_json::Value;

use crate::input::Item;
pub use error::{Problem, TemplateError};
use shell::Script;
use words::{parse_words, Part, Spelling};

/// How the command is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// argv, run directly.
    Direct,
    /// One script for `sh -c`.
    Shell,
}

/// A parsed command template.
#[derive(Debug, Clone)]
pub struct Template {
    mode: Mode,
    words: Vec<Vec<Part>>,
    /// The compiled script, in shell mode.
    script: Option<Script>,
}

/// A field placeholder whose value an item lacks; the item fails as bad input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingField(pub String);

impl Template {
    /// Parses the words after `--`. With no placeholder and `stdin` false, the item is appended
    /// as a last argument (as xargs does). `Err` refuses a shell-mode command in which a
    /// placeholder stands where its value could not be passed whole and inert.
    pub fn parse(
        command: &[String],
        force_shell: bool,
        stdin: bool,
    ) -> Result<Template, TemplateError> {
        // One plain word (`./work.sh`, `python3`) means the same with or without a shell, so it
        // is run directly: one process less, and signals reach the program itself.
        let plain_word = |w: &String| {
            w.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_./-+=:,@%".contains(c))
        };
        let mode = if force_shell || (command.len() == 1 && !command.iter().all(plain_word)) {
            Mode::Shell
        } else {
            Mode::Direct
        };
        let mut words = parse_words(command, mode == Mode::Shell);
        let has_placeholder = words.iter().flatten().any(|p| !matches!(p, Part::Lit(_)));
        let appended = !has_placeholder && !stdin;
        if appended {
            words.push(vec![Part::Item(Spelling::Angle)]);
        }
        let script = match mode {
            Mode::Shell => Some(Script::compile(&words, appended)?),
            Mode::Direct => {
                refuse_values_in_shell_script(&words, command)?;
                None
            }
        };
        Ok(Template {
            mode,
            words,
            script,
        })
    }

    /// How the command is started.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The field names used by `<NAME>` placeholders.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.words.iter().flatten().filter_map(|p| match p {
            Part::Field(name) => Some(name.as_str()),
            _ => None,
        })
    }

    /// The program's first word, when it is a plain literal (for checking it exists).
    pub fn literal_program(&self) -> Option<&str> {
        match (self.mode, self.words.first().map(Vec::as_slice)) {
            (Mode::Direct, Some([Part::Lit(word)])) => Some(word),
            _ => None,
        }
    }

    /// The argv of a persistent worker for `slot`: only `<%>` (`{%}`) may appear in it, since the items
    /// go to the worker's stdin. `Err` names the first placeholder that cannot be used.
    pub fn render_worker(&self, slot: usize) -> Result<Vec<String>, String> {
        if let Some(part) = self
            .words
            .iter()
            .flatten()
            .find(|p| !matches!(p, Part::Lit(_) | Part::Slot(_)))
        {
            return Err(part.written());
        }
        Ok(match &self.script {
            // No value placeholder, so no value variables: the script alone.
            Some(script) => vec!["sh".into(), "-c".into(), script.text(0, slot)],
            None => self
                .words
                .iter()
                .map(|word| word.iter().map(|p| number_or_text(p, 0, slot)).collect())
                .collect(),
        })
    }

    /// The argv for one item run in `slot`.
    pub fn render(&self, item: &Item, slot: usize) -> Result<Vec<String>, MissingField> {
        match &self.script {
            Some(script) => script.render(item, slot),
            None => self
                .words
                .iter()
                .map(|word| {
                    word.iter()
                        .map(|part| match part {
                            Part::Item(_) | Part::Field(_) => value(part, item),
                            _ => Ok(number_or_text(part, item.seq, slot)),
                        })
                        .collect()
                })
                .collect(),
        }
    }
}

/// A literal's text, or a number placeholder's digits.
fn number_or_text(part: &Part, seq: u64, slot: usize) -> String {
    match part {
        Part::Lit(text) => text.clone(),
        Part::Seq(_) => seq.to_string(),
        Part::Slot(_) => slot.to_string(),
        Part::Item(_) | Part::Field(_) => unreachable!("values are filled in by value()"),
    }
}

/// The value of `<>` (`{}`) or `<NAME>` for an item.
fn value(part: &Part, item: &Item) -> Result<String, MissingField> {
    match part {
        Part::Field(name) => field_text(item, name),
        _ => Ok(item.line.clone()),
    }
}

/// A field's value as text: strings as-is, null empty, everything else as compact JSON.
fn field_text(item: &Item, name: &str) -> Result<String, MissingField> {
    let object = match &item.value {
        Some(Value::Object(map)) => map,
        _ => {
            return Err(MissingField(format!(
                "<{name}> needs a JSON object item, and this item is not one"
            )))
        }
    };
    match object.get(name) {
        None => Err(MissingField(format!(
            "the item has no {name:?} field, used as <{name}> in the command"
        ))),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Null) => Ok(String::new()),
        Some(other) => Ok(other.to_string()),
    }
}

/// Shells whose `-c` argument is a script.
const SHELLS: [&str; 7] = ["sh", "bash", "dash", "zsh", "ksh", "mksh", "ash"];

/// Direct mode pastes a value into its argument as it is; when that argument is the script of
/// `sh -c`, the value would be code. Refused, with what to write instead.
fn refuse_values_in_shell_script(
    words: &[Vec<Part>],
    command: &[String],
) -> Result<(), TemplateError> {
    let program = match words.first().map(Vec::as_slice) {
        Some([Part::Lit(word)]) => word.rsplit('/').next().unwrap_or(word),
        _ => return Ok(()),
    };
    if !SHELLS.contains(&program) {
        return Ok(());
    }
    // The script is the first argument after an option word holding `c` (`-c`, `-ec`).
    let mut after_c = false;
    for (i, word) in words.iter().enumerate().skip(1) {
        if after_c {
            return match word.iter().find(|part| part.is_value()) {
                Some(part) => Err(TemplateError {
                    placeholder: Some(part.written()),
                    offset: command[..i].iter().map(|w| w.len() + 1).sum(),
                    problem: Problem::ShellScriptArgument,
                }),
                None => Ok(()),
            };
        }
        match word.as_slice() {
            [Part::Lit(w)] if w.starts_with('-') && !w.starts_with("--") && w.contains('c') => {
                after_c = true;
            }
            [Part::Lit(w)] if w.starts_with(['-', '+']) => {}
            _ => return Ok(()),
        }
    }
    Ok(())
}
