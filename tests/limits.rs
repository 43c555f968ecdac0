//! Limits of the machine: the open-file limit, the address space, a missing `sh`. Each run
//! must end, with every item accounted for, and say which limit it met and what to do.

use std::time::Duration;

use crate::util::{alive, wait_until, TestEnv};

/// Items `1..=n`, one per line.
fn numbers(n: usize) -> String {
    (1..=n).map(|i| format!("{i}\n")).collect()
}

/// How many descriptors process `pid` has open (its main thread's table).
fn open_fds(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

/// Sets process `pid`'s open-file limit (soft and hard) to `limit`, as `prlimit --pid` does.
fn set_open_file_limit(pid: i32, limit: u64) -> bool {
    let new = libc::rlimit {
        rlim_cur: limit,
        rlim_max: limit,
    };
    // SAFETY: prlimit reads `new` and writes nothing (old is null).
    unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, &new, std::ptr::null_mut()) == 0 }
}

/// The pids of the processes whose parent is `pid`, over all its threads.
fn children(pid: i32) -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|list| {
            let pids: Vec<i32> = list
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect();
            pids
        })
        .collect()
}

/// Kills pararun if the test fails before it was reaped, so that a hang does not outlive the
/// test (SIGTERM did not end the hang this file was written for).
struct KillOnPanic(i32);

impl Drop for KillOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // SAFETY: a plain kill(2); the pid is still our unreaped child while we panic.
            unsafe { libc::kill(self.0, libc::SIGKILL) };
        }
    }
}

/// From the issue: `ulimit -n 48` with `-j 64` hung for good after 52 "spawner thread is gone"
/// failures. -j is now cut to what the limit holds, with a warning, and every item runs.
#[test]
fn a_jobs_count_past_the_open_file_limit_is_cut_to_it_and_the_run_ends() {
    let env = TestEnv::new();
    let out = env
        .cmd_under(&["sh", "-c", "ulimit -n 48 && exec \"$0\" \"$@\""])
        .args([
            "-j",
            "64",
            "--capture",
            "text",
            "--",
            "sh",
            "-c",
            "sleep 0.05; echo $1",
        ])
        .args(["sh", "{}"])
        .stdin(numbers(100))
        .spawn()
        .wait_within(Duration::from_secs(20));
    out.success()
        .stderr_has("only enough file descriptors for")
        .stderr_has("open-file limit 48")
        .stderr_has("not -j 64");
    assert_eq!(out.records().len(), 100, "{}", out.report());
}

/// A limit that leaves no room for one child is a setup error, before anything runs.
#[test]
fn an_open_file_limit_with_no_room_for_a_child_is_a_setup_error() {
    let env = TestEnv::new();
    let out = env
        .cmd_under(&["sh", "-c", "ulimit -n 16 && exec \"$0\" \"$@\""])
        .args(["-j", "4", "--", "echo", "{}"])
        .stdin(numbers(3))
        .spawn()
        .wait_within(Duration::from_secs(10));
    out.code(2).stderr_has("open-file limit (16 descriptors");
    assert!(out.stdout.is_empty(), "{}", out.report());
}

/// The limit lowered while `jobs` children run (so that -j was fitted to a larger one): each
/// item that cannot start then fails as `spawn`, naming the limit, and the run ends with every
/// item accounted for, at a low -j and at one where 0.2.0 spawned from a thread of its own
/// (whose pipes then could not be received: the case that hung).
fn out_of_descriptors_mid_run(jobs: usize) {
    let env = TestEnv::new();
    // Few enough that their failures fit in the stderr pipe, which is read only at the end.
    let total = 80;
    let running = env
        .cmd()
        .args([
            "-j",
            &jobs.to_string(),
            "--failures",
            "failed.jsonl",
            "--capture",
            "text",
        ])
        .args(["--", "sh", "-c", "sleep 0.3; echo $1", "sh", "{}"])
        .stdin(numbers(total))
        .spawn();
    let pid = running.pid();
    let _kill = KillOnPanic(pid);
    wait_until(Duration::from_secs(10), "the first children", || {
        children(pid).len() >= jobs.min(8) && open_fds(pid) >= 2 * jobs.min(8) + 8
    });
    // Room for the spawner's few descriptors, none for the pipes of a new child here.
    if !set_open_file_limit(pid, 24) {
        println!("SKIPPED: cannot lower pararun's open-file limit (prlimit)");
        return;
    }
    let out = running.wait_within(Duration::from_secs(20));
    out.code(1);
    let failed = env.json_lines("failed.jsonl");
    assert!(!failed.is_empty(), "no item failed\n{}", out.report());
    for failure in &failed {
        assert_eq!(failure["reason"], "spawn", "{failure}\n{}", out.report());
        let detail = failure["detail"].as_str().unwrap_or_default();
        assert!(detail.contains("open-file limit 24"), "{detail}");
        assert!(detail.contains("lower -j"), "{detail}");
    }
    assert_eq!(
        out.records().len() + failed.len(),
        total,
        "{}",
        out.report()
    );
}

