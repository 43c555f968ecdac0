//! Text that `--help` and the man page share: the examples and the exit statuses. The man page
//! (`man/pararun.1`) is rendered from these by `tests/generated.rs`, its only generator, so
//! that `--help` and `man pararun` never disagree.
//!
//! Every example must pass `bash -n` as typed, with no `<…>` placeholder left unquoted (the
//! shell reads `<` and `>` as redirections); `tests/docs.rs` checks both.

/// The examples: what each does, and its command lines (a trailing `\` continues a line).
pub const EXAMPLES: &[(&str, &str)] = &[
    (
        "Run work.py on every JSONL item, 8 at a time, resumable ({} is the item):",
        "cat items.jsonl | pararun -j 8 --cache out.jsonl -- python3 work.py {}",
    ),
    (
        "Pass fields of each item to a program run directly, no shell (quote <NAME>):",
        "pararun -i items.jsonl --cache out.jsonl -- ./score --text '<text>' --lang '<lang>'",
    ),
    (
        "One word after -- runs through sh -c; values go in as arguments, never as code:",
        "pararun -i urls.txt --capture text -- 'curl -s {} | sha256sum'",
    ),
    (
        "Survive flaky children and record what still fails:",
        "pararun -i items.jsonl --cache out.jsonl --retries 3 --timeout 2m \\\n  \
         --failures failed.jsonl -- python3 call_api.py {}",
    ),
    (
        "See what would run, without running it:",
        "pararun -i items.jsonl --cache out.jsonl --dry-run -- python3 work.py {}",
    ),
];

/// The exit statuses and what each means.
pub const EXIT_STATUS: &[(u8, &str)] = &[
    (
        0,
        "Every item succeeded or was skipped (cached, duplicate).",
    ),
    (1, "At least one item failed."),
    (
        2,
        "A usage or setup error, reported before any child runs (a bad flag, an unreadable \
         input, an unusable or locked cache, one file given as two of input, cache, failures file \
         and stdout, a program that is missing or cannot be run); or a \
         failed write to the cache, stdout or the failures file, or an input that could not be \
         read to its end: then nothing new starts and the running children finish. 2 wins \
         over 1, 129, 130, 141 and 143.",
    ),
    (
        129,
        "Stopped by SIGHUP (a closed terminal, a dropped ssh session).",
    ),
    (130, "Stopped by SIGINT (Ctrl-C)."),
    (
        141,
        "Stopped because stdout was closed (pararun ... | head).",
    ),
    (143, "Stopped by SIGTERM."),
];

/// The examples as the end of `--help` shows them.
pub(super) fn examples_help() -> String {
    let mut text = String::from("Examples:\n");
    for (i, (what, lines)) in EXAMPLES.iter().enumerate() {
        if i > 0 {
            text.push('\n');
        }
        text += &format!("  {what}\n");
        for line in lines.lines() {
            text += &format!("    {line}\n");
        }
    }
    text
}
