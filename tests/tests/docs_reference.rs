//! The reference documentation against what it documents, so that it fails when either moves:
//!
//! - CRD pages: every field of each CRD's `openAPIV3Schema` (`crds/*.yaml`, under `spec` and
//!   `status`; `[]` steps into the objects of an array, maps are one field) has a row in its
//!   kind's page `docs/crds/<kind>.md` whose first cell is the backticked path. The row gives the
//!   schema's type (`string`, `integer`, `boolean`, `object`, `[]string`, `map[string]string`,
//!   …); a spec row also says `required` when the schema requires it, its default, every enum
//!   value and every numeric bound. Every row names a field that exists. The page names the
//!   short name, every printer column (name and JSON path) and every CEL validation message, and
//!   shows every sample of its kind in `config/samples/` byte for byte.
//! - Troubleshooting: every message `docs/troubleshooting.md` quotes — each line of its
//!   ```` ```text ```` blocks — is one the tools print: with `{…}` standing for what varies, its
//!   fixed text is made of string literals of `task/src`, `worker/src` and `operator/src` (test
//!   code left out), joined where a format string has a placeholder. The condition reasons
//!   `docs/crds/README.md` lists exist, and every reason the operator defines is listed.
//! - Links: every relative link and every `config/samples/…` path in README.md and the pages
//!   of docs/ that this crate checks points to a file (and heading) that exists.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

/// The repository root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(rel: &str) -> String {
    let path = root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The CRDs and their pages.
const KINDS: [(&str, &str); 4] = [
    (
        "crds/kafkabackups.tidemark.dev.yaml",
        "docs/crds/kafkabackup.md",
    ),
    (
        "crds/kafkarestores.tidemark.dev.yaml",
        "docs/crds/kafkarestore.md",
    ),
    (
        "crds/kafkaoffsetresets.tidemark.dev.yaml",
        "docs/crds/kafkaoffsetreset.md",
    ),
    (
        "crds/kafkaoffsetrollbacks.tidemark.dev.yaml",
        "docs/crds/kafkaoffsetrollback.md",
    ),
];

/// The documentation pages checked for links and sample paths.
const PAGES: [&str; 9] = [
    "README.md",
    "docs/cli.md",
    "docs/troubleshooting.md",
    "docs/crds/README.md",
    "docs/crds/kafkabackup.md",
    "docs/crds/kafkarestore.md",
    "docs/crds/kafkaoffsetreset.md",
    "docs/crds/kafkaoffsetrollback.md",
    "docs/FORMAT.md",
];

