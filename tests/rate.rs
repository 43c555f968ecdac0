//! Rate limiting (issue 7): `--rate` spaces starts evenly; `--burst` lets a few go at once.
//! Checked with tolerances: pararun must never start items faster than the rate, and must not
//! be grossly slower.

use crate::util::TestEnv;

/// Runs `n` items that each record their start time; returns the sorted start times (seconds).
fn start_times(env: &TestEnv, n: usize, extra: &[&str]) -> Vec<f64> {
    let input: String = (1..=n).map(|i| format!("{i}\n")).collect();
    env.cmd()
        .args(["-q", "-j", "4"])
        .args(extra)
        .args(["--", "sh", "-c", "date +%s.%N >> starts.log; echo {}"])
        .stdin(input)
        .run()
        .success();
    let mut times: Vec<f64> = env
        .read("starts.log")
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    times.sort_by(f64::total_cmp);
    assert_eq!(times.len(), n);
    times
}

#[test]
fn rate_holds_over_two_seconds() {
    let env = TestEnv::new();
    let times = start_times(&env, 25, &["--rate", "10/s"]);
    let span = times[24] - times[0];
    // 24 intervals of 100 ms: never faster (a little timer slack allowed), not grossly slower.
    assert!(span >= 2.3, "25 starts at 10/s took only {span:.3}s");
    assert!(span < 8.0, "25 starts at 10/s took {span:.3}s");
    // No one-second window holds more than the rate allows (plus one for spawn jitter).
    for (i, t) in times.iter().enumerate() {
        let in_window = times[i..].iter().take_while(|&&u| u < t + 1.0).count();
        assert!(
            in_window <= 11,
            "{in_window} starts within one second at 10/s: {times:?}"
        );
    }
}

#[test]
fn burst_lets_a_few_start_at_once_then_holds_the_rate() {
    let env = TestEnv::new();
    let times = start_times(&env, 6, &["--rate", "2/s", "--burst", "4"]);
    assert!(
        times[3] - times[0] < 0.4,
        "the burst of 4 was spread: {times:?}"
    );
    // The 5th and 6th wait for tokens: one every 500 ms after the burst.
    assert!(times[5] - times[0] >= 0.9, "{times:?}");
}

#[test]
fn retries_count_against_the_rate() {
    let env = TestEnv::new();
    env.cmd()
        .args([
            "-q",
            "--rate",
            "5/s",
            "--retries",
            "3",
            "--retry-delay",
            "1ms",
            "--",
        ])
        .args(["sh", "-c", "date +%s.%N >> starts.log; exit 1"])
        .stdin("a\n")
        .run()
        .code(1);
    let times: Vec<f64> = env
        .read("starts.log")
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(times.len(), 4);
    assert!(
        times[3] - times[0] >= 0.55,
        "4 attempts at 5/s took {:.3}s",
        times[3] - times[0]
    );
}

#[test]
fn bad_rates_are_usage_errors() {
    let env = TestEnv::new();
    for spec in ["10", "0/s", "5/d"] {
        env.cmd()
            .args(["--rate", spec, "--", "true"])
            .run()
            .code(2)
            .stderr_has("is not a rate");
    }
    env.cmd().args(["--burst", "3", "--", "true"]).run().code(2);
}
