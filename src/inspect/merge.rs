//! `pararun merge`: one cache from several (the shards of a job array, runs on several
//! machines), one record per key, whole records only.
//!
//! Two passes over the inputs: the first chooses, for every key, the record to keep (the first
//! one met, or with `--prefer last` the last) and notes conflicts; the second copies the chosen
//! lines, as written, into a temporary file beside OUT, which is synced and renamed over OUT.
//! A crash never leaves half an OUT, and OUT may be one of the inputs.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::job::{expand, locked};
use super::job::{format_of, key_field_of};
use super::records::{scan, Entry};
use crate::config::Format;
use crate::files;
use crate::input::{InputReader, Key};
use crate::report::{excerpt, Exit};

/// What `pararun merge` was asked.
#[derive(Debug, Clone)]
pub struct MergeOptions {
    /// The caches to merge; globs are expanded here.
    pub caches: Vec<PathBuf>,
    /// The merged cache.
    pub output: PathBuf,
    /// Keep the last record of a key that has several, not the first.
    pub prefer_last: bool,
    /// An input whose keys are checked against the merge: those in no cache are reported.
    pub input: Option<PathBuf>,
    /// The key field; `None`: the runs' own, else `id`.
    pub key_field: Option<String>,
    /// How to read the input; `None`: as the runs did.
    pub format: Option<Format>,
    /// The longest line read.
    pub max_line: usize,
}

/// Where the kept record of a key is: (cache, line), and its content's hash.
type Chosen = HashMap<u128, (u64, usize, u64)>;

/// What the first pass found besides the chosen records.
#[derive(Default)]
struct Found {
    damaged: Vec<String>,
    damaged_count: u64,
    no_key: u64,
    duplicates: u64,
    conflicts: Vec<String>,
    conflict_count: u64,
}

/// Merges; exit 0 when every key had one content and, with `-i`, every input key is in the
/// merge; 1 when there were conflicts or missing keys (the merge is written all the same).
pub fn merge(opts: &MergeOptions) -> Result<Exit> {
    let caches = expand(&opts.caches, "cache")?;
    // OUT's own lock, held until the merge is renamed over it: a run on OUT would append to
    // the file the rename unlinks, and lose those records.
    let _out_lock = lock_out(&opts.output)?;
    let field = key_field_of(opts.key_field.as_deref(), &caches);
    let mut chosen = Chosen::new();
    let mut found = Found::default();
    for (i, path) in caches.iter().enumerate() {
        if locked(path)? {
            eprintln!(
                "pararun: note: {} is in use by a running pararun; the merge holds the records \
                 it had so far",
                path.display()
            );
        }
        scan(path, &field, opts.max_line, |line, entry| {
            choose(
                &mut chosen,
                &mut found,
                opts.prefer_last,
                (i, path, line),
                entry,
            )
        })?;
    }
    let written = write(&caches, &chosen, &field, opts)?;
    let missing = match &opts.input {
        Some(input) => {
            let format = format_of(opts.format, &caches);
            missing_keys(input, &chosen, &field, format, opts.max_line)?
        }
        None => Vec::new(),
    };
    report(opts, &caches, written, &found, &missing, &field);
    let clean = found.conflict_count == 0 && missing.is_empty();
    Ok(if clean {
        Exit::Success
    } else {
        Exit::ItemsFailed
    })
}

fn choose(
    chosen: &mut Chosen,
    found: &mut Found,
    prefer_last: bool,
    (i, path, line): (usize, &Path, u64),
    entry: Entry<'_>,
) {
    match entry {
        Entry::Record { key, content, .. } => match chosen.get_mut(&key.hash) {
            None => {
                chosen.insert(key.hash, (line, i, content));
            }
            Some(kept) => {
                if kept.2 == content {
                    found.duplicates += 1;
                } else {
                    found.conflict_count += 1;
                    if found.conflicts.len() < 10 {
                        found.conflicts.push(format!(
                            "{} ({}:{line})",
                            excerpt(&key.text),
                            path.display()
                        ));
                    }
                }
                if prefer_last {
                    *kept = (line, i, content);
                }
            }
        },
        Entry::NoKey => found.no_key += 1,
        Entry::Damaged(why) => {
            found.damaged_count += 1;
            if found.damaged.len() < 5 {
                found
                    .damaged
                    .push(format!("{}:{line}: {why}", path.display()));
            }
        }
    }
}

