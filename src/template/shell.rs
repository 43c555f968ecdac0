//! Shell mode: the `sh -c` script, with every value passed out of band.
//!
//! Values are never pasted into the script text. They travel as positional parameters after
//! the script (`sh -c SCRIPT sh VALUE…`); a prologue on the script's first line moves them into
//! unexported variables (`__pararun_1=${1}; shift 1;`), so the user's `$@` and `$#` are as before
//! and sh's line numbers in error messages do not shift. Their prefix is reserved: a script that
//! names such a variable, which could overwrite one, is refused. Each placeholder becomes a reference to its
//! variable, written for the quoting context it stands in (found by [`super::lexer`]). Whatever
//! a value holds, the shell only ever expands it; it is never parsed as code.

use super::error::{Problem, TemplateError};
use super::lexer::Lexer;
use super::{value, MissingField, Part};
use crate::input::Item;

/// The prefix of the variables that hold the values (`__pararun_1`, …), which no one writes by
/// accident.
const VAR: &str = "__pararun_";

/// One token of the script: a character as written, or a placeholder.
#[derive(Debug, Clone)]
pub(super) enum Tok {
    Char(char),
    Ph(Part),
}

/// A token and where it was written.
#[derive(Debug, Clone)]
pub(super) struct Token {
    pub tok: Tok,
    /// Byte offset in the command (words joined with spaces).
    pub offset: usize,
    /// The item appended to a command that has no placeholder.
    pub appended: bool,
}

/// A piece of the finished script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Seg {
    Text(String),
    /// `<#>` or `<%>`: plain decimal digits, safe to paste in any context.
    Number(Part),
}

/// How a reference to a value's variable is written in a context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Form {
    /// In double quotes, here-document bodies and comments: no splitting or globbing there.
    Bare,
    /// Unquoted, and in the word of `${x:-…}`: the quotes keep the value one field, unglobbed.
    Quoted,
    /// Inside `'…'`: close the quotes, expand in double quotes, reopen.
    SqSplice,
}

impl Form {
    /// The reference to variable `n` (1-based).
    pub(super) fn reference(self, n: usize) -> String {
        match self {
            Form::Bare => format!("${{{VAR}{n}}}"),
            Form::Quoted => format!("\"${{{VAR}{n}}}\""),
            Form::SqSplice => format!("'\"${{{VAR}{n}}}\"'"),
        }
    }
}

/// The lexer's output: script pieces and the value placeholders, one variable each.
#[derive(Debug, Default)]
pub(super) struct Out {
    pub segs: Vec<Seg>,
    pub vars: Vec<Part>,
}

impl Out {
    pub(super) fn text(&mut self, text: &str) {
        match self.segs.last_mut() {
            Some(Seg::Text(last)) => last.push_str(text),
            _ => self.segs.push(Seg::Text(text.to_owned())),
        }
    }

    pub(super) fn ch(&mut self, c: char) {
        self.text(c.encode_utf8(&mut [0; 4]));
    }

    pub(super) fn number(&mut self, part: &Part) {
        self.segs.push(Seg::Number(part.clone()));
    }

    /// The variable number (1-based) of a value placeholder; `<>` used twice is one variable.
    pub(super) fn var(&mut self, part: &Part) -> usize {
        match self.vars.iter().position(|v| v == part) {
            Some(i) => i + 1,
            None => {
                self.vars.push(part.clone());
                self.vars.len()
            }
        }
    }

    /// Where the next text will go: (segment, byte offset), for rewriting it later.
    pub(super) fn mark(&mut self) -> (usize, usize) {
        self.text("");
        match self.segs.last() {
            Some(Seg::Text(text)) => (self.segs.len() - 1, text.len()),
            _ => unreachable!("text() leaves a text segment last"),
        }
    }
}

/// A compiled shell-mode command.
#[derive(Debug, Clone)]
pub(super) struct Script {
    segs: Vec<Seg>,
    /// The value placeholders, in order of first use: variable `__pararun_N` is `vars[N-1]`.
    vars: Vec<Part>,
}

