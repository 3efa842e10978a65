//! The worker's module structure, read from its source:
//!
//! - the engines (`worker/src/{backup,restore,reset,kafka}`) never import the CLI layer
//!   (`crate::cli`, any `cli` module), `crate::app` or `crate::run`: they are called by the use
//!   cases of `crate::service`, which the CLI and `tidemark run --task` share;
//! - the worker's top-level modules (`worker/src/*.rs` and folders) import each other without a
//!   cycle, in shipped code (`#[cfg(test)]` items may reach anywhere for their fixtures).
//!
//! The reader is a small Rust lexer (comments, strings, raw strings, char literals and lifetimes
//! are skipped) and a parser of `use` trees (braces, `self`, `as`, globs) and of `crate::`,
//! `super::`, `self::` and child-module paths in code; `pub use` re-exports are followed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The engines: what they import must not be the CLI layer, `app` or `run`.
const ENGINES: &[&str] = &["backup", "restore", "reset", "kafka"];

// ---------------------------------------------------------------------------------------------
// Lexer

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    /// `::`
    PathSep,
    Punct(char),
    /// A literal (string, char, number): never part of a path.
    Lit,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    line: usize,
}

fn is_ident_start(c: char) -> bool {
    c == '_' || c.is_alphabetic()
}

fn is_ident_char(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// The tokens of `src`, without comments; literals are single [`Tok::Lit`] tokens.
fn lex(src: &str) -> Vec<Token> {
    let c: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0usize, 1usize);
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && at(i + 1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && at(i + 1) == '*' {
            let mut depth = 0usize;
            while i < c.len() {
                if c[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if c[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
        } else if let Some(end) = raw_string_end(&c, i) {
            line += c[i..end].iter().filter(|&&x| x == '\n').count();
            out.push(Token {
                tok: Tok::Lit,
                line,
            });
            i = end;
        } else if ch == '"' || ((ch == 'b' || ch == 'c') && at(i + 1) == '"') {
            let start_line = line;
            i += if ch == '"' { 1 } else { 2 };
            while i < c.len() && c[i] != '"' {
                if c[i] == '\\' {
                    i += 1;
                }
                if at(i) == '\n' {
                    line += 1;
                }
                i += 1;
            }
            i += 1;
            out.push(Token {
                tok: Tok::Lit,
                line: start_line,
            });
        } else if ch == '\'' || (ch == 'b' && at(i + 1) == '\'') {
            let q = if ch == '\'' { i } else { i + 1 };
            if at(q + 1) == '\\' {
                // An escaped char literal: '\n', '\'', '\u{1F600}'.
                i = q + 3;
                while i < c.len() && c[i] != '\'' {
                    i += 1;
                }
                i += 1;
                out.push(Token {
                    tok: Tok::Lit,
                    line,
                });
            } else if at(q + 2) == '\'' {
                i = q + 3;
                out.push(Token {
                    tok: Tok::Lit,
                    line,
                });
            } else if ch == 'b' {
                // `b` followed by a lifetime cannot happen; treat `b` as an identifier.
                out.push(Token {
                    tok: Tok::Ident("b".into()),
                    line,
                });
                i += 1;
            } else {
                // A lifetime or label: skip the quote and its name.
                i += 1;
                while i < c.len() && is_ident_char(c[i]) {
                    i += 1;
                }
            }
        } else if ch == 'r' && at(i + 1) == '#' && is_ident_start(at(i + 2)) {
            let start = i + 2;
            i = start;
            while i < c.len() && is_ident_char(c[i]) {
                i += 1;
            }
            out.push(Token {
                tok: Tok::Ident(c[start..i].iter().collect()),
                line,
            });
        } else if is_ident_start(ch) {
            let start = i;
            while i < c.len() && is_ident_char(c[i]) {
                i += 1;
            }
            out.push(Token {
                tok: Tok::Ident(c[start..i].iter().collect()),
                line,
            });
        } else if ch.is_ascii_digit() {
            while i < c.len()
                && (is_ident_char(c[i]) || (c[i] == '.' && at(i + 1).is_ascii_digit()))
            {
                i += 1;
            }
            out.push(Token {
                tok: Tok::Lit,
                line,
            });
        } else if ch == ':' && at(i + 1) == ':' {
            out.push(Token {
                tok: Tok::PathSep,
                line,
            });
            i += 2;
        } else {
            out.push(Token {
                tok: Tok::Punct(ch),
                line,
            });
            i += 1;
        }
    }
    out
}

/// Where the raw string (`r"…"`, `r#"…"#`, `br"…"`, `cr"…"`) starting at `i` ends, if one does.
fn raw_string_end(c: &[char], i: usize) -> Option<usize> {
    let mut j = i;
    if matches!(c.get(j), Some('b' | 'c')) {
        j += 1;
    }
    if c.get(j) != Some(&'r') {
        return None;
    }
    j += 1;
    let mut hashes = 0;
    while c.get(j) == Some(&'#') {
        hashes += 1;
        j += 1;
    }
    if c.get(j) != Some(&'"') {
        return None;
    }
    j += 1;
    while j < c.len() {
        if c[j] == '"' && (0..hashes).all(|k| c.get(j + 1 + k) == Some(&'#')) {
            return Some(j + 1 + hashes);
        }
        j += 1;
    }
    Some(c.len())
}

// ---------------------------------------------------------------------------------------------
// Parser: the paths a file names

/// A path one file names, resolved from the crate root.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ref {
    /// The path, from the crate root (`["restore", "cli", "newest_mapping"]`).
    path: Vec<String>,
    line: usize,
    /// Inside a `#[cfg(test)]` item.
    test: bool,
    /// Named by a `pub use`: a re-export.
    reexport: bool,
}

/// One `use` entry: its path as written and the name it binds.
struct UseEntry {
    path: Vec<String>,
    alias: Option<String>,
    glob: bool,
}

/// The entries of the use tree starting at `toks[*i]`; `*i` ends past the tree.
fn parse_use_tree(toks: &[Token], i: &mut usize, prefix: Vec<String>, out: &mut Vec<UseEntry>) {
    let mut path = prefix;
    if toks.get(*i).map(|t| &t.tok) == Some(&Tok::PathSep) {
        *i += 1;
    }
    loop {
        match toks.get(*i).map(|t| &t.tok) {
            Some(Tok::Ident(s)) => {
                path.push(s.clone());
                *i += 1;
                match toks.get(*i).map(|t| &t.tok) {
                    Some(Tok::PathSep) => {
                        *i += 1;
                        continue;
                    }
                    Some(Tok::Ident(kw)) if kw == "as" => {
                        let alias = match toks.get(*i + 1).map(|t| &t.tok) {
                            Some(Tok::Ident(a)) => Some(a.clone()),
                            _ => None,
                        };
                        *i += 2;
                        out.push(UseEntry {
                            path,
                            alias,
                            glob: false,
                        });
                    }
                    _ => out.push(UseEntry {
                        path,
                        alias: None,
                        glob: false,
                    }),
                }
                return;
            }
            Some(Tok::Punct('*')) => {
                *i += 1;
                out.push(UseEntry {
                    path,
                    alias: None,
                    glob: true,
                });
                return;
            }
            Some(Tok::Punct('{')) => {
                *i += 1;
                loop {
                    match toks.get(*i).map(|t| &t.tok) {
                        None => return,
                        Some(Tok::Punct('}')) => {
                            *i += 1;
                            return;
                        }
                        Some(Tok::Punct(',')) => *i += 1,
                        _ => {
                            let before = *i;
                            parse_use_tree(toks, i, path.clone(), out);
                            if *i == before {
                                *i += 1;
                            }
                        }
                    }
                }
            }
            _ => return,
        }
    }
}

/// The modules of the crate, as paths from the root (`[]` is `lib.rs`).
type Modules = BTreeSet<Vec<String>>;

/// Resolves `written`, as named in module `here`, to a path from the crate root; `None` for
/// paths that start elsewhere (another crate, a local name, a type).
fn resolve(
    written: &[String],
    here: &[String],
    aliases: &BTreeMap<String, Vec<String>>,
    modules: &Modules,
) -> Option<Vec<String>> {
    let first = written.first()?;
    let mut base: Vec<String> = match first.as_str() {
        "crate" => Vec::new(),
        "self" => here.to_vec(),
        "super" => {
            let mut b = here.to_vec();
            let mut k = 0;
            while written.get(k).map(String::as_str) == Some("super") {
                b.pop()?;
                k += 1;
            }
            b.extend(written[k..].iter().cloned());
            return Some(normalize(b));
        }
        name => {
            let mut child = here.to_vec();
            child.push(name.to_string());
            if modules.contains(&child) {
                here.to_vec()
            } else if let Some(target) = aliases.get(name) {
                let mut b = target.clone();
                b.extend(written[1..].iter().cloned());
                return Some(normalize(b));
            } else {
                return None;
            }
        }
    };
    let rest = if matches!(first.as_str(), "crate" | "self") {
        &written[1..]
    } else {
        written
    };
    base.extend(rest.iter().cloned());
    Some(normalize(base))
}

/// Drops a trailing `self` (`use crate::a::{self}`).
fn normalize(mut p: Vec<String>) -> Vec<String> {
    if p.last().map(String::as_str) == Some("self") {
        p.pop();
    }
    p
}

/// Whether the attribute tokens `toks[from..to]` (inside `#[ … ]`) are a `cfg` that holds only
/// under test (`cfg(test)`, `cfg(all(test, …))`).
fn is_test_cfg(toks: &[Token]) -> bool {
    let idents: Vec<&str> = toks
        .iter()
        .filter_map(|t| match &t.tok {
            Tok::Ident(s) => Some(s.as_str()),
            _ => None,
        })
        .collect();
    idents.first() == Some(&"cfg") && idents.contains(&"test") && !idents.contains(&"not")
}

/// Every path file `here` (a module path) names in `src`, resolved from the crate root.
fn file_refs(src: &str, here: &[String], modules: &Modules) -> Vec<Ref> {
    let toks = lex(src);
    // Pass 1: the names `use` binds to modules of the crate, for paths in code that start with
    // them (`use crate::backup; backup::engine::run()`).
    let mut aliases = BTreeMap::new();
    let mut refs = Vec::new();
    walk(&toks, here, modules, &mut aliases, &mut Vec::new());
    walk(&toks, here, modules, &mut aliases, &mut refs);
    refs
}

/// One pass over the tokens of a file: `use` trees and paths in code, with the inline modules
/// (`mod tests { … }`) and `#[cfg(test)]` items they sit in.
fn walk(
    toks: &[Token],
    here: &[String],
    modules: &Modules,
    aliases: &mut BTreeMap<String, Vec<String>>,
    refs: &mut Vec<Ref>,
) {
    // Open braces: for each, the inline module it opens (if any) and whether it is a test item.
    let mut braces: Vec<(Option<String>, bool)> = Vec::new();
    let mut pending_mod: Option<String> = None;
    let mut pending_test = false;
    let mut i = 0;
    while i < toks.len() {
        let module: Vec<String> = here
            .iter()
            .cloned()
            .chain(braces.iter().filter_map(|(m, _)| m.clone()))
            .collect();
        let in_test = pending_test || braces.iter().any(|(_, t)| *t);
        match &toks[i].tok {
            Tok::Punct('#') => {
                // An attribute: `#[…]` or `#![…]`.
                let mut j = i + 1;
                if toks.get(j).map(|t| &t.tok) == Some(&Tok::Punct('!')) {
                    j += 1;
                }
                if toks.get(j).map(|t| &t.tok) == Some(&Tok::Punct('[')) {
                    let start = j + 1;
                    let mut depth = 0;
                    while j < toks.len() {
                        match toks[j].tok {
                            Tok::Punct('[') => depth += 1,
                            Tok::Punct(']') => {
                                depth -= 1;
                                if depth == 0 {
                                    break;
                                }
                            }
                            _ => {}
                        }
                        j += 1;
                    }
                    if is_test_cfg(&toks[start..j.min(toks.len())]) {
                        pending_test = true;
                    }
                    // Paths inside the attribute (`#[arg(env = crate::run::X)]`) count too.
                    i = start;
                    continue;
                }
                i += 1;
            }
            Tok::Punct('{') => {
                braces.push((pending_mod.take(), pending_test));
                pending_test = false;
                i += 1;
            }
            Tok::Punct('}') => {
                braces.pop();
                i += 1;
            }
            Tok::Punct(';') => {
                pending_mod = None;
                pending_test = false;
                i += 1;
            }
            Tok::Ident(kw) if kw == "mod" => {
                if let Some(Tok::Ident(name)) = toks.get(i + 1).map(|t| &t.tok) {
                    pending_mod = Some(name.clone());
                }
                i += 2;
            }
            Tok::Ident(kw) if kw == "use" => {
                let line = toks[i].line;
                let reexport = i > 0 && is_pub(toks, i);
                i += 1;
                let mut entries = Vec::new();
                parse_use_tree(toks, &mut i, Vec::new(), &mut entries);
                for e in entries {
                    let Some(path) = resolve(&e.path, &module, aliases, modules) else {
                        continue;
                    };
                    if !e.glob {
                        let name = e.alias.clone().or_else(|| e.path.last().cloned());
                        if let Some(name) = name.filter(|n| n != "_" && n != "self") {
                            aliases.insert(name, path.clone());
                        }
                    }
                    refs.push(Ref {
                        path,
                        line,
                        test: in_test,
                        reexport,
                    });
                }
            }
            Tok::Ident(_) if toks.get(i + 1).map(|t| &t.tok) == Some(&Tok::PathSep) => {
                let preceded = i > 0 && toks[i - 1].tok == Tok::PathSep;
                let line = toks[i].line;
                let mut written = Vec::new();
                while let Some(Tok::Ident(s)) = toks.get(i).map(|t| &t.tok) {
                    written.push(s.clone());
                    if toks.get(i + 1).map(|t| &t.tok) == Some(&Tok::PathSep) {
                        i += 2;
                    } else {
                        i += 1;
                        break;
                    }
                }
                if !preceded {
                    if let Some(path) = resolve(&written, &module, aliases, modules) {
                        refs.push(Ref {
                            path,
                            line,
                            test: in_test,
                            reexport: false,
                        });
                    }
                }
            }
            _ => i += 1,
        }
    }
}

/// Whether the `use` at `toks[i]` is `pub` (`pub use`, `pub(crate) use`).
fn is_pub(toks: &[Token], i: usize) -> bool {
    match &toks[i - 1].tok {
        Tok::Ident(s) => s == "pub",
        Tok::Punct(')') => (0..i)
            .rev()
            .take(5)
            .any(|k| toks[k].tok == Tok::Ident("pub".into())),
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------------
// The crate

/// A source file of the crate: its module path and text.
struct SourceFile {
    rel: String,
    module: Vec<String>,
    text: String,
}

fn worker_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../worker/src")
}

/// Every module file under `root` (`main.rs`, the binary, is not part of the library).
fn read_crate(root: &Path) -> Vec<SourceFile> {
    let mut files = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().and_then(|e| e.to_str()) != Some("rs") {
                continue;
            }
            let rel = path
                .strip_prefix(root)
                .expect("under the root")
                .to_string_lossy()
                .replace('\\', "/");
            if rel == "main.rs" {
                continue;
            }
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            files.push(SourceFile {
                module: module_of(&rel),
                rel,
                text,
            });
        }
    }
    files.sort_by(|a, b| a.rel.cmp(&b.rel));
    files
}

/// `lib.rs` → `[]`, `a.rs` and `a/mod.rs` → `[a]`, `a/b.rs` → `[a, b]`.
fn module_of(rel: &str) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .trim_end_matches(".rs")
        .split('/')
        .map(str::to_string)
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

/// Every file's references, with `pub use` re-exports followed to the module that defines the
/// item (`crate::Error` is `error::Error`; `crate::kafka::GroupAdmin` is `kafka::admin`).
fn crate_refs(files: &[SourceFile]) -> Vec<(usize, Ref)> {
    let modules: Modules = files.iter().map(|f| f.module.clone()).collect();
    let per_file: Vec<Vec<Ref>> = files
        .iter()
        .map(|f| file_refs(&f.text, &f.module, &modules))
        .collect();
    // Re-exports: (module, name) → the path it stands for.
    let mut reexports: BTreeMap<(Vec<String>, String), Vec<String>> = BTreeMap::new();
    for (f, refs) in files.iter().zip(&per_file) {
        for r in refs.iter().filter(|r| r.reexport) {
            if let Some(name) = r.path.last() {
                reexports.insert((f.module.clone(), name.clone()), r.path.clone());
            }
        }
    }
    let mut out = Vec::new();
    for (k, refs) in per_file.into_iter().enumerate() {
        for mut r in refs {
            for _ in 0..4 {
                let m = owning_module(&r.path, &modules);
                let Some(next) = r.path.get(m.len()) else {
                    break;
                };
                match reexports.get(&(m.clone(), next.clone())) {
                    Some(target) if target != &r.path => {
                        let mut p = target.clone();
                        p.extend(r.path[m.len() + 1..].iter().cloned());
                        r.path = p;
                    }
                    _ => break,
                }
            }
            out.push((k, r));
        }
    }
    out
}

/// The longest module of `modules` that `path` starts with.
fn owning_module(path: &[String], modules: &Modules) -> Vec<String> {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|p| modules.contains(p))
        .unwrap_or_default()
}

