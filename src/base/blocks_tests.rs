//! [`BlockLines`] gives the lines [`CappedLines`] gives, however the reads fall.

use std::io::{self, BufReader, Read};

use proptest::prelude::*;

use super::{count_lines, middle_line_start, BlockLines, FilePart, LineRef, BLOCK};
use crate::base::line::{CappedLines, Line};

/// A reader that hands out its bytes in reads of the given sizes, in turn.
struct Trickle<'a> {
    data: &'a [u8],
    sizes: Vec<usize>,
    turn: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let size = self.sizes[self.turn % self.sizes.len()];
        self.turn += 1;
        let n = size.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// A line as both readers can tell it: whole with its bytes, or too long with its length.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Whole(Vec<u8>, bool),
    TooLong(u64, bool),
}

fn block_lines(data: &[u8], cap: usize, sizes: Vec<usize>) -> Vec<Seen> {
    let reader = Trickle {
        data,
        sizes,
        turn: 0,
    };
    let mut lines = BlockLines::new(reader, cap);
    let mut out = Vec::new();
    while let Some(line) = lines.next_line().unwrap() {
        out.push(match line {
            LineRef::Whole { line, terminated } => Seen::Whole(line.to_vec(), terminated),
            LineRef::TooLong { bytes, terminated } => Seen::TooLong(bytes, terminated),
        });
    }
    out
}

fn capped_lines(data: &[u8], cap: usize) -> Vec<Seen> {
    let mut lines = CappedLines::new(BufReader::with_capacity(7, data), cap);
    let (mut buf, mut out) = (Vec::new(), Vec::new());
    loop {
        out.push(match lines.read(&mut buf).unwrap() {
            Line::End => return out,
            Line::Whole { terminated } => Seen::Whole(buf.clone(), terminated),
            Line::TooLong { bytes, terminated } => Seen::TooLong(bytes, terminated),
        });
    }
}

#[test]
fn lines_torn_tail_and_bom() {
    let whole = |s: &[u8]| Seen::Whole(s.to_vec(), true);
    assert_eq!(
        block_lines(b"\xEF\xBB\xBFab\n\n\xEF\xBB\xBFc\nd", 5, vec![1]),
        [
            whole(b"ab"),
            whole(b""),
            whole(b"\xEF\xBB\xBFc"),
            Seen::Whole(b"d".to_vec(), false)
        ]
    );
    assert_eq!(block_lines(b"", 5, vec![9]), []);
    assert_eq!(block_lines(b"\xEF\xBB\xBF", 5, vec![2]), []);
    assert_eq!(
        block_lines(b"123456\n12345\n1234567", 5, vec![4]),
        [
            Seen::TooLong(6, true),
            whole(b"12345"),
            Seen::TooLong(7, false)
        ]
    );
}

#[test]
fn a_long_line_within_the_cap_grows_the_block_and_gives_it_back() {
    let long = vec![b'x'; BLOCK * 3 + 5];
    let data = [&long[..], b"\nok\n"].concat();
    let reader = Trickle {
        data: &data,
        sizes: vec![usize::MAX],
        turn: 0,
    };
    let mut lines = BlockLines::new(reader, BLOCK * 4);
    let first = lines.next_line().unwrap().unwrap();
    assert_eq!(
        first,
        LineRef::Whole {
            line: &long,
            terminated: true
        }
    );
    assert!(lines.next_line().unwrap().is_some());
    assert!(lines.next_line().unwrap().is_none());
    assert_eq!(lines.buf.len(), BLOCK);
    // Past the cap, the line is never held.
    let reader = Trickle {
        data: &data,
        sizes: vec![usize::MAX],
        turn: 0,
    };
    let mut lines = BlockLines::new(reader, 1000);
    assert_eq!(
        lines.next_line().unwrap(),
        Some(LineRef::TooLong {
            bytes: long.len() as u64,
            terminated: true
        })
    );
    assert_eq!(lines.buf.len(), BLOCK);
}

#[test]
fn counts_newlines() {
    let data = b"a\n\nb\nc".repeat(300_000);
    assert_eq!(count_lines(&mut &data[..]).unwrap(), 900_000);
}

#[test]
fn a_big_file_is_cut_at_a_line_start_near_its_middle() {
    let line = b"{\"id\":12345,\"v\":\"x\"}\n";
    let data = line.repeat(3 * BLOCK / line.len());
    let cut = middle_line_start(&data[..]).unwrap().unwrap() as usize;
    assert_eq!(data[cut - 1], b'\n');
    assert!(cut >= data.len() / 2 && cut <= data.len() / 2 + line.len());
    let mut halves = (Vec::new(), Vec::new());
    let mut first = FilePart {
        file: &data[..],
        pos: 0,
        end: Some(cut as u64),
    };
    first.read_to_end(&mut halves.0).unwrap();
    let mut second = FilePart {
        file: &data[..],
        pos: cut as u64,
        end: None,
    };
    second.read_to_end(&mut halves.1).unwrap();
    assert_eq!([halves.0, halves.1].concat(), data);
    // Small files, and a long last line from the middle on, stay whole.
    assert_eq!(middle_line_start(&line[..]).unwrap(), None);
    let one_line = [&b"a\n"[..], &vec![b'x'; 3 * BLOCK]].concat();
    assert_eq!(middle_line_start(&one_line[..]).unwrap(), None);
    let ends_at_the_middle = [&vec![b'x'; 3 * BLOCK][..], b"\n"].concat();
    assert_eq!(middle_line_start(&ends_at_the_middle[..]).unwrap(), None);
}

const PIECES: &[&[u8]] = &[
    b"\n",
    b"\n",
    b"a",
    b"bc",
    b"xxxxxxxx",
    b"\xEF\xBB\xBF",
    b"\xEF",
    b"\r",
    b" ",
    b"{\"id\":1}",
];

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2048,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_same_lines_as_capped_lines(
        pieces in prop::collection::vec(prop::sample::select(PIECES), 0..40),
        cap in 0..20usize,
        sizes in prop::collection::vec(1..12usize, 1..4),
    ) {
        let data = pieces.concat();
        prop_assert_eq!(block_lines(&data, cap, sizes), capped_lines(&data, cap));
    }
}
