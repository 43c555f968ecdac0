//! `--shard auto`: the shard taken from the scheduler's environment, sensed once here.
//!
//! - A Slurm job array: `SLURM_ARRAY_TASK_ID`, counted from the array's first task
//!   (`SLURM_ARRAY_TASK_MIN`, in steps of `SLURM_ARRAY_TASK_STEP`), out of
//!   `SLURM_ARRAY_TASK_COUNT` tasks (else `MAX - MIN + 1`), so `--array=0-3` and `--array=1-4`
//!   both give shards 0/4 to 3/4.
//! - A Kubernetes Indexed Job: `JOB_COMPLETION_INDEX`; its count is not in the environment, so
//!   it is given as `--shard auto/N` (the Job's `completions`).
//! - `--shard auto/N` in a Slurm array pins the count and takes the task id as the shard
//!   itself, so that resubmitting only some tasks (`sbatch --array=1,3`) runs shards 1/N and
//!   3/N, not the halves of a two-task array.

use anyhow::{bail, Context, Result};

use crate::config::{parse_shard, Shard};

/// What `--shard` was given: a shard, or `auto` with the count if written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardArg {
    /// `I/N`.
    Fixed(Shard),
    /// `auto` or `auto/N`.
    Auto(Option<u64>),
}

/// Parses `I/N`, `auto` or `auto/N`.
pub fn parse_shard_arg(text: &str) -> Result<ShardArg, String> {
    let Some(rest) = text.strip_prefix("auto") else {
        return parse_shard(text).map(ShardArg::Fixed);
    };
    match rest.strip_prefix('/') {
        None if rest.is_empty() => Ok(ShardArg::Auto(None)),
        Some(n) => match n.trim().parse::<u64>() {
            Ok(n) if n > 0 => Ok(ShardArg::Auto(Some(n))),
            _ => Err(format!(
                "{text:?} is not a shard: use auto/N with N > 0, e.g. auto/4"
            )),
        },
        None => Err(format!("{text:?} is not a shard: use I/N, auto or auto/N")),
    }
}

