//! Sharding on a real scheduler (issue 7): `scripts/slurm-shards.sh` runs a Slurm job array whose
//! tasks each run one `--shard`, then checks that the merged caches hold every key exactly once
//! and that a whole run over them runs nothing.
//!
//! The script starts a private single-node cluster (as root, on 127.0.0.1 only) and stops it
//! on exit. Where `sbatch` is not on PATH the test says it is skipped and passes: a cluster is
//! not something a test should install.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::BIN;

/// The first executable called `name` on PATH.
fn on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

#[test]
fn slurm_job_array_shards_cover_the_input() {
    let Some(sbatch) = on_path("sbatch") else {
        crate::util::skipped(
            "slurm::slurm_job_array_shards_cover_the_input",
            "sbatch is not on PATH (install slurm-wlm as root, or run \
             scripts/slurm-shards.sh, which installs it)",
        );
        return;
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/slurm-shards.sh");
    // The binary under test, so the script need not build a release one.
    let out = Command::new(&script)
        .env("PARARUN", BIN)
        .output()
        .expect("start scripts/slurm-shards.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report = format!(
        "command: PARARUN={BIN} {}\nsbatch: {}\nstatus: {:?}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        script.display(),
        sbatch.display(),
        out.status.code()
    );
    assert!(out.status.success(), "the Slurm run failed\n{report}");
    assert!(
        stdout.contains("slurm-shards: PASS"),
        "no PASS line\n{report}"
    );
    assert!(
        stdout.contains("ran 0 (0 succeeded, 0 failed), 3000 cached"),
        "the re-run over the merged caches ran something\n{report}"
    );
}
