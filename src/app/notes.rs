//! Notes about pararun's own stdin, printed once at setup: a terminal that pararun will read
//! items from (otherwise it looks like a hang), and a file the shell opened read-write because
//! an unquoted `<>` in the command line was taken for a redirection.

use crate::config::{Config, InputSource, StdinKind};

/// The lines to print before anything is read, from what the edge sensed.
pub(super) fn stdin_notes(cfg: &Config) -> Vec<String> {
    match &cfg.items.stdin_kind {
        StdinKind::Terminal if cfg.items.input == InputSource::Stdin && !cfg.output.quiet => vec![
            "pararun: reading items from the terminal, one per line; end with Ctrl-D (or give \
             -i FILE, or pipe the items in)"
                .to_owned(),
        ],
        // Printed even with -q: the command line that ran is probably not the one typed.
        StdinKind::ReadWrite(path) => {
            let file = path
                .as_deref()
                .map_or("a file".to_owned(), |p| p.display().to_string());
            let command = shell_words::join(&cfg.launch.command);
            vec![format!(
                "pararun: warning: stdin is {file}, opened for reading and writing: the shell \
                 probably took an unquoted <> in the command line for its <> redirection (and \
                 the word after it for the file). Write {{}} or '<>' for the item, as in: \
                 pararun ... -- {command} {{}}"
            )]
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_follow_what_stdin_is() {
        let mut cfg = Config::new(vec!["python3".into(), "work.py".into()]);
        assert!(stdin_notes(&cfg).is_empty());
        cfg.items.stdin_kind = StdinKind::Terminal;
        assert!(stdin_notes(&cfg)[0].contains("Ctrl-D"));
        cfg.output.quiet = true;
        assert!(stdin_notes(&cfg).is_empty());
        cfg.items.input = InputSource::File("items.jsonl".into());
        cfg.output.quiet = false;
        assert!(stdin_notes(&cfg).is_empty(), "items come from -i");
        cfg.items.stdin_kind = StdinKind::ReadWrite(Some("/tmp/log.txt".into()));
        cfg.output.quiet = true;
        let note = &stdin_notes(&cfg)[0];
        assert!(note.contains("stdin is /tmp/log.txt"), "{note}");
        assert!(note.ends_with("-- python3 work.py {}"), "{note}");
    }
}
