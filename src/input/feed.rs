//! The hand-over of items from the reader thread to the scheduler.
//!
//! The reader runs on a thread of its own because reading stdin blocks and cannot be cancelled.
//! It sends items in small batches and marks the last one, so the scheduler can tell the end
//! of the input from a reader thread that died (a panic drops the channel without that mark):
//! only the mark means "everything was read"; anything else is an error, never a short input.

use anyhow::{anyhow, Context, Error, Result};
use tokio::sync::mpsc;

use super::{InputEvent, InputReader, Key};

/// What the reader sends for each line: an event, or the I/O error that ended the input.
pub type InputMsg = Result<InputEvent, Error>;

/// One hand-over: a few messages, and whether they are the input's last.
struct ItemBatch {
    msgs: Vec<InputMsg>,
    last: bool,
}

/// The scheduler's end of the input.
pub struct InputFeed {
    rx: mpsc::Receiver<ItemBatch>,
    name: String,
    ended: bool,
}

impl InputFeed {
    /// The next batch of messages; `None` once the input has ended. A reader thread that stops
    /// without marking its last batch yields one error message instead, then `None`.
    ///
    /// Cancel-safe: dropping the future before it is ready loses nothing.
    pub async fn recv(&mut self) -> Option<Vec<InputMsg>> {
        if self.ended {
            return None;
        }
        let batch = self.rx.recv().await;
        self.ended = batch.as_ref().is_none_or(|b| b.last);
        match batch {
            Some(batch) => Some(batch.msgs),
            None => Some(vec![Err(anyhow!(
                "internal error: the input thread stopped before the end of input {} (it \
                 panicked: see the message above); the items after it did not run; run again \
                 to do them, and please report the panic",
                self.name
            ))]),
        }
    }
}

/// At most this many items, or about this many bytes of lines, go in one hand-over.
pub const BATCH_ITEMS: usize = 256;
const BATCH_BYTES: usize = 1 << 20;

/// Starts the reader thread: it reads `reader` to its end (or its first I/O error), asks `keep`
/// about each key, and sends what it keeps in batches of up to `batch_size` items (and about
/// 1 MiB of lines).
pub fn spawn(
    mut reader: InputReader,
    name: &str,
    mut keep: impl FnMut(&Key) -> bool + Send + 'static,
    batch_size: usize,
) -> Result<InputFeed> {
    // One hand-over per batch instead of per item keeps the reader and the scheduler from
    // waking each other: each hand-over that finds the channel full wakes the reader when the
    // scheduler takes it, and with batches of -j items that was a wake-up every two items at
    // -j 2. At most 4 batches wait in the channel, so reading ahead stays bounded (about
    // 1,000 items, or 5 MiB of lines).
    let (tx, rx) = mpsc::channel(4);
    // Not joined: at exit the thread may be parked in a read that never returns.
    std::thread::Builder::new()
        .name("pararun-input".into())
        .spawn(move || {
            let mut msgs = Vec::with_capacity(batch_size);
            let mut bytes = 0;
            loop {
                let (msg, last) = match reader.next_event(&mut keep) {
                    Ok(Some(event)) => (Some(Ok(event)), false),
                    Ok(None) => (None, true),
                    Err(e) => (Some(Err(e)), true),
                };
                bytes += msg.as_ref().map_or(0, size_of_msg);
                msgs.extend(msg);
                // Hand over before a read that may block, so a slow producer's items are not
                // held back waiting for a full batch.
                let full = msgs.len() >= batch_size || bytes >= BATCH_BYTES;
                if last || full || reader.would_block() {
                    bytes = 0;
                    let full = std::mem::replace(&mut msgs, Vec::with_capacity(batch_size));
                    let batch = ItemBatch { msgs: full, last };
                    let send = !batch.msgs.is_empty() || last;
                    if (send && tx.blocking_send(batch).is_err()) || last {
                        break;
                    }
                }
            }
        })
        .context("cannot start the input thread")?;
    Ok(InputFeed {
        rx,
        name: name.to_owned(),
        ended: false,
    })
}

/// About what a message holds in memory: its line.
fn size_of_msg(msg: &InputMsg) -> usize {
    match msg {
        Ok(InputEvent::Item(item)) => item.line.len(),
        Ok(InputEvent::Bad { line, .. }) => line.len(),
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Format;
    use std::io::Read;

    fn reader(source: impl std::io::Read + Send + 'static) -> InputReader {
        InputReader::new(Box::new(source), "in.jsonl", Format::Jsonl, "id", 1 << 20)
    }

    /// Drains the feed: each item's key text, or `error: ...` for an error message.
    async fn drain(mut feed: InputFeed) -> Vec<String> {
        let mut seen = Vec::new();
        while let Some(msgs) = feed.recv().await {
            for msg in msgs {
                seen.push(match msg {
                    Ok(InputEvent::Item(item)) => item.key.text,
                    Ok(InputEvent::Bad { seq, .. }) => format!("bad {seq}"),
                    Err(e) => format!("error: {e:#}"),
                });
            }
        }
        seen
    }

    fn lines(n: usize) -> Vec<u8> {
        (1..=n)
            .map(|i| format!("{{\"id\":{i}}}\n"))
            .collect::<String>()
            .into_bytes()
    }

    #[tokio::test]
    async fn every_item_then_the_end() {
        let feed = spawn(
            reader(std::io::Cursor::new(lines(10))),
            "in.jsonl",
            |_| true,
            3,
        );
        let keys = drain(feed.unwrap()).await;
        let expected: Vec<String> = (1..=10).map(|i| i.to_string()).collect();
        assert_eq!(keys, expected);
    }

    #[tokio::test]
    async fn an_empty_input_just_ends() {
        let feed = spawn(reader(std::io::empty()), "in.jsonl", |_| true, 3).unwrap();
        assert!(drain(feed).await.is_empty());
    }

    #[tokio::test]
    async fn a_read_error_is_the_last_message() {
        let source = std::io::Cursor::new(lines(2)).chain(Broken);
        let feed = spawn(reader(source), "in.jsonl", |_| true, 64).unwrap();
        let seen = drain(feed).await;
        assert_eq!(seen.len(), 3, "{seen:?}");
        assert_eq!(seen[..2], ["1", "2"]);
        assert!(
            seen[2].starts_with("error: cannot read input in.jsonl at line 3: "),
            "{seen:?}"
        );
    }

    #[tokio::test]
    async fn a_reader_that_dies_is_not_the_end_of_the_input() {
        let keep = |key: &Key| {
            assert!(key.text != "3", "a bug in the filter");
            true
        };
        let feed = spawn(reader(std::io::Cursor::new(lines(5))), "in.jsonl", keep, 1).unwrap();
        let seen = drain(feed).await;
        assert_eq!(seen[..2], ["1", "2"]);
        let last = seen.last().unwrap();
        assert!(
            last.starts_with(
                "error: internal error: the input thread stopped before the end of input in.jsonl"
            ),
            "{seen:?}"
        );
    }

    struct Broken;

    impl std::io::Read for Broken {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::from_raw_os_error(libc::EIO))
        }
    }
}
