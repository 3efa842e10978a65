//! `docs/cli.md` against the real `tidemark` binary: every verb and subcommand that
//! `tidemark --help` lists (recursively) has a section whose heading names it
//! (`` `tidemark offset-rollback snapshot` ``), and every long flag of that subcommand has a
//! table row there or in a shared flag section (a heading ending in "flags") the subcommand's
//! section links to; the global options have theirs in "Global options". A row names the flag's short form, default, environment
//! variable and possible values as `--help` prints them, and every flag a row names exists for
//! every subcommand that uses the row. The exit code table lists exactly the codes and error
//! kinds of `tidemark::Error`. So adding, renaming or removing a flag or verb without the
//! reference fails here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use tidemark::Error;

const BIN: &str = env!("CARGO_BIN_EXE_tidemark-under-test");

/// The repository root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(rel: &str) -> String {
    let path = root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// One flag as `--help` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Flag {
    long: String,
    short: Option<char>,
    /// `[default: …]`
    default: Option<String>,
    /// `[env: NAME=…]`, the name.
    env: Option<String>,
    /// `[possible values: …]`
    values: Vec<String>,
}

/// One `--help` page: its subcommands and flags.
#[derive(Debug, Default)]
struct Help {
    commands: Vec<String>,
    flags: Vec<Flag>,
}

/// Runs `tidemark <path> --help` and parses it. The environment is cleared, so that clap shows
/// `[env: NAME=]` without a value and wraps at its default width.
fn help(path: &[String]) -> Help {
    let out = Command::new(BIN)
        .args(path)
        .arg("--help")
        .env_clear()
        .output()
        .expect("run tidemark --help");
    assert!(
        out.status.success(),
        "tidemark {path:?} --help: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_help(&String::from_utf8_lossy(&out.stdout))
}

/// Whether a help line starts a flag: two spaces and a short flag, or six spaces and a long one
/// (wrapped description lines are indented further).
fn flag_line(line: &str) -> Option<(Option<char>, String, &str)> {
    let (short, rest) = if let Some(rest) = line.strip_prefix("      --") {
        (None, rest)
    } else {
        let rest = line.strip_prefix("  -")?;
        let mut chars = rest.chars();
        let c = chars.next().filter(|c| c.is_ascii_alphabetic())?;
        (Some(c), chars.as_str().strip_prefix(", --")?)
    };
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .unwrap_or(rest.len());
    Some((short, rest[..end].to_string(), &rest[end..]))
}

/// `[name: value]` in a flag's description (whitespace already collapsed).
fn bracket<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let start = text.find(&format!("[{name}: "))? + name.len() + 3;
    let end = text[start..].find(']')? + start;
    Some(&text[start..end])
}

fn parse_help(text: &str) -> Help {
    let mut help = Help::default();
    let mut section = "";
    // (short, long, description so far)
    let mut current: Option<(Option<char>, String, String)> = None;
    let finish = |current: &mut Option<(Option<char>, String, String)>, help: &mut Help| {
        if let Some((short, long, desc)) = current.take() {
            let desc = desc.split_whitespace().collect::<Vec<_>>().join(" ");
            help.flags.push(Flag {
                long,
                short,
                default: bracket(&desc, "default").map(str::to_string),
                env: bracket(&desc, "env")
                    .map(|e| e.split('=').next().unwrap_or_default().to_string()),
                values: bracket(&desc, "possible values")
                    .map(|v| v.split(", ").map(str::to_string).collect())
                    .unwrap_or_default(),
            });
        }
    };
    for line in text.lines() {
        if !line.starts_with(' ') && line.ends_with(':') {
            finish(&mut current, &mut help);
            section = line;
            continue;
        }
        match section {
            "Commands:" => {
                if let Some(rest) = line.strip_prefix("  ") {
                    if rest.starts_with(|c: char| c.is_ascii_lowercase()) {
                        let name = rest.split_whitespace().next().unwrap_or_default();
                        if name != "help" {
                            help.commands.push(name.to_string());
                        }
                    }
                }
            }
            "Options:" => {
                if let Some((short, long, rest)) = flag_line(line) {
                    finish(&mut current, &mut help);
                    current = Some((short, long, rest.to_string()));
                } else if let Some((_, _, desc)) = current.as_mut() {
                    desc.push(' ');
                    desc.push_str(line);
                }
            }
            _ => {}
        }
    }
    finish(&mut current, &mut help);
    help
}

