//! The shell examples of README.md, `docs/`, `--help`, the man page and `examples/` work as
//! typed (issues 12 and 21): each passes `bash -n` and leaves no `<…>` placeholder unquoted,
//! where the shell would take it for a redirection (`<> notes.txt` parses, and opens notes.txt
//! as stdin). The README's Quick start runs verbatim in an empty directory, and its links to
//! `docs/` lead to pages that exist.

use std::path::Path;
use std::process::Command;

use crate::util::{TestEnv, BIN};

fn repo(path: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One example: where it was found, and its text.
struct Example {
    source: String,
    text: String,
}

fn example(source: impl Into<String>, text: impl Into<String>) -> Example {
    Example {
        source: source.into(),
        text: text.into(),
    }
}

/// The inline code spans of `text` that are command lines: those that start with `pararun `,
/// and option examples (`--dry-run -- ./work {}`), which are checked after `pararun `.
fn command_spans(source: &str, text: &str) -> Vec<Example> {
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        for span in line.split('`').skip(1).step_by(2) {
            let command = if span.starts_with("pararun ") {
                span.to_owned()
            } else if span.starts_with('-') && span.contains(" -- ") {
                format!("pararun {span}")
            } else {
                continue;
            };
            found.push(example(format!("{source}:{}", n + 1), command));
        }
    }
    found
}

/// The ```sh blocks of a Markdown file, its indented blocks that are commands (not output such
/// as `pararun: ran 18 …` or a progress bar), and its command spans.
fn markdown_examples(name: &str) -> Vec<Example> {
    let text = repo(name);
    let lines: Vec<&str> = text.lines().collect();
    let mut found = command_spans(name, &text);
    let mut i = 0;
    while i < lines.len() {
        let start = i;
        if lines[i] == "```sh" {
            i += 1;
            while lines[i] != "```" {
                i += 1;
            }
            let block = lines[start + 1..i].join("\n");
            found.push(example(format!("{name}:{}", start + 2), block));
        } else if lines[i].starts_with("```") {
            i += 1;
            while !lines[i].starts_with("```") {
                i += 1;
            }
        } else if lines[i].starts_with("    ") && i > 0 && lines[i - 1].is_empty() {
            while i + 1 < lines.len() && lines[i + 1].starts_with("    ") {
                i += 1;
            }
            let first = lines[start].trim_start();
            // Output, not commands: a progress bar, `pararun: …`, or a log line that starts
            // with its timestamp.
            let output = first.starts_with('[')
                || first.starts_with(|c: char| c.is_ascii_digit())
                || first
                    .split_whitespace()
                    .next()
                    .is_some_and(|w| w.ends_with(':'));
            if !output {
                let block: Vec<&str> = lines[start..=i].iter().map(|l| &l[4..]).collect();
                found.push(example(format!("{name}:{}", start + 1), block.join("\n")));
            }
        }
        i += 1;
    }
    found
}

/// The examples at the end of a help text (indented four spaces, `\` continuing a line), and
/// its command spans.
fn help_examples(source: &str, text: &str) -> Vec<Example> {
    let mut found = command_spans(source, text);
    let examples = text
        .split_once("\nExamples:\n")
        .map_or("", |(_, rest)| rest);
    let mut command = String::new();
    for line in examples.lines() {
        if let Some(line) = line.strip_prefix("    ") {
            command += line;
            if line.ends_with('\\') {
                command.push('\n');
                continue;
            }
            found.push(example(source, std::mem::take(&mut command)));
        }
    }
    found
}

/// The man page's text with roff's escapes undone, its EXAMPLES as `--help` shows them.
fn man_text() -> String {
    let page = repo("man/pararun.1");
    let mut text = String::new();
    let mut nofill = false;
    for line in page.lines() {
        let line = line
            .replace("\\*(Aq", "'")
            .replace("\\-", "-")
            .replace("\\fB", "")
            .replace("\\fI", "")
            .replace("\\fR", "")
            .replace("\\&", "")
            .replace("\\\\", "\\");
        match line.as_str() {
            ".SH EXAMPLES" => text += "\nExamples:\n",
            ".nf" => nofill = true,
            ".fi" => nofill = false,
            l if l.starts_with('.') => {}
            // A command line of an example, indented as --help shows it.
            l if nofill => text += &format!("    {l}\n"),
            l => text += &format!("{l}\n"),
        }
    }
    text
}

/// Command lines in the docstrings and comments of `examples/`.
fn script_examples() -> Vec<Example> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let name = format!("examples/{}", entry.file_name().to_string_lossy());
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim_start_matches([' ', '#']);
            if line.starts_with("pararun ") {
                found.push(example(format!("{name}:{}", n + 1), line));
            }
        }
    }
    found
}

/// A `<…>` placeholder outside quotes, which the shell reads as redirections. Here-document
/// bodies are skipped; `\` escapes the next character outside single quotes.
fn unquoted_placeholder(text: &str) -> Option<String> {
    let (mut sq, mut dq, mut escaped) = (false, false, false);
    let mut body_end: Option<String> = None;
    for line in text.lines() {
        if let Some(end) = &body_end {
            if line.trim_start_matches('\t') == end {
                body_end = None;
            }
            continue;
        }
        for (i, c) in line.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' if !sq => escaped = true,
                '\'' if !dq => sq = !sq,
                '"' if !sq => dq = !dq,
                '<' if !sq && !dq => {
                    let rest = &line[i + 1..];
                    if let Some(word) = rest.strip_prefix('<') {
                        let word = word.trim_start_matches('-').trim_start_matches(['\'', '"']);
                        let end: String = word
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect();
                        body_end = Some(end).filter(|e| !e.is_empty());
                    }
                    let inner = rest.split_once('>').map(|(inner, _)| inner);
                    if let Some(inner) = inner {
                        let name = inner
                            .chars()
                            .all(|c| c.is_alphanumeric() || "_-".contains(c));
                        if inner.is_empty() || inner == "#" || inner == "%" || name {
                            return Some(format!("<{inner}>"));
                        }
                    }
                }
                _ => {}
            }
        }
        escaped = false;
    }
    None
}

