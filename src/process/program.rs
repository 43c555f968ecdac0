//! Whether a program can be started, asked once before the first child, so that a script
//! without its execute bit or its `#!` line fails the run at once (exit 2) with the fix,
//! instead of failing every item with `Permission denied` or `Exec format error`. Also the hint
//! for such a spawn error, where the program could not be checked at start.

use std::io::Read;
use std::path::{Path, PathBuf};

use rustix::fs::Access;

/// Finds `program` as `execvp` would (a path if it holds a `/`, else the first executable file
/// of that name on PATH, else the first file) and checks that the kernel can start it. `Err`
/// says what is wrong and what to do.
pub fn check(program: &str) -> Result<(), String> {
    let path = find(program)
        .ok_or_else(|| format!("command not found: {program:?} (not a file, and not on PATH)"))?;
    if rustix::fs::access(&path, Access::EXEC_OK).is_err() {
        return Err(format!(
            "{program:?} is not executable (starting it would fail with Permission denied): \
             make it so with chmod +x {program}, or name its interpreter in the command: \
             -- {} {program}",
            interpreter_for(program)
        ));
    }
    let mut head = Vec::with_capacity(512);
    if std::fs::File::open(&path)
        .and_then(|f| f.take(512).read_to_end(&mut head))
        .is_err()
    {
        // Unreadable but executable (mode 711): the kernel may still run it.
        return Ok(());
    }
    if let Some(line) = head.strip_prefix(b"#!") {
        let line = line.split(|&b| b == b'\n').next().unwrap_or_default();
        return check_shebang(program, &String::from_utf8_lossy(line));
    }
    // Not ELF, and text (no NUL byte): a script without `#!`, which the kernel refuses (a
    // binary of another format may have a binfmt_misc handler, so it is left to try).
    if !head.starts_with(b"\x7fELF") && !head.contains(&0) {
        return Err(format!(
            "{program:?} has no #! line naming its interpreter, so the kernel cannot start it \
             (Exec format error): make its first line one, such as #!/bin/sh or \
             #!/usr/bin/env python3, or name its interpreter in the command: -- {} {program}",
            interpreter_for(program)
        ));
    }
    Ok(())
}

/// Whether `program` is found as `execvp` would find it and may be executed, without opening
/// it (for `sh`, which is no script to check the `#!` line of). `Err` says which.
pub fn check_found(program: &str) -> Result<(), String> {
    let path = find(program)
        .ok_or_else(|| format!("command not found: {program:?} (not a file, and not on PATH)"))?;
    rustix::fs::access(&path, Access::EXEC_OK)
        .map_err(|_| format!("{} is not executable", path.display()))
}

/// Checks the interpreter a `#!` line names, and the program `#!/usr/bin/env NAME` looks up.
fn check_shebang(program: &str, line: &str) -> Result<(), String> {
    let mut words = line.split_whitespace();
    let Some(interpreter) = words.next() else {
        return Err(format!(
            "{program:?} has an empty #! line: name its interpreter there, such as #!/bin/sh"
        ));
    };
    let fix = |what: String| {
        format!(
            "{program:?} cannot be started: its #! line names {what}; fix that line (e.g. \
             #!/usr/bin/env python3), or name an interpreter in the command: -- {} {program}",
            interpreter_for(program)
        )
    };
    if !Path::new(interpreter).is_file() {
        return Err(fix(format!("{interpreter}, which does not exist")));
    }
    if Path::new(interpreter).file_name() == Some("env".as_ref()) {
        // `env -S python3 -u` splits the rest; other options take no program name.
        let name = words.find(|w| *w != "-S" && !w.starts_with('-'));
        if let Some(name) = name.filter(|n| !n.contains('=') && find(n).is_none()) {
            return Err(fix(format!("{name} (through env), which is not on PATH")));
        }
    }
    Ok(())
}

/// The file `program` names: itself when it holds a `/`, else its first executable (or, failing
/// that, its first) match on PATH.
fn find(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        return Path::new(program).is_file().then(|| program.into());
    }
    let path = std::env::var_os("PATH")?;
    let files: Vec<PathBuf> = std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .filter(|p| p.is_file())
        .collect();
    let executable = files
        .iter()
        .find(|p| rustix::fs::access(p.as_path(), Access::EXEC_OK).is_ok());
    executable.or(files.first()).cloned()
}

/// The interpreter a script's name suggests, for hints.
fn interpreter_for(program: &str) -> &'static str {
    match Path::new(program).extension().and_then(|e| e.to_str()) {
        Some("py") => "python3",
        Some("bash") => "bash",
        Some("pl") => "perl",
        Some("rb") => "ruby",
        Some("js") => "node",
        _ => "sh",
    }
}

/// What to do about a program that could not be started, for errors that have a fix: `""`
/// for others.
pub fn spawn_hint(program: &str, err: &std::io::Error) -> String {
    match err.raw_os_error() {
        Some(libc::EACCES) => format!(
            "; if it is a script, make it executable (chmod +x {program}) or name its \
             interpreter in the command (-- {} {program})",
            interpreter_for(program)
        ),
        Some(libc::ENOEXEC) => format!(
            "; a script needs a #! line naming its interpreter, or name it in the command \
             (-- {} {program})",
            interpreter_for(program)
        ),
        Some(libc::EMFILE) => format!("; {}", super::sys::out_of_descriptors()),
        Some(libc::ENFILE) => "; the system is out of file descriptors (ENFILE, fs.file-max): \
             lower -j, or raise the system's limit (sysctl fs.file-max)"
            .to_owned(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn script(dir: &Path, name: &str, body: &str, mode: u32) -> String {
        let path = dir.join(name);
        std::fs::write(&path, body).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path.to_str().unwrap().to_owned()
    }

    #[test]
    fn scripts_that_cannot_start_are_named_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert_eq!(
            check(&script(d, "ok.sh", "#!/bin/sh\necho {}\n", 0o755)),
            Ok(())
        );
        assert_eq!(check("sh"), Ok(()));
        let w = script(d, "w.py", "#!/usr/bin/env python3\n", 0o644);
        let err = check(&w).unwrap_err();
        assert!(err.contains("is not executable"), "{err}");
        assert!(err.contains(&format!("chmod +x {w}")), "{err}");
        assert!(err.ends_with(&format!("-- python3 {w}")), "{err}");
        let err = check(&script(d, "bare.sh", "echo {}\n", 0o755)).unwrap_err();
        assert!(err.contains("has no #! line"), "{err}");
        let err = check(&script(d, "gone", "#!/no/such/sh\n", 0o755)).unwrap_err();
        assert!(
            err.contains("names /no/such/sh, which does not exist"),
            "{err}"
        );
        let missing = "#!/usr/bin/env -S no-such-interpreter-here -u\n";
        let err = check(&script(d, "env.py", missing, 0o755)).unwrap_err();
        assert!(
            err.contains("no-such-interpreter-here (through env), which is not on PATH"),
            "{err}"
        );
        // A binary of another format may have a binfmt_misc handler: left to try.
        assert_eq!(check(&script(d, "blob", "MZ\0\0", 0o755)), Ok(()));
        assert!(check("no-such-program-here")
            .unwrap_err()
            .contains("command not found"));
    }
}