/// Whether `path` names the CLI layer, `app` or `run`.
fn is_cli_layer(path: &[String]) -> bool {
    matches!(
        path.first().map(String::as_str),
        Some("cli" | "app" | "run")
    ) || path.iter().any(|s| s == "cli")
}

/// The imports of engine files that reach the CLI layer: `file:line: path`.
fn cli_imports(files: &[SourceFile], refs: &[(usize, Ref)]) -> Vec<String> {
    refs.iter()
        .filter(|(k, _)| {
            let m = &files[*k].module;
            m.first().is_some_and(|top| ENGINES.contains(&top.as_str())) && !is_cli_layer(m)
        })
        .filter(|(_, r)| is_cli_layer(&r.path))
        .map(|(k, r)| format!("{}:{}: crate::{}", files[*k].rel, r.line, r.path.join("::")))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// The import graph of the top-level modules in shipped code: `from → to → an example`.
type Graph = BTreeMap<String, BTreeMap<String, String>>;

fn top_level_graph(files: &[SourceFile], refs: &[(usize, Ref)], skip_from: &[&str]) -> Graph {
    let mut g = Graph::new();
    for (k, r) in refs.iter().filter(|(_, r)| !r.test) {
        let (Some(from), Some(to)) = (files[*k].module.first(), r.path.first()) else {
            continue;
        };
        let known = files.iter().any(|f| f.module.first() == Some(to));
        if from == to || !known || skip_from.contains(&from.as_str()) {
            continue;
        }
        g.entry(from.clone())
            .or_default()
            .entry(to.clone())
            .or_insert_with(|| {
                format!("{}:{} crate::{}", files[*k].rel, r.line, r.path.join("::"))
            });
    }
    g
}

/// The modules that `from` reaches and that reach it back: its strongly connected set.
fn circle_of(g: &Graph, from: &String) -> BTreeSet<String> {
    let reach = |start: &String| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![start.clone()];
        while let Some(n) = stack.pop() {
            for next in g.get(&n).into_iter().flat_map(|m| m.keys()) {
                if seen.insert(next.clone()) {
                    stack.push(next.clone());
                }
            }
        }
        seen
    };
    reach(from)
        .into_iter()
        .filter(|m| reach(m).contains(from))
        .collect()
}

