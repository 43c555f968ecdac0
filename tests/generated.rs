//! `completions/` and `man/` are generated from the clap definition; this fails when a committed
//! file is stale. Regenerate with `PARARUN_BLESS=1 cargo test --test integration generated`.

use std::path::PathBuf;

use clap::CommandFactory;
use clap_complete::Shell;
use pararun::cli::Cli;

fn rendered() -> Vec<(PathBuf, Vec<u8>)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for (shell, name) in [
        (Shell::Bash, "pararun.bash"),
        (Shell::Zsh, "_pararun"),
        (Shell::Fish, "pararun.fish"),
        (Shell::Elvish, "pararun.elv"),
        (Shell::PowerShell, "_pararun.ps1"),
    ] {
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "pararun", &mut buf);
        files.push((root.join("completions").join(name), buf));
    }
    let mut man = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut man)
        .unwrap();
    files.push((root.join("man").join("pararun.1"), man));
    files
}

#[test]
fn completions_and_man_page_are_fresh() {
    let bless = std::env::var_os("PARARUN_BLESS").is_some();
    let mut stale = Vec::new();
    for (path, content) in rendered() {
        if bless {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &content).unwrap();
        } else if std::fs::read(&path).ok().as_deref() != Some(&content[..]) {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "stale generated files: {}\nregenerate them with: PARARUN_BLESS=1 cargo test --test integration generated",
        stale.join(", ")
    );
}
