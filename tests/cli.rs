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
