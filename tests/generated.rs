//! `completions/` and `man/` are generated from the clap definition; this fails when a committed
//! file is stale. Regenerate with `PARARUN_BLESS=1 cargo test --test integration generated`.
//!
//! This is the man page's only generator. clap_mangen renders the name, description and options;
//! the SYNOPSIS (with value names, which clap_mangen leaves out), EXIT STATUS and EXAMPLES are
//! rendered here from the clap definition and `pararun::cli::{EXAMPLES, EXIT_STATUS}`, the
//! text `--help` shows too.

use std::path::PathBuf;

use clap::{ArgAction, CommandFactory};
use clap_complete::Shell;
use pararun::cli::{Cli, EXAMPLES, EXIT_STATUS};
use roff::{bold, italic, roman, Inline, Roff};

/// The lines roff writes first, once per rendered piece; kept only at the top of the page.
const PREAMBLE: &str = ".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n";

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
    files.push((root.join("man").join("pararun.1"), man_page().into_bytes()));
    // One page per subcommand, as git has (`man pararun-status`).
    for sub in Cli::command().get_subcommands() {
        let name = format!("pararun-{}", sub.get_name());
        let leaked: &'static str = Box::leak(name.clone().into_boxed_str());
        let command = sub
            .clone()
            .name(leaked)
            .bin_name(format!("pararun {}", sub.get_name()));
        let mut buf = Vec::new();
        clap_mangen::Man::new(command).render(&mut buf).unwrap();
        files.push((root.join("man").join(format!("{name}.1")), buf));
    }
    files
}

/// The whole man page: clap_mangen's sections with ours in between.
fn man_page() -> String {
    // Options kept out of `-h` (hide_short_help) still belong in the man page with their text:
    // clap_mangen would print them bare.
    let command = Cli::command().mut_args(|arg| arg.hide_short_help(false));
    let man = clap_mangen::Man::new(command);
    type Section = fn(&clap_mangen::Man, &mut dyn std::io::Write) -> std::io::Result<()>;
    let piece = |render: Section| {
        let mut buf = Vec::new();
        render(&man, &mut buf).unwrap();
        without_preamble(String::from_utf8(buf).unwrap())
    };
    let mut page = PREAMBLE.to_owned();
    page += &piece(clap_mangen::Man::render_title);
    page += &piece(clap_mangen::Man::render_name_section);
    page += &without_preamble(synopsis().render());
    page += &piece(clap_mangen::Man::render_description_section);
    page += &piece(clap_mangen::Man::render_options_section);
    page += &piece(clap_mangen::Man::render_subcommands_section);
    page += &without_preamble(exit_status().render());
    page += &without_preamble(examples().render());
    page += &piece(clap_mangen::Man::render_version_section);
    page
}

fn without_preamble(text: String) -> String {
    match text.strip_prefix(PREAMBLE) {
        Some(rest) => rest.to_owned(),
        None => text,
    }
}

/// `pararun [-i|--input FILE] … [--] COMMAND...`, every visible flag with its value name.
fn synopsis() -> Roff {
    let mut cmd = Cli::command();
    cmd.build();
    let mut line: Vec<Inline> = vec![bold("pararun")];
    for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
        if arg.is_positional() {
            continue;
        }
        line.push(roman(" ["));
        if let Some(short) = arg.get_short() {
            line.push(bold(format!("-{short}")));
            line.push(roman("|"));
        }
        line.push(bold(format!("--{}", arg.get_long().unwrap())));
        let takes_value = !matches!(
            arg.get_action(),
            ArgAction::SetTrue | ArgAction::Help | ArgAction::HelpLong | ArgAction::Version
        );
        if let (true, Some(names)) = (takes_value, arg.get_value_names()) {
            line.push(roman(" "));
            line.push(italic(names.join(" ")));
        }
        line.push(roman("]"));
    }
    line.push(roman(" [--] "));
    line.push(italic("COMMAND"));
    line.push(roman("..."));
    // No hyphenation: a flag or COMMAND split across lines reads as another word.
    let mut roff = Roff::new();
    roff.control("SH", ["SYNOPSIS"])
        .control("nh", [])
        .text(line)
        .control("hy", []);
    roff
}

fn exit_status() -> Roff {
    let mut roff = Roff::new();
    roff.control("SH", ["EXIT STATUS"]);
    for (code, meaning) in EXIT_STATUS {
        roff.control("TP", [])
            .text([bold(code.to_string())])
            .text([roman(*meaning)]);
    }
    roff
}

/// Each example's command lines in no-fill mode, so that they never wrap mid-command.
fn examples() -> Roff {
    let mut roff = Roff::new();
    roff.control("SH", ["EXAMPLES"]);
    for (what, lines) in EXAMPLES {
        roff.control("PP", []).text([roman(*what)]);
        roff.control("RS", ["4"]).control("nf", []);
        for line in lines.lines() {
            roff.text([roman(line)]);
        }
        roff.control("fi", []).control("RE", []);
    }
    roff
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

#[test]
fn the_man_page_has_its_sections() {
    let page = man_page();
    let sections: Vec<&str> = page
        .lines()
        .filter_map(|l| l.strip_prefix(".SH "))
        .collect();
    for section in ["NAME", "SYNOPSIS", "\"EXIT STATUS\"", "EXAMPLES"] {
        assert!(sections.contains(&section), "no {section}: {sections:?}");
    }
    assert!(!sections.contains(&"EXTRA"), "examples under EXTRA");
    assert!(
        page.contains("\\fB\\-i\\fR|\\fB\\-\\-input\\fR \\fIFILE\\fR"),
        "SYNOPSIS lacks value names"
    );
}
