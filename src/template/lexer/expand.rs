//! Backslashes and expansions: `$…` (parameters, `$(…)`, `$((…))`, `$'…'`), `${…}` and
//! backticks, and the arithmetic and `$'…'` frames they open.

use super::command::Cmd;
use super::{Frame, Lexer};
use crate::template::ansi_c;
use crate::template::error::{Problem, TemplateError};
use crate::template::shell::Tok;

/// The special parameters whose one character ends the expansion (`$$`, `$1`), as opposed to
/// a name, which runs on (`$ab`), or `$` alone. `$10` is `${1}0` in dash and bash alike.
const SPECIAL: &str = "$?!#-@*0123456789";

/// Which arithmetic context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ArithKind {
    /// `$((…))`
    Dollar,
    /// `((…))`, a command (also `for ((…))`).
    Command,
    /// `$[…]`, bash's old form.
    Bracket,
    /// `${a[…]}`: bash evaluates an indexed array's subscript.
    Subscript,
}

impl ArithKind {
    pub(super) fn name(self) -> &'static str {
        match self {
            ArithKind::Dollar => "arithmetic $((…))",
            ArithKind::Command => "arithmetic ((…))",
            ArithKind::Bracket => "arithmetic $[…]",
            ArithKind::Subscript => "an array subscript ${a[…]}",
        }
    }

    fn brackets(self) -> bool {
        matches!(self, ArithKind::Bracket | ArithKind::Subscript)
    }
}

/// Where in `${…}` the lexer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stage {
    /// Before the name (a `#` or `!` prefix may come).
    Start,
    Name,
    /// After the name: the operator, or `}`.
    Op,
    /// The word after the operator (`${x:-WORD}`, `${x#PATTERN}`).
    Word,
    /// The offset and length of `${x:OFFSET:LENGTH}`: arithmetic.
    Arith,
}

/// An open `${…}`.
#[derive(Debug)]
pub(super) struct Brace {
    pub(super) stage: Stage,
    /// Opened inside `"…"` or a here-document, where `'` in a `:-` word is plain text.
    dq: bool,
    /// Opened in a here-document body.
    pub(super) heredoc: bool,
    /// A pattern operator (`#`, `%`, `/`, …): `'` quotes even inside `"…"`.
    pub(super) pattern: bool,
    prefixed: bool,
}

