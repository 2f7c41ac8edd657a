//! The docs' command lines against the command line's definition: every `orchestra ...` (and
//! `cargo run -- ...`) command in a ```sh, ```bash, ```shell or ```console block of README.md
//! and docs/*.md must parse with [`Cli`], so that the docs cannot drift from the commands.
//! Parsing only: nothing is run.

use std::path::{Path, PathBuf};

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};

use super::Cli;

/// One command found in a doc.
#[derive(Debug, PartialEq, Eq)]
struct DocCommand {
    /// The file and the line the command starts on.
    at: String,
    /// The arguments after the program name.
    args: Vec<String>,
}

/// The markdown files whose commands are checked.
fn doc_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/ exists")
        .map(|entry| entry.expect("readable docs/ entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// The shell commands of a markdown text's shell blocks, with the line each starts on: `\`
/// continuations joined, heredoc bodies and (in console blocks) output lines left out.
fn shell_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut block: Option<bool> = None; // Some(console?) inside a shell block
    let mut in_other_block = false;
    let mut heredoc: Option<String> = None;
    let mut pending: Option<(usize, String)> = None;
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let trimmed = raw.trim_start();
        if let Some(info) = trimmed.strip_prefix("```") {
            if block.is_some() || in_other_block {
                block = None;
                in_other_block = false;
                heredoc = None;
            } else {
                let lang = info.split([',', ' ']).next().unwrap_or("");
                match lang {
                    "sh" | "bash" | "shell" => block = Some(false),
                    "console" => block = Some(true),
                    _ => in_other_block = true,
                }
            }
            continue;
        }
        let Some(console) = block else { continue };
        if let Some(end) = &heredoc {
            if raw.trim() == end {
                heredoc = None;
            }
            continue;
        }
        let line = match (&pending, console) {
            (Some(_), _) | (None, false) => raw.trim(),
            (None, true) => match trimmed.strip_prefix("$ ") {
                Some(command) => command.trim(),
                None => continue,
            },
        };
        let (start, mut joined) = pending.take().unwrap_or((number, String::new()));
        if let Some(head) = line.strip_suffix('\\') {
            joined.push_str(head);
            joined.push(' ');
            pending = Some((start, joined));
            continue;
        }
        joined.push_str(line);
        if let Some(end) = heredoc_end(&joined) {
            heredoc = Some(end);
        }
        out.push((start, joined));
    }
    out
}

/// The terminator of a heredoc the line starts (`<<'EOF'`, `<<EOF`, `<<-EOF`).
fn heredoc_end(line: &str) -> Option<String> {
    let rest = line
        .split_once("<<")?
        .1
        .trim_start_matches('-')
        .trim_start();
    let word: String = rest
        .trim_start_matches(['\'', '"'])
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (!word.is_empty()).then_some(word)
}

/// A shell line split into simple commands (at `;`, `|`, `&`, `&&`, `||`, and redirections
/// ending a command's words), each a list of words with quotes removed; a `#` word starts a
/// comment. Variables stay as written (`$TOKEN`), `$(...)` as one word.
fn simple_commands(line: &str) -> Vec<Vec<String>> {
    let mut commands = vec![Vec::new()];
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    let mut redirect = false;
    let finish = |word: &mut String,
                  in_word: &mut bool,
                  commands: &mut Vec<Vec<String>>,
                  redirect: &mut bool| {
        if *in_word {
            if !*redirect {
                commands
                    .last_mut()
                    .expect("one command")
                    .push(std::mem::take(word));
            } else {
                word.clear();
                *redirect = false;
            }
            *in_word = false;
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                in_word = true;
                for q in chars.by_ref() {
                    if q == c {
                        break;
                    }
                    word.push(q);
                }
            }
            '$' if chars.peek() == Some(&'(') => {
                in_word = true;
                let mut depth = 0;
                for q in chars.by_ref() {
                    word.push(q);
                    match q {
                        '(' => depth += 1,
                        ')' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                }
            }
            '#' if !in_word => break,
            ' ' | '\t' => finish(&mut word, &mut in_word, &mut commands, &mut redirect),
            ';' | '|' | '&' => {
                finish(&mut word, &mut in_word, &mut commands, &mut redirect);
                commands.push(Vec::new());
            }
            '>' | '<' => {
                finish(&mut word, &mut in_word, &mut commands, &mut redirect);
                while chars
                    .peek()
                    .is_some_and(|n| matches!(n, '>' | '<' | '&' | '-'))
                {
                    chars.next();
                }
                redirect = true;
            }
            other => {
                in_word = true;
                word.push(other);
            }
        }
    }
    finish(&mut word, &mut in_word, &mut commands, &mut redirect);
    commands.retain(|c| !c.is_empty());
    commands
}

