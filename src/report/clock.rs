//! The timestamp at the start of each log line when stderr is not a terminal: the local time in
//! RFC 3339 with its UTC offset, to the second (`2026-11-25T13:34:56+01:00`). Local, because
//! that is how cron, syslog and people read logs; with its offset, so that it stays exact
//! across a daylight-saving change and between machines. libc's `localtime_r` knows the time
//! zone (TZ, /etc/localtime), so no time crate is needed.

use std::time::{SystemTime, UNIX_EPOCH};

/// The current local time, e.g. `2026-11-25T13:34:56+01:00`.
pub fn now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let secs = libc::time_t::try_from(secs).unwrap_or(libc::time_t::MAX);
    match local(secs) {
        Some(tm) => rfc3339(
            i64::from(tm.tm_year) + 1900,
            tm.tm_mon + 1,
            tm.tm_mday,
            [tm.tm_hour, tm.tm_min, tm.tm_sec],
            tm.tm_gmtoff,
        ),
        // Only for a time no calendar can hold: the seconds themselves, as date(1) reads them.
        None => format!("@{secs}"),
    }
}

/// The broken-down local time of `secs` since the epoch.
fn local(secs: libc::time_t) -> Option<libc::tm> {
    let mut tm = std::mem::MaybeUninit::<libc::tm>::zeroed();
    // SAFETY: localtime_r writes only into `tm`, which outlives the call. It also reads the
    // environment (TZ), which is sound as long as no thread changes the environment at the
    // same time: pararun never does, and `pararun::run` documents the same duty for a program
    // that calls it (no setenv while a run goes on).
    let filled = unsafe { !libc::localtime_r(&secs, tm.as_mut_ptr()).is_null() };
    // SAFETY: zeroed is a valid `tm` (integers and a null pointer), and filled is more so.
    filled.then(|| unsafe { tm.assume_init() })
}

/// `YYYY-MM-DDThh:mm:ss+hh:mm`; `offset` is seconds east of UTC.
fn rfc3339(year: i64, month: i32, day: i32, [h, m, s]: [i32; 3], offset: libc::c_long) -> String {
    let sign = if offset < 0 { '-' } else { '+' };
    let offset = offset.unsigned_abs() / 60;
    format!(
        "{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}{sign}{:02}:{:02}",
        offset / 60,
        offset % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_as_rfc3339() {
        assert_eq!(
            rfc3339(2026, 11, 5, [3, 4, 5], 3600),
            "2026-11-05T03:04:05+01:00"
        );
        assert_eq!(
            rfc3339(2026, 1, 31, [23, 59, 60], -(9 * 3600 + 30 * 60)),
            "2026-01-31T23:59:60-09:30"
        );
        assert_eq!(
            rfc3339(999, 12, 1, [0, 0, 0], 0),
            "0999-12-01T00:00:00+00:00"
        );
    }

    #[test]
    fn now_has_the_shape() {
        let now = now();
        assert_eq!(now.len(), 25, "{now}");
        assert_eq!(&now[10..11], "T", "{now}");
        assert!(matches!(&now[19..20], "+" | "-"), "{now}");
    }
}
