//! No shipped source file over 1,500 code lines and no shipped function over 150 code lines.
//!
//! "Shipped" is what the crates compile into their library and binaries: the module tree walked
//! from each crate root (`src/lib.rs`, `src/main.rs`) of the worker, the operator and the task
//! contract crate, leaving out every item under `#[cfg(test)]` (test modules, and module files
//! declared under it such as the operator's `controller/scenarios/`). Integration tests, benches
//! and the tests crate are not part of it.
//!
//! A code line is a line with something other than whitespace and comments (doc comments
//! included) on it. A function's lines run from its `fn` line to its closing brace; closures
//! count as part of the function they are written in, while a function item nested inside
//! another counts on its own and not in the outer one. Braces and `fn` inside string and char
//! literals and comments are ignored.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const MAX_FILE_CODE_LINES: usize = 1_500;
const MAX_FN_CODE_LINES: usize = 150;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("repository root")
}

/// The source with comments blanked and the contents of string and char literals blanked
/// (their quotes kept), newlines kept: line numbers and code/blank lines stay as they were.
fn mask(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out: Vec<char> = Vec::with_capacity(chars.len());
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let prev_ident = i > 0 && ident(chars[i - 1]);
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push(' ');
                    out.push(' ');
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push(' ');
                    out.push(' ');
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if !prev_ident && raw_string_start(&chars, i).is_some() {
            let (prefix_len, hashes) = raw_string_start(&chars, i).unwrap_or_default();
            // Keep the opening (`r#"`, `br"` ...), blank the contents, keep the closing.
            out.extend(&chars[i..i + prefix_len]);
            i += prefix_len;
            while i < chars.len() {
                if chars[i] == '"' && (0..hashes).all(|h| chars.get(i + 1 + h) == Some(&'#')) {
                    out.push('"');
                    out.extend(std::iter::repeat_n('#', hashes));
                    i += 1 + hashes;
                    break;
                }
                out.push(blank(chars[i]));
                i += 1;
            }
        } else if c == '"' {
            out.push('"');
            i += 1;
            while i < chars.len() {
                match chars[i] {
                    '\\' => {
                        out.push(' ');
                        if let Some(&escaped) = chars.get(i + 1) {
                            out.push(blank(escaped));
                        }
                        i += 2;
                    }
                    '"' => {
                        out.push('"');
                        i += 1;
                        break;
                    }
                    other => {
                        out.push(blank(other));
                        i += 1;
                    }
                }
            }
        } else if c == '\'' && char_literal_len(&chars, i).is_some() {
            let len = char_literal_len(&chars, i).unwrap_or(1);
            out.push('\'');
            out.extend(std::iter::repeat_n(' ', len - 2));
            out.push('\'');
            i += len;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out.into_iter().collect()
}

/// At a raw string's start (`r"`, `r#"`, `br##"` ...): the length of its opening and its
/// number of `#`.
fn raw_string_start(chars: &[char], i: usize) -> Option<(usize, usize)> {
    let mut j = i;
    if chars.get(j) == Some(&'b') || chars.get(j) == Some(&'c') {
        j += 1;
    }
    if chars.get(j) != Some(&'r') {
        return None;
    }
    j += 1;
    let hashes = chars[j..].iter().take_while(|c| **c == '#').count();
    j += hashes;
    (chars.get(j) == Some(&'"')).then_some((j + 1 - i, hashes))
}

/// At a `'`: the length of the char literal starting there (`'x'`, `'\n'`, `'\u{7f}'`), or
/// `None` for a lifetime or label.
fn char_literal_len(chars: &[char], i: usize) -> Option<usize> {
    match chars.get(i + 1)? {
        // Skip the escaped char itself: `'\''` is a quote.
        '\\' => {
            let close = chars
                .get(i + 3..)?
                .iter()
                .take(10)
                .position(|c| *c == '\'')?;
            Some(close + 4)
        }
        _ => (chars.get(i + 2) == Some(&'\'')).then_some(3),
    }
}

/// Index of the `}` matching the `{` at `open` (in masked text).
fn matching_brace(chars: &[char], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (k, c) in chars.iter().enumerate().skip(open) {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(k);
                }
            }
            _ => {}
        }
    }
    None
}