/// The shard `--shard` means here; `var` reads the environment.
pub fn resolve(arg: ShardArg, var: impl Fn(&str) -> Option<String>) -> Result<Shard> {
    let count = match arg {
        ShardArg::Fixed(shard) => return Ok(shard),
        ShardArg::Auto(count) => count,
    };
    let number = |name: &str| -> Result<Option<u64>> {
        match var(name) {
            None => Ok(None),
            Some(text) => text
                .trim()
                .parse()
                .map(Some)
                .with_context(|| format!("--shard auto: {name}={text:?} is not a number")),
        }
    };
    let (index, count, from) = if let Some(id) = number("SLURM_ARRAY_TASK_ID")? {
        match count {
            Some(n) => (id, n, "SLURM_ARRAY_TASK_ID with --shard auto/N"),
            None => {
                let min = number("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
                let step = number("SLURM_ARRAY_TASK_STEP")?.unwrap_or(1).max(1);
                let span =
                    number("SLURM_ARRAY_TASK_MAX")?.map(|max| max.saturating_sub(min) / step + 1);
                let count = match (number("SLURM_ARRAY_TASK_COUNT")?, span) {
                    // A resubmitted part (`--array=1,3`) has fewer tasks than its range holds:
                    // its tasks' numbers no longer say which shard of how many they are.
                    (Some(n), Some(span)) if n != span => bail!(
                        "--shard auto: this array's {n} tasks do not fill its range of ids \
                         ({min} to {}), as a resubmitted part (--array=1,3) does not; pin the \
                         count with --shard auto/N, and each task runs shard \
                         SLURM_ARRAY_TASK_ID/N",
                        min + (span - 1) * step
                    ),
                    (Some(n), _) => n,
                    (None, Some(span)) => span,
                    (None, None) => bail!(
                        "--shard auto: SLURM_ARRAY_TASK_ID is set but neither \
                             SLURM_ARRAY_TASK_COUNT nor SLURM_ARRAY_TASK_MAX is; give the \
                             count: --shard auto/N"
                    ),
                };
                (
                    id.saturating_sub(min) / step,
                    count,
                    "the Slurm array's SLURM_ARRAY_TASK_* variables",
                )
            }
        }
    } else if let Some(index) = number("JOB_COMPLETION_INDEX")? {
        let Some(count) = count else {
            bail!(
                "--shard auto: in a Kubernetes Indexed Job (JOB_COMPLETION_INDEX={index}) the \
                 count is not in the environment; give it: --shard auto/N, with N the Job's \
                 completions"
            );
        };
        (index, count, "JOB_COMPLETION_INDEX")
    } else {
        bail!(
            "--shard auto: this is neither a Slurm job array (SLURM_ARRAY_TASK_ID is not set) \
             nor a Kubernetes Indexed Job (JOB_COMPLETION_INDEX is not set); give the shard \
             as --shard I/N"
        );
    };
    if count == 0 || index >= count {
        bail!(
            "--shard auto: {from} give shard {index} of {count}, which is not a shard (0 <= I < \
             N); resubmit the whole array, or pin the count with --shard auto/N"
        );
    }
    Ok(Shard { index, count })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        }
    }

    fn shard(arg: &str, vars: &[(&str, &str)]) -> Result<(u64, u64)> {
        let arg = parse_shard_arg(arg).map_err(anyhow::Error::msg)?;
        resolve(arg, env(vars)).map(|s| (s.index, s.count))
    }

    #[test]
    fn slurm_arrays_count_from_their_first_task() {
        let zero = [
            ("SLURM_ARRAY_TASK_ID", "2"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
            ("SLURM_ARRAY_TASK_MIN", "0"),
        ];
        assert_eq!(shard("auto", &zero).unwrap(), (2, 4));
        let one = [
            ("SLURM_ARRAY_TASK_ID", "4"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
            ("SLURM_ARRAY_TASK_MAX", "4"),
        ];
        assert_eq!(shard("auto", &one).unwrap(), (3, 4));
        let stepped = [
            ("SLURM_ARRAY_TASK_ID", "8"),
            ("SLURM_ARRAY_TASK_MIN", "0"),
            ("SLURM_ARRAY_TASK_STEP", "4"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ];
        assert_eq!(shard("auto", &stepped).unwrap(), (2, 4));
        // A resubmitted part (--array=1,3): auto/N takes the id as the shard.
        let part = [
            ("SLURM_ARRAY_TASK_ID", "3"),
            ("SLURM_ARRAY_TASK_COUNT", "2"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
        ];
        assert_eq!(shard("auto/4", &part).unwrap(), (3, 4));
        // Without /N that array is two tasks, 1 and 3: task 3 would be shard 2 of 2.
        assert!(shard("auto", &part)
            .unwrap_err()
            .to_string()
            .contains("pin the count"));
        let too_far = [
            ("SLURM_ARRAY_TASK_ID", "5"),
            ("SLURM_ARRAY_TASK_COUNT", "2"),
        ];
        assert!(shard("auto", &too_far)
            .unwrap_err()
            .to_string()
            .contains("not a shard"));
    }

    #[test]
    fn kubernetes_needs_the_count_and_nothing_is_an_error() {
        let k8s = [("JOB_COMPLETION_INDEX", "5")];
        assert_eq!(shard("auto/8", &k8s).unwrap(), (5, 8));
        assert!(shard("auto", &k8s)
            .unwrap_err()
            .to_string()
            .contains("--shard auto/N"));
        assert!(shard("auto", &[])
            .unwrap_err()
            .to_string()
            .contains("neither a Slurm job array"));
        assert_eq!(shard("1/3", &[]).unwrap(), (1, 3));
        assert!(parse_shard_arg("auto/0").is_err());
        assert!(parse_shard_arg("autox").is_err());
    }
}
