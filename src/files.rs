//! Opening the files a run keeps (the cache, the failures file, the input) and checking what
//! was opened rather than the path: a check of the path before the open could be answered by
//! one file and the open by another, if the path is swapped in between.
//!
//! The cache and the failures file are opened without blocking, so that a FIFO at their path
//! can't hold the start up waiting for a peer, and then checked with `fstat` of the open
//! descriptor: anything but a regular file is refused, before a byte is read or written.

use std::fs::{File, FileType, OpenOptions};
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use anyhow::anyhow;

/// Which of a run's files is being opened, to name it in messages.
#[derive(Debug, Clone, Copy)]
pub struct Role {
    /// What messages call the file ("cache").
    pub name: &'static str,
    /// What to do when the path is not a regular file.
    pub hint: &'static str,
}

/// The `--cache` file.
pub const CACHE: Role = Role {
    name: "cache",
    hint: "give --cache the path of a JSONL file (or leave --cache out to run without a cache)",
};

/// The `--failures` file.
pub const FAILURES: Role = Role {
    name: "failures file",
    hint: "give --failures the path of a regular file (failed items are reported on stderr \
           in any case)",
};

/// Why a file could not be opened for a run.
#[derive(Debug)]
pub enum OpenError {
    /// The open, or the `fstat` of the opened file, failed.
    Io(io::Error),
    /// The path names something other than a regular file; the text says what.
    NotRegular(&'static str),
}

impl OpenError {
    /// The kind of the system error, when there was one.
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            OpenError::Io(e) => Some(e.kind()),
            OpenError::NotRegular(_) => None,
        }
    }

    /// The message for people: what, where, and what to do. `doing` names the failed
    /// action for a system error ("open cache c.jsonl for appending").
    pub fn describe(
        self,
        role: Role,
        path: &Path,
        doing: impl FnOnce() -> String,
    ) -> anyhow::Error {
        match self {
            OpenError::Io(e) => anyhow::Error::new(e).context(format!("cannot {}", doing())),
            OpenError::NotRegular(what) => anyhow!(
                "{} {} is not a regular file ({what}); {}",
                role.name,
                path.display(),
                role.hint
            ),
        }
    }
}

/// Opens `path` with `options` and makes sure the opened file is a regular one.
///
/// The open does not block: a FIFO opened for reading returns at once, and one opened only for
/// writing fails (ENXIO) unless someone reads it, where a blocking open would wait, perhaps for
/// ever. Once `fstat` has shown a regular file, the descriptor is made blocking again.
pub fn open_regular(path: &Path, options: &OpenOptions) -> Result<File, OpenError> {
    let mut options = options.clone();
    // O_NOCTTY: a terminal at the path must never become pararun's controlling terminal.
    options.custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
    let file = match options.open(path) {
        Ok(file) => file,
        Err(e) => {
            return Err(match e.raw_os_error() {
                Some(libc::EISDIR) => OpenError::NotRegular("a directory"),
                // Only a FIFO without a reader, or a device with nothing behind it, answers a
                // non-blocking open with ENXIO; the path's type is looked up for the message.
                Some(libc::ENXIO) => OpenError::NotRegular(
                    std::fs::metadata(path).map_or("a FIFO or device", |m| kind(m.file_type())),
                ),
                _ => OpenError::Io(e),
            });
        }
    };
    let meta = file.metadata().map_err(OpenError::Io)?;
    if !meta.is_file() {
        return Err(OpenError::NotRegular(kind(meta.file_type())));
    }
    set_blocking(&file).map_err(OpenError::Io)?;
    Ok(file)
}

/// Opens the input file, and tells whether it is a regular file (which can be read twice:
/// to count or estimate its lines, then for its items).
///
/// A FIFO or a pipe (`-i <(cmd)`) is fine: the open may wait for a writer, as `cat` does. A
/// directory is refused, since reading it can only fail.
pub fn open_input(path: &Path) -> anyhow::Result<(File, bool)> {
    let context = || format!("cannot open input {}", path.display());
    let file = File::open(path).map_err(|e| anyhow::Error::new(e).context(context()))?;
    let meta = file
        .metadata()
        .map_err(|e| anyhow::Error::new(e).context(context()))?;
    if meta.is_dir() {
        anyhow::bail!(
            "input {} is a directory; give -i a file, a FIFO, or - for stdin",
            path.display()
        );
    }
    Ok((file, meta.is_file()))
}

