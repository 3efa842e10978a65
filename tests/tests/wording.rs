//! The project speaks its users' language: no help text, document, message, comment, test name
//! or file name refers to the internal reference documents the formats were taken from by their
//! internal name (the word of [`word`], numbered, possessive, or before a document noun; see the
//! detector's own test for examples). Users have never seen them; the format or behaviour is
//! named instead (the kafka-backup restore configuration, the KafkaOffsetRollback reference,
//! the kmap guide, ...). A random-number seed, or filling a server with data, is a different
//! use of the word and stays.

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("repository root")
}

/// The word this test looks for, spelled so that this file does not match itself.
fn word() -> String {
    ["se", "ed"].concat()
}

/// Nouns that, after the word, make it a name for one of the documents.
const DOCUMENT_NOUNS: &[&str] = &[
    "example",
    "snapshot",
    "kmap",
    "report",
    "status",
    "storage",
    "workflow",
    "reference",
    "semantics",
    "shape",
    "layout",
    "configuration",
    "config",
    "document",
    "doc",
    "guide",
    "format",
];

/// Whether `line` refers to a reference document: the word followed by a number (with a space,
/// `-`, `_` or nothing between), in the possessive or after "the", before a document noun, or as
/// the documents' directory (the word in the plural, then `/`).
fn refers_to_the_documents(line: &str) -> bool {
    let lower = line.to_lowercase();
    let word = word();
    let mut from = 0;
    while let Some(at) = lower[from..].find(&word) {
        let start = from + at;
        from = start + word.len();
        let before = &lower[..start];
        if before
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric())
        {
            continue;
        }
        let after = &lower[from..];
        if after.starts_with("s/") || after.starts_with('\'') || after.starts_with('\u{2019}') {
            return true;
        }
        if after.starts_with(|c: char| c.is_alphabetic()) {
            // seeded, seeds, seedable...: another word.
            continue;
        }
        let rest = after.trim_start_matches([' ', '_', '-']);
        if rest.starts_with(|c: char| c.is_ascii_digit()) {
            return true;
        }
        if before.ends_with("the ") {
            return true;
        }
        if after.len() > rest.len() && DOCUMENT_NOUNS.iter().any(|n| rest.starts_with(n)) {
            return true;
        }
    }
    false
}

/// Every file of the project (build output, version control and lock file aside), relative to
/// the repository root.
fn project_files() -> Vec<PathBuf> {
    let root = repo();
    let mut out = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir") {
            let path = entry.expect("entry").path();
            let name = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            if path.is_dir() {
                if !matches!(name.as_str(), "target" | ".git" | "node_modules") {
                    stack.push(path);
                }
            } else if name != "Cargo.lock" {
                out.push(path.strip_prefix(&root).expect("inside").to_path_buf());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn no_source_doc_or_file_name_refers_to_the_reference_documents() {
    let root = repo();
    let mut found = Vec::new();
    let files = project_files();
    for file in &files {
        let shown = file.to_string_lossy();
        if refers_to_the_documents(&shown) {
            found.push(format!("{shown}: the path"));
        }
        // Text files only: a binary file has no words to read.
        let Ok(text) = std::fs::read_to_string(root.join(file)) else {
            continue;
        };
        for (n, line) in text.lines().enumerate() {
            if refers_to_the_documents(line) {
                found.push(format!("{shown}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    assert!(
        files.iter().any(|f| f.ends_with("worker/src/cli.rs"))
            && files.iter().any(|f| f.starts_with("docs")),
        "the walk reaches the sources and the docs"
    );
    assert!(
        found.is_empty(),
        "name the format or behaviour instead of the reference document:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_detector_tells_document_references_from_other_uses_of_the_word() {
    let w = word();
    let cap = ["Se", "ed"].concat();
    for hit in [
        format!("(the {w} 004's configuration)"),
        format!("{cap} 004's strategy names"),
        format!("with a {w}-004 configuration"),
        format!("include_str!(\"fixtures/{w}003/overview.yaml\")"),
        format!("const {}_EXAMPLES: &[(&str, &str)]", w.to_uppercase()),
        format!("fn every_{w}_example_is_valid()"),
        format!("fn {w}_004_example()"),
        format!("Every example of the {w} reference"),
        format!("// The {w}'s examples, verbatim"),
        format!("a resource with the {w}s/ layout"),
        format!("Topic selection with {w} semantics"),
    ] {
        assert!(refers_to_the_documents(&hit), "{hit}");
    }
    for fine in [
        "use rand::{Rng, SeedableRng};".to_string(),
        format!("let mut rng = StdRng::{w}_from_u64(50);"),
        format!("fn bytes(len: usize, {w}: u8) -> Bytes"),
        format!("{cap}s BENCH_GROUPS groups of committed offsets"),
        format!("\"{w}ed {{n}} groups\""),
        format!("let {w} = Instant::now();"),
        format!("const {}_OFFSET: i64 = 40;", w.to_uppercase()),
        format!("Tests therefore {w} objects with the JSON upload"),
        format!("create the emulator's {w} directory"),
        "succeeded, proceed".to_string(),
    ] {
        assert!(!refers_to_the_documents(&fine), "{fine}");
    }
}