/// Why an example does not work as typed, if it does not.
fn problem(example: &Example) -> Option<String> {
    let out = Command::new("bash")
        .args(["-n", "-c", &example.text])
        .output()
        .expect("run bash -n");
    if !out.status.success() {
        return Some(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    unquoted_placeholder(&example.text)
        .map(|p| format!("{p} is unquoted: the shell reads it as redirections; write '{p}'"))
}

fn assert_all_work(examples: &[Example], at_least: usize, what: &str) {
    assert!(
        examples.len() >= at_least,
        "found {} examples in {what}, expected {at_least} or more",
        examples.len()
    );
    let broken: Vec<String> = examples
        .iter()
        .filter_map(|e| problem(e).map(|p| format!("{}:\n  {}\n  {}", e.source, e.text, p)))
        .collect();
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

#[test]
fn the_checker_catches_what_bash_would_misread() {
    for text in [
        "cat items.jsonl | pararun -j 8 -- python work.py <>",
        "pararun -- grep -c -- <> notes.txt",
        "pararun -- ./score --text <text> --lang '<lang>'",
    ] {
        assert!(problem(&example("", text)).is_some(), "{text}");
    }
    for text in [
        "pararun -- python3 work.py {} '<#>' \"<%>\" \\<x\\> 2>&1 <in.txt",
        "cat > w.sh <<'EOF'\necho <>\nEOF\npararun -- sh w.sh {}",
    ] {
        assert_eq!(problem(&example("", text)), None, "{text}");
    }
}

/// The Markdown pages under `docs/`, as paths relative to the repository.
fn doc_pages() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    let mut pages: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".md"))
        .map(|name| format!("docs/{name}"))
        .collect();
    pages.sort();
    pages
}

#[test]
fn readme_examples_work_as_typed() {
    let examples = markdown_examples("README.md");
    assert!(
        examples
            .iter()
            .any(|e| e.text.starts_with("cat items.jsonl | pararun")),
        "the headline was not found"
    );
    assert_all_work(&examples, 10, "README.md");
}

#[test]
fn docs_examples_work_as_typed() {
    let pages = doc_pages();
    assert!(pages.len() >= 8, "docs/ has only {pages:?}");
    let examples: Vec<Example> = pages.iter().flat_map(|p| markdown_examples(p)).collect();
    assert_all_work(&examples, 30, "docs/");
}

/// Every relative link of README.md and `docs/` names a file that exists, and every `#anchor`
/// a heading of that file, so moving a section never leaves a dead link behind.
#[test]
fn links_between_pages_lead_somewhere() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut pages = doc_pages();
    pages.push("README.md".to_owned());
    let mut dead = Vec::new();
    for page in &pages {
        let text = repo(page);
        let dir = Path::new(page).parent().unwrap();
        for target in text.split("](").skip(1).filter_map(|t| t.split_once(')')) {
            let target = target.0;
            if target.contains("://") || target.contains(' ') {
                continue;
            }
            let (file, anchor) = target.split_once('#').unwrap_or((target, ""));
            let file = if file.is_empty() {
                page.clone()
            } else {
                dir.join(file).to_string_lossy().into_owned()
            };
            let Ok(body) = std::fs::read_to_string(root.join(&file)) else {
                dead.push(format!("{page}: ({target}): no file {file}"));
                continue;
            };
            if !anchor.is_empty()
                && !body
                    .lines()
                    .any(|l| l.starts_with('#') && slug(l) == anchor)
            {
                dead.push(format!(
                    "{page}: ({target}): no heading #{anchor} in {file}"
                ));
            }
        }
    }
    assert!(dead.is_empty(), "{}", dead.join("\n"));
}

/// GitHub's anchor for a Markdown heading line.
fn slug(heading: &str) -> String {
    heading
        .trim_start_matches('#')
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_' || *c == ' ')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

#[test]
fn help_and_man_page_examples_work_as_typed() {
    let help = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    assert_all_work(&help_examples("--help", &help), 5, "--help");
    assert_all_work(
        &help_examples("man/pararun.1", &man_text()),
        5,
        "the man page",
    );
    assert_all_work(&script_examples(), 2, "examples/");
}

#[test]
fn the_quick_start_runs_verbatim() {
    let readme = repo("README.md");
    let block = readme
        .split_once("## Quick start")
        .and_then(|(_, rest)| rest.split_once("```sh\n"))
        .and_then(|(_, rest)| rest.split_once("\n```"))
        .map(|(block, _)| block)
        .expect("a ```sh block under ## Quick start");
    let env = TestEnv::new();
    let bin_dir = Path::new(BIN).parent().unwrap();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap());
    let out = Command::new("bash")
        .args(["-e", "-c", block])
        .current_dir(env.path("."))
        .env("PATH", path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{block}\n{stderr}");
    assert!(stderr.contains("ran 2 (2 succeeded, 0 failed)"), "{stderr}");
    assert!(
        stderr.contains("ran 0 (0 succeeded, 0 failed), 2 cached"),
        "{stderr}"
    );
    let mut records: Vec<String> = env.read("out.jsonl").lines().map(str::to_owned).collect();
    records.sort();
    assert_eq!(records, [r#"{"id":1,"words":2}"#, r#"{"id":2,"words":1}"#]);
}