/// One cycle of each strongly connected set of `g`, as the list of its nodes (first repeated
/// at the end); empty when `g` has no cycle.
fn cycles(g: &Graph) -> Vec<Vec<String>> {
    let nodes: BTreeSet<&String> = g.keys().chain(g.values().flat_map(|m| m.keys())).collect();
    let reach = |from: &String| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.clone()];
        while let Some(n) = stack.pop() {
            for next in g.get(&n).into_iter().flat_map(|m| m.keys()) {
                if seen.insert(next.clone()) {
                    stack.push(next.clone());
                }
            }
        }
        seen
    };
    let mut found: Vec<Vec<String>> = Vec::new();
    let mut covered: BTreeSet<String> = BTreeSet::new();
    for n in nodes {
        if covered.contains(n) || !reach(n).contains(n) {
            continue;
        }
        // The shortest way back to `n` (breadth first).
        let mut prev: BTreeMap<String, String> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([n.clone()]);
        'search: while let Some(at) = queue.pop_front() {
            for next in g.get(&at).into_iter().flat_map(|m| m.keys()) {
                if next == n {
                    prev.insert(format!("{next}#end"), at.clone());
                    break 'search;
                }
                if !prev.contains_key(next) {
                    prev.insert(next.clone(), at.clone());
                    queue.push_back(next.clone());
                }
            }
        }
        let mut cycle = vec![n.clone()];
        let mut at = prev.get(&format!("{n}#end")).cloned();
        while let Some(a) = at {
            if &a == n {
                break;
            }
            cycle.push(a.clone());
            at = prev.get(&a).cloned();
        }
        cycle.push(n.clone());
        cycle.reverse();
        covered.extend(reach(n).into_iter().filter(|m| reach(m).contains(n)));
        found.push(cycle);
    }
    found
}