/// From `start`, the first `{` or `;` outside parentheses and brackets.
fn body_or_end(chars: &[char], start: usize) -> Option<(usize, char)> {
    let mut depth = 0i32;
    for (k, c) in chars.iter().enumerate().skip(start) {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            '{' | ';' if depth == 0 => return Some((k, *c)),
            _ => {}
        }
    }
    None
}

/// From just after an attribute, the end of the item it is on: the `;` of a `use` or of a
/// declaration without body, else the brace closing its body.
fn item_end(chars: &[char], start: usize) -> Option<(usize, char)> {
    let mut head: String = chars[start..].iter().take(400).collect();
    // Other attributes on the item come first.
    while let Some(rest) = head.trim_start().strip_prefix("#[") {
        head = rest
            .split_once(']')
            .map_or("", |(_, after)| after)
            .to_string();
    }
    let is_use = head
        .split(|c: char| !is_ident(c))
        .find(|w| !w.is_empty() && !matches!(*w, "pub" | "crate" | "super" | "in" | "self"))
        == Some("use");
    if is_use {
        let end = chars[start..].iter().position(|c| *c == ';')?;
        return Some((start + end, ';'));
    }
    body_or_end(chars, start)
}

/// Masked source with every item under `#[cfg(test)]` blanked too.
fn shipped(source: &str) -> String {
    let mut chars: Vec<char> = mask(source).chars().collect();
    let mut i = 0;
    while i + 1 < chars.len() {
        if chars[i] == '#' && chars[i + 1] == '[' {
            let Some(close) = chars[i..].iter().position(|c| *c == ']').map(|p| p + i) else {
                break;
            };
            let attribute: String = chars[i + 2..close]
                .iter()
                .filter(|c| !c.is_whitespace())
                .collect();
            if attribute == "cfg(test)" {
                let end = match item_end(&chars, close + 1) {
                    Some((k, '{')) => matching_brace(&chars, k).unwrap_or(chars.len() - 1),
                    Some((k, _)) => k,
                    None => chars.len() - 1,
                };
                for c in &mut chars[i..=end] {
                    if *c != '\n' {
                        *c = ' ';
                    }
                }
                i = end + 1;
                continue;
            }
        }
        i += 1;
    }
    chars.into_iter().collect()
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Positions (char index after the keyword) of the keyword `word` as a whole word.
fn keyword_at(chars: &[char], word: &str) -> Vec<usize> {
    let w: Vec<char> = word.chars().collect();
    (0..chars.len().saturating_sub(w.len()))
        .filter(|&k| {
            chars[k..k + w.len()] == w[..]
                && (k == 0 || !is_ident(chars[k - 1]))
                && !chars.get(k + w.len()).copied().is_some_and(is_ident)
        })
        .map(|k| k + w.len())
        .collect()
}

/// The identifier after whitespace from `k`, if one follows.
fn ident_after(chars: &[char], k: usize) -> Option<(String, usize)> {
    let start = k + chars[k..].iter().take_while(|c| c.is_whitespace()).count();
    let name: String = chars[start..]
        .iter()
        .take_while(|c| is_ident(**c))
        .collect();
    let first = name.chars().next()?;
    (first.is_alphabetic() || first == '_').then(|| (name.clone(), start + name.chars().count()))
}

/// A function with a body: its name, the (1-based) lines of its `fn` and its closing brace.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Function {
    name: String,
    first: usize,
    last: usize,
}

/// The 1-based line of char index `k`, given the indexes of the newlines.
fn line_of(newlines: &[usize], k: usize) -> usize {
    1 + newlines.partition_point(|&n| n < k)
}