/// Every command reachable from `tidemark`, by path (`[]` is `tidemark` itself).
fn all_commands() -> BTreeMap<Vec<String>, Help> {
    let mut out = BTreeMap::new();
    let mut todo = vec![Vec::<String>::new()];
    while let Some(path) = todo.pop() {
        let h = help(&path);
        for c in &h.commands {
            let mut child = path.clone();
            child.push(c.clone());
            todo.push(child);
        }
        out.insert(path, h);
    }
    out
}

/// One section of a Markdown page: its heading, level and text up to the next heading of the
/// same or a higher level.
#[derive(Debug)]
struct Section {
    heading: String,
    level: usize,
    slug: String,
    text: String,
}

/// GitHub's anchor for a heading: lower case, punctuation other than `-` and `_` dropped,
/// spaces as `-`, duplicates numbered.
fn slug(heading: &str, seen: &mut BTreeMap<String, usize>) -> String {
    let base: String = heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect();
    let n = seen.entry(base.clone()).or_insert(0);
    let out = if *n == 0 {
        base.clone()
    } else {
        format!("{base}-{n}")
    };
    *n += 1;
    out
}

/// The page's sections, outside fenced code blocks.
fn sections(page: &str) -> Vec<Section> {
    let lines: Vec<&str> = page.lines().collect();
    let mut heads = Vec::new();
    let mut fenced = false;
    for (i, line) in lines.iter().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        }
        if fenced {
            continue;
        }
        let level = line.chars().take_while(|c| *c == '#').count();
        if level > 0 && line[level..].starts_with(' ') {
            heads.push((i, level, line[level..].trim().to_string()));
        }
    }
    let mut seen = BTreeMap::new();
    heads
        .iter()
        .enumerate()
        .map(|(k, (i, level, heading))| {
            let end = heads[k + 1..]
                .iter()
                .find(|(_, l, _)| l <= level)
                .map_or(lines.len(), |(j, _, _)| *j);
            Section {
                heading: heading.clone(),
                level: *level,
                slug: slug(heading, &mut seen),
                text: lines[i + 1..end].join("\n"),
            }
        })
        .collect()
}

/// The cells of a Markdown table row (`\|` is a pipe inside a cell).
fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    let mut out = vec![String::new()];
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                out.last_mut().expect("a cell").push('|');
                chars.next();
            }
            '|' => out.push(String::new()),
            c => out.last_mut().expect("a cell").push(c),
        }
    }
    out.into_iter().map(|c| c.trim().to_string()).collect()
}

/// A flag table row: the backticked flags of its first cell (`-p`, `--path`) and the row.
#[derive(Debug, Clone)]
struct Row {
    longs: Vec<String>,
    shorts: Vec<char>,
    line: String,
}

/// The flag rows of a section's tables.
fn flag_rows(text: &str) -> Vec<Row> {
    text.lines()
        .filter(|l| l.trim_start().starts_with('|'))
        .filter_map(|l| {
            let first = cells(l).into_iter().next()?;
            let mut longs = Vec::new();
            let mut shorts = Vec::new();
            for code in first.split('`').skip(1).step_by(2) {
                let word = code.split([' ', '=', '[', '<']).next().unwrap_or_default();
                if let Some(long) = word.strip_prefix("--") {
                    longs.push(long.to_string());
                } else if let Some(short) = word.strip_prefix('-') {
                    if short.len() == 1 {
                        shorts.extend(short.chars());
                    }
                }
            }
            (!longs.is_empty()).then(|| Row {
                longs,
                shorts,
                line: l.to_string(),
            })
        })
        .collect()
}

