//! The stdout thread: prints records as the cache thread passes them on (in input order
//! with `-k`), apart from the cache so that a stdout nobody reads never holds up the cache.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use super::writer::Report;
use crate::report::output::Output;

/// What the printer thread is given: an item's record, or `None` for an item without one
/// (its place in `-k` order).
pub(super) struct Print {
    pub(super) ordinal: u64,
    pub(super) record: Option<String>,
}

/// The stdout thread: prints records (in input order with `-k`) until every sender is gone,
/// then flushes what `-k` still holds.
pub(super) fn print(
    mut output: Output,
    inbox: &mpsc::Receiver<Vec<Print>>,
    outbox: &tokio::sync::mpsc::UnboundedSender<Report>,
    next_to_print: &AtomicU64,
) {
    let mut lost = 0;
    let mut report_lost = |output: &Output| {
        if output.lost() > lost {
            let _ = outbox.send(Report::Lost(output.lost() - lost));
            lost = output.lost();
        }
    };
    for batch in inbox {
        let mut printed = 0;
        for Print { ordinal, record } in batch {
            printed += usize::from(record.is_some());
            if let Err(e) = output.resolve(ordinal, record.as_deref()) {
                let _ = outbox.send(Report::StdoutFailed(e));
            }
            next_to_print.store(output.next_to_print(), Ordering::Release);
        }
        report_lost(&output);
        if printed > 0 {
            let _ = outbox.send(Report::Printed(printed));
        }
    }
    if let Err(e) = output.finish() {
        let _ = outbox.send(Report::StdoutFailed(e));
    }
    report_lost(&output);
}
