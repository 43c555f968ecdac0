//! The command line itself (issue 5): grouped help, short help, version.

use crate::util::TestEnv;

#[test]
fn help_is_grouped_with_examples() {
    let env = TestEnv::new();
    let out = env.cmd().args(["--help"]).run();
    out.success();
    let mut last = 0;
    for heading in [
        "Input:",
        "Command:",
        "Results and cache:",
        "Faults:",
        "Output:",
        "Examples:",
    ] {
        let at = out
            .stdout
            .find(heading)
            .unwrap_or_else(|| panic!("no {heading} in --help\n{}", out.stdout));
        assert!(at > last, "{heading} out of order");
        last = at;
    }
    let short = env.cmd().args(["-h"]).run();
    short.success();
    let lines = short.stdout.lines().count();
    assert!(
        lines < out.stdout.lines().count() && lines <= 60,
        "-h has {lines} lines"
    );
    let version = env.cmd().args(["--version"]).run();
    version.success();
    assert_eq!(
        version.stdout.trim(),
        format!("pararun {}", env!("CARGO_PKG_VERSION"))
    );
}

/// `--help` is a page, not a manual (issue 21): at most 200 lines, and no option's text over 5
/// lines; the long explanations are in the man page and docs/.
#[test]
fn help_is_short_and_the_man_page_keeps_the_rest() {
    let env = TestEnv::new();
    let help = env.cmd().args(["--help"]).run().stdout;
    let lines: Vec<&str> = help.lines().collect();
    assert!(lines.len() <= 200, "--help has {} lines", lines.len());
    let options = help.split("\nExamples:\n").next().unwrap();
    let mut long = Vec::new();
    let (mut current, mut count) = ("", 0);
    for line in options.lines() {
        let trimmed = line.trim_start();
        let starts_option =
            line.starts_with("  ") && (trimmed.starts_with('-') || trimmed.starts_with('<'));
        if starts_option || !line.starts_with("  ") {
            if count > 5 {
                long.push(format!("{current} ({count} lines)"));
            }
            (current, count) = (trimmed, usize::from(starts_option));
        } else {
            count += 1;
        }
    }
    assert!(long.is_empty(), "options over 5 lines in --help: {long:?}");
    // Every option is there, the ones -h leaves out too.
    for flag in ["--pipeline", "--tag", "--max-line-bytes", "--log-interval"] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
    // The man page has the long text --help leaves out.
    let man =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/man/pararun.1")).unwrap();
    assert!(
        man.contains("measured time per item"),
        "the man page lost --pipeline's long text"
    );
    // A subcommand's --help, and a --help after `--`, are not the run's.
    let status = env.cmd().args(["status", "--help"]).run().stdout;
    assert!(status.contains("Usage: pararun status"), "{status}");
}
