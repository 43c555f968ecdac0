//! The command template: placeholders, and how values are put into a command safely.
//!
//! Direct mode (several words) replaces placeholders inside their own argument, so a value is
//! never split or interpreted. Shell mode (one word, or `--shell`) builds a `sh -c` script with
//! every value shell-quoted. Anything in angle brackets that is not a placeholder (`2>&1`,
//! `<<EOF`, `<in.txt`) is left as written.

use serde_json::Value;

use crate::input::Item;

/// One piece of a command word.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(String),
    /// `<>`: the item's line as read.
    Item,
    /// `<NAME>`: a top-level field of a JSON object item.
    Field(String),
    /// `<#>`: the 1-based input line number.
    Seq,
    /// `<%>`: the slot running the item.
    Slot,
}

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
}

/// A field placeholder whose value an item lacks; the item fails as bad input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingField(pub String);

impl Template {
    /// Parses the words after `--`. With no placeholder and `stdin` false, the item is appended
    /// as a last argument (as xargs does).
    pub fn parse(command: &[String], force_shell: bool, stdin: bool) -> Template {
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
        let mut words: Vec<Vec<Part>> = command.iter().map(|w| parse_word(w)).collect();
        let has_placeholder = words.iter().flatten().any(|p| !matches!(p, Part::Lit(_)));
        if !has_placeholder && !stdin {
            words.push(vec![Part::Item]);
        }
        Template { mode, words }
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

    /// The argv of a persistent worker for `slot`: only `<%>` may appear in it, since the items
    /// go to the worker's stdin. `Err` names the first placeholder that cannot be used.
    pub fn render_worker(&self, slot: usize) -> Result<Vec<String>, String> {
        let word = |parts: &[Part]| -> Result<String, String> {
            let mut out = String::new();
            for part in parts {
                match part {
                    Part::Lit(text) => out += text,
                    Part::Slot => out += &slot.to_string(),
                    Part::Item => return Err("<>".into()),
                    Part::Seq => return Err("<#>".into()),
                    Part::Field(name) => return Err(format!("<{name}>")),
                }
            }
            Ok(out)
        };
        let words = self
            .words
            .iter()
            .map(|w| word(w))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(match self.mode {
            Mode::Direct => words,
            Mode::Shell => vec!["sh".into(), "-c".into(), words.join(" ")],
        })
    }

    /// The argv for one item run in `slot`.
    pub fn render(&self, item: &Item, slot: usize) -> Result<Vec<String>, MissingField> {
        match self.mode {
            Mode::Direct => self
                .words
                .iter()
                .map(|word| render_word(word, item, slot, false))
                .collect(),
            Mode::Shell => {
                let mut script = String::new();
                for (i, word) in self.words.iter().enumerate() {
                    if i > 0 {
                        script.push(' ');
                    }
                    script += &render_word(word, item, slot, true)?;
                }
                Ok(vec!["sh".into(), "-c".into(), script])
            }
        }
    }
}

fn render_word(
    word: &[Part],
    item: &Item,
    slot: usize,
    quote: bool,
) -> Result<String, MissingField> {
    let mut out = String::new();
    for part in word {
        let value = match part {
            Part::Lit(text) => {
                out += text;
                continue;
            }
            Part::Item => item.line.clone(),
            Part::Seq => item.seq.to_string(),
            Part::Slot => slot.to_string(),
            Part::Field(name) => field_text(item, name)?,
        };
        if quote {
            out += &shell_words::quote(&value);
        } else {
            out += &value;
        }
    }
    Ok(out)
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

fn is_field_char(c: char, first: bool) -> bool {
    c.is_ascii_alphabetic() || c == '_' || (!first && (c.is_ascii_digit() || c == '-'))
}

fn parse_word(word: &str) -> Vec<Part> {
    let mut parts = Vec::new();
    let mut lit = String::new();
    let mut rest = word;
    while let Some(pos) = rest.find('<') {
        lit += &rest[..pos];
        let after = &rest[pos + 1..];
        let end = after.find('>');
        let placeholder = end.and_then(|end| {
            let inner = &after[..end];
            let part = match inner {
                "" => Part::Item,
                "#" => Part::Seq,
                "%" => Part::Slot,
                name if name
                    .chars()
                    .enumerate()
                    .all(|(i, c)| is_field_char(c, i == 0)) =>
                {
                    Part::Field(name.to_owned())
                }
                _ => return None,
            };
            Some((part, end))
        });
        match placeholder {
            Some((part, end)) => {
                if !lit.is_empty() {
                    parts.push(Part::Lit(std::mem::take(&mut lit)));
                }
                parts.push(part);
                rest = &after[end + 1..];
            }
            None => {
                lit.push('<');
                rest = after;
            }
        }
    }
    lit += rest;
    if !lit.is_empty() || parts.is_empty() {
        parts.push(Part::Lit(lit));
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::Key;

    fn words(cmd: &[&str]) -> Vec<String> {
        cmd.iter().map(|s| s.to_string()).collect()
    }

    fn json_item(line: &str) -> Item {
        let value: Value = serde_json::from_str(line).unwrap();
        Item {
            seq: 7,
            line: line.into(),
            key: Key::new(value["id"].clone()),
            value: Some(value),
        }
    }

    #[test]
    fn parses_placeholders_and_leaves_the_rest() {
        assert_eq!(
            parse_word("a<>b"),
            [Part::Lit("a".into()), Part::Item, Part::Lit("b".into())]
        );
        assert_eq!(
            parse_word("<#>/<%>"),
            [Part::Seq, Part::Lit("/".into()), Part::Slot]
        );
        assert_eq!(
            parse_word("--x=<name>"),
            [Part::Lit("--x=".into()), Part::Field("name".into())]
        );
        for literal in ["2>&1", "<<EOF", "<in.txt", "a < b > c", "<", "<1a>", ""] {
            assert_eq!(
                parse_word(literal),
                [Part::Lit(literal.into())],
                "{literal:?}"
            );
        }
    }

    #[test]
    fn direct_mode_keeps_values_whole() {
        let t = Template::parse(&words(&["echo", "<text>", "<#>", "<%>"]), false, false);
        let item = json_item(r#"{"id":1,"text":"$(touch x); rm -rf ~ 'q'"}"#);
        assert_eq!(
            t.render(&item, 3).unwrap(),
            ["echo", "$(touch x); rm -rf ~ 'q'", "7", "3"]
        );
    }

    #[test]
    fn shell_mode_quotes_values() {
        let t = Template::parse(&words(&["echo <text> 2>&1"]), false, false);
        let item = json_item(r#"{"id":1,"text":"a'b $(x)"}"#);
        let argv = t.render(&item, 1).unwrap();
        assert_eq!(argv[..2], ["sh", "-c"]);
        assert_eq!(argv[2], r#"echo 'a'\''b $(x)' 2>&1"#);
    }

    #[test]
    fn field_values_follow_json_rules() {
        let t = Template::parse(&words(&["p", "<n>", "<b>", "<z>", "<o>"]), false, false);
        let item = json_item(r#"{"id":1,"n":2.5,"b":true,"z":null,"o":{"k":[1, 2]}}"#);
        assert_eq!(
            t.render(&item, 1).unwrap(),
            ["p", "2.5", "true", "", r#"{"k":[1,2]}"#]
        );
    }

    #[test]
    fn missing_field_is_an_item_error() {
        let t = Template::parse(&words(&["p", "<nope>"]), false, false);
        assert!(t.render(&json_item(r#"{"id":1}"#), 1).is_err());
    }

    #[test]
    fn item_is_appended_without_placeholders() {
        let t = Template::parse(&words(&["echo", "hi"]), false, false);
        assert_eq!(
            t.render(&json_item(r#"{"id":1}"#), 1).unwrap(),
            ["echo", "hi", r#"{"id":1}"#]
        );
        let t = Template::parse(&words(&["wc -c"]), false, false);
        assert_eq!(
            t.render(&json_item(r#"{"id":1}"#), 1).unwrap()[2],
            r#"wc -c '{"id":1}'"#
        );
        let t = Template::parse(&words(&["cat"]), false, true);
        assert_eq!(t.render(&json_item(r#"{"id":1}"#), 1).unwrap(), ["cat"]);
        let t = Template::parse(&words(&["./work.sh"]), false, false);
        assert_eq!(t.mode(), Mode::Direct);
        assert_eq!(
            t.render(&json_item(r#"{"id":1}"#), 1).unwrap(),
            ["./work.sh", r#"{"id":1}"#]
        );
    }

    #[test]
    fn workers_take_only_the_slot() {
        let t = Template::parse(&words(&["python3", "w.py", "--slot=<%>"]), false, true);
        assert_eq!(t.render_worker(2).unwrap(), ["python3", "w.py", "--slot=2"]);
        let t = Template::parse(&words(&["python3", "w.py", "<text>"]), false, true);
        assert_eq!(t.render_worker(1).unwrap_err(), "<text>");
    }

    #[test]
    fn forced_shell_joins_words() {
        let t = Template::parse(&words(&["echo", "$HOME", "<>"]), true, false);
        assert_eq!(t.mode(), Mode::Shell);
        assert_eq!(
            t.render(&json_item(r#"{"id":1}"#), 1).unwrap()[2],
            r#"echo $HOME '{"id":1}'"#
        );
        assert_eq!(t.literal_program(), None);
    }
}
