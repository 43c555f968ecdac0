//! Random scripts built from quoting fragments: whatever pararun accepts, values that try to
//! run code (also as arithmetic or an array subscript, or by faking a here-document's end) must
//! not run in sh, bash, or bash as `sh`. Most scripts are nonsense to sh; what counts is that no
//! value is ever read as code.

use std::path::Path;
use std::process::Command;

use proptest::prelude::*;

use super::props::{item, shells};
use super::Template;

// One fragment a line would make this list 50 lines long.
#[rustfmt::skip]
const FRAGMENTS: &[&str] = &[
    "<>", "<>", "<>", "<#>", " ", " ", "\n", ";", "\"", "'", "\\", "$", "`", "$(", ")", "(",
    "${X:-", "${X#", "}", "$'", "\\'", "$((", "))", "((", "[[", "]]", "-eq", "let ", "#",
    "<<EOF\n", "<<'EOF'\n", "<<-EOF\n", "\nEOF\n", "EOF", "case a in a) ", ";; esac",
    "printf %s ", "echo ", ": ", "X=", "a", "|", "&&", "${#X}", "$X", "\t", "<<<",
    "{}", "{}", "{#}", "{", "${",
    "a[", "[", "]", "]=", "=(", "declare -i n=", "$$", "$1",
];

// No `read`, `unset`, `printf -v` or plain `declare` before a placeholder: a value given to
// them as a whole variable name runs, and that is the script's business (README); their
// subscripts are covered by `props::REFUSED` and the lexer's tests.

const PAYLOADS: [&str; 2] = [
    "a[$(touch pwned)]",
    "$(touch pwned)`touch pwned`'$(touch pwned)'\"$(touch pwned)\"\nEOF\ntouch pwned\nx]]; touch pwned; [[ x",
];

/// Runs `argv` with stdin and output closed, killed after 5 s (a script may wait forever).
fn run_bounded(shell: (&str, &str), argv: &[String], dir: &Path) {
    use std::os::unix::process::CommandExt;
    use std::process::Stdio;
    let mut child = Command::new(shell.0)
        .arg0(shell.1)
        .args(&argv[1..])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed().as_secs() >= 5 {
            child.kill().unwrap();
            child.wait().unwrap();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn accepted_scripts_never_run_a_value(
        fragments in proptest::collection::vec(proptest::sample::select(FRAGMENTS), 1..16)
    ) {
        let command = fragments.concat();
        // About half are refused; those run nothing at all.
        let Ok(template) = Template::parse(std::slice::from_ref(&command), false, false) else {
            return Ok(());
        };
        let dir = tempfile::tempdir().unwrap();
        for payload in PAYLOADS {
            let argv = template.render(&item(payload, None), 1).unwrap();
            for shell in shells(true) {
                run_bounded(shell, &argv, dir.path());
                prop_assert!(
                    !dir.path().join("pwned").exists(),
                    "{shell:?} ran {payload:?} in {command:?}, rendered as {:?}",
                    argv[2]
                );
            }
        }
    }
}