/// The arguments of `orchestra` in a simple command, if it runs the binary: `orchestra ...`,
/// `path/to/orchestra ...`, or `cargo run [--release] -- ...` (not `--example` or `-p`).
fn orchestra_args(words: &[String]) -> Option<Vec<String>> {
    let words: Vec<&String> = words
        .iter()
        .skip_while(|w| matches!(w.as_str(), "do" | "then" | "else" | "time" | "exec"))
        .skip_while(|w| {
            w.split_once('=')
                .is_some_and(|(name, _)| !name.is_empty() && !name.starts_with('-'))
        })
        .collect();
    let (first, rest) = words.split_first()?;
    if first.as_str() == "orchestra" || first.ends_with("/orchestra") {
        return Some(rest.iter().map(|w| (*w).clone()).collect());
    }
    if first.as_str() == "cargo" && rest.first().is_some_and(|w| w.as_str() == "run") {
        let split = rest.iter().position(|w| w.as_str() == "--")?;
        let own = &rest[..split];
        if own
            .iter()
            .any(|w| matches!(w.as_str(), "--example" | "-p" | "--package" | "--bin"))
        {
            return None;
        }
        return Some(rest[split + 1..].iter().map(|w| (*w).clone()).collect());
    }
    None
}

/// Every orchestra command in a markdown text.
fn doc_commands(name: &str, text: &str) -> Vec<DocCommand> {
    shell_lines(text)
        .into_iter()
        .flat_map(|(line, shell)| {
            simple_commands(&shell)
                .into_iter()
                .filter_map(|words| orchestra_args(&words))
                .map(move |args| DocCommand {
                    at: format!("{name}:{line}"),
                    args,
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn every_command_line_in_the_docs_parses() {
    let mut commands = Vec::new();
    for path in doc_files() {
        let text = std::fs::read_to_string(&path).expect("readable doc");
        let name = path
            .strip_prefix(env!("CARGO_MANIFEST_DIR"))
            .unwrap_or(&path)
            .display()
            .to_string();
        commands.extend(doc_commands(name.trim_start_matches('/'), &text));
    }
    assert!(
        commands.len() >= 40,
        "only {} commands found in the docs: is the extraction broken?",
        commands.len()
    );
    let mut failures = Vec::new();
    for command in &commands {
        let argv = std::iter::once("orchestra".to_owned()).chain(command.args.iter().cloned());
        if let Err(err) = Cli::try_parse_from(argv)
            && !matches!(
                err.kind(),
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
            )
        {
            failures.push(format!(
                "{}: orchestra {}\n{}",
                command.at,
                command.args.join(" "),
                err.render()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} commands in the docs do not parse:\n\n{}",
        failures.len(),
        commands.len(),
        failures.join("\n")
    );
    // And the docs show every top-level command at least once.
    let cli = Cli::command();
    let missing: Vec<&str> = cli
        .get_subcommands()
        .map(|sub| sub.get_name())
        .filter(|name| {
            !commands
                .iter()
                .any(|c| c.args.first().map(String::as_str) == Some(*name))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "no example of `orchestra {}` in README.md or docs/*.md",
        missing.join("`, `orchestra ")
    );
}

#[test]
fn commands_are_found_in_shell_and_console_blocks_only() {
    let text = "\
```sh
orchestra server --listen 127.0.0.1:7443 \\
  --data-dir /tmp/d   # a comment
TOKEN=$(cat /tmp/d/node-token)
cat > x.yaml <<'YAML'
orchestra: not a command
YAML
ORCHESTRA_SERVER=x orchestra ctl get pods | head; target/release/orchestra ctl get nodes &
cargo run --release -- bench store --smoke
cargo run --release --example full_cluster -- --smoke
```

```console
$ orchestra ctl get pods -o wide
orchestra output line
```

```text
orchestra server --bogus
```
";
    let found: Vec<(String, String)> = doc_commands("x.md", text)
        .into_iter()
        .map(|c| (c.at, c.args.join(" ")))
        .collect();
    let expected = [
        ("x.md:2", "server --listen 127.0.0.1:7443 --data-dir /tmp/d"),
        ("x.md:8", "ctl get pods"),
        ("x.md:8", "ctl get nodes"),
        ("x.md:9", "bench store --smoke"),
        ("x.md:14", "ctl get pods -o wide"),
    ];
    assert_eq!(
        found,
        expected
            .iter()
            .map(|(at, args)| (at.to_string(), args.to_string()))
            .collect::<Vec<_>>()
    );
}

#[test]
fn a_drifted_command_is_reported() {
    let commands = doc_commands("x.md", "```sh\norchestra server --no-such-flag\n```\n");
    let argv = std::iter::once("orchestra".to_owned()).chain(commands[0].args.iter().cloned());
    let err = Cli::try_parse_from(argv).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnknownArgument);
}

#[test]
fn every_guide_runs_as_a_doc_test() {
    let lib = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs"))
        .expect("src/lib.rs");
    let missing: Vec<String> = doc_files()
        .iter()
        .filter_map(|path| {
            let name = path.file_name()?.to_str()?;
            let include = if name == "README.md" {
                "include_str!(\"../README.md\")".to_owned()
            } else {
                format!("include_str!(\"../docs/{name}\")")
            };
            (!lib.contains(&include)).then_some(include)
        })
        .collect();
    assert!(
        missing.is_empty(),
        "src/lib.rs must include every guide as a doc test; missing: {missing:?}"
    );
}