fn crd(file: &str) -> Value {
    let text = read(file);
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn version(crd: &Value) -> &Value {
    &crd["spec"]["versions"][0]
}

/// One field of a schema.
#[derive(Debug)]
struct Field {
    path: String,
    schema: Value,
    /// Listed in its parent's `required`.
    required: bool,
}

/// The fields under `schema` (an object), `prefix` first.
fn fields(schema: &Value, prefix: &str, out: &mut Vec<Field>) {
    let required: BTreeSet<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(props) = schema["properties"].as_object() else {
        return;
    };
    for (name, child) in props {
        let path = format!("{prefix}.{name}");
        out.push(Field {
            path: path.clone(),
            schema: child.clone(),
            required: required.contains(name.as_str()),
        });
        if child["properties"].is_object() {
            fields(child, &path, out);
        } else if child["items"]["properties"].is_object() {
            fields(&child["items"], &format!("{path}[]"), out);
        }
    }
}

/// The documented type of a schema.
fn type_name(s: &Value) -> String {
    if s["x-kubernetes-int-or-string"] == Value::Bool(true) {
        return "quantity".into();
    }
    match s["type"].as_str() {
        Some("array") => format!("[]{}", type_name(&s["items"])),
        Some("object") if !s["properties"].is_object() && s["additionalProperties"].is_object() => {
            format!("map[string]{}", type_name(&s["additionalProperties"]))
        }
        Some(t) => t.to_string(),
        None => "object".into(),
    }
}

/// A number as the docs write it (`100`, not `100.0`).
fn number(v: &Value) -> String {
    match v.as_f64() {
        Some(f) if f.fract() == 0.0 => format!("{}", f as i64),
        _ => v.to_string(),
    }
}

/// A default as the docs write it.
fn rendered(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(_) => number(v),
        other => other.to_string(),
    }
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

/// The lines of `page` outside fenced code blocks.
fn prose(page: &str) -> Vec<&str> {
    let mut fenced = false;
    page.lines()
        .filter(|l| {
            if l.trim_start().starts_with("```") {
                fenced = !fenced;
                return false;
            }
            !fenced
        })
        .collect()
}

/// The field rows of a page, in tables whose header starts with `| Field |`: backticked
/// `spec.…`/`status.…` path in the first cell → cells.
fn field_rows(page: &str) -> BTreeMap<String, Vec<String>> {
    let mut rows = BTreeMap::new();
    let mut header: Option<String> = None;
    for line in prose(page) {
        if !line.trim_start().starts_with('|') {
            header = None;
            continue;
        }
        let cells = cells(line);
        let Some(first_header) = header.as_deref() else {
            header = cells.first().cloned();
            continue;
        };
        if first_header != "Field" {
            continue;
        }
        let Some(path) = cells
            .first()
            .and_then(|c| c.strip_prefix('`'))
            .and_then(|c| c.strip_suffix('`'))
        else {
            continue;
        };
        if path.starts_with("spec.") || path.starts_with("status.") {
            let previous = rows.insert(path.to_string(), cells.clone());
            assert!(previous.is_none(), "two rows document {path}");
        }
    }
    rows
}

/// Every CEL message in a schema.
fn cel_messages(s: &Value, out: &mut Vec<String>) {
    if let Some(rules) = s["x-kubernetes-validations"].as_array() {
        out.extend(
            rules
                .iter()
                .filter_map(|r| r["message"].as_str().map(str::to_string)),
        );
    }
    match s {
        Value::Object(map) => map.values().for_each(|v| cel_messages(v, out)),
        Value::Array(items) => items.iter().for_each(|v| cel_messages(v, out)),
        _ => {}
    }
}

/// The ```yaml blocks of a page that start with `# config/samples/<file>`: (file, the rest).
fn embedded_samples(page: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut lines = page.lines();
    while let Some(line) = lines.next() {
        if line.trim() != "```yaml" {
            continue;
        }
        let block: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
        if let Some(file) = block
            .first()
            .and_then(|l| l.strip_prefix("# config/samples/"))
        {
            let mut rest = block[1..].join("\n");
            rest.push('\n');
            out.push((format!("config/samples/{}", file.trim()), rest));
        }
    }
    out
}

#[test]
fn every_crd_field_is_documented_on_its_kinds_page() {
    let mut problems = Vec::new();
    for (file, page_file) in KINDS {
        let crd = crd(file);
        let page = read(page_file);
        let rows = field_rows(&page);
        let version = version(&crd);
        let schema = &version["schema"]["openAPIV3Schema"];
        let mut all = Vec::new();
        for top in ["spec", "status"] {
            fields(&schema["properties"][top], top, &mut all);
        }
        assert!(all.len() > 40, "{file}: only {} fields found", all.len());
        let known: BTreeSet<&str> = all.iter().map(|f| f.path.as_str()).collect();
        for path in rows.keys() {
            if !known.contains(path.as_str()) {
                problems.push(format!(
                    "{page_file}: documents `{path}`, which {file} does not have"
                ));
            }
        }
        for field in &all {
            let Some(row) = rows.get(&field.path) else {
                problems.push(format!("{page_file}: no row for `{}`", field.path));
                continue;
            };
            let ty = type_name(&field.schema);
            let cell = row.get(1).map(|c| c.replace('`', "")).unwrap_or_default();
            if cell.split_whitespace().next() != Some(ty.as_str()) {
                problems.push(format!(
                    "{page_file}: `{}` has type '{cell}', the schema says {ty}",
                    field.path
                ));
            }
            if !field.path.starts_with("spec.") {
                continue;
            }
            let default_cell = row.get(2).map(|c| c.replace('`', "")).unwrap_or_default();
            if field.required && !default_cell.contains("required") {
                problems.push(format!(
                    "{page_file}: `{}` is required, its row does not say so",
                    field.path
                ));
            }
            if let Some(d) = field.schema.get("default") {
                if !default_cell.contains(&rendered(d)) {
                    problems.push(format!(
                        "{page_file}: `{}` defaults to {}, its row says '{default_cell}'",
                        field.path,
                        rendered(d)
                    ));
                }
            }
            let row_text = row[1..].join(" ").replace('`', "");
            let mut want: Vec<String> = field.schema["enum"]
                .as_array()
                .map(|v| v.iter().map(rendered).collect())
                .unwrap_or_default();
            for bound in [
                "minimum",
                "maximum",
                "minLength",
                "maxLength",
                "minItems",
                "maxItems",
                "maxProperties",
            ] {
                if let Some(v) = field.schema.get(bound) {
                    want.push(number(v));
                }
            }
            for item_bound in ["minimum", "minLength", "maxLength"] {
                if let Some(v) = field.schema["items"].get(item_bound) {
                    want.push(number(v));
                }
            }
            for value in want {
                if !row_text.contains(&value) {
                    problems.push(format!(
                        "{page_file}: the row of `{}` does not mention '{value}' (enum value or bound)",
                        field.path
                    ));
                }
            }
        }

        // Names, printer columns, validation messages, samples.
        let kind = crd["spec"]["names"]["kind"].as_str().expect("kind");
        let short = crd["spec"]["names"]["shortNames"][0]
            .as_str()
            .expect("short name");
        for want in [format!("`{short}`"), format!("`{kind}`")] {
            if !page.contains(&want) {
                problems.push(format!("{page_file}: does not name {want}"));
            }
        }
        for column in version["additionalPrinterColumns"]
            .as_array()
            .expect("printer columns")
        {
            let name = column["name"].as_str().expect("name");
            let path = column["jsonPath"].as_str().expect("jsonPath");
            let listed = page.lines().any(|l| {
                l.starts_with('|')
                    && cells(l).first().map(String::as_str) == Some(name.to_uppercase().as_str())
                    && l.contains(&format!("`{path}`"))
            });
            if !listed {
                problems.push(format!(
                    "{page_file}: no printer column row `| {} | … `{path}` …`",
                    name.to_uppercase()
                ));
            }
        }
        let mut messages = Vec::new();
        cel_messages(schema, &mut messages);
        for m in messages {
            if !page.contains(&m) {
                problems.push(format!("{page_file}: the CEL message '{m}' is not quoted"));
            }
        }
        let embedded = embedded_samples(&page);
        for (sample, text) in &embedded {
            let actual = std::fs::read_to_string(root().join(sample)).unwrap_or_default();
            if &actual != text {
                problems.push(format!(
                    "{page_file}: the example {sample} differs from the file"
                ));
            }
        }
        let samples = std::fs::read_dir(root().join("config/samples")).expect("config/samples");
        for entry in samples {
            let path = entry.expect("sample").path();
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if text.lines().any(|l| l == format!("kind: {kind}")) {
                let name = format!(
                    "config/samples/{}",
                    path.file_name().expect("name").to_string_lossy()
                );
                if !embedded.iter().any(|(s, _)| *s == name) {
                    problems.push(format!("{page_file}: does not show the sample {name}"));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "the CRD reference is out of date:\n  {}",
        problems.join("\n  ")
    );
}

// ---------------------------------------------------------------------------------------------
// Messages quoted in the troubleshooting page.

/// The string literals of Rust source (normal, raw and byte strings; comments skipped), unescaped.
fn string_literals(src: &str) -> Vec<String> {
    lex(src).0.into_iter().map(|(_, s)| s).collect()
}

/// Rust source lexed just enough: its string literals (unescaped) with the index (in chars) where
/// each starts, and the source with comments and literals blanked out (same length, in chars).
type Lexed = (Vec<(usize, String)>, Vec<char>);

/// Lexes `src` (see [`Lexed`]).
fn lex(src: &str) -> Lexed {
    let b: Vec<char> = src.chars().collect();
    let mut code = b.clone();
    let mut blank = |from: usize, to: usize| {
        for c in &mut code[from.min(b.len())..to.min(b.len())] {
            *c = ' ';
        }
    };
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == '/' && b.get(i + 1) == Some(&'/') {
            let from = i;
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
            blank(from, i);
            continue;
        }
        if c == '/' && b.get(i + 1) == Some(&'*') {
            let from = i;
            i += 2;
            while i + 1 < b.len() && !(b[i] == '*' && b[i + 1] == '/') {
                i += 1;
            }
            i += 2;
            blank(from, i);
            continue;
        }
        if c == '\'' {
            // A char literal ('x', '\n', '\'') or a lifetime ('a).
            if b.get(i + 1) == Some(&'\\') {
                let from = i;
                i += 3;
                while i < b.len() && b[i] != '\'' {
                    i += 1;
                }
                i += 1;
                blank(from, i);
            } else if b.get(i + 2) == Some(&'\'') {
                blank(i, i + 3);
                i += 3;
            } else {
                i += 1;
            }
            continue;
        }
        let starts_word = i == 0 || !ident(b[i - 1]);
        if starts_word && (c == 'r' || (c == 'b' && b.get(i + 1) == Some(&'r'))) {
            let mut j = i + if c == 'b' { 2 } else { 1 };
            let mut hashes = 0;
            while b.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) == Some(&'"') {
                let start = j + 1;
                let mut k = start;
                loop {
                    if k >= b.len() {
                        break;
                    }
                    if b[k] == '"' && (0..hashes).all(|h| b.get(k + 1 + h) == Some(&'#')) {
                        break;
                    }
                    k += 1;
                }
                out.push((i, b[start..k.min(b.len())].iter().collect()));
                blank(i, k + 1 + hashes);
                i = k + 1 + hashes;
                continue;
            }
        }
        if c == '"' {
            let mut j = i + 1;
            let mut s = String::new();
            while j < b.len() && b[j] != '"' {
                if b[j] == '\\' && j + 1 < b.len() {
                    let n = b[j + 1];
                    j += 2;
                    match n {
                        '\n' => {
                            while j < b.len() && b[j].is_whitespace() {
                                j += 1;
                            }
                        }
                        'n' => s.push('\n'),
                        't' => s.push('\t'),
                        '0' => s.push('\0'),
                        'u' => {
                            // \u{…}
                            let end = (j..b.len()).find(|&k| b[k] == '}').unwrap_or(j);
                            let hex: String = b[j + 1..end].iter().collect();
                            if let Some(ch) =
                                u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32)
                            {
                                s.push(ch);
                            }
                            j = end + 1;
                        }
                        other => s.push(other),
                    }
                } else {
                    s.push(b[j]);
                    j += 1;
                }
            }
            out.push((i, s));
            blank(i, j + 1);
            i = j + 1;
            continue;
        }
        i += 1;
    }
    (out, code)
}

/// What `#[cfg(test)]` marks in lexed source: the char ranges of inline test items (`mod tests
/// { … }`, a test-only `fn`), and the names of test modules kept in their own files
/// (`mod scenarios;`).
fn test_code(code: &[char]) -> (Vec<std::ops::Range<usize>>, Vec<String>) {
    let marker: Vec<char> = "#[cfg(test)]".chars().collect();
    let mut ranges = Vec::new();
    let mut files = Vec::new();
    let mut i = 0;
    while i + marker.len() <= code.len() {
        if code[i..i + marker.len()] != marker[..] {
            i += 1;
            continue;
        }
        let start = i;
        let mut j = i + marker.len();
        while j < code.len() && code[j] != '{' && code[j] != ';' {
            j += 1;
        }
        if j >= code.len() {
            break;
        }
        if code[j] == ';' {
            let item: String = code[start + marker.len()..j].iter().collect();
            let words: Vec<&str> = item.split_whitespace().collect();
            if let [.., "mod", name] = words.as_slice() {
                files.push((*name).to_string());
            }
            ranges.push(start..j + 1);
            i = j + 1;
            continue;
        }
        let mut depth = 0;
        let mut k = j;
        while k < code.len() {
            match code[k] {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
            k += 1;
        }
        ranges.push(start..k + 1);
        i = k + 1;
    }
    (ranges, files)
}

/// Whether `inner` (between braces) is a format placeholder: `{}`, `{0}`, `{name}`, `{:>8}`,
/// `{x:08x}`, `{WHAT}`.
fn is_placeholder(inner: &str) -> bool {
    inner
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_:.<>^+-#?$".contains(c))
}

/// A literal split at its format placeholders (`{{` and `}}` are braces): one more text than
/// placeholders, empty where a placeholder starts or ends the literal or two are adjacent.
fn texts(literal: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut text = String::new();
    let chars: Vec<char> = literal.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '{' if chars.get(i + 1) == Some(&'{') => {
                text.push('{');
                i += 2;
            }
            '}' if chars.get(i + 1) == Some(&'}') => {
                text.push('}');
                i += 2;
            }
            '{' => {
                let close = chars[i + 1..].iter().position(|c| *c == '}');
                match close {
                    Some(n)
                        if is_placeholder(&chars[i + 1..i + 1 + n].iter().collect::<String>()) =>
                    {
                        out.push(std::mem::take(&mut text));
                        i += n + 2;
                    }
                    _ => {
                        text.push('{');
                        i += 1;
                    }
                }
            }
            c => {
                text.push(c);
                i += 1;
            }
        }
    }
    out.push(text);
    out
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every string literal the worker and the operator print from (the task contract's too; test
/// code left out), split at its placeholders.
fn source_literals() -> Vec<Vec<String>> {
    let mut files = Vec::new();
    for dir in ["task/src", "worker/src", "operator/src"] {
        rust_files(&root().join(dir), &mut files);
    }
    let lexed: Vec<(PathBuf, Lexed)> = files
        .into_iter()
        .map(|f| {
            let lexed = lex(&std::fs::read_to_string(&f).expect("source"));
            (f, lexed)
        })
        .collect();
    // `#[cfg(test)] mod x;` in a/mod.rs (or lib.rs) is a/x.rs or a/x/; in a/b.rs, a/b/x….
    let mut test_files: Vec<PathBuf> = Vec::new();
    for (f, (_, code)) in &lexed {
        let dir = match f.file_name().and_then(|n| n.to_str()) {
            Some("mod.rs" | "lib.rs" | "main.rs") => f.parent().map(Path::to_path_buf),
            _ => Some(f.with_extension("")),
        };
        for name in test_code(code).1 {
            if let Some(dir) = &dir {
                test_files.push(dir.join(&name));
            }
        }
    }
    let mut unique = BTreeSet::new();
    for (f, (lits, code)) in &lexed {
        if test_files
            .iter()
            .any(|t| f.starts_with(t) || *f == t.with_extension("rs"))
        {
            continue;
        }
        let (tests, _) = test_code(code);
        for (at, lit) in lits {
            if tests.iter().any(|r| r.contains(at)) {
                continue;
            }
            let t = texts(lit);
            if !is_glue(&t) {
                unique.insert(t);
            }
        }
    }
    unique.into_iter().collect()
}

/// A format string that only joins its values (`{}-{}`, `{} is {}`, `{a}: {b}`): with it, any
/// texts could be joined into a message, so the matcher leaves it out.
fn is_glue(texts: &[String]) -> bool {
    texts.len() > 1
        && texts
            .iter()
            .all(|t| t.chars().filter(|c| !c.is_whitespace()).count() < 5)
}

/// Matching a quoted piece against the literals.
struct Matcher<'a> {
    piece: &'a str,
    /// The rest of the quoted line after the piece.
    after: &'a str,
    lits: &'a [Vec<String>],
    /// Steps left before giving up (a bound on the search).
    budget: usize,
}

/// How many literals a placeholder may nest.
const MAX_NESTING: usize = 4;

impl Matcher<'_> {
    /// `piece[..pos]` is matched through the end of text `k` of literal `li`. `stack` holds where
    /// the literals whose placeholders we are in go on; `loose` is whether the piece may still
    /// climb once into a literal it did not come from (it may have started inside a value).
    fn after_text(
        &mut self,
        pos: usize,
        li: usize,
        k: usize,
        stack: &mut Vec<(usize, usize)>,
        loose: bool,
    ) -> bool {
        if pos == self.piece.len() {
            return true;
        }
        if self.budget == 0 {
            return false;
        }
        self.budget -= 1;
        let rest = &self.piece[pos..];
        if k + 1 < self.lits[li].len() {
            // The placeholder after text k: empty, or filled by another literal's text.
            if self.step(pos, li, k + 1, stack, loose) {
                return true;
            }
            if stack.len() < MAX_NESTING {
                stack.push((li, k + 1));
                for m in 0..self.lits.len() {
                    let first = self.lits[m][0].as_str();
                    // A literal that starts with a placeholder (`{WHAT} of {}-{} (Kafka's …`)
                    // fits when a distinctive text of it (a dozen characters or more) is still
                    // to come; generic ones (`{} is {}`) would fit anything.
                    let fits = if first.is_empty() {
                        self.lits[m].iter().any(|t| {
                            t.trim().chars().count() >= 12
                                && (rest.contains(t.as_str()) || self.after.contains(t.as_str()))
                        })
                    } else {
                        rest.starts_with(first) || first.starts_with(rest)
                    };
                    if fits && self.step(pos, m, 0, stack, loose) {
                        stack.pop();
                        return true;
                    }
                }
                stack.pop();
            }
            false
        } else if let Some((outer, next)) = stack.pop() {
            let found = self.step(pos, outer, next, stack, loose);
            stack.push((outer, next));
            found
        } else if loose {
            // The literal was a placeholder's value in one we did not see start (whose text
            // there must say something: four characters or more).
            for m in 0..self.lits.len() {
                for j in 1..self.lits[m].len() {
                    let text = self.lits[m][j].as_str();
                    let fits = text.chars().filter(|c| !c.is_whitespace()).count() >= 4
                        && (rest.starts_with(text) || text.starts_with(rest));
                    if fits && self.step(pos, m, j, stack, false) {
                        return true;
                    }
                }
            }
            false
        } else {
            false
        }
    }

    /// Matches text `j` of literal `m` at `pos`: the piece ends within it, or goes on after it.
    fn step(
        &mut self,
        pos: usize,
        m: usize,
        j: usize,
        stack: &mut Vec<(usize, usize)>,
        loose: bool,
    ) -> bool {
        let rest = &self.piece[pos..];
        let text = self.lits[m][j].as_str();
        if !rest.is_empty() && text.starts_with(rest) {
            return true;
        }
        rest.starts_with(text) && self.after_text(pos + text.len(), m, j, stack, loose)
    }
}

