//! Every `g3` command and flag the README and `docs/` name exists: each command line they show
//! (in code blocks and inline code) names a real subcommand and only its real flags, and the
//! concrete ones (no `[optional]`, `A|B` or `…` placeholders) parse as the binary parses them.
//! A renamed flag fails here instead of misleading a reader.

use std::path::{Path, PathBuf};

use clap::{CommandFactory, Parser};

use crate::Cli;

/// The README and every page under `docs/`.
fn documents() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = vec![root.join("README.md")];
    let mut pages: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/ exists")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "md"))
        .collect();
    pages.sort();
    files.extend(pages);
    files
}

/// A command line a document shows, after its `g3` (or `cargo run --release --`).
#[derive(Debug)]
struct Shown {
    file: String,
    line: usize,
    text: String,
}

/// Where the `g3` of a command starts in `text`, and what follows it.
fn g3_invocations(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for prefix in [
        "cargo run --release -- ",
        "cargo run -- ",
        "target/release/g3 ",
        "target/debug/g3 ",
        "g3 ",
    ] {
        let mut rest = text;
        while let Some(at) = rest.find(prefix) {
            // `g3 ` only as a word of its own (not `tools/g3 ` or `g3-cli `).
            let before = rest[..at].chars().last();
            let word_start = before.is_none_or(|c| c.is_whitespace() || "`(&;|".contains(c));
            let after = &rest[at + prefix.len()..];
            if word_start && after.starts_with(|c: char| c.is_ascii_lowercase() || c == '-') {
                found.push(after.to_owned());
            }
            rest = after;
        }
        if !found.is_empty() {
            break;
        }
    }
    found
}

/// Every command line shown in `markdown`: fenced shell and text blocks (with `\` line
/// continuations joined) and inline code spans.
fn shown_commands(file: &str, markdown: &str) -> Vec<Shown> {
    let mut shown = Vec::new();
    let mut in_block: Option<bool> = None; // Some(is_command_block)
    let mut pending = String::new();
    let mut pending_line = 0;
    for (index, line) in markdown.lines().enumerate() {
        let number = index + 1;
        let trimmed = line.trim_start();
        if let Some(language) = trimmed.strip_prefix("```") {
            in_block = match in_block {
                Some(_) => None,
                None => Some(matches!(
                    language.trim(),
                    "" | "sh" | "bash" | "console" | "text"
                )),
            };
            continue;
        }
        match in_block {
            Some(true) => {
                let (content, continued) = match line.trim_end().strip_suffix('\\') {
                    Some(content) => (content, true),
                    None => (line, false),
                };
                if pending.is_empty() {
                    pending_line = number;
                }
                pending.push_str(content.trim());
                pending.push(' ');
                if !continued {
                    // A shell comment may quote commands of its own: only the code counts.
                    let code = match pending.find(" #") {
                        Some(at) => &pending[..at],
                        None => pending.as_str(),
                    };
                    for text in g3_invocations(&format!(" {}", code.trim())) {
                        shown.push(Shown {
                            file: file.to_owned(),
                            line: pending_line,
                            text,
                        });
                    }
                    pending.clear();
                }
            }
            Some(false) => {}
            None => {
                for (position, span) in line.split('`').enumerate() {
                    if position % 2 == 1 {
                        for text in g3_invocations(&format!(" {span}")) {
                            shown.push(Shown {
                                file: file.to_owned(),
                                line: number,
                                text,
                            });
                        }
                    }
                }
            }
        }
    }
    shown
}

/// Shell words up to the first operator or comment; quotes removed.
fn words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    let mut started = false;
    for c in text.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => current.push(c),
            None => match c {
                '\'' | '"' => {
                    quote = Some(c);
                    started = true;
                }
                c if c.is_whitespace() => {
                    if started || !current.is_empty() {
                        words.push(std::mem::take(&mut current));
                        started = false;
                    }
                }
                '|' | ';' | '>' | '&' | '#' | '`' if current.is_empty() && !started => break,
                _ => current.push(c),
            },
        }
    }
    if started || !current.is_empty() {
        words.push(current);
    }
    words
}

/// The subcommand a line names (`index build` walks two levels), and its words after it.
fn subcommand<'a>(
    command: &'a clap::Command,
    words: &'a [String],
) -> Option<(Vec<&'a clap::Command>, &'a [String])> {
    let mut path = vec![command];
    let mut rest = words;
    while let Some(first) = rest.first() {
        let current = *path.last().unwrap();
        match current.find_subcommand(first) {
            Some(next) => {
                path.push(next);
                rest = &rest[1..];
            }
            None => break,
        }
    }
    (path.len() > 1).then_some((path, rest))
}

/// The long flags a subcommand accepts (its own and the global ones).
fn long_flags(path: &[&clap::Command]) -> Vec<String> {
    let mut flags = vec!["help".to_owned(), "version".to_owned()];
    for command in path {
        for argument in command.get_arguments() {
            if let Some(long) = argument.get_long() {
                flags.push(long.to_owned());
            }
        }
    }
    flags
}

