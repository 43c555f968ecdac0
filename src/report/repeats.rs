//! Bad input that repeats: a JSONL file keyed `"ID"` instead of `"id"` fails every line for
//! the same reason, and a line per item buries the one thing to fix. The first few items with
//! a reason are reported one by one; the rest are counted, and the run ends with one line per
//! such reason, with the count.

use super::text::thousands;

/// How many items with the same reason are reported one by one.
pub const SHOWN: u64 = 3;

/// How many distinct reasons are counted; past that, every item is reported (so that memory
/// stays bounded whatever the input).
const REASONS: usize = 32;

/// Reasons seen so far (with the failure kind they belong to), with how many items had each.
#[derive(Debug, Default)]
pub struct Repeats {
    counts: Vec<(&'static str, String, u64)>,
}

/// What to print for one item.
#[derive(Debug, PartialEq, Eq)]
pub enum Show {
    /// Its own line, as usual.
    Line,
    /// Its own line, then a note that further ones will only be counted.
    LineThenNote(String),
    /// Nothing now: it is in the count at the end.
    Counted,
}

impl Repeats {
    /// Counts one item that failed as bad input for `reason`; says what to print for it.
    pub fn note(&mut self, reason: &str) -> Show {
        self.note_kind("bad-input", reason)
    }

    /// Counts one item that failed as `kind` (`bad-input`, `bad-output`) for `reason`; says
    /// what to print for it.
    pub fn note_kind(&mut self, kind: &'static str, reason: &str) -> Show {
        let found = self
            .counts
            .iter()
            .position(|(k, r, _)| *k == kind && r == reason);
        let count = match found {
            Some(i) => {
                self.counts[i].2 += 1;
                self.counts[i].2
            }
            None if self.counts.len() < REASONS => {
                self.counts.push((kind, reason.to_owned(), 1));
                1
            }
            None => return Show::Line,
        };
        match count {
            ..SHOWN => Show::Line,
            SHOWN => Show::LineThenNote(format!(
                "pararun: more items failing as {kind} for this reason are counted, not shown \
                 (the count comes at the end)"
            )),
            _ => Show::Counted,
        }
    }

    /// One line per reason that had items counted but not shown, with how many items it had.
    pub fn summary(&self) -> Vec<String> {
        self.counts
            .iter()
            .filter(|(_, _, count)| *count > SHOWN)
            .map(|(kind, reason, count)| {
                format!(
                    "pararun: {} items failed as {kind}, all for the same reason ({SHOWN} \
                     shown above): {reason}",
                    thousands(*count)
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_is_shown_a_few_times_then_counted() {
        let mut repeats = Repeats::default();
        let shows: Vec<Show> = (0..1000).map(|_| repeats.note("no \"id\"")).collect();
        assert_eq!(shows[..2], [Show::Line, Show::Line]);
        assert!(matches!(shows[2], Show::LineThenNote(_)));
        assert!(shows[3..].iter().all(|s| *s == Show::Counted));
        assert_eq!(repeats.note("other"), Show::Line);
        assert_eq!(
            repeats.summary(),
            [
                "pararun: 1,000 items failed as bad-input, all for the same reason (3 shown \
              above): no \"id\""
            ]
        );
    }

    #[test]
    fn distinct_reasons_past_the_cap_are_all_shown() {
        let mut repeats = Repeats::default();
        for i in 0..REASONS {
            repeats.note(&i.to_string());
        }
        for _ in 0..10 {
            assert_eq!(repeats.note("one too many"), Show::Line);
        }
        assert!(repeats.summary().is_empty());
    }
}
