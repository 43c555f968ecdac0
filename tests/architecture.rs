//! The house rules of ARCHITECTURE.md, read from the source itself (issue 21): the top-level
//! modules of `src/` form a one-way graph (no two import each other, directly or through
//! others), `base/` imports no stage, clap is used only in `src/cli/`, `main.rs` stays thin,
//! and no function or struct outgrows what one reader holds in mind.
//!
//! Test modules (`#[cfg(test)]` and `*_tests.rs`) are left out: a test may reach anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The production source of every file under `src/`, test modules cut off, by path.
fn sources() -> BTreeMap<PathBuf, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = BTreeMap::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                if name.ends_with("_tests.rs")
                    || name == "tests.rs"
                    || name == "props.rs"
                    || name == "fuzz.rs"
                {
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                let text = match text.find("#[cfg(test)]") {
                    Some(at) => text[..at].to_owned(),
                    None => text,
                };
                files.insert(path.strip_prefix(&root).unwrap().to_owned(), text);
            }
        }
    }
    files
}

/// The top-level module a file belongs to (`cache` for `cache/load.rs`, `job` for `job.rs`).
fn top(path: &Path) -> String {
    let first = path
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_owned()
}

/// Which top-level modules each one uses, through `crate::NAME`, with a file that does.
fn graph() -> BTreeMap<String, BTreeMap<String, PathBuf>> {
    let files = sources();
    let modules: BTreeSet<String> = files.keys().map(|p| top(p)).collect();
    let mut edges: BTreeMap<String, BTreeMap<String, PathBuf>> = BTreeMap::new();
    for (path, text) in &files {
        let from = top(path);
        if from == "lib" || from == "main" {
            continue;
        }
        for (at, _) in text.match_indices("crate::") {
            let rest = &text[at + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if name != from && modules.contains(&name) {
                edges
                    .entry(from.clone())
                    .or_default()
                    .entry(name)
                    .or_insert_with(|| path.clone());
            }
        }
    }
    edges
}

#[test]
fn the_top_level_modules_form_a_one_way_graph() {
    let edges = graph();
    // A cycle is a module that reaches itself; report the first path that does.
    let mut cycles = Vec::new();
    for start in edges.keys() {
        let mut stack = vec![(start.clone(), vec![start.clone()])];
        let mut seen = BTreeSet::new();
        while let Some((at, path)) = stack.pop() {
            for (next, file) in edges.get(&at).into_iter().flatten() {
                if next == start {
                    cycles.push(format!(
                        "{} -> {next} ({})",
                        path.join(" -> "),
                        file.display()
                    ));
                } else if seen.insert(next.clone()) {
                    let mut longer = path.clone();
                    longer.push(next.clone());
                    stack.push((next.clone(), longer));
                }
            }
        }
    }
    assert!(
        cycles.is_empty(),
        "cycles between top-level modules:\n{}",
        cycles.join("\n")
    );
}

#[test]
fn the_bottom_layer_imports_no_stage() {
    let edges = graph();
    let used: Vec<&String> = edges
        .get("base")
        .into_iter()
        .flat_map(|m| m.keys())
        .collect();
    assert!(
        used.iter().all(|m| *m == "config"),
        "base/ imports {used:?}"
    );
}

#[test]
fn clap_is_used_only_in_cli_and_main_stays_thin() {
    for (path, text) in sources() {
        if !path.starts_with("cli") {
            assert!(
                !text.contains("clap::") && !text.contains("use clap"),
                "{} uses clap",
                path.display()
            );
        }
    }
    let main =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/main.rs")).unwrap();
    let lines = main.lines().count();
    assert!(lines <= 40, "src/main.rs has {lines} lines");
}

/// Functions (`fn name(...) {` to its closing brace at the same indent) over 80 lines.
#[test]
fn no_function_is_over_80_lines() {
    let mut long = Vec::new();
    for (path, text) in sources() {
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let trimmed = line.trim_start();
            let is_fn = [
                "fn ",
                "pub fn ",
                "pub(crate) fn ",
                "pub(super) fn ",
                "async fn ",
                "pub async fn ",
                "pub(crate) async fn ",
                "pub(super) async fn ",
            ]
            .iter()
            .any(|p| trimmed.starts_with(p));
            if !is_fn || trimmed.ends_with(';') {
                continue;
            }
            let indent = line.len() - trimmed.len();
            let close = format!("{}}}", " ".repeat(indent));
            if let Some(end) = lines[i + 1..].iter().position(|l| *l == close) {
                if end + 2 > 80 {
                    long.push(format!("{}:{}: {} lines", path.display(), i + 1, end + 2));
                }
            }
        }
    }
    assert!(
        long.is_empty(),
        "functions over 80 lines:\n{}",
        long.join("\n")
    );
}

/// Structs with named fields over 12 fields.
#[test]
fn no_struct_has_more_than_12_fields() {
    let mut big = Vec::new();
    for (path, text) in sources() {
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let trimmed = line.trim_start();
            if !(trimmed.starts_with("struct ") || trimmed.contains(" struct "))
                || !trimmed.ends_with('{')
            {
                continue;
            }
            let indent = line.len() - trimmed.len();
            let field_indent = " ".repeat(indent + 4);
            let close = format!("{}}}", " ".repeat(indent));
            let body = lines[i + 1..].iter().take_while(|l| **l != close);
            let fields = body
                .filter(|l| {
                    l.starts_with(&field_indent)
                        && !l[field_indent.len()..].starts_with([' ', '/', '#'])
                })
                .filter(|l| l.contains(':'))
                .count();
            if fields > 12 {
                big.push(format!("{}:{}: {} fields", path.display(), i + 1, fields));
            }
        }
    }
    assert!(
        big.is_empty(),
        "structs over 12 fields:\n{}",
        big.join("\n")
    );
}