/// The `#anchor` links of a section's text.
fn anchors(text: &str) -> Vec<String> {
    text.split("](#")
        .skip(1)
        .filter_map(|rest| rest.split(')').next())
        .map(str::to_string)
        .collect()
}

const GLOBAL_OPTIONS: &str = "global-options";

#[test]
fn every_verb_and_flag_is_in_the_cli_reference() {
    let page = read("docs/cli.md");
    let sections = sections(&page);
    let by_slug: BTreeMap<&str, &Section> = sections.iter().map(|s| (s.slug.as_str(), s)).collect();
    let commands = all_commands();
    assert!(
        commands.len() > 20,
        "expected the whole command tree, found {:?}",
        commands.keys()
    );
    let top = &commands[&Vec::new()];
    let global: BTreeSet<&str> = top.flags.iter().map(|f| f.long.as_str()).collect();
    let mut problems = Vec::new();

    // The global options: every flag of `tidemark --help` in the "Global options" table.
    let global_rows = by_slug
        .get(GLOBAL_OPTIONS)
        .map(|s| flag_rows(&s.text))
        .unwrap_or_else(|| panic!("docs/cli.md has no '## Global options' section"));
    check_flags("tidemark", &top.flags, &global_rows, &mut problems);

    let mut documented_commands = BTreeSet::new();
    for (path, h) in &commands {
        if path.is_empty() {
            continue;
        }
        let name = format!("tidemark {}", path.join(" "));
        let token = format!("`{name}`");
        let Some(section) = sections.iter().find(|s| s.heading.contains(&token)) else {
            problems.push(format!(
                "{name}: no section whose heading names {token} in docs/cli.md"
            ));
            continue;
        };
        documented_commands.insert(name.clone());
        if !h.commands.is_empty() {
            // A group of subcommands: their own sections carry the flags.
            continue;
        }
        let mut rows = flag_rows(&own_text(section));
        // Shared flag sections ("… flags") the section links count as its own.
        for anchor in anchors(&section.text) {
            match by_slug.get(anchor.as_str()) {
                Some(linked) if anchor.ends_with("-flags") => rows.extend(flag_rows(&linked.text)),
                Some(_) => {}
                None => problems.push(format!("{name}: link to #{anchor}, which is no heading")),
            }
        }
        let own: Vec<Flag> = h
            .flags
            .iter()
            .filter(|f| !global.contains(f.long.as_str()))
            .cloned()
            .collect();
        check_flags(&name, &own, &rows, &mut problems);
        // Every flag a row names must exist for this command.
        for row in &rows {
            for long in &row.longs {
                if !h.flags.iter().any(|f| &f.long == long) {
                    problems.push(format!(
                        "{name}: docs/cli.md documents --{long}, which `{name} --help` does not list (row: {})",
                        row.line.trim()
                    ));
                }
            }
        }
    }

    // Every `tidemark …` heading names a real command.
    for s in &sections {
        for code in s.heading.split('`').skip(1).step_by(2) {
            if code.starts_with("tidemark ") && !documented_commands.contains(code) {
                problems.push(format!(
                    "heading '{}' names `{code}`, which is not a tidemark command",
                    s.heading
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "docs/cli.md is out of date:\n  {}",
        problems.join("\n  ")
    );
}

/// A section's text before its first sub-heading.
fn own_text(section: &Section) -> String {
    let mut out = Vec::new();
    for line in section.text.lines() {
        let level = line.chars().take_while(|c| *c == '#').count();
        if level > section.level && line[level..].starts_with(' ') {
            break;
        }
        out.push(line);
    }
    out.join("\n")
}

/// Every flag has a row naming its long (and short) form, default, environment variable and
/// possible values.
fn check_flags(name: &str, flags: &[Flag], rows: &[Row], problems: &mut Vec<String>) {
    for flag in flags {
        let Some(row) = rows.iter().find(|r| r.longs.contains(&flag.long)) else {
            problems.push(format!(
                "{name}: --{} has no table row in its section or the flag sections it links",
                flag.long
            ));
            continue;
        };
        if let Some(short) = flag.short {
            if !row.shorts.contains(&short) {
                problems.push(format!(
                    "{name}: the row of --{} does not give its short form `-{short}`",
                    flag.long
                ));
            }
        }
        if let (Some(short), 1) = (row.shorts.first(), row.longs.len()) {
            if flag.short != Some(*short) {
                problems.push(format!(
                    "{name}: the row of --{} gives `-{short}`, but the flag's short form is {:?}",
                    flag.long, flag.short
                ));
            }
        }
        let row_text = row.line.replace('`', "");
        let mut want: Vec<(&str, String)> = Vec::new();
        if let Some(d) = &flag.default {
            want.push(("default", d.clone()));
        }
        if let Some(e) = &flag.env {
            want.push(("environment variable", e.clone()));
        }
        for v in &flag.values {
            want.push(("possible value", v.clone()));
        }
        for (what, value) in want {
            if !row_text.contains(&value) {
                problems.push(format!(
                    "{name}: the row of --{} does not mention its {what} '{value}'",
                    flag.long
                ));
            }
        }
    }
}

/// Each variant of the worker's error type; the `match` fails to compile when one is added, so
/// the table below cannot miss it.
fn every_error() -> Vec<Error> {
    let all = vec![
        Error::InvalidInput(String::new()),
        Error::SnapshotNotFound {
            id: String::new(),
            location: String::new(),
        },
        Error::BackupNotFound {
            id: String::new(),
            location: String::new(),
        },
        Error::GroupNotFound(String::new()),
        Error::Connection {
            servers: String::new(),
            reason: String::new(),
        },
        Error::Authentication(String::new()),
        Error::Tls(String::new()),
        Error::Storage {
            location: String::new(),
            reason: String::new(),
        },
        Error::Malformed {
            kind: "",
            file: String::new(),
            reason: String::new(),
        },
        Error::Kafka(String::new()),
        Error::Partial(String::new()),
        Error::VerificationFailed(String::new()),
        Error::Io {
            path: PathBuf::new(),
            source: std::io::Error::other("x"),
        },
        Error::LeaseHeld {
            resource: String::new(),
            detail: String::new(),
        },
        Error::Interrupted(String::new()),
        Error::PlanChanged(String::new()),
        Error::invalid_with(String::new(), "x"),
        Error::storage(
            String::new(),
            String::new(),
            object_store::Error::Generic {
                store: "x",
                source: "x".into(),
            },
        ),
        Error::kube(String::new(), String::new(), kube::Error::TlsRequired),
        Error::malformed_json("", String::new(), json_error()),
        Error::malformed_data("", String::new(), "x"),
        Error::kafka(String::new(), rdkafka::error::KafkaError::Canceled),
        Error::kafka_thread(String::new(), join_error()),
        Error::kafka_request(String::new(), "x"),
        Error::encode("", json_error()),
        Error::Tampered {
            object: "x".into(),
            reason: "x".into(),
        },
    ];
    for e in &all {
        match e {
            Error::InvalidInput(_)
            | Error::SnapshotNotFound { .. }
            | Error::BackupNotFound { .. }
            | Error::GroupNotFound(_)
            | Error::Connection { .. }
            | Error::Authentication(_)
            | Error::Tls(_)
            | Error::Storage { .. }
            | Error::Malformed { .. }
            | Error::Kafka(_)
            | Error::Partial(_)
            | Error::VerificationFailed(_)
            | Error::Io { .. }
            | Error::LeaseHeld { .. } => {}
            Error::Interrupted(_) => {}
            Error::PlanChanged(_) => {}
            Error::Tampered { .. } => {}
            Error::InvalidWith { .. }
            | Error::StorageClient(_)
            | Error::KubeApi(_)
            | Error::MalformedJson { .. }
            | Error::MalformedData { .. }
            | Error::KafkaClient(_)
            | Error::KafkaThread { .. }
            | Error::KafkaRequest { .. }
            | Error::Encode { .. } => {}
        }
    }
    all
}

fn json_error() -> serde_json::Error {
    serde_json::from_str::<u8>("x").expect_err("not a number")
}

/// The error of a task that was aborted.
fn join_error() -> tokio::task::JoinError {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let task = tokio::spawn(std::future::pending::<()>());
        task.abort();
        task.await.expect_err("the task was aborted")
    })
}

#[test]
fn the_exit_code_table_matches_the_error_type() {
    let page = read("docs/cli.md");
    let sections = sections(&page);
    let table = sections
        .iter()
        .find(|s| s.slug == "exit-codes")
        .expect("docs/cli.md has an '## Exit codes' section");
    // code -> the row's text
    let rows: BTreeMap<i32, String> = table
        .text
        .lines()
        .filter(|l| l.trim_start().starts_with('|'))
        .filter_map(|l| {
            let first = cells(l).into_iter().next()?;
            Some((first.trim_matches('`').parse::<i32>().ok()?, l.to_string()))
        })
        .collect();
    let mut want: BTreeMap<i32, Vec<&str>> = BTreeMap::from([(0, vec![]), (1, vec![])]);
    for e in every_error() {
        want.entry(e.exit_code()).or_default().push(e.label());
    }
    assert_eq!(
        rows.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "the exit codes of docs/cli.md differ from tidemark::Error::exit_code"
    );
    for (code, labels) in want {
        for label in labels {
            assert!(
                rows[&code].contains(&format!("`{label}`")),
                "exit code {code}: its row does not name the error kind `{label}`: {}",
                rows[&code]
            );
        }
    }
    // One source: the README points at this table instead of copying it.
    let readme = read("README.md");
    assert!(
        readme.contains("docs/cli.md#exit-codes"),
        "README.md should link docs/cli.md#exit-codes"
    );
    assert!(
        !readme.lines().any(|l| l.starts_with("| 13 |")),
        "README.md repeats the exit code table; link docs/cli.md#exit-codes instead"
    );
}

#[test]
fn help_parsing_finds_flags_defaults_and_wrapped_values() {
    let text = "Usage: x\n\nCommands:\n  run   Run it\n        still run\n  help  Print this\n\nOptions:\n  -p, --path <LOCATION>\n          Storage [env: TIDEMARK_PATH=]\n      --security-protocol <P>\n          PLAINTEXT or SSL [env: KAFKA_SECURITY_PROTOCOL=] [default:\n          PLAINTEXT]\n  -f, --format <FORMAT>          Report format [default: text] [possible values: text,\n                                 json]\n  -h, --help  Print help\n";
    let h = parse_help(text);
    assert_eq!(h.commands, ["run"]);
    let longs: Vec<&str> = h.flags.iter().map(|f| f.long.as_str()).collect();
    assert_eq!(longs, ["path", "security-protocol", "format", "help"]);
    assert_eq!(h.flags[0].short, Some('p'));
    assert_eq!(h.flags[0].env.as_deref(), Some("TIDEMARK_PATH"));
    assert_eq!(h.flags[1].default.as_deref(), Some("PLAINTEXT"));
    assert_eq!(h.flags[2].values, ["text", "json"]);
    let rows = flag_rows("| `-p`, `--path LOCATION` | x \\| y |\n| Code | Meaning |\n");
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].longs.clone(), rows[0].shorts.clone()),
        (vec!["path".to_string()], vec!['p'])
    );
    let mut seen = BTreeMap::new();
    assert_eq!(
        slug("`tidemark offset-rollback snapshot`", &mut seen),
        "tidemark-offset-rollback-snapshot"
    );
    assert_eq!(slug("Exit codes", &mut seen), "exit-codes");
    assert_eq!(slug("Exit codes", &mut seen), "exit-codes-1");
}
