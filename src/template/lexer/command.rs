//! The command level (the top, and inside `$(…)`): words, operators, comments, and the few
//! keywords and builtins that change how a placeholder must be read (`case`, `let`, `[[`, and
//! those that take variable names, see `names`).

use super::expand::ArithKind;
use super::names::{Kind, Shape};
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
    /// The current word's shape (`name[…]=…`), quotes left out.
    shape: Shape,
    /// Unclosed `[` in the current word, quoted or not.
    brackets: u32,
    /// What the command's name says about its arguments.
    kind: Kind,
    /// Inside the `(…)` of a compound array assignment `a=(…)`.
    compound: bool,
    /// Inside `[[ … ]]`.
    dbracket: Option<Test>,
}

/// An open `[[ … ]]`.
#[derive(Debug, Default, Clone, Copy)]
struct Test {
    /// It has an arithmetic operator (`-eq`, …).
    arith: bool,
    /// It has `-v`, whose operand is a variable name.
    names: bool,
    /// Its first value placeholder.
    first: Option<usize>,
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
        if let Some(Test {
            first: first @ None,
            ..
        }) = &mut self.dbracket
        {
            *first = Some(at);
        }
    }

    /// The first value placeholder of an unclosed `[[ … ]]` that has arithmetic operators.
    pub(super) fn open_arith_test(&self) -> Option<usize> {
        self.dbracket.filter(|t| t.arith).and_then(|t| t.first)
    }

    /// A character of the current word (unquoted, or in quotes or `${…}` within it).
    pub(super) fn word_char(&mut self, c: char) {
        self.shape = self.shape.next(c);
        match c {
            '[' => self.brackets += 1,
            ']' => self.brackets = self.brackets.saturating_sub(1),
            _ => {}
        }
    }

    /// A value goes on the current word.
    pub(super) fn word_value(&mut self) {
        self.shape = self.shape.value();
    }

    /// Why no value may stand in the current word (or in what is nested in it), if so.
    pub(super) fn problem(&self) -> Option<Problem> {
        if self.kind == Kind::Let {
            return Some(Problem::Arithmetic("the arguments of let"));
        }
        if self.kind == Kind::Hidden && !self.cmd_pos {
            return Some(Problem::HiddenCommand);
        }
        let (inside, what, assignment) = if self.compound {
            let what = "a subscript […]= in an array assignment a=(…)";
            (self.brackets > 0, what, true)
        } else if self.cmd_pos {
            let what = "the subscript of an array assignment a[…]=";
            (matches!(self.shape, Shape::Subscript(_)), what, true)
        } else {
            let names = self.kind.takes_names(&self.word) || self.dbracket.is_some_and(|t| t.names);
            let what = "an array subscript a[…] in a variable name given to unset, read, \
                        printf -v, test -v, declare or the like";
            (names && self.brackets > 0, what, false)
        };
        inside.then_some(Problem::Subscript { what, assignment })
    }

    /// A command ends (`;`, `&`, `|`, newline, `(`, `)`): the next word is a command word.
    fn command_ends(&mut self) {
        self.cmd_pos = true;
        self.kind = Kind::Other;
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
                let cmd = self.cmd();
                cmd.touch();
                if matches!(c, '$' | '`') {
                    cmd.word_char(c);
                }
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
                cmd.word_char(c);
                self.emit(c);
            }
        }
        Ok(())
    }

    /// A character that ends a word and is (part of) an operator.
    fn operator(&mut self, c: char) -> Result<(), TemplateError> {
        let at = self.pos;
        let (next, after) = (self.char_at(at + 1), self.char_at(at + 2));
        if self.cmd().compound {
            return self.compound_operator(c);
        }
        if c == '(' && self.cmd().in_word && self.cmd().shape == Shape::Eq {
            // `a=(…)`: its elements are words, not commands, until the `)`.
            self.end_word()?;
            self.cmd().compound = true;
            self.emit(c);
            return Ok(());
        }
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

    /// An operator character inside `a=(…)`: only `)` means anything, the end of it.
    fn compound_operator(&mut self, c: char) -> Result<(), TemplateError> {
        self.end_word()?;
        if c == ')' {
            self.cmd().compound = false;
        }
        self.emit(c);
        Ok(())
    }

    /// Ends the current word, and notes the keywords and arguments that matter.
    pub(super) fn end_word(&mut self) -> Result<(), TemplateError> {
        let cmd = self.cmd();
        if !cmd.in_word {
            return Ok(());
        }
        let word = std::mem::take(&mut cmd.word);
        let plain = cmd.plain;
        let shape = std::mem::take(&mut cmd.shape);
        cmd.brackets = 0;
        cmd.in_word = false;
        cmd.plain = true;
        if cmd.compound {
            // An element of `a=(…)`.
            return Ok(());
        }
        if let Some(test) = &mut cmd.dbracket {
            if plain && word == "]]" {
                let test = *test;
                cmd.dbracket = None;
                cmd.cmd_pos = false;
                if let (true, Some(at)) = (test.arith, test.first) {
                    return Err(self.refuse(at, Problem::ArithmeticTest));
                }
            } else if plain && ARITH_TESTS.contains(&word.as_str()) {
                test.arith = true;
            } else if plain && word == "-v" {
                test.names = true;
            }
            return Ok(());
        }
        if !cmd.cmd_pos {
            let attributes = cmd.kind.argument(plain.then_some(word.as_str()));
            self.attributes |= attributes;
            return Ok(());
        }
        match word.as_str() {
            // An assignment: the command word is still to come.
            _ if shape.is_assignment() => {}
            _ if !plain => {
                cmd.kind = Kind::Hidden;
                cmd.cmd_pos = false;
            }
            "case" => {
                cmd.cases += 1;
                cmd.cmd_pos = false;
            }
            "esac" => {
                cmd.cases = cmd.cases.saturating_sub(1);
                cmd.cmd_pos = false;
            }
            "[[" => {
                cmd.dbracket = Some(Test::default());
                cmd.cmd_pos = false;
            }
            w if LEADS.contains(&w) => {}
            w => {
                cmd.kind = Kind::of(w);
                cmd.cmd_pos = false;
            }
        }
        Ok(())
    }
}