/// The `--flag` names in a word (`[--dtype f16|f32]` names `dtype`; `--set=K=V` names `set`).
fn flags_in(word: &str) -> Vec<String> {
    let mut flags = Vec::new();
    let mut rest = word;
    while let Some(at) = rest.find("--") {
        let name: String = rest[at + 2..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        let boundary = rest[..at].chars().last().is_none_or(|c| "[(|,".contains(c));
        if !name.is_empty() && boundary {
            flags.push(name.trim_end_matches('-').to_owned());
        }
        rest = &rest[at + 2..];
    }
    flags
}

/// Every long flag of every `g3` command.
fn all_long_flags(command: &clap::Command, flags: &mut Vec<String>) {
    flags.extend(
        command
            .get_arguments()
            .filter_map(|argument| argument.get_long().map(str::to_owned)),
    );
    for sub in command.get_subcommands() {
        all_long_flags(sub, flags);
    }
}

/// Flags the docs name for other tools: cargo's `--features`, the comparison script's
/// `--precisions` (benches/compare/index.py), and clap's own `--help`.
const OTHER_TOOLS_FLAGS: [&str; 3] = ["features", "precisions", "help"];

/// Flags named alone in inline code (`--inclusive`) in `markdown`, with their lines.
fn bare_flags(markdown: &str) -> Vec<(usize, String)> {
    let mut flags = Vec::new();
    let mut in_block = false;
    for (index, line) in markdown.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if in_block {
            continue;
        }
        for (position, span) in line.split('`').enumerate() {
            if position % 2 == 1 && span.starts_with("--") {
                flags.extend(
                    flags_in(span)
                        .into_iter()
                        .take(1)
                        .map(|flag| (index + 1, flag)),
                );
            }
        }
    }
    flags
}

#[test]
fn every_flag_named_alone_is_a_g3_flag() {
    let mut known = Vec::new();
    all_long_flags(&Cli::command(), &mut known);
    let mut problems = Vec::new();
    for path in documents() {
        let markdown = std::fs::read_to_string(&path).unwrap();
        for (line, flag) in bare_flags(&markdown) {
            if !known.contains(&flag) && !OTHER_TOOLS_FLAGS.contains(&flag.as_str()) {
                let name = path.file_name().unwrap().to_string_lossy();
                problems.push(format!("{name}:{line}: --{flag}"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "flags no g3 command has:\n{}",
        problems.join("\n")
    );
}

#[test]
fn every_command_and_flag_the_docs_name_exists() {
    let cli = Cli::command();
    let mut problems = Vec::new();
    let mut checked = 0;
    let mut parsed = 0;
    for path in documents() {
        let markdown = std::fs::read_to_string(&path).unwrap();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let file = if file == "README.md" && path.parent().is_some_and(|p| p.ends_with("docs")) {
            "docs/README.md".to_owned()
        } else if path.parent().is_some_and(|p| p.ends_with("docs")) {
            format!("docs/{file}")
        } else {
            file
        };
        for shown in shown_commands(&file, &markdown) {
            let words = words(&shown.text);
            let place = format!("{}:{}: g3 {}", shown.file, shown.line, shown.text.trim());
            let Some((path, rest)) = subcommand(&cli, &words) else {
                problems.push(format!("{place}\n    no such command"));
                continue;
            };
            checked += 1;
            let known = long_flags(&path);
            for word in rest {
                for flag in flags_in(word) {
                    if !known.contains(&flag) {
                        problems.push(format!("{place}\n    no flag --{flag}"));
                    }
                }
            }
            // Concrete lines (no synopsis notation) parse as the binary parses them.
            let synopsis = rest.iter().any(|word| {
                word.contains(['[', ']', '|', '…', '<', '>', '{', '}']) || word.contains("...")
            });
            if !synopsis {
                let mut argv = vec!["g3".to_owned()];
                argv.extend(words.iter().cloned());
                match Cli::try_parse_from(&argv) {
                    Ok(_) => parsed += 1,
                    Err(error)
                        if matches!(
                            error.kind(),
                            clap::error::ErrorKind::DisplayHelp
                                | clap::error::ErrorKind::DisplayVersion
                                | clap::error::ErrorKind::MissingRequiredArgument
                                | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
                        ) =>
                    {
                        // A command named in prose (`g3 eval`) need not carry its arguments.
                    }
                    Err(error)
                        if error.kind() == clap::error::ErrorKind::InvalidValue
                            && words.last().is_some_and(|word| word.starts_with("--")) =>
                    {
                        // A flag named in prose (`g3 eval --plot`) without its value.
                    }
                    Err(error) => problems.push(format!(
                        "{place}\n    does not parse: {}",
                        error.to_string().lines().next().unwrap_or_default()
                    )),
                }
            }
        }
    }
    assert!(
        checked > 100,
        "only {checked} command lines found in the docs"
    );
    assert!(parsed > 30, "only {parsed} concrete command lines parsed");
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn the_checker_finds_what_it_should() {
    let shown = shown_commands(
        "x.md",
        "Run `g3 eval --inclusive` or:\n\n```sh\ncargo run --release -- report a.csv \\\n    --label A # note\n```\n\n`tools/g3 x` and `g3-cli` are not commands.\n",
    );
    let texts: Vec<&str> = shown.iter().map(|shown| shown.text.trim()).collect();
    assert_eq!(texts, ["eval --inclusive", "report a.csv --label A"]);
    assert_eq!(shown[1].line, 4);
    assert_eq!(
        words("report a.csv --label 'A B' # note"),
        ["report", "a.csv", "--label", "A B"]
    );
    assert_eq!(flags_in("[--dtype"), ["dtype"]);
    assert_eq!(flags_in("--set=models.clip=x"), ["set"]);
    assert!(flags_in("a--b").is_empty());
}
