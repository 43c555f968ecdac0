//! The command level (the top, and inside `$(…)`): words, operators, comments, and the few
//! keywords that change how a placeholder must be read (`case`, `let`, `[[`).

use super::expand::ArithKind;
use super::{Frame, Lexer};
use crate::template::error::{Problem, TemplateError};

/// The operators with which `[[ … ]]` evaluates both sides as arithmetic (bash).
const ARITH_TESTS: [&str; 6] = ["-eq", "-ne", "-lt", "-le", "-gt", "-ge"];

/// Reserved words after which a command word still follows.
const LEADS: [&str; 11] = [
    "!", "{", "}", "then", "do", "else", "elif", "if", "while", "until", "time",
];

/// The state of one command level.
#[derive(Debug, Default)]
pub(super) struct Cmd {
    /// Inside `$(…)`, which a `)` closes, rather than the top level.
    subst: bool,
    /// Open `(` in this frame, so that their `)` does not close the `$(`.
    parens: u32,
    /// Open `case` statements, whose pattern `)` does not close the `$(` either.
    cases: u32,
    /// The current word's text, while it is plain (no quotes, expansions or placeholders).
    word: String,
    in_word: bool,
    plain: bool,
    /// Whether the current word is in command position (where keywords count).
    cmd_pos: bool,
    /// Inside the arguments of `let`.
    pub(super) let_args: bool,
    /// Inside `[[ … ]]`: (whether it has an arithmetic operator, its first value placeholder).
    dbracket: Option<(bool, Option<usize>)>,
}

impl Cmd {
    pub(super) fn new(subst: bool) -> Cmd {
        Cmd {
            subst,
            plain: true,
            cmd_pos: true,
            ..Cmd::default()
        }
    }

    /// The current word goes on with a quote, expansion or placeholder: no keyword, no comment.
    pub(super) fn touch(&mut self) {
        self.in_word = true;
        self.plain = false;
    }

    /// Records a value placeholder inside an open `[[ … ]]`.
    pub(super) fn note_placeholder(&mut self, at: usize) {
        if let Some((_, first @ None)) = &mut self.dbracket {
            *first = Some(at);
        }
    }

    /// The first value placeholder of an unclosed `[[ … ]]` that has arithmetic operators.
    pub(super) fn open_arith_test(&self) -> Option<usize> {
        match self.dbracket {
            Some((true, first)) => first,
            _ => None,
        }
    }

    /// A command ends (`;`, `&`, `|`, newline, `(`, `)`): the next word is a command word.
    fn command_ends(&mut self) {
        self.cmd_pos = true;
        self.let_args = false;
    }
}

fn is_assignment(word: &str) -> bool {
    match word.split_once('=') {
        Some((name, _)) => {
            !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        }
        None => false,
    }
}

impl Lexer<'_> {
    fn cmd(&mut self) -> &mut Cmd {
        match self.top_mut() {
            Frame::Cmd(cmd) => cmd,
            _ => unreachable!("called at the command level"),
        }
    }

    pub(super) fn cmd_char(&mut self, c: char) -> Result<(), TemplateError> {
        let at = self.pos;
        match c {
            '\\' | '$' | '`' | '\'' | '"' => {
                self.cmd().touch();
                match c {
                    '\'' => {
                        self.emit(c);
                        self.push(Frame::Sq, at);
                    }
                    '"' => {
                        self.emit(c);
                        self.push(Frame::Dq, at);
                    }
                    _ => self.expansion_char(c, true)?,
                }
            }
            '#' if !self.cmd().in_word => {
                self.emit(c);
                self.push(Frame::Comment, at);
            }
            ' ' | '\t' => {
                self.end_word()?;
                self.emit(c);
            }
            '\n' | ';' | '&' | '|' | '(' | ')' | '<' | '>' => self.operator(c)?,
            _ => {
                let cmd = self.cmd();
                cmd.in_word = true;
                if cmd.plain {
                    cmd.word.push(c);
                }
                self.emit(c);
            }
        }
        Ok(())
    }

    /// A character that ends a word and is (part of) an operator.
    fn operator(&mut self, c: char) -> Result<(), TemplateError> {
        let at = self.pos;
        let (next, after) = (self.char_at(at + 1), self.char_at(at + 2));
        if c == '(' && !self.cmd().in_word && next == Some('(') {
            self.cmd().touch();
            self.out.text("((");
            self.pos += 2;
            let kind = ArithKind::Command;
            self.push(Frame::Arith { kind, depth: 0 }, at);
            return Ok(());
        }
        self.end_word()?;
        match c {
            '\n' | ';' | '&' | '|' => {
                self.cmd().command_ends();
                self.emit(c);
                if c == '\n' {
                    self.start_bodies()?;
                }
            }
            '(' => {
                let cmd = self.cmd();
                cmd.parens += 1;
                cmd.command_ends();
                self.emit(c);
            }
            ')' => {
                let cmd = self.cmd();
                let closes = cmd.subst && cmd.parens == 0 && cmd.cases == 0;
                cmd.parens = cmd.parens.saturating_sub(1);
                cmd.command_ends();
                self.emit(c);
                if closes {
                    self.stack.pop();
                }
            }
            '<' if next == Some('<') && after == Some('<') => {
                // A here-string (bash): an ordinary word follows.
                self.out.text("<<<");
                self.pos += 3;
            }
            '<' if next == Some('<') => self.heredoc_op()?,
            _ => self.emit(c),
        }
        Ok(())
    }

    /// Ends the current word, and notes the keywords that matter.
    pub(super) fn end_word(&mut self) -> Result<(), TemplateError> {
        let cmd = self.cmd();
        if !cmd.in_word {
            return Ok(());
        }
        let word = std::mem::take(&mut cmd.word);
        let plain = cmd.plain;
        cmd.in_word = false;
        cmd.plain = true;
        if let Some((arith, first)) = &mut cmd.dbracket {
            if plain && word == "]]" {
                let (arith, first) = (*arith, *first);
                cmd.dbracket = None;
                cmd.cmd_pos = false;
                if let (true, Some(at)) = (arith, first) {
                    return Err(self.refuse(at, Problem::ArithmeticTest));
                }
            } else if plain && ARITH_TESTS.contains(&word.as_str()) {
                *arith = true;
            }
            return Ok(());
        }
        if !cmd.cmd_pos {
            return Ok(());
        }
        match word.as_str() {
            _ if !plain => cmd.cmd_pos = false,
            "case" => {
                cmd.cases += 1;
                cmd.cmd_pos = false;
            }
            "esac" => {
                cmd.cases = cmd.cases.saturating_sub(1);
                cmd.cmd_pos = false;
            }
            "let" => {
                cmd.let_args = true;
                cmd.cmd_pos = false;
            }
            "[[" => {
                cmd.dbracket = Some((false, None));
                cmd.cmd_pos = false;
            }
            w if LEADS.contains(&w) || is_assignment(w) => {}
            _ => cmd.cmd_pos = false,
        }
        Ok(())
    }
}