fn functions(shipped: &str) -> Vec<Function> {
    let chars: Vec<char> = shipped.chars().collect();
    let newlines: Vec<usize> = (0..chars.len()).filter(|&k| chars[k] == '\n').collect();
    let mut found = Vec::new();
    for k in keyword_at(&chars, "fn") {
        // `fn(u8) -> u8` is a type, not an item.
        let Some((name, after)) = ident_after(&chars, k) else {
            continue;
        };
        if let Some((open, '{')) = body_or_end(&chars, after) {
            if let Some(close) = matching_brace(&chars, open) {
                found.push(Function {
                    name,
                    first: line_of(&newlines, k),
                    last: line_of(&newlines, close),
                });
            }
        }
    }
    found
}

/// Code lines of each function (innermost function owns a line), in the order of `functions`.
fn function_sizes(shipped: &str, functions: &[Function]) -> Vec<usize> {
    let mut sizes = vec![0; functions.len()];
    for (index, line) in shipped.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let number = index + 1;
        let owner = functions
            .iter()
            .enumerate()
            .filter(|(_, f)| f.first <= number && number <= f.last)
            .max_by_key(|(_, f)| f.first);
        if let Some((i, _)) = owner {
            sizes[i] += 1;
        }
    }
    sizes
}

fn code_lines(shipped: &str) -> usize {
    shipped.lines().filter(|l| !l.trim().is_empty()).count()
}

/// The module files `mod name;` declarations in `file` point at.
fn declared_modules(file: &Path, shipped: &str) -> Vec<PathBuf> {
    let chars: Vec<char> = shipped.chars().collect();
    let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    let parent = file.parent().unwrap_or(Path::new("."));
    let dir = if matches!(stem, "lib" | "main" | "mod") {
        parent.to_path_buf()
    } else {
        parent.join(stem)
    };
    let mut found = Vec::new();
    for k in keyword_at(&chars, "mod") {
        let Some((name, after)) = ident_after(&chars, k) else {
            continue;
        };
        let rest = after
            + chars[after..]
                .iter()
                .take_while(|c| c.is_whitespace())
                .count();
        if chars.get(rest) != Some(&';') {
            continue;
        }
        let flat = dir.join(format!("{name}.rs"));
        let nested = dir.join(&name).join("mod.rs");
        found.push(if flat.exists() { flat } else { nested });
    }
    found
}

/// Every shipped source file of the crates, walked from their roots.
fn shipped_files(root: &Path) -> Vec<PathBuf> {
    let mut queue: Vec<PathBuf> = ["worker", "operator", "task"]
        .iter()
        .flat_map(|krate| ["lib.rs", "main.rs"].map(|f| root.join(krate).join("src").join(f)))
        .filter(|p| p.exists())
        .collect();
    let mut seen = BTreeSet::new();
    while let Some(file) = queue.pop() {
        if !seen.insert(file.clone()) {
            continue;
        }
        let source = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("{} is declared as a module: {e}", file.display()));
        queue.extend(declared_modules(&file, &shipped(&source)));
    }
    seen.into_iter().collect()
}

/// The offenders in one file, each as `path:line: what`.
fn offenders(display: &str, source: &str) -> Vec<String> {
    let shipped = shipped(source);
    let mut found = Vec::new();
    let lines = code_lines(&shipped);
    if lines > MAX_FILE_CODE_LINES {
        found.push(format!(
            "{display}:1: {lines} code lines (at most {MAX_FILE_CODE_LINES})"
        ));
    }
    let functions = functions(&shipped);
    for (f, size) in functions.iter().zip(function_sizes(&shipped, &functions)) {
        if size > MAX_FN_CODE_LINES {
            found.push(format!(
                "{display}:{}: fn {} has {size} code lines (at most {MAX_FN_CODE_LINES})",
                f.first, f.name
            ));
        }
    }
    found
}

