//! The shell lexer, run once at parse time over the joined script.
//!
//! It follows the quoting context with a stack of frames (the top level, `"…"`, `'…'`, `$'…'`,
//! `$(…)`, `${…}`, arithmetic, comments, here-document bodies) and, at each value placeholder,
//! writes the reference to its variable that keeps the value whole there, or refuses the
//! template. It knows no values: it only decides where they go, so a context it misjudges can
//! at worst deliver wrong bytes, never run a value, except where the shell itself evaluates text
//! (backticks, arithmetic, bash's array subscripts), and those it refuses. `<#>` and `<%>` are
//! digits and are pasted.

mod command;
mod expand;
mod heredoc;
mod names;
#[cfg(test)]
mod tests;

use super::error::{Problem, TemplateError};
use super::shell::{Form, Out, Tok, Token};
use super::Part;

use command::Cmd;
use expand::{ArithKind, Brace, Stage};
use heredoc::{Body, PendingBody};

/// One open context.
#[derive(Debug)]
enum Frame {
    /// The top level, or the inside of `$(…)`.
    Cmd(Cmd),
    Dq,
    Sq,
    /// `$'…'`: the decoded bytes not yet written out.
    DollarSq(Vec<u8>),
    Brace(Brace),
    Arith {
        kind: ArithKind,
        depth: u32,
    },
    Comment,
    Body(Body),
}

/// Walks the tokens once, writing the script into `out`.
pub(super) struct Lexer<'a> {
    toks: &'a [Token],
    pos: usize,
    /// Each open frame with the token index that opened it.
    stack: Vec<(Frame, usize)>,
    out: Out,
    /// Here-documents whose bodies start after the next newline.
    pending: Vec<PendingBody>,
    /// Quoted here-document delimiters to rewrite unquoted: (segment, start, end, new text).
    fixups: Vec<(usize, usize, usize, String)>,
    /// A `declare`, `typeset` or `local` gives the integer or nameref attribute (see `names`).
    attributes: bool,
    /// The first value placeholder.
    first_value: Option<usize>,
}

impl<'a> Lexer<'a> {
    /// Lexes the whole script.
    pub(super) fn run(toks: &'a [Token]) -> Result<Out, TemplateError> {
        let mut lexer = Lexer {
            toks,
            pos: 0,
            stack: vec![(Frame::Cmd(Cmd::new(false)), 0)],
            out: Out::default(),
            pending: Vec::new(),
            fixups: Vec::new(),
            attributes: false,
            first_value: None,
        };
        lexer.lex()?;
        lexer.finish()
    }

    fn lex(&mut self) -> Result<(), TemplateError> {
        let toks = self.toks;
        loop {
            if let Some((Frame::Body(body), _)) = self.stack.last() {
                if self.pos >= body.end {
                    // The delimiter line, as written.
                    let (end, resume) = (body.end, body.resume);
                    self.raw(end, resume);
                    self.pos = resume;
                    self.stack.pop();
                    continue;
                }
            } else if self.body_end().is_some_and(|end| self.pos >= end) {
                return Err(self.unterminated());
            }
            let Some(token) = toks.get(self.pos) else {
                return Ok(());
            };
            match &token.tok {
                Tok::Ph(part) => self.placeholder(part)?,
                Tok::Char(c) => self.char(*c)?,
            }
        }
    }

    fn char(&mut self, c: char) -> Result<(), TemplateError> {
        // The command level notes its own; quotes are not part of what bash reads as a name.
        if !matches!(self.top(), Frame::Cmd(_)) && !matches!(c, '\'' | '"' | '\\') {
            self.word_char(c);
        }
        match self.top() {
            Frame::Cmd(_) => self.cmd_char(c),
            Frame::Dq => self.dq_char(c, false),
            Frame::Sq => {
                self.emit(c);
                if c == '\'' {
                    self.stack.pop();
                }
                Ok(())
            }
            Frame::DollarSq(_) => self.dollar_sq_char(c),
            Frame::Brace(_) => self.brace_char(c),
            Frame::Arith { .. } => self.arith_char(c),
            Frame::Comment => {
                if c == '\n' {
                    // The newline ends the command too: the frame below handles it.
                    self.stack.pop();
                } else {
                    self.emit(c);
                }
                Ok(())
            }
            Frame::Body(body) if body.quoted => {
                self.quoted_body_char(c, body.transform);
                Ok(())
            }
            Frame::Body(_) => self.dq_char(c, true),
        }
    }