#[test]
fn out_of_descriptors_spawning_directly_fails_the_items_as_spawn() {
    out_of_descriptors_mid_run(8);
}

#[test]
fn out_of_descriptors_at_a_high_j_fails_the_items_and_the_run_ends() {
    out_of_descriptors_mid_run(64);
}

/// Out of descriptors, with children still running: SIGTERM ends the run (it once reported
/// children that were gone, and only SIGKILL ended it), and the children with it.
#[test]
fn sigterm_ends_a_run_that_ran_out_of_descriptors() {
    let env = TestEnv::new();
    let running = env
        .cmd()
        .args([
            "-j",
            "64",
            "--rate",
            "100/s",
            "--failures",
            "failed.jsonl",
            "--",
        ])
        .args(["sleep", "30"])
        .stdin(numbers(300))
        .spawn();
    let pid = running.pid();
    let _kill = KillOnPanic(pid);
    wait_until(Duration::from_secs(10), "the first children", || {
        children(pid).len() >= 4
    });
    let sleepers = children(pid);
    if !set_open_file_limit(pid, 24) {
        println!("SKIPPED: cannot lower pararun's open-file limit (prlimit)");
        return;
    }
    // Spawns go on failing, one by one (they once stopped for good after the first).
    wait_until(Duration::from_secs(10), "3 failed spawns", || {
        env.read("failed.jsonl").matches("\"spawn\"").count() >= 3
    });
    running.signal(libc::SIGTERM);
    let out = running.wait_within(Duration::from_secs(10));
    out.code(143);
    for child in sleepers {
        assert!(
            !alive(child),
            "child {child} outlived the run\n{}",
            out.report()
        );
    }
}

/// From the issue: memory grew with -j (768 MB at -j 10000000; -j 4294967296 went to 24 GB
/// and the OOM killer). Under a 1 GB address space, a huge -j runs its 3 items.
#[test]
fn a_huge_jobs_count_runs_in_bounded_memory() {
    for jobs in ["10000000", "4294967296"] {
        let env = TestEnv::new();
        let out = env
            .cmd_under(&["sh", "-c", "ulimit -v 1000000 && exec \"$0\" \"$@\""])
            .args(["-j", jobs, "--", "echo", "{}"])
            .stdin(numbers(3))
            .spawn()
            .wait_within(Duration::from_secs(20));
        out.success().stderr_has(&format!("not -j {jobs}"));
        assert_eq!(out.records().len(), 3, "{}", out.report());
    }
}

/// Shell mode with no `sh` on PATH: one setup error naming sh and PATH, not a failure per item.
#[test]
fn shell_mode_without_sh_on_path_is_one_setup_error() {
    let env = TestEnv::new();
    let empty = env.path("empty");
    std::fs::create_dir(&empty).unwrap();
    let mut cmd = env.cmd().args(["--", "echo {}"]).stdin(numbers(3));
    cmd.command.env("PATH", &empty);
    let out = cmd.spawn().wait_within(Duration::from_secs(10));
    out.code(2)
        .stderr_has("sh cannot be started")
        .stderr_has("PATH");
    assert!(!out.stderr.contains("item"), "{}", out.report());
    assert!(out.stdout.is_empty(), "{}", out.report());
}

/// docs/limits.md's shell examples parse (`bash -n`).
#[test]
fn the_limits_doc_examples_parse() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/limits.md");
    let doc = std::fs::read_to_string(path).unwrap();
    let blocks: Vec<&str> = doc.split("```bash\n").skip(1).collect();
    assert!(!blocks.is_empty(), "no ```bash block in docs/limits.md");
    for block in blocks {
        let script = block.split("```").next().unwrap();
        let out = std::process::Command::new("bash")
            .args(["-n", "-c", script])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "bash -n: {err}\n{script}");
    }
}