impl Lexer<'_> {
    /// `\`, `$` and `` ` ``, alike wherever expansions happen. `dollar_quotes`: `$'…'` and
    /// `$"…"` are quotes here (the command level, arithmetic, `${…}` outside `"…"`).
    pub(super) fn expansion_char(
        &mut self,
        c: char,
        dollar_quotes: bool,
    ) -> Result<(), TemplateError> {
        match c {
            '\\' => self.backslash(),
            '$' => self.dollar(dollar_quotes),
            _ => self.backticks(),
        }
    }

    fn backslash(&mut self) -> Result<(), TemplateError> {
        let at = self.pos;
        if self.value_at(at + 1) {
            return Err(self.refuse(at + 1, Problem::AfterBackslash));
        }
        self.emit('\\');
        // The escaped character is written as is (a newline too: a line continuation).
        if let Some(c) = self.char_at(at + 1) {
            if c != '\n' {
                self.word_char(c);
            }
            self.emit(c);
        }
        Ok(())
    }

    fn dollar(&mut self, dollar_quotes: bool) -> Result<(), TemplateError> {
        let at = self.pos;
        if let Some(Tok::Ph(_)) = self.toks.get(at + 1).map(|t| &t.tok) {
            return Err(self.refuse(at + 1, Problem::AfterDollar));
        }
        let arith = |kind| Frame::Arith { kind, depth: 0 };
        let (text, frame) = match (self.char_at(at + 1), self.char_at(at + 2)) {
            (Some('('), Some('(')) => ("$((", arith(ArithKind::Dollar)),
            (Some('('), _) => ("$(", Frame::Cmd(Cmd::new(true))),
            (Some('['), _) => ("$[", arith(ArithKind::Bracket)),
            (Some('{'), _) => {
                let (dq, heredoc) = match self.top() {
                    Frame::Dq => (true, false),
                    Frame::Body(_) => (true, true),
                    Frame::Brace(b) => (b.dq, b.heredoc),
                    _ => (false, false),
                };
                let brace = Brace {
                    stage: Stage::Start,
                    dq,
                    heredoc,
                    pattern: false,
                    prefixed: false,
                };
                ("${", Frame::Brace(brace))
            }
            (Some('\''), _) if dollar_quotes => {
                // Written back as a plain '…' string.
                self.out.ch('\'');
                self.pos += 2;
                self.push(Frame::DollarSq(Vec::new()), at);
                return Ok(());
            }
            (Some('"'), _) if dollar_quotes => ("$\"", Frame::Dq),
            (Some(c), _) if SPECIAL.contains(c) => {
                // A whole expansion: what follows, a placeholder's reference too, is not part of it.
                self.emit('$');
                self.emit(c);
                return Ok(());
            }
            _ => {
                self.emit('$');
                return Ok(());
            }
        };
        self.out.text(text);
        self.pos += text.chars().count();
        self.push(frame, at);
        Ok(())
    }

    /// Copies `` `…` `` as written: the shell re-reads its text, so no value may stand inside.
    fn backticks(&mut self) -> Result<(), TemplateError> {
        let open = self.pos;
        self.emit('`');
        loop {
            let at = self.pos;
            match self.toks.get(at).map(|t| &t.tok) {
                None => return Err(self.refuse(open, Problem::Unterminated("`…`"))),
                Some(Tok::Ph(part)) if part.is_value() => {
                    return Err(self.refuse(at, Problem::Backticks))
                }
                Some(Tok::Ph(part)) => {
                    self.out.number(part);
                    self.pos += 1;
                }
                Some(Tok::Char('\\')) => {
                    if self.value_at(at + 1) {
                        return Err(self.refuse(at + 1, Problem::Backticks));
                    }
                    self.emit('\\');
                    if let Some(c) = self.char_at(at + 1) {
                        self.emit(c);
                    }
                }
                Some(Tok::Char(c)) => {
                    let c = *c;
                    self.emit(c);
                    if c == '`' {
                        return Ok(());
                    }
                }
            }
        }
    }

    pub(super) fn arith_char(&mut self, c: char) -> Result<(), TemplateError> {
        let next = self.char_at(self.pos + 1);
        let Frame::Arith { kind, depth } = self.top_mut() else {
            unreachable!("called in arithmetic")
        };
        let (kind, opens) = (*kind, if kind.brackets() { '[' } else { '(' });
        let closes = if kind.brackets() { ']' } else { ')' };
        match c {
            _ if c == opens => *depth += 1,
            _ if c == closes && *depth > 0 => *depth -= 1,
            ']' if kind.brackets() => {
                self.emit(c);
                self.stack.pop();
                return Ok(());
            }
            ')' if next == Some(')') => {
                self.out.text("))");
                self.pos += 2;
                self.stack.pop();
                return Ok(());
            }
            '"' | '\'' => {
                let at = self.pos;
                self.emit(c);
                self.push(if c == '"' { Frame::Dq } else { Frame::Sq }, at);
                return Ok(());
            }
            '\\' | '$' | '`' => return self.expansion_char(c, true),
            _ => {}
        }
        self.emit(c);
        Ok(())
    }

    pub(super) fn brace_char(&mut self, c: char) -> Result<(), TemplateError> {
        let at = self.pos;
        let next = self.char_at(at + 1);
        let Frame::Brace(b) = self.top_mut() else {
            unreachable!("called in ${{…}}")
        };
        let name_char = |c: char| c.is_ascii_alphanumeric() || c == '_';
        match (b.stage, c) {
            (Stage::Start, '#' | '!')
                if !b.prefixed && next.is_some_and(|n| name_char(n) || "@*".contains(n)) =>
            {
                b.prefixed = true;
            }
            (Stage::Start, c) if name_char(c) => b.stage = Stage::Name,
            (Stage::Start, c) if "@*#?-$!".contains(c) => b.stage = Stage::Op,
            (Stage::Name, c) if name_char(c) => {}
            (Stage::Name, '[') => {
                b.stage = Stage::Op;
                self.emit(c);
                let frame = Frame::Arith {
                    kind: ArithKind::Subscript,
                    depth: 0,
                };
                self.push(frame, at);
                return Ok(());
            }
            (Stage::Start | Stage::Name, _) => {
                // Read the same character again as an operator.
                b.stage = Stage::Op;
                return Ok(());
            }
            (Stage::Op, ':') => {
                // `${x:-…}` and kin take a word; any other `${x:…}` is a substring (bash), whose
                // offset and length are arithmetic.
                let word = next.filter(|n| "-=?+".contains(*n));
                b.stage = if word.is_some() {
                    Stage::Word
                } else {
                    Stage::Arith
                };
                self.emit(c);
                if let Some(op) = word {
                    self.emit(op);
                }
                return Ok(());
            }
            (Stage::Op, '-' | '=' | '?' | '+') => b.stage = Stage::Word,
            (Stage::Op, '#' | '%' | '/' | '^' | ',' | '@') => {
                b.stage = Stage::Word;
                b.pattern = true;
            }
            (_, '}') => {
                self.emit(c);
                self.stack.pop();
                return Ok(());
            }
            (Stage::Op, _) => {
                b.stage = Stage::Word;
                return Ok(());
            }
            (Stage::Word | Stage::Arith, '"') => {
                self.emit(c);
                self.push(Frame::Dq, at);
                return Ok(());
            }
            (Stage::Word | Stage::Arith, '\'') if !b.dq || b.pattern => {
                self.emit(c);
                self.push(Frame::Sq, at);
                return Ok(());
            }
            (Stage::Word | Stage::Arith, '\\' | '$' | '`') => {
                let dollar_quotes = !b.dq;
                return self.expansion_char(c, dollar_quotes);
            }
            _ => {}
        }
        self.emit(c);
        Ok(())
    }

    pub(super) fn dollar_sq_char(&mut self, c: char) -> Result<(), TemplateError> {
        let at = self.pos;
        match c {
            '\'' => {
                self.flush_dollar_sq()?;
                self.emit(c);
                self.stack.pop();
            }
            '\\' => {
                if let Some(Tok::Ph(_)) = self.toks.get(at + 1).map(|t| &t.tok) {
                    return Err(self.refuse(at + 1, Problem::AfterBackslash));
                }
                // What follows, up to a placeholder or the closing quote (a first ' is \'). Ten
                // characters hold any escape but `\x{…}`, whose hex digits may run on.
                let mut rest: Vec<char> = Vec::new();
                for c in (at + 1..).map_while(|i| self.char_at(i)) {
                    let braced = rest.starts_with(&['x', '{'])
                        && rest.last().is_some_and(char::is_ascii_hexdigit);
                    if (!rest.is_empty() && c == '\'') || (rest.len() >= 10 && !braced) {
                        break;
                    }
                    rest.push(c);
                }
                let (bytes, used) = ansi_c::escape(&rest)
                    .map_err(|why| self.refuse(at, Problem::DollarSingleQuote(why)))?;
                self.dollar_sq_buf().extend(bytes);
                self.pos += 1 + used;
            }
            c => {
                let mut utf8 = [0; 4];
                self.dollar_sq_buf()
                    .extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
                self.pos += 1;
            }
        }
        Ok(())
    }

    fn dollar_sq_buf(&mut self) -> &mut Vec<u8> {
        match self.top_mut() {
            Frame::DollarSq(buf) => buf,
            _ => unreachable!("called in $'…'"),
        }
    }

    /// Writes the decoded text of an open `$'…'` into its plain '…' string.
    pub(super) fn flush_dollar_sq(&mut self) -> Result<(), TemplateError> {
        let open = self.stack.last().map_or(0, |(_, at)| *at);
        let Frame::DollarSq(buf) = self.top_mut() else {
            return Ok(());
        };
        let bytes = std::mem::take(buf);
        let text = String::from_utf8(bytes).map_err(|_| {
            self.refuse(
                open,
                Problem::DollarSingleQuote("makes bytes that are not UTF-8"),
            )
        })?;
        self.out.text(&text.replace('\'', "'\\''"));
        Ok(())
    }
}