    /// Inside `"…"`, or (`body`) an unquoted here-document body, where `"` is plain text.
    fn dq_char(&mut self, c: char, body: bool) -> Result<(), TemplateError> {
        match c {
            '"' if !body => {
                self.emit(c);
                self.stack.pop();
                Ok(())
            }
            '\\' | '$' | '`' => self.expansion_char(c, false),
            _ => {
                self.emit(c);
                Ok(())
            }
        }
    }

    fn placeholder(&mut self, part: &Part) -> Result<(), TemplateError> {
        let at = self.pos;
        self.pos += 1;
        if let Frame::Cmd(cmd) = self.top_mut() {
            cmd.touch();
        }
        if !part.is_value() {
            self.word_char('0');
            self.flush_dollar_sq()?;
            self.out.number(part);
            return Ok(());
        }
        let form = self.value_form(at)?;
        self.first_value.get_or_insert(at);
        if let Some(cmd) = self.word_cmd() {
            cmd.word_value();
        }
        self.flush_dollar_sq()?;
        let n = self.out.var(part);
        self.out.text(&form.reference(n));
        // `[[ … -eq … ]]` is only known at its end.
        for (frame, _) in &mut self.stack {
            if let Frame::Cmd(cmd) = frame {
                cmd.note_placeholder(at);
            }
        }
        Ok(())
    }

    /// The reference form for a value placeholder here, or why none is safe.
    fn value_form(&self, at: usize) -> Result<Form, TemplateError> {
        for (frame, _) in self.stack.iter().rev() {
            let problem = match frame {
                Frame::Arith { kind, .. } => Problem::Arithmetic(kind.name()),
                Frame::Brace(b) if b.stage == Stage::Arith => {
                    Problem::Arithmetic("the offset or length of ${x:…}")
                }
                Frame::Cmd(cmd) => match cmd.problem() {
                    Some(problem) => problem,
                    None => continue,
                },
                _ => continue,
            };
            return Err(self.refuse(at, problem));
        }
        for (frame, _) in self.stack.iter().rev() {
            match frame {
                Frame::Cmd(_) => break,
                Frame::Brace(b) if b.heredoc && b.pattern => {
                    return Err(self.refuse(at, Problem::HeredocPattern))
                }
                _ => {}
            }
        }
        Ok(match self.top() {
            Frame::Cmd(_) => Form::Quoted,
            Frame::Dq | Frame::Comment | Frame::Body(_) => Form::Bare,
            Frame::Sq | Frame::DollarSq(_) => Form::SqSplice,
            Frame::Brace(b) if b.stage == Stage::Word => Form::Quoted,
            Frame::Brace(_) => return Err(self.refuse(at, Problem::VariableName)),
            Frame::Arith { .. } => unreachable!("arithmetic is refused above"),
        })
    }

    /// Checks that everything opened was closed, and applies the delimiter rewrites.
    fn finish(mut self) -> Result<Out, TemplateError> {
        if let Some((Frame::Comment, _)) = self.stack.last() {
            self.stack.pop();
        }
        if self.stack.len() > 1 {
            return Err(self.unterminated());
        }
        // `cat <<EOF` on the last line: a body that never started.
        if let Some(doc) = self.pending.first() {
            let delim = doc.delim.clone();
            return Err(self.refuse(doc.at, Problem::UnterminatedHeredoc(delim)));
        }
        self.end_word()?;
        if let Frame::Cmd(cmd) = self.top() {
            if let Some(at) = cmd.open_arith_test() {
                return Err(self.refuse(at, Problem::ArithmeticTest));
            }
        }
        // Known only now: the declaration may come after the value, as in a function.
        if let (true, Some(at)) = (self.attributes, self.first_value) {
            return Err(self.refuse(at, Problem::Attributes));
        }
        // Later rewrites first, so earlier offsets stay valid.
        self.fixups.sort_by_key(|f| std::cmp::Reverse((f.0, f.1)));
        for (seg, start, end, text) in std::mem::take(&mut self.fixups) {
            if let Some(super::shell::Seg::Text(t)) = self.out.segs.get_mut(seg) {
                t.replace_range(start..end, &text);
            }
        }
        Ok(self.out)
    }