/// The files of one run, as `fstat` of their open descriptors shows them, so that two roles
/// given the same file (through any path, link or redirection) are refused before anything is
/// read or written: `-i F --failures F` would read its failures back as items for ever, and
/// `--cache F > F` would write every record twice.
///
/// Only regular files and FIFOs count: a character device (`/dev/null`, a terminal) or a
/// socket holds nothing that a second role could corrupt or read back.
#[derive(Debug, Default)]
pub struct Seen(Vec<Claim>);

#[derive(Debug)]
struct Claim {
    role: &'static str,
    shown: String,
    id: (u64, u64),
}

impl Seen {
    /// Records the open file `fd` as `role` (`shown` is how messages name it), or fails when
    /// an earlier role is the same file: what each pair would do, and what to do instead.
    pub fn claim(&mut self, role: &'static str, shown: &str, fd: impl AsFd) -> anyhow::Result<()> {
        use rustix::fs::FileType as Type;
        let st = rustix::fs::fstat(fd)
            .map_err(|e| anyhow!("cannot stat {role} {shown}: {}", io::Error::from(e)))?;
        let file_type = Type::from_raw_mode(st.st_mode);
        if file_type != Type::RegularFile && file_type != Type::Fifo {
            return Ok(());
        }
        let id = (st.st_dev, st.st_ino);
        // stdout and stderr on one file (`> log 2>&1`) harm nothing.
        let harmless = |c: &Claim| matches!((c.role, role), ("stdout", "stderr"));
        if let Some(earlier) = self.0.iter().find(|c| c.id == id && !harmless(c)) {
            anyhow::bail!(
                "{} {} and {role} {shown} are the same file (device {}:{}, inode {}): {}; \
                 give each its own file",
                earlier.role,
                earlier.shown,
                rustix::fs::major(st.st_dev),
                rustix::fs::minor(st.st_dev),
                st.st_ino,
                same_file_harm(earlier.role, role),
            );
        }
        self.0.push(Claim {
            role,
            shown: shown.to_owned(),
            id,
        });
        Ok(())
    }
}

/// What sharing one file between two roles would do (the roles in the order claimed).
fn same_file_harm(earlier: &str, later: &str) -> &'static str {
    match (earlier, later) {
        ("stderr", "input") => "pararun's own lines would be read back as items",
        ("stderr", _) => "pararun's own lines would be written into it, as damage",
        ("stdout", "input") => "records printed would be read back as items",
        ("stdout", "cache") => "every record would be written there twice",
        ("stdout", _) => "the records printed would be mixed into the failure lines",
        ("input", "cache") => "the records written would be read back as items",
        ("input", _) => {
            "each failure would be read back as an item, fail, and be \
                         appended again, for ever"
        }
        _ => "the failure lines would load as records, and failed items would count as done",
    }
}

/// How [`repair_tail`] left the end of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tail {
    /// Empty, or ending in a newline: the next append starts a line.
    Clean,
    /// The last line is complete JSON (or too long to judge, or blank) but has no newline:
    /// the next append must write one first.
    NeedsNewline,
    /// The last line had no newline and did not parse: a write a kill cut short. It was cut
    /// off; the file now ends at its last newline.
    Cut,
}

/// Repairs the end of a JSONL file that a crash may have torn (the cache, the failures file),
/// before anything is appended to it, and returns its new length with what was done.
///
/// Only a last line that does not parse as JSON is a torn write, and is cut off: a record that
/// lacks this run's key field, or any other complete JSON value, is kept whole and gets its
/// newline with the next append. A last line over `max_line` bytes is never cut either (a
/// larger `--max-line-bytes` may read it). The parse skips values without recursing, so a
/// deeply nested line is judged without risk to the stack.
pub fn repair_tail(file: &File, max_line: usize) -> io::Result<(u64, Tail)> {
    use std::os::unix::fs::FileExt;
    let len = file.metadata()?.len();
    let line_start = last_line_start(file, len)?;
    if line_start == len {
        return Ok((len, Tail::Clean));
    }
    let whole = match usize::try_from(len - line_start) {
        Ok(size) if size <= max_line => {
            let mut tail = vec![0u8; size];
            file.read_exact_at(&mut tail, line_start)?;
            let line = tail
                .strip_prefix(b"\xEF\xBB\xBF")
                .unwrap_or(&tail)
                .trim_ascii();
            line.is_empty() || serde_json::from_slice::<serde::de::IgnoredAny>(line).is_ok()
        }
        _ => true,
    };
    if whole {
        return Ok((len, Tail::NeedsNewline));
    }
    file.set_len(line_start)?;
    Ok((line_start, Tail::Cut))
}

