//! Finding placeholders in the words of a command: `<>`, `<NAME>`, `<#>`, `<%>`, and GNU
//! parallel's `{}`, `{#}`, `{%}`. Everything else is literal text, kept as written.
//!
//! The brace spellings exist because `<>` typed unquoted is a shell redirection, while `{}`,
//! `{#}` and `{%}` survive bash, zsh and fish as plain words. Braces mean a lot to shells and
//! to the programs pararun runs, so they count only where nothing else can claim them: never
//! right after a `$` that opens an expansion (`${x}`, `${#}` are the shell's; `$${}` is `$$`
//! and the item), and `{}` is left as written in a command
//! that also uses a `<…>` placeholder (`find '<>' -exec wc -c {} +`) and in a direct-mode
//! argument that holds a blank (see [`parse_words`]). There is no `{NAME}`: it would take jq's
//! `{id}` and awk's `{print}` for fields.

/// How a placeholder was spelled: kept for messages and byte offsets, never for its meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Spelling {
    /// `<>`, `<#>`, `<%>`.
    Angle,
    /// `{}`, `{#}`, `{%}`.
    Brace,
}

/// One piece of a command word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Part {
    Lit(String),
    /// `<>` or `{}`: the item's line as read.
    Item(Spelling),
    /// `<NAME>`: a top-level field of a JSON object item.
    Field(String),
    /// `<#>` or `{#}`: the 1-based input line number.
    Seq(Spelling),
    /// `<%>` or `{%}`: the slot running the item.
    Slot(Spelling),
}

impl Part {
    /// Whether the placeholder stands for item data (as opposed to a number pararun makes).
    pub(super) fn is_value(&self) -> bool {
        matches!(self, Part::Item(_) | Part::Field(_))
    }

    /// The placeholder as written in the command.
    pub(super) fn written(&self) -> String {
        let (angle, brace, spelling) = match self {
            Part::Lit(text) => return text.clone(),
            Part::Field(name) => return format!("<{name}>"),
            Part::Item(s) => ("<>", "{}", s),
            Part::Seq(s) => ("<#>", "{#}", s),
            Part::Slot(s) => ("<%>", "{%}", s),
        };
        match spelling {
            Spelling::Angle => angle.to_owned(),
            Spelling::Brace => brace.to_owned(),
        }
    }
}

/// Splits every word of a command into parts. `{}` is the item only where nothing else can
/// mean it: not in a command that also has a `<…>` placeholder (there it is find's or
/// xargs's), and in direct mode (`shell` false) not in a word that holds a blank, such as the
/// script of `sh -c 'echo {}'`, where `{}` is JSON's empty object and pasting a value would
/// make it code.
pub(super) fn parse_words(command: &[String], shell: bool) -> Vec<Vec<Part>> {
    let item = |word: &str| shell || !word.contains(char::is_whitespace);
    let words: Vec<Vec<Part>> = command.iter().map(|w| parse_word(w, item(w))).collect();
    let angle = words.iter().flatten().any(|p| match p {
        Part::Field(_) => true,
        Part::Item(s) | Part::Seq(s) | Part::Slot(s) => *s == Spelling::Angle,
        Part::Lit(_) => false,
    });
    match angle {
        true => command.iter().map(|w| parse_word(w, false)).collect(),
        false => words,
    }
}

fn is_field_char(c: char, first: bool) -> bool {
    c.is_ascii_alphabetic() || c == '_' || (!first && (c.is_ascii_digit() || c == '-'))
}

/// The angle placeholder whose text (between `<` and `>`) is `inner`, if it is one.
fn angle(inner: &str) -> Option<Part> {
    Some(match inner {
        "" => Part::Item(Spelling::Angle),
        "#" => Part::Seq(Spelling::Angle),
        "%" => Part::Slot(Spelling::Angle),
        name if name
            .chars()
            .enumerate()
            .all(|(i, c)| is_field_char(c, i == 0)) =>
        {
            Part::Field(name.to_owned())
        }
        _ => return None,
    })
}

/// The brace placeholder at the start of `rest` (which starts with `{`) and its length.
fn brace(rest: &str, item: bool) -> Option<(Part, usize)> {
    let part = match rest.get(..3) {
        Some("{#}") => Part::Seq(Spelling::Brace),
        Some("{%}") => Part::Slot(Spelling::Brace),
        _ if item && rest.starts_with("{}") => return Some((Part::Item(Spelling::Brace), 2)),
        _ => return None,
    };
    Some((part, 3))
}

/// Splits one word into literal text and placeholders; `item` says whether `{}` is one.
pub(super) fn parse_word(word: &str, item: bool) -> Vec<Part> {
    let mut parts = Vec::new();
    let mut lit = String::new();
    let mut rest = word;
    while let Some(pos) = rest.find(['<', '{']) {
        lit += &rest[..pos];
        rest = &rest[pos..];
        let found = if let Some(after) = rest.strip_prefix('<') {
            after
                .find('>')
                .and_then(|end| angle(&after[..end]).map(|part| (part, end + 2)))
        } else if (lit.len() - lit.trim_end_matches('$').len()) % 2 == 1 {
            // `${`; but `$${}` is `$$` (the shell's pid) and then the item.
            None
        } else {
            brace(rest, item)
        };
        match found {
            Some((part, len)) => {
                if !lit.is_empty() {
                    parts.push(Part::Lit(std::mem::take(&mut lit)));
                }
                parts.push(part);
                rest = &rest[len..];
            }
            None => {
                lit.push(rest.as_bytes()[0] as char);
                rest = &rest[1..];
            }
        }
    }
    lit += rest;
    if !lit.is_empty() || parts.is_empty() {
        parts.push(Part::Lit(lit));
    }
    parts
}