#[test]
fn no_shipped_file_or_function_is_too_long() {
    let root = repo();
    let files = shipped_files(&root);
    assert!(
        files.iter().any(|f| f.ends_with("worker/src/storage.rs"))
            && files
                .iter()
                .any(|f| f.ends_with("operator/src/controller/worker.rs")),
        "the module walk missed the crates: {files:?}"
    );
    let mut found = Vec::new();
    for file in &files {
        let source = std::fs::read_to_string(file).expect("read a shipped source file");
        let display = file
            .strip_prefix(&root)
            .unwrap_or(file)
            .display()
            .to_string();
        found.extend(offenders(&display, &source));
    }
    assert!(
        found.is_empty(),
        "split these along their seams:\n{}",
        found.join("\n")
    );
}

#[test]
fn test_only_modules_are_not_shipped() {
    let files = shipped_files(&repo());
    assert!(files
        .iter()
        .any(|f| f.ends_with("operator/src/controller/mod.rs")));
    assert!(
        !files
            .iter()
            .any(|f| f.to_string_lossy().contains("controller/scenarios")),
        "scenarios/ is declared under #[cfg(test)]"
    );
}

#[test]
fn literals_and_comments_hide_braces_and_fn() {
    let source = r####"fn outer() {
    let s = "} fn fake() {";
    let r = r#"}}"#;
    let c = '}';
    let e = '\'';
    let l: &'static str = "x";
    // } fn commented() {
    /* } /* nested */ } */
    let b = br##"{"##;
}
"####;
    let shipped = shipped(source);
    let found = functions(&shipped);
    assert_eq!(
        found,
        vec![Function {
            name: "outer".into(),
            first: 1,
            last: 10
        }]
    );
    // The two comment-only lines are not code.
    assert_eq!(code_lines(&shipped), 8);
}

#[test]
fn nested_functions_count_apart_and_closures_count_in() {
    let source = "fn outer() {
    let add = |a: u8| {
        a + 1
    };
    fn inner() -> u8 {
        let x = 1;
        x
    }
    let f: fn() -> u8 = inner;
}
";
    let shipped = shipped(source);
    let found = functions(&shipped);
    let names: Vec<&str> = found.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["outer", "inner"]);
    // outer: its own 6 lines (the closure's 3 included); inner: its 4 lines.
    assert_eq!(function_sizes(&shipped, &found), [6, 4]);
}

#[test]
fn test_modules_are_left_out() {
    let mut source = String::from("pub fn shipped() {}\n#[cfg(test)]\nmod tests {\n");
    source.push_str("    #[test]\n    fn long() {\n");
    for _ in 0..(MAX_FN_CODE_LINES + 10) {
        source.push_str("        let _ = \"{\";\n");
    }
    source.push_str("    }\n}\n#[cfg(test)]\nmod scenarios;\nmod real;\n");
    source.push_str("#[cfg(test)]\n#[allow(unused)]\npub(crate) use x::{a, b};\n");
    let shipped = shipped(&source);
    assert_eq!(code_lines(&shipped), 2);
    assert!(offenders("x.rs", &source).is_empty());
    let modules = declared_modules(Path::new("/src/lib.rs"), &shipped);
    assert_eq!(modules, [PathBuf::from("/src/real/mod.rs")]);
}

#[test]
fn long_functions_and_files_are_named_with_their_line() {
    let mut source = String::from("// header\n\nfn long(\n    x: [u8; 2],\n) {\n");
    for _ in 0..MAX_FN_CODE_LINES {
        source.push_str("    let _ = x;\n");
    }
    source.push_str("}\n");
    let found = offenders("worker/src/x.rs", &source);
    assert_eq!(
        found,
        [format!(
            "worker/src/x.rs:3: fn long has {} code lines (at most {MAX_FN_CODE_LINES})",
            MAX_FN_CODE_LINES + 4
        )]
    );
    let mut big = String::new();
    for i in 0..MAX_FILE_CODE_LINES / 3 + 1 {
        big.push_str(&format!("fn f{i}() {{\n    g();\n}}\n"));
    }
    let found = offenders("big.rs", &big);
    assert_eq!(
        found,
        [format!(
            "big.rs:1: {} code lines (at most {MAX_FILE_CODE_LINES})",
            (MAX_FILE_CODE_LINES / 3 + 1) * 3
        )]
    );
}
