//! `pararun check`: what a cache holds that a run would skip or warn about, and `--repair`,
//! which writes a clean copy and renames it into place, keeping the original as `CACHE.bak`.

use std::collections::HashMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::job::key_field_of;
use super::records::{scan, Entry};
use crate::files;
use crate::report::{excerpt, Exit};

/// What `pararun check` was asked.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// The cache.
    pub cache: PathBuf,
    /// Write a clean copy and rename it into place.
    pub repair: bool,
    /// The key field; `None`: the run's own, else `id`.
    pub key_field: Option<String>,
    /// The longest line read.
    pub max_line: usize,
}

/// What the scan found.
#[derive(Default)]
struct Findings {
    records: u64,
    damaged: Vec<(u64, String)>,
    no_key: Vec<u64>,
    /// A key met again: its text, the line of its first record, this line, same content.
    duplicates: Vec<(String, u64, u64, bool)>,
}

/// Checks the cache; exit 0 when it is clean (or was repaired), 1 when it holds something a run
/// would skip or warn about.
pub fn check(opts: &CheckOptions) -> Result<Exit> {
    let path = &opts.cache;
    let field = key_field_of(opts.key_field.as_deref(), std::slice::from_ref(path));
    let field = field.as_str();
    // Held for a repair, so that no run starts on the file while it is replaced.
    let lock = match opts.repair {
        true => Some(lock_for_repair(path)?),
        false => None,
    };
    let mut findings = Findings::default();
    let mut first: HashMap<u128, (u64, u64)> = HashMap::new();
    scan(path, field, opts.max_line, |line, entry| match entry {
        Entry::Record { key, content, .. } => {
            findings.records += 1;
            match first.get(&key.hash) {
                None => {
                    first.insert(key.hash, (line, content));
                }
                Some(&(at, seen)) => {
                    findings
                        .duplicates
                        .push((key.text, at, line, seen == content))
                }
            }
        }
        Entry::NoKey => findings.no_key.push(line),
        Entry::Damaged(why) => findings.damaged.push((line, why)),
    })?;
    print_findings(path, field, &findings);
    let clean =
        findings.damaged.is_empty() && findings.no_key.is_empty() && findings.duplicates.is_empty();
    if clean || !opts.repair {
        return Ok(if clean {
            Exit::Success
        } else {
            Exit::ItemsFailed
        });
    }
    let kept: HashMap<u128, u64> = first.into_iter().map(|(k, (line, _))| (k, line)).collect();
    repair(path, field, opts.max_line, &kept)?;
    drop(lock);
    Ok(Exit::Success)
}

/// Takes the cache's own lock, as a run would: a repair while a run holds it is refused.
fn lock_for_repair(path: &Path) -> Result<File> {
    let file = files::open_regular(path, OpenOptions::new().read(true)).map_err(|e| {
        e.describe(files::CACHE, path, || {
            format!("read cache {}", path.display())
        })
    })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => bail!(
            "cache {} is in use by a running pararun; repair it once that run has ended \
             (pararun status {} says when)",
            path.display(),
            path.display()
        ),
        Err(TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock cache {}", path.display()))
        }
    }
}

fn print_findings(path: &Path, field: &str, f: &Findings) {
    let name = path.display();
    println!(
        "{name}: {} records, {} distinct keys",
        f.records,
        f.records - f.duplicates.len() as u64
    );
    for (line, why) in f.damaged.iter().take(20) {
        println!("{name}:{line}: damaged: {why}");
    }
    if f.damaged.len() > 20 {
        println!("{name}: … and {} more damaged lines", f.damaged.len() - 20);
    }
    if !f.no_key.is_empty() {
        let lines: Vec<String> = f.no_key.iter().take(10).map(u64::to_string).collect();
        println!(
            "{name}: {} records without the {:?} field (--key-field), lines {}{}",
            f.no_key.len(),
            field,
            lines.join(", "),
            if f.no_key.len() > 10 { ", …" } else { "" }
        );
    }
    for (key, at, line, same) in f.duplicates.iter().take(20) {
        let how = if *same {
            "the same record"
        } else {
            "a different record"
        };
        println!(
            "{name}:{line}: duplicate key {} (first at line {at}): {how}",
            excerpt(key)
        );
    }
    if f.duplicates.len() > 20 {
        println!(
            "{name}: … and {} more duplicate keys",
            f.duplicates.len() - 20
        );
    }
    if f.damaged.is_empty() && f.no_key.is_empty() && f.duplicates.is_empty() {
        println!("{name}: clean");
    }
}

/// Writes every record whose line is its key's first into a file beside the cache (damage,
/// later copies of a key and records without the key field stay out, so that the result checks
/// clean); keeps the original as CACHE.bak (a hard link, so the cache's name is never missing)
/// and renames the copy over it.
fn repair(path: &Path, field: &str, max_line: usize, kept: &HashMap<u128, u64>) -> Result<()> {
    let with = |suffix: &str| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    let (tmp, bak) = (with(".repair.tmp"), with(".bak"));
    let file = File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    super::merge::keep_mode(path, &file);
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut result = Ok(());
    scan(path, field, max_line, |line, entry| {
        let bytes = match entry {
            Entry::Record { key, bytes, .. } if kept.get(&key.hash) == Some(&line) => bytes,
            _ => return,
        };
        if result.is_ok() {
            result = out.write_all(bytes).and_then(|_| out.write_all(b"\n"));
        }
    })?;
    let done = result
        .and_then(|_| out.flush())
        .and_then(|_| out.get_ref().sync_all())
        .and_then(|_| match std::fs::remove_file(&bak) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => std::fs::hard_link(path, &bak),
        })
        .and_then(|_| std::fs::rename(&tmp, path));
    if let Err(e) = done {
        let _ = std::fs::remove_file(&tmp);
        return Err(e)
            .with_context(|| format!("cannot repair {}; it is left as it was", path.display()));
    }
    println!(
        "{}: repaired; the original is {}",
        path.display(),
        bak.display()
    );
    Ok(())
}