/// The second pass: the chosen lines into a temporary file, synced, renamed over OUT.
fn write(caches: &[PathBuf], chosen: &Chosen, field: &str, opts: &MergeOptions) -> Result<u64> {
    let out = &opts.output;
    let mut tmp_name = out.as_os_str().to_owned();
    tmp_name.push(format!(".merge-{}.tmp", std::process::id()));
    let tmp = PathBuf::from(tmp_name);
    let file = File::create(&tmp)
        .with_context(|| format!("cannot create {} to write the merge", tmp.display()))?;
    keep_mode(out, &file);
    let mut writer = BufWriter::with_capacity(1 << 20, file);
    let mut written = 0;
    let mut result = Ok(());
    for (i, path) in caches.iter().enumerate() {
        scan(path, field, opts.max_line, |line, entry| {
            if let (Entry::Record { key, bytes, .. }, true) = (entry, result.is_ok()) {
                if chosen
                    .get(&key.hash)
                    .is_some_and(|c| c.0 == line && c.1 == i)
                {
                    written += 1;
                    result = writer
                        .write_all(bytes)
                        .and_then(|_| writer.write_all(b"\n"));
                }
            }
        })?;
    }
    let finish = result
        .and_then(|_| writer.flush())
        .and_then(|_| writer.get_ref().sync_all())
        .and_then(|_| std::fs::rename(&tmp, out));
    if let Err(e) = finish {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| {
            format!(
                "cannot write the merge to {}; it is left as it was",
                out.display()
            )
        });
    }
    Ok(written)
}

/// Takes OUT's lock when OUT exists; a run holding it is a refusal.
fn lock_out(out: &Path) -> Result<Option<File>> {
    let file = match File::open(out) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot open {}", out.display())),
    };
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "{} is in use by a running pararun: merging over it would lose the records it \
             writes; merge into another file, or once the run has ended",
            out.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", out.display()))
        }
    }
}

/// Gives a file that replaces `old` the mode `old` had (a private cache stays private).
pub(super) fn keep_mode(old: &Path, new: &File) {
    if let Ok(meta) = std::fs::metadata(old) {
        let _ = new.set_permissions(meta.permissions());
    }
}

/// The input's keys that no cache holds (the first 10, and how many).
fn missing_keys(
    input: &Path,
    chosen: &Chosen,
    field: &str,
    format: Format,
    max_line: usize,
) -> Result<Vec<String>> {
    let file = files::open_input(input)?.0;
    let name = input.display().to_string();
    let mut reader = InputReader::new(Box::new(file), &name, format, field, max_line);
    let mut missing = Vec::new();
    let mut seen = crate::base::index::KeyIndex::with_capacity(1 << 16);
    let mut check = |key: &Key| {
        if seen.insert(key) && !chosen.contains_key(&key.hash) {
            missing.push(key.text.clone());
        }
        false
    };
    while reader.next_event(&mut check)?.is_some() {}
    Ok(missing)
}

fn report(
    opts: &MergeOptions,
    caches: &[PathBuf],
    written: u64,
    found: &Found,
    missing: &[String],
    field: &str,
) {
    eprintln!(
        "pararun: merged {written} records from {} caches into {}; {} duplicate records with \
         the same content dropped",
        caches.len(),
        opts.output.display(),
        found.duplicates
    );
    if found.damaged_count > 0 {
        eprintln!(
            "pararun: skipped {} damaged lines (torn writes, garbage): {}",
            found.damaged_count,
            found.damaged.join("; ")
        );
    }
    if found.no_key > 0 {
        eprintln!(
            "pararun: skipped {} records without the {:?} field (--key-field)",
            found.no_key, field
        );
    }
    if found.conflict_count > 0 {
        eprintln!(
            "pararun: {} keys have records with different content; kept the {} one: {}",
            found.conflict_count,
            if opts.prefer_last { "last" } else { "first" },
            found.conflicts.join(", ")
        );
    }
    if !missing.is_empty() {
        let shown: Vec<String> = missing
            .iter()
            .take(10)
            .map(|k| excerpt(k).into_owned())
            .collect();
        eprintln!(
            "pararun: {} keys of the input are in no cache: {}{}",
            missing.len(),
            shown.join(", "),
            if missing.len() > 10 { ", …" } else { "" }
        );
    }
}
