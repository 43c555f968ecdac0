//! How many children fit in the open-file limit, decided once at setup.
//!
//! Each running child holds [`DESCRIPTORS_PER_CHILD`] of pararun's descriptors, and the
//! open-file limit bounds them all. A `-j` past what fits would only fail items with EMFILE
//! as they start, so, as GNU parallel does with its job slots, pararun warns and runs as many
//! at once as fit. This also bounds `-j` itself: no value of it makes pararun allocate more
//! than the limit allows children (at most 2^20 descriptors, Linux's `fs.nr_open`).

use anyhow::{bail, Result};

use crate::config::Config;
use crate::process::sys::{open_file_limit, DESCRIPTORS_PER_CHILD};

/// Descriptors kept free for what a run opens beside its children: the cache, the failures
/// file, the runtime's epoll and wake-ups, `/proc` scans, a count of the
/// input on a thread of its own.
const RESERVED: u64 = 16;

/// Raises the open-file limit (before anything is opened) and returns `cfg` with `-j` cut to
/// what it holds, and the warning to print when it was cut. A dry run starts no child and
/// keeps its `-j`. `Err` when not even one child fits.
pub(super) fn fit_jobs(cfg: &Config) -> Result<(Config, Option<String>)> {
    let (jobs, warning) = match cfg.launch.dry_run {
        true => (cfg.launch.jobs, None),
        false => {
            crate::process::sys::raise_open_file_limit();
            jobs_that_fit(cfg)?
        }
    };
    let mut fitted = cfg.clone();
    fitted.launch.jobs = jobs;
    Ok((fitted, warning))
}

/// How many children may run at once under the open-file limit, and the warning to print when
/// that is fewer than `-j`. Call it after the limit was raised (`sys::raise_open_file_limit`).
/// `Err` when not even one fits.
fn jobs_that_fit(cfg: &Config) -> Result<(usize, Option<String>)> {
    let Some(limit) = open_file_limit() else {
        return Ok((cfg.launch.jobs, None));
    };
    let open = open_descriptors();
    let fit = limit.saturating_sub(open + RESERVED) / DESCRIPTORS_PER_CHILD;
    if fit == 0 {
        bail!(
            "the open-file limit ({limit} descriptors, {open} open already) leaves no room for \
             even one child, which needs {DESCRIPTORS_PER_CHILD} (and pararun keeps {RESERVED} \
             spare): raise it, e.g. ulimit -n 1024 (ulimit -Hn for the hard limit)"
        );
    }
    let fit = usize::try_from(fit).unwrap_or(usize::MAX);
    if cfg.launch.jobs <= fit {
        return Ok((cfg.launch.jobs, None));
    }
    let warning = format!(
        "pararun: warning: only enough file descriptors for {fit} children at once (open-file \
         limit {limit}, {DESCRIPTORS_PER_CHILD} per child): running -j {fit}, not -j {}; raise \
         the hard limit (ulimit -Hn, LimitNOFILE= in a systemd unit) to run more",
        cfg.launch.jobs
    );
    Ok((fit, Some(warning)))
}

/// How many descriptors are open now; a guess of 8 where `/proc` cannot tell.
fn open_descriptors() -> u64 {
    match std::fs::read_dir("/proc/self/fd") {
        // The directory's own descriptor is counted too, and closed after.
        Ok(entries) => entries.count().saturating_sub(1) as u64,
        Err(_) => 8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_jobs_count_is_kept_and_a_huge_one_is_cut_to_the_limit() {
        let mut cfg = Config::new(vec!["true".into()]);
        cfg.launch.jobs = 1;
        assert_eq!(jobs_that_fit(&cfg).unwrap(), (1, None));
        cfg.launch.jobs = usize::MAX;
        let (fit, warning) = jobs_that_fit(&cfg).unwrap();
        let limit = open_file_limit().unwrap();
        assert!((fit as u64) < limit / DESCRIPTORS_PER_CHILD, "{fit}");
        let warning = warning.unwrap();
        assert!(warning.contains(&format!("limit {limit}")), "{warning}");
    }
}