/// Whether `piece` (fixed text of a quoted message) can be printed: it lies within one literal's
/// text, or it starts in one text and goes on through the placeholders that follow, each filled
/// by another literal that finishes before its enclosing literal goes on (as `format!` values
/// nest: `Error: {err}` holding `invalid input: {0}` holding `snapshot id '{id}' …`). A piece
/// that follows a quoted placeholder may start inside a value, so it may climb once into an
/// enclosing literal it did not see start; a piece that starts a line may not.
fn printable(piece: &str, after: &str, lits: &[Vec<String>], starts_line: bool) -> bool {
    if lits.iter().flatten().any(|t| t.contains(piece)) {
        return true;
    }
    for (li, lit) in lits.iter().enumerate() {
        for (k, text) in lit.iter().enumerate() {
            for (p, _) in text.char_indices() {
                let tail = &text[p..];
                if tail.len() < piece.len() && piece.starts_with(tail) {
                    let mut matcher = Matcher {
                        piece,
                        after,
                        lits,
                        budget: 20_000,
                    };
                    if matcher.after_text(tail.len(), li, k, &mut Vec::new(), !starts_line) {
                        return true;
                    }
                }
            }
        }
    }
    false
}

/// The messages quoted in ```text blocks, split at `{…}` into their fixed pieces, each with
/// the rest of its line.
fn quoted_messages(page: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut out = Vec::new();
    let mut in_text = false;
    for line in page.lines() {
        let t = line.trim();
        if t.starts_with("```") {
            in_text = !in_text && t == "```text";
            continue;
        }
        if !in_text || t.is_empty() {
            continue;
        }
        let mut pieces = Vec::new();
        let mut rest = line;
        while let Some(open) = rest.find('{') {
            let Some(close) = rest[open..].find('}') else {
                break;
            };
            pieces.push((rest[..open].to_string(), rest[open..].to_string()));
            rest = &rest[open + close + 1..];
        }
        pieces.push((rest.to_string(), String::new()));
        out.push((line.to_string(), pieces));
    }
    out
}