/// Where the file's last line starts: just after its last newline (`len` when it ends with
/// one, 0 when it has none), read backwards a block at a time.
fn last_line_start(file: &File, len: u64) -> io::Result<u64> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; 64 << 10];
    let mut end = len;
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(end - start) as usize];
        file.read_exact_at(chunk, start)?;
        if let Some(at) = memchr::memrchr(b'\n', chunk) {
            return Ok(start + at as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

fn kind(file_type: FileType) -> &'static str {
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else if file_type.is_socket() {
        "a socket"
    } else {
        "not a file"
    }
}

/// Clears O_NONBLOCK, which was only there for the open.
fn set_blocking(file: &File) -> io::Result<()> {
    use rustix::fs::{fcntl_getfl, fcntl_setfl, OFlags};
    let flags = fcntl_getfl(file)?;
    fcntl_setfl(file, flags - OFlags::NONBLOCK)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn append() -> OpenOptions {
        let mut options = OpenOptions::new();
        options.create(true).append(true);
        options
    }

    #[test]
    fn a_fifo_without_reader_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("f");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        match open_regular(&fifo, &append()) {
            Err(OpenError::NotRegular(what)) => assert_eq!(what, "a FIFO"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_regular_file_is_opened_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let file = open_regular(&dir.path().join("x"), &append()).unwrap();
        let flags = rustix::fs::fcntl_getfl(&file).unwrap();
        assert!(!flags.contains(rustix::fs::OFlags::NONBLOCK));
        assert!(flags.contains(rustix::fs::OFlags::APPEND));
    }

    fn repaired(text: &[u8]) -> (Vec<u8>, Tail) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.jsonl");
        std::fs::write(&path, text).unwrap();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let (len, tail) = repair_tail(&file, 1000).unwrap();
        let left = std::fs::read(&path).unwrap();
        assert_eq!(left.len() as u64, len);
        (left, tail)
    }

    #[test]
    fn only_a_last_line_that_does_not_parse_is_cut() {
        assert_eq!(repaired(b""), (b"".to_vec(), Tail::Clean));
        assert_eq!(
            repaired(b"{\"id\":1}\n"),
            (b"{\"id\":1}\n".to_vec(), Tail::Clean)
        );
        let whole = b"{\"id\":1}\n{\"url\":\"b\"}";
        assert_eq!(repaired(whole), (whole.to_vec(), Tail::NeedsNewline));
        assert_eq!(
            repaired(b"{\"id\":1}\n{\"id\":2,\"v\":\"to"),
            (b"{\"id\":1}\n".to_vec(), Tail::Cut)
        );
        assert_eq!(repaired(b"\0\0\0"), (b"".to_vec(), Tail::Cut));
        // A line too long to judge is kept; so is one nested deeper than any stack would take.
        let long = format!("x\n{}", "y".repeat(2000));
        assert_eq!(repaired(long.as_bytes()).1, Tail::NeedsNewline);
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d");
        std::fs::write(&path, &deep).unwrap();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        assert_eq!(repair_tail(&file, 1 << 20).unwrap().1, Tail::NeedsNewline);
        // A block boundary inside the last line changes nothing.
        let mut big = vec![b'{'; 0];
        big.extend_from_slice(b"{\"id\":1}\n");
        big.extend_from_slice(format!("{{\"v\":\"{}\"", "z".repeat(70_000)).as_bytes());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b");
        std::fs::write(&path, &big).unwrap();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        assert_eq!(repair_tail(&file, 1 << 20).unwrap(), (9, Tail::Cut));
    }

    #[test]
    fn devices_and_directories_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = open_regular(Path::new("/dev/null"), &append()).unwrap_err();
        let msg = err.describe(CACHE, Path::new("/dev/null"), String::new);
        assert!(
            msg.to_string()
                .starts_with("cache /dev/null is not a regular file (a character device); give"),
            "{msg}"
        );
        assert!(matches!(
            open_regular(dir.path(), &append()),
            Err(OpenError::NotRegular("a directory"))
        ));
        assert!(open_input(dir.path()).is_err());
    }
}
