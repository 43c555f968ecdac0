//! Here-documents: the `<<WORD` operator and the bodies that start after the line's end.
//!
//! An unquoted body is like `"…"` (a value's reference is `${__pararun_N}`; expansion results are not
//! re-read, and a value holding the delimiter line does not end the body, which the shell
//! delimited before expanding anything). A body with a quoted delimiter (`<<'EOF'`, `<<"EOF"`,
//! `<<\EOF`) expands nothing, so when it holds a value placeholder pararun rewrites it: the
//! delimiter unquoted, and `\`, `$` and `` ` `` in the body escaped, which keeps every other
//! byte of the body as written.

use super::{Frame, Lexer};
use crate::template::error::{Problem, TemplateError};
use crate::template::shell::Tok;

/// A here-document whose body has not started yet.
#[derive(Debug)]
pub(super) struct PendingBody {
    /// The token index of its `<<`.
    pub(super) at: usize,
    /// The delimiter, quotes removed.
    pub(super) delim: String,
    /// `<<-`: leading tabs are stripped from the body and the delimiter line.
    strip_tabs: bool,
    /// Any part of the delimiter word was quoted: the body expands nothing.
    quoted: bool,
    /// Where the delimiter word was written: (segment, start, end).
    word: (usize, usize, usize),
}

/// The body being read: tokens up to `end`; the delimiter line runs to `resume`.
#[derive(Debug)]
pub(super) struct Body {
    pub(super) end: usize,
    pub(super) resume: usize,
    pub(super) quoted: bool,
    /// A quoted body holding a value placeholder, written unquoted with escapes.
    pub(super) transform: bool,
}

/// A delimiter that needs no quoting, so it can be written unquoted as is.
fn is_plain(delim: &str) -> bool {
    !delim.is_empty()
        && delim
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.,:+@%/=".contains(c))
}

impl Lexer<'_> {
    /// `<<` or `<<-` and the delimiter word.
    pub(super) fn heredoc_op(&mut self) -> Result<(), TemplateError> {
        let op = self.pos;
        self.out.text("<<");
        self.pos += 2;
        let strip_tabs = self.char_at(self.pos) == Some('-');
        if strip_tabs {
            self.emit('-');
        }
        while let Some(c @ (' ' | '\t')) = self.char_at(self.pos) {
            self.emit(c);
        }
        let start = self.out.mark();
        let mut delim = String::new();
        let mut quote = None;
        let mut quoted = false;
        loop {
            let at = self.pos;
            let c = match self.toks.get(at).map(|t| &t.tok) {
                None if quote.is_some() => {
                    return Err(
                        self.refuse(at - 1, Problem::Unterminated("here-document delimiter"))
                    )
                }
                None => break,
                Some(Tok::Ph(_)) => return Err(self.refuse(at, Problem::HeredocDelimiter)),
                Some(Tok::Char(c)) => *c,
            };
            match (quote, c) {
                (None, ' ' | '\t' | '\n' | ';' | '&' | '|' | '(' | ')' | '<' | '>') => break,
                (None, '\'' | '"') => {
                    quote = Some(c);
                    quoted = true;
                }
                (Some(q), c) if q == c => quote = None,
                (Some('\''), c) => delim.push(c),
                (_, '\\') => {
                    let escaped = self.char_at(at + 1);
                    // Inside "…" a backslash only escapes these; elsewhere anything.
                    let escapes =
                        quote.is_none() || escaped.is_some_and(|e| "$`\"\\\n".contains(e));
                    if let (true, Some(e)) = (escapes, escaped) {
                        quoted = true;
                        self.emit(c);
                        self.emit(e);
                        delim.push(e);
                        continue;
                    }
                    delim.push(c);
                }
                (_, c) => delim.push(c),
            }
            self.emit(c);
        }
        let (seg, end) = self.out.mark();
        self.pending.push(PendingBody {
            at: op,
            delim,
            strip_tabs,
            quoted,
            word: (seg, start.1, end),
        });
        Ok(())
    }

    /// After a newline at the command level: the pending bodies follow, one after another.
    pub(super) fn start_bodies(&mut self) -> Result<(), TemplateError> {
        let mut from = self.pos;
        let mut bodies = Vec::new();
        for doc in std::mem::take(&mut self.pending) {
            let Some((end, resume)) = self.find_delimiter(from, &doc) else {
                return Err(self.refuse(doc.at, Problem::UnterminatedHeredoc(doc.delim)));
            };
            let first_value = (from..end).find(|&i| self.value_at(i));
            let transform = doc.quoted && first_value.is_some();
            if let (true, Some(at)) = (transform, first_value) {
                if !is_plain(&doc.delim) {
                    return Err(self.refuse(at, Problem::HeredocDelimiterNotPlain));
                }
                let (seg, start, word_end) = doc.word;
                self.fixups.push((seg, start, word_end, doc.delim.clone()));
            }
            let body = Body {
                end,
                resume,
                quoted: doc.quoted,
                transform,
            };
            bodies.push((Frame::Body(body), from));
            from = resume;
        }
        // The first body on top.
        for (frame, at) in bodies.into_iter().rev() {
            self.push(frame, at);
        }
        Ok(())
    }

    /// The body of `doc` starting at token `from`: (its end, the end of its delimiter line).
    /// `None` when no delimiter line comes: dash and bash read to the end of the script, but
    /// a body that does not end where its writer meant may hold what was meant as commands.
    fn find_delimiter(&self, from: usize, doc: &PendingBody) -> Option<(usize, usize)> {
        let toks = self.toks;
        let mut line = from;
        while line < toks.len() {
            let newline = (line..toks.len())
                .find(|&i| matches!(toks[i].tok, Tok::Char('\n')))
                .unwrap_or(toks.len());
            let text: Option<String> = toks[line..newline]
                .iter()
                .map(|t| match t.tok {
                    Tok::Char(c) => Some(c),
                    Tok::Ph(_) => None,
                })
                .collect();
            if let Some(text) = text {
                let text = if doc.strip_tabs {
                    text.trim_start_matches('\t')
                } else {
                    &text
                };
                if text == doc.delim {
                    return Some((line, (newline + 1).min(toks.len())));
                }
            }
            line = newline + 1;
        }
        None
    }

    /// A character of a quoted body: as written, or escaped for an unquoted one.
    pub(super) fn quoted_body_char(&mut self, c: char, transform: bool) {
        if transform && matches!(c, '\\' | '$' | '`') {
            self.out.ch('\\');
        }
        self.emit(c);
    }
}