fn describe_cycle(cycle: &[String], g: &Graph) -> String {
    let circle = circle_of(g, &cycle[0]);
    let mut s = cycle.join(" -> ");
    if circle.len() + 1 > cycle.len() {
        s += &format!(
            " (one cycle of the {} modules that all reach each other: {})",
            circle.len(),
            circle.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    for pair in cycle.windows(2) {
        if let Some(example) = g.get(&pair[0]).and_then(|m| m.get(&pair[1])) {
            s += &format!("\n    {} -> {}: {example}", pair[0], pair[1]);
        }
    }
    s
}

// ---------------------------------------------------------------------------------------------
// The checks

#[test]
fn engines_do_not_import_the_cli_layer_app_or_run() {
    let files = read_crate(&worker_src());
    assert!(
        files.iter().any(|f| f.rel == "restore/groups.rs"),
        "the worker's sources were not found"
    );
    let refs = crate_refs(&files);
    let bad = cli_imports(&files, &refs);
    assert!(
        bad.is_empty(),
        "modules of worker/src/{{{}}} import the CLI layer, app or run (call a use case of crate::service, or move what they need down):\n  {}",
        ENGINES.join(","),
        bad.join("\n  ")
    );
}

#[test]
fn the_top_level_modules_have_no_import_cycle() {
    let files = read_crate(&worker_src());
    let refs = crate_refs(&files);
    let g = top_level_graph(&files, &refs, &[]);
    let found = cycles(&g);
    assert!(
        found.is_empty(),
        "the worker's top-level modules import each other in a cycle:\n  {}",
        found
            .iter()
            .map(|c| describe_cycle(c, &g))
            .collect::<Vec<_>>()
            .join("\n  ")
    );
}

// ---------------------------------------------------------------------------------------------
// The checker's own tests

fn modules(list: &[&str]) -> Modules {
    list.iter()
        .map(|m| {
            m.split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .collect()
}

fn here(m: &str) -> Vec<String> {
    m.split("::").map(str::to_string).collect()
}

fn paths(refs: &[Ref]) -> Vec<String> {
    refs.iter().map(|r| r.path.join("::")).collect()
}

#[test]
fn comments_strings_and_chars_name_no_path() {
    let m = modules(&["", "cli", "app"]);
    let src = r####"
        // crate::cli::Args
        /* crate::cli::Args /* nested crate::app::x */ still crate::cli::y */
        /// [`x`](crate::cli::x)
        fn f<'a>(s: &'a str) -> char {
            let _ = "crate::cli::quoted \" crate::app::escaped";
            let _ = r#"crate::cli::raw " crate::app"#;
            let _ = b"crate::cli::bytes";
            let _ = br##"crate::cli::raw_bytes"##;
            let q = '"';
            let e = '\'';
            crate::app::after_chars(q, e)
        }
    "####;
    assert_eq!(
        paths(&file_refs(src, &here("engine"), &m)),
        ["app::after_chars"]
    );
}

#[test]
fn use_trees_with_braces_self_and_renames() {
    let m = modules(&[
        "",
        "cli",
        "cli::args",
        "error",
        "run",
        "restore",
        "restore::cli",
    ]);
    let src = "
        use crate::{cli::{self, args::Cli as C}, error::Result};
        pub(crate) use super::cli::*;
        use std::collections::{BTreeMap, BTreeSet};
        use ::serde::Serialize;
    ";
    let refs = file_refs(src, &here("restore::groups"), &m);
    assert_eq!(
        paths(&refs),
        ["cli", "cli::args::Cli", "error::Result", "restore::cli"]
    );
    assert!(refs[3].reexport && !refs[0].reexport);
}

#[test]
fn paths_in_code_resolve_from_crate_super_self_children_and_use_names() {
    let m = modules(&[
        "",
        "run",
        "restore",
        "restore::cli",
        "restore::groups",
        "backup",
    ]);
    let src = "
        use crate::backup;
        fn f() {
            let a = crate::run::open_location(x)?;
            let b = super::cli::newest_mapping(s, id);
            let c = self::helper::y();
            let d = backup::engine::run();
            let e = std::env::var(\"X\");
            let g = Foo::new().bar::<u8>();
        }
    ";
    let refs = file_refs(src, &here("restore::groups"), &m);
    assert_eq!(
        paths(&refs),
        [
            "backup",
            "run::open_location",
            "restore::cli::newest_mapping",
            "restore::groups::helper::y",
            "backup::engine::run"
        ]
    );
    // From `restore/mod.rs` (module `restore`), a child module starts a path.
    let refs = file_refs("fn f() { cli::show(); groups::x(); }", &here("restore"), &m);
    assert_eq!(paths(&refs), ["restore::cli::show", "restore::groups::x"]);
}

#[test]
fn test_items_and_inline_modules_are_told_apart() {
    let m = modules(&["", "restore", "restore::cli", "run"]);
    let src = "
        use crate::run::TaskOutcome;
        #[cfg(test)]
        use crate::run::only_in_tests;
        #[cfg(test)]
        mod tests {
            use super::super::cli;
            #[test]
            fn t() { crate::run::x(); }
        }
        #[cfg(not(test))]
        fn shipped() { crate::run::y(); }
        fn after() { crate::run::z(); }
    ";
    let refs = file_refs(src, &here("restore::groups"), &m);
    let seen: Vec<(String, bool)> = refs.iter().map(|r| (r.path.join("::"), r.test)).collect();
    assert_eq!(
        seen,
        [
            ("run::TaskOutcome".to_string(), false),
            ("run::only_in_tests".to_string(), true),
            ("restore::cli".to_string(), true),
            ("run::x".to_string(), true),
            ("run::y".to_string(), false),
            ("run::z".to_string(), false),
        ]
    );
}

fn source(rel: &str, text: &str) -> SourceFile {
    SourceFile {
        rel: rel.into(),
        module: module_of(rel),
        text: text.into(),
    }
}

#[test]
fn engine_imports_of_the_cli_layer_are_found_through_reexports() {
    let files = vec![
        source(
            "lib.rs",
            "pub mod cli; pub mod restore; pub mod kafka; pub use cli::Args;",
        ),
        source("cli/mod.rs", "pub mod args; pub use args::Args;"),
        source("cli/args.rs", "pub struct Args;"),
        source("restore/mod.rs", "pub mod groups; pub mod cli;"),
        source("restore/groups.rs", "fn f() { super::cli::newest(); }"),
        source("restore/cli.rs", "use crate::cli::Args;"),
        source("kafka/mod.rs", "fn f(a: crate::Args) {}"),
    ];
    let refs = crate_refs(&files);
    assert_eq!(
        cli_imports(&files, &refs),
        [
            "kafka/mod.rs:1: crate::cli::args::Args",
            "restore/groups.rs:1: crate::restore::cli::newest",
        ]
    );
}

#[test]
fn cycles_are_named_and_test_imports_do_not_count() {
    let files = vec![
        source("lib.rs", "pub mod a; pub mod b; pub mod c; pub mod d;"),
        source("a.rs", "use crate::b::X;"),
        source("b/mod.rs", "pub mod inner;"),
        source("b/inner.rs", "fn f() { crate::c::y(); }"),
        source(
            "c.rs",
            "use crate::a::Z;\n#[cfg(test)]\nmod tests { use crate::d::W; }",
        ),
        source("d.rs", "use crate::a::Z;"),
    ];
    let refs = crate_refs(&files);
    let g = top_level_graph(&files, &refs, &[]);
    let found = cycles(&g);
    assert_eq!(found, [vec!["a", "b", "c", "a"]]);
    assert!(describe_cycle(&found[0], &g).contains("b -> c: b/inner.rs:1 crate::c::y"));
    // Without c's import of a, no cycle is left (d's test-only back edge is not one).
    let acyclic = vec![source("a.rs", "use crate::b::X;"), source("b.rs", "")];
    let refs = crate_refs(&acyclic);
    assert!(cycles(&top_level_graph(&acyclic, &refs, &[])).is_empty());
    // A skipped module's imports leave the graph.
    let refs = crate_refs(&files);
    assert!(cycles(&top_level_graph(&files, &refs, &["c"])).is_empty());
}