    /// The command level whose current word the innermost frame is part of: none in a
    /// here-document body or a comment.
    fn word_cmd(&mut self) -> Option<&mut Cmd> {
        for (frame, _) in self.stack.iter_mut().rev() {
            match frame {
                Frame::Cmd(cmd) => return Some(cmd),
                Frame::Body(_) | Frame::Comment => return None,
                _ => {}
            }
        }
        None
    }

    /// Notes a character of the current word (see `names`).
    fn word_char(&mut self, c: char) {
        if let Some(cmd) = self.word_cmd() {
            cmd.word_char(c);
        }
    }

    fn top(&self) -> &Frame {
        &self.stack.last().expect("the top level is never popped").0
    }

    fn top_mut(&mut self) -> &mut Frame {
        &mut self
            .stack
            .last_mut()
            .expect("the top level is never popped")
            .0
    }

    fn push(&mut self, frame: Frame, at: usize) {
        self.stack.push((frame, at));
    }

    /// Writes `c` as is and moves past it.
    fn emit(&mut self, c: char) {
        self.out.ch(c);
        self.pos += 1;
    }

    /// Writes tokens `from..to` as written (characters, and numbers pasted).
    fn raw(&mut self, from: usize, to: usize) {
        for token in &self.toks[from..to] {
            match &token.tok {
                Tok::Char(c) => self.out.ch(*c),
                Tok::Ph(part) => self.out.number(part),
            }
        }
    }

    fn char_at(&self, i: usize) -> Option<char> {
        match self.toks.get(i).map(|t| &t.tok) {
            Some(Tok::Char(c)) => Some(*c),
            _ => None,
        }
    }

    fn value_at(&self, i: usize) -> bool {
        matches!(self.toks.get(i).map(|t| &t.tok), Some(Tok::Ph(p)) if p.is_value())
    }

    /// The end of the innermost here-document body being read.
    fn body_end(&self) -> Option<usize> {
        self.stack.iter().rev().find_map(|(frame, _)| match frame {
            Frame::Body(body) => Some(body.end),
            _ => None,
        })
    }

    fn offset(&self, i: usize) -> usize {
        match self.toks.get(i) {
            Some(token) => token.offset,
            None => self.toks.last().map_or(0, |t| {
                t.offset
                    + match &t.tok {
                        Tok::Char(c) => c.len_utf8(),
                        Tok::Ph(p) => p.written().len(),
                    }
            }),
        }
    }

    /// A refusal of the placeholder at token `at`.
    fn refuse(&self, at: usize, problem: Problem) -> TemplateError {
        let placeholder = match self.toks.get(at) {
            Some(Token {
                tok: Tok::Ph(part),
                appended,
                ..
            }) => Some(if *appended {
                "the item (appended to a command that has no placeholder)".to_owned()
            } else {
                part.written()
            }),
            _ => None,
        };
        TemplateError {
            placeholder,
            offset: self.offset(at),
            problem,
        }
    }

    /// The innermost open frame, as an error.
    fn unterminated(&self) -> TemplateError {
        let (frame, at) = self.stack.last().expect("the top level is never popped");
        let what = match frame {
            Frame::Cmd(_) => "$(…)",
            Frame::Dq => "\"…\"",
            Frame::Sq => "'…'",
            Frame::DollarSq(_) => "$'…'",
            Frame::Brace(_) => "${…}",
            Frame::Arith { kind, .. } => kind.name(),
            Frame::Comment => "comment",
            Frame::Body(_) => "here-document",
        };
        self.refuse(*at, Problem::Unterminated(what))
    }
}