#[test]
fn every_troubleshooting_message_is_printed_by_the_tools() {
    let page = read("docs/troubleshooting.md");
    let lits = source_literals();
    let messages = quoted_messages(&page);
    assert!(
        messages.len() >= 30,
        "expected the troubleshooting page to quote its messages in ```text blocks, found {}",
        messages.len()
    );
    let mut problems = Vec::new();
    for (line, pieces) in &messages {
        for (i, (piece, after)) in pieces.iter().enumerate() {
            if piece.trim().chars().count() < 3 {
                continue;
            }
            if !printable(piece, after, &lits, i == 0) {
                problems.push(format!("'{piece}' (in: {line})"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "docs/troubleshooting.md quotes text no tool prints (fix the quote, or use {{…}} for what varies):\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn quoted_messages_are_matched_across_format_placeholders() {
    assert!(is_glue(&texts("{x} is {y}")) && !is_glue(&texts("Error: {err}")));
    let lits: Vec<Vec<String>> = [
        "Error: {err}",
        "invalid input: {0}",
        "snapshot id '{id}' is invalid: {why} (allowed: letters)",
        "{e}; the records are checkpointed",
        "it contains '..'",
        "InternalError",
        "{a}: {b}",
        "snapshot id",
        "{x} is {y}",
        "too long",
        "{{\"json\": {n}}}",
    ]
    .iter()
    .map(|l| texts(l))
    .collect();
    assert_eq!(texts("a {b} c{{d}}{}"), ["a ", " c{d}", ""]);
    // (piece, whether it starts a line)
    for (ok, starts_line) in [
        ("Error: invalid input: snapshot id '", true),
        ("' is invalid: ", false),
        (" (allowed: letters)", false),
        ("it contains '..'; the records are checkpointed", false),
        ("Error: it contains '..'", true),
        ("{\"json\": ", true),
    ] {
        assert!(printable(ok, "", &lits, starts_line), "{ok}");
    }
    for (bad, starts_line) in [
        ("Error: snapshot id is wrong", true),
        ("invalid input: anything at all", true),
        (" (allowed: letters)it contains", false),
        ("Error: invalid input: snapshot id is too long", true),
        ("it contains '..'; the records are checkpointed", true),
    ] {
        assert!(!printable(bad, "", &lits, starts_line), "{bad}");
    }
    let (lits, code) = lex(
        "fn a() { \"kept\" }\n#[cfg(test)]\nmod scenarios;\n#[cfg(test)]\nmod tests {\n fn b() { let _ = \"}\"; \"dropped\" }\n}\nconst C: &str = \"kept too\";",
    );
    let (ranges, files) = test_code(&code);
    let kept: Vec<&str> = lits
        .iter()
        .filter(|(at, _)| !ranges.iter().any(|r| r.contains(at)))
        .map(|(_, s)| s.as_str())
        .collect();
    assert_eq!(kept, ["kept", "kept too"]);
    assert_eq!(files, ["scenarios"]);
    let lits = string_literals(
        "let a = \"x \\\"q\\\" {y}\"; // \"not this\"\nlet c = '\"'; let r = r#\"raw \"s\"\"#; fn f<'a>() { \"multi\\\n     line\" }",
    );
    assert_eq!(lits, ["x \"q\" {y}", "raw \"s\"", "multiline"]);
    let q = quoted_messages(
        "```text\nError: failed at {servers}: {reason}\n```\n```bash\nnot {this}\n```\n",
    );
    assert_eq!(q.len(), 1);
    let pieces: Vec<&str> = q[0].1.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(pieces, ["Error: failed at ", ": ", ""]);
    assert_eq!(q[0].1[0].1, "{servers}: {reason}");
}

#[test]
fn condition_reasons_in_the_crd_index_exist() {
    let page = read("docs/crds/README.md");
    let mut literals = BTreeSet::new();
    let mut files = Vec::new();
    rust_files(&root().join("operator/src"), &mut files);
    for f in files {
        literals.extend(string_literals(
            &std::fs::read_to_string(f).expect("source"),
        ));
    }
    // Failed runs take the worker's error label, camel-cased (`snapshot_not_found` →
    // `SnapshotNotFound`).
    let mut worker = Vec::new();
    rust_files(&root().join("worker/src"), &mut worker);
    for f in worker.iter().filter(|f| f.ends_with("error.rs")) {
        for lit in string_literals(&std::fs::read_to_string(f).expect("source")) {
            if lit.chars().all(|c| c.is_ascii_lowercase() || c == '_') && lit.contains('_') {
                literals.insert(
                    lit.split('_')
                        .map(|w| {
                            let mut c = w.chars();
                            c.next()
                                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                                .unwrap_or_default()
                        })
                        .collect(),
                );
            }
        }
    }
    let mut reasons = Vec::new();
    let mut in_table = false;
    for line in prose(&page) {
        if line.starts_with("| Reason ") {
            in_table = true;
            continue;
        }
        if !line.starts_with('|') {
            in_table = false;
            continue;
        }
        if in_table {
            let first = cells(line).into_iter().next().unwrap_or_default();
            reasons.extend(
                first
                    .split('`')
                    .skip(1)
                    .step_by(2)
                    .map(str::to_string)
                    .collect::<Vec<_>>(),
            );
        }
    }
    assert!(
        reasons.len() >= 20,
        "found only {reasons:?} in docs/crds/README.md's reason tables"
    );
    let missing: Vec<&String> = reasons.iter().filter(|r| !literals.contains(*r)).collect();
    assert!(
        missing.is_empty(),
        "docs/crds/README.md lists condition reasons the operator never sets: {missing:?}"
    );
    // And the other way: every `const REASON_…: &str = "…"` of the operator is listed.
    let mut files = Vec::new();
    rust_files(&root().join("operator/src"), &mut files);
    let mut undocumented = BTreeSet::new();
    for f in files {
        let src = std::fs::read_to_string(&f).expect("source");
        for line in src.lines() {
            let Some(rest) = line.split("const REASON_").nth(1) else {
                continue;
            };
            if let Some(value) = rest.split('"').nth(1) {
                if !reasons.iter().any(|r| r == value) {
                    undocumented.insert(value.to_string());
                }
            }
        }
    }
    assert!(
        undocumented.is_empty(),
        "condition reasons missing from docs/crds/README.md's tables: {undocumented:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Links and sample paths.

/// GitHub's anchors of a page's headings.
fn anchors(page: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = BTreeSet::new();
    for line in prose(page) {
        let level = line.chars().take_while(|c| *c == '#').count();
        if level == 0 || !line[level..].starts_with(' ') {
            continue;
        }
        let base: String = line[level..]
            .trim()
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let n = seen.entry(base.clone()).or_insert(0);
        out.insert(if *n == 0 {
            base.clone()
        } else {
            format!("{base}-{n}")
        });
        *n += 1;
    }
    out
}

/// The targets of a page's Markdown links, outside code.
fn links(page: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in prose(page) {
        // Inline code may hold `](` in examples; drop it.
        let text: String = line.split('`').step_by(2).collect::<Vec<_>>().join("");
        for part in text.split("](").skip(1) {
            if let Some(end) = part.find(')') {
                out.push(part[..end].trim().to_string());
            }
        }
    }
    out
}

#[test]
fn links_and_sample_paths_resolve() {
    let mut problems = Vec::new();
    for page_file in PAGES {
        let page = read(page_file);
        let dir = Path::new(page_file).parent().unwrap_or(Path::new(""));
        for target in links(&page) {
            if target.starts_with("http://")
                || target.starts_with("https://")
                || target.starts_with("mailto:")
            {
                continue;
            }
            let (file, anchor) = target.split_once('#').unwrap_or((target.as_str(), ""));
            let resolved = if file.is_empty() {
                PathBuf::from(page_file)
            } else {
                dir.join(file)
            };
            let full = root().join(&resolved);
            if !full.exists() {
                problems.push(format!(
                    "{page_file}: link to {target}: {} does not exist",
                    resolved.display()
                ));
                continue;
            }
            if !anchor.is_empty()
                && full.is_file()
                && resolved.extension().is_some_and(|e| e == "md")
            {
                let text = std::fs::read_to_string(&full).unwrap_or_default();
                if !anchors(&text).contains(anchor) {
                    problems.push(format!(
                        "{page_file}: link to {target}: no heading #{anchor}"
                    ));
                }
            }
        }
        // `config/samples/x.yaml` named anywhere (commands, prose).
        for (i, _) in page.match_indices("config/samples/") {
            let rest = &page[i..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || "/-_.".contains(c)))
                .unwrap_or(rest.len());
            let path = rest[..end].trim_end_matches('.');
            if path.ends_with(".yaml") && !root().join(path).is_file() {
                problems.push(format!("{page_file}: names {path}, which does not exist"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "broken links or sample paths:\n  {}",
        problems.join("\n  ")
    );
}