impl Script {
    /// Compiles the words (joined with spaces). `appended` marks the last word as the item
    /// added to a command without placeholders.
    pub(super) fn compile(words: &[Vec<Part>], appended: bool) -> Result<Script, TemplateError> {
        let toks = tokens(words, appended);
        let lexed = match reserved(&toks) {
            Some(offset) => Err(TemplateError {
                placeholder: None,
                offset,
                problem: Problem::ReservedName,
            }),
            None => Lexer::run(&toks),
        };
        match lexed {
            Ok(out) => Ok(Script {
                segs: out.segs,
                vars: out.vars,
            }),
            // With no value to place, a script pararun cannot follow (bash syntax it does not
            // know, a quote left open) goes to sh as written, as before; sh judges it.
            Err(err)
                if err.placeholder.is_none()
                    && !toks
                        .iter()
                        .any(|t| matches!(&t.tok, Tok::Ph(p) if p.is_value())) =>
            {
                Ok(Script::as_written(&toks))
            }
            Err(err) => Err(err),
        }
    }

    fn as_written(toks: &[Token]) -> Script {
        let mut out = Out::default();
        for token in toks {
            match &token.tok {
                Tok::Char(c) => out.ch(*c),
                Tok::Ph(part) => out.number(part),
            }
        }
        Script {
            segs: out.segs,
            vars: Vec::new(),
        }
    }

    /// The argv for one item: `sh -c SCRIPT`, then `sh` and the values when there are any.
    pub(super) fn render(&self, item: &Item, slot: usize) -> Result<Vec<String>, MissingField> {
        let mut argv = vec!["sh".to_owned(), "-c".to_owned(), self.text(item.seq, slot)];
        if !self.vars.is_empty() {
            // $0 of the script, as sh -c would name it anyway.
            argv.push("sh".to_owned());
            for part in &self.vars {
                argv.push(value(part, item)?);
            }
        }
        Ok(argv)
    }

    /// The script text, with the numbers filled in.
    pub(super) fn text(&self, seq: u64, slot: usize) -> String {
        let n = self.vars.len();
        let mut script = String::new();
        if n > 0 {
            // `${10}`, not `$10`, which is `${1}0`. Assignments are not split or globbed.
            for i in 1..=n {
                script += &format!("{VAR}{i}=${{{i}}} ");
            }
            script.pop();
            script += &format!("; shift {n}; ");
        }
        for seg in &self.segs {
            match seg {
                Seg::Text(text) => script += text,
                Seg::Number(Part::Seq(_)) => script += &seq.to_string(),
                Seg::Number(_) => script += &slot.to_string(),
            }
        }
        script
    }
}

/// The byte offset of the first name that starts with [`VAR`], if any. Any mention is refused,
/// not only assignments: `read`, `printf -v`, `for`, `getopts`, `: ${x:=…}` and more assign too.
fn reserved(toks: &[Token]) -> Option<usize> {
    let prefix: Vec<char> = VAR.chars().collect();
    let char_is = |i: usize, f: &dyn Fn(char) -> bool| matches!(toks[i].tok, Tok::Char(c) if f(c));
    (0..toks.len().saturating_sub(prefix.len() - 1))
        .find(|&i| {
            // Inside a longer name (`x__pararun_1`) it is another variable.
            let in_name = i > 0 && char_is(i - 1, &|c| c.is_ascii_alphanumeric() || c == '_');
            !in_name && (0..prefix.len()).all(|j| char_is(i + j, &|c| c == prefix[j]))
        })
        .map(|i| toks[i].offset)
}

/// The words joined with spaces, as characters and placeholders with their byte offsets.
fn tokens(words: &[Vec<Part>], appended: bool) -> Vec<Token> {
    let mut toks = Vec::new();
    let mut offset = 0;
    let token = |tok, offset| Token {
        tok,
        offset,
        appended: false,
    };
    for (i, word) in words.iter().enumerate() {
        if i > 0 {
            toks.push(token(Tok::Char(' '), offset));
            offset += 1;
        }
        for part in word {
            match part {
                Part::Lit(text) => {
                    toks.extend(
                        text.char_indices()
                            .map(|(j, c)| token(Tok::Char(c), offset + j)),
                    );
                    offset += text.len();
                }
                part => {
                    toks.push(token(Tok::Ph(part.clone()), offset));
                    offset += part.written().len();
                }
            }
        }
    }
    if appended {
        if let Some(last) = toks.last_mut() {
            last.appended = true;
        }
    }
    toks
}
