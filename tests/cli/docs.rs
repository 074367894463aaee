//! docs/cli.md against the binary: the flags its option tables document are exactly the
//! flags the commands' `--help` lists, every flag it mentions exists, and its exit-code table
//! is the set of codes this file's tests produce ([`EXIT_CODES`]) and that `--help` lists.

use super::*;
use std::collections::BTreeSet;

/// Every command whose `--help` is walked.
const COMMANDS: &[&[&str]] = &[
    &[],
    &["build"],
    &["cache"],
    &["cache", "dir"],
    &["cache", "clean"],
    &["cache", "prune"],
    &["runtime"],
    &["runtime", "info"],
    &["runtime", "run"],
    &["verify"],
    &["serve"],
    &["worker"],
    &["enqueue"],
];

fn cli_md() -> String {
    fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/cli.md")).unwrap()
}

fn help(command: &[&str]) -> String {
    let output = run(wasm_build().args(command).arg("--help"));
    assert!(output.status.success(), "{command:?} --help");
    String::from_utf8(output.stdout).unwrap()
}

/// `-x` and `--long-name` tokens of `text`.
fn flag_tokens(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|t| {
            let b = t.as_bytes();
            match b {
                [b'-', b'-', c, ..] => c.is_ascii_alphanumeric(),
                [b'-', c] => c.is_ascii_alphanumeric(),
                _ => false,
            }
        })
        .map(str::to_string)
        .collect()
}

/// The flags a help text lists: on each option line, what comes before the description.
fn help_flags(help: &str) -> BTreeSet<String> {
    help.lines()
        .filter(|line| line.starts_with(' ') && line.trim_start().starts_with('-'))
        .flat_map(|line| flag_tokens(line.trim_start().split("  ").next().unwrap()))
        .collect()
}

/// The flags cli.md documents: those in the first cell of a table row.
fn documented_flags(doc: &str) -> BTreeSet<String> {
    doc.lines()
        .filter(|line| line.starts_with("| "))
        .flat_map(|line| flag_tokens(line.split('|').nth(1).unwrap()))
        .collect()
}

/// Flags cli.md quotes that are not wasm-build's: `--hash` of a constraint file's lines.
const NOT_OURS: &[&str] = &["--hash"];

/// The long flags cli.md mentions anywhere in code spans.
fn mentioned_flags(doc: &str) -> BTreeSet<String> {
    doc.split('`')
        .skip(1)
        .step_by(2)
        .flat_map(flag_tokens)
        .filter(|flag| flag.starts_with("--") && !NOT_OURS.contains(&flag.as_str()))
        .collect()
}

/// What cli.md says that the helps do not, and the reverse; empty when they agree.
fn flag_disagreements(doc: &str, helps: &[String]) -> Vec<String> {
    let listed: BTreeSet<String> = helps.iter().flat_map(|h| help_flags(h)).collect();
    let documented = documented_flags(doc);
    let mut problems = Vec::new();
    for flag in listed.difference(&documented) {
        problems.push(format!("{flag} is in --help but not documented in cli.md"));
    }
    for flag in documented.difference(&listed) {
        problems.push(format!(
            "{flag} is documented in cli.md but no command has it"
        ));
    }
    for flag in mentioned_flags(doc).difference(&listed) {
        problems.push(format!(
            "{flag} is mentioned in cli.md but no command has it"
        ));
    }
    problems
}

/// The codes of cli.md's exit-code table.
fn exit_code_table(doc: &str) -> BTreeSet<i32> {
    let section = doc
        .split("\n## Exit codes\n")
        .nth(1)
        .expect("cli.md has an `## Exit codes` section");
    let section = section.split("\n## ").next().unwrap();
    section
        .lines()
        .filter_map(|line| line.strip_prefix("| "))
        .filter_map(|line| line.split(" |").next()?.trim().parse().ok())
        .collect()
}

/// The codes `wasm-build --help` lists after `Exit codes:`.
fn exit_codes_in_help(help: &str) -> BTreeSet<i32> {
    let paragraph = help
        .split("Exit codes:")
        .nth(1)
        .expect("--help lists the exit codes");
    let paragraph = paragraph.split("\n\n").next().unwrap();
    paragraph
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter_map(|t| t.parse().ok())
        .collect()
}

fn helps() -> Vec<String> {
    COMMANDS.iter().map(|command| help(command)).collect()
}

#[test]
fn cli_md_documents_exactly_the_flags_of_the_binary() {
    let problems = flag_disagreements(&cli_md(), &helps());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The check above can fail: a flag missing from cli.md, and one cli.md invents, are found.
#[test]
fn the_flag_check_finds_disagreements() {
    let doc = cli_md();
    let helps = helps();
    let without = doc
        .lines()
        .filter(|line| !line.contains("`--sdist`"))
        .collect::<Vec<_>>()
        .join("\n");
    assert_ne!(without, doc, "cli.md has no --sdist row to remove");
    let problems = flag_disagreements(&without, &helps);
    assert!(
        problems.contains(&"--sdist is in --help but not documented in cli.md".to_string()),
        "{problems:?}"
    );
    let invented = format!("{doc}\n| `--frobnicate` | no such flag |\nSee `--levitate`.\n");
    let problems = flag_disagreements(&invented, &helps);
    assert_eq!(
        problems,
        [
            "--frobnicate is documented in cli.md but no command has it",
            "--frobnicate is mentioned in cli.md but no command has it",
            "--levitate is mentioned in cli.md but no command has it",
        ]
    );
}

#[test]
fn every_exit_code_of_cli_md_is_produced_by_a_test() {
    let doc = cli_md();
    let table = exit_code_table(&doc);
    let tested: BTreeSet<i32> = EXIT_CODES.iter().map(|(code, _)| *code).collect();
    assert_eq!(
        table, tested,
        "cli.md's exit codes and the tests that produce them"
    );
    assert_eq!(exit_codes_in_help(&help(&[])), table, "--help and cli.md");
    // Each named test exists and asserts its code.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests");
    let source = [
        "cli.rs",
        "cli/errors.rs",
        "cli/docs.rs",
        "compat.rs",
        "registry.rs",
    ]
    .iter()
    .map(|file| fs::read_to_string(root.join(file)).unwrap())
    .collect::<String>();
    for (code, test) in EXIT_CODES {
        let body = source
            .split(&format!("\nfn {test}() {{\n"))
            .nth(1)
            .unwrap_or_else(|| panic!("no test {test}"));
        let body = body.split("\n}\n").next().unwrap();
        let asserted = if *code == 0 {
            body.contains("build_ok(")
        } else {
            body.split(|c: char| !c.is_ascii_digit())
                .any(|t| t == code.to_string())
        };
        assert!(asserted, "{test} does not assert exit code {code}");
    }
    // The check can fail: a code missing from the table is a difference.
    let without_7 = doc.replace("\n| 7 |", "\n| seven |");
    assert_ne!(exit_code_table(&without_7), tested);
}
