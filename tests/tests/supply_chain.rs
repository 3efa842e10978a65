//! Supply chain (docs/security.md, "Supply chain"): every cargo command of the build and CI
//! scripts resolves from the committed Cargo.lock (`--locked`), and `scripts/sbom.sh` writes a
//! CycloneDX SBOM for each shipped binary, from a copy of the repository as a fresh clone has it,
//! naming the crates compiled in at their locked versions. The cargo-deny policy (deny.toml) is
//! run by scripts/test.sh itself.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("repository root")
}

/// The files that run cargo for a build, a test or CI: every shell script (`*.sh`), the CI
/// entry point and the Dockerfile.
fn build_files() -> Vec<PathBuf> {
    let root = repo();
    let mut out = vec![root.join("Dockerfile"), root.join(".ci/run")];
    let mut stack = vec![root];
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
            } else if name.ends_with(".sh") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// cargo subcommands that never resolve dependencies, so `--locked` means nothing to them, and
/// cargo-cyclonedx, which has no `--locked` (scripts/sbom.sh runs `cargo metadata --locked`
/// first for it).
const NOT_RESOLVING: [&str; 5] = ["fmt", "clean", "version", "help", "cyclonedx"];

/// Whether a word after `previous` starts a command: the line's first word, or one after a
/// separator, a keyword that runs what follows, or an environment assignment (`A=b cargo …`).
/// `command -v cargo` and `echo "… cargo …"` do not run cargo.
fn at_command_position(previous: Option<&str>) -> bool {
    let Some(p) = previous else {
        return true;
    };
    const STARTERS: [&str; 14] = [
        "&&", "||", "|", ";", "(", "`", "then", "do", "else", "RUN", "exec", "time", "nice", "sudo",
    ];
    STARTERS.contains(&p)
        || p.split_once('=').is_some_and(|(name, _)| {
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

/// Each command line (continuations joined, comments dropped) that runs `cargo <subcommand>`
/// without `--locked` or `--frozen`, as `file:line: command`.
fn unlocked_cargo_commands(file: &Path, text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut joined = String::new();
    let mut first_line = 0;
    for (i, line) in text.lines().enumerate() {
        let code = line.split(" #").next().unwrap_or_default();
        if line.trim_start().starts_with('#') {
            continue;
        }
        if joined.is_empty() {
            first_line = i + 1;
        }
        joined.push_str(code.trim_end().trim_end_matches('\\'));
        joined.push(' ');
        if code.trim_end().ends_with('\\') {
            continue;
        }
        let spaced: String = joined
            .chars()
            .flat_map(|c| match c {
                ';' | '(' | ')' | '`' => vec![' ', c, ' '],
                _ => vec![c],
            })
            .collect();
        let words: Vec<&str> = spaced.split_whitespace().collect();
        for (j, w) in words.iter().enumerate() {
            if *w != "cargo" || !at_command_position(j.checked_sub(1).map(|k| words[k])) {
                continue;
            }
            let Some(sub) = words.get(j + 1) else {
                continue;
            };
            if sub.starts_with('-') && *sub != "--locked" && *sub != "--frozen" {
                continue; // `cargo --version` and the like
            }
            if NOT_RESOLVING.contains(sub) {
                continue;
            }
            let rest = &words[j + 1..];
            let end = rest
                .iter()
                .position(|w| matches!(*w, "&&" | "||" | "|"))
                .unwrap_or(rest.len());
            if !rest[..end]
                .iter()
                .any(|w| *w == "--locked" || *w == "--frozen")
            {
                out.push(format!(
                    "{}:{first_line}: {}",
                    file.display(),
                    joined.trim()
                ));
            }
        }
        joined.clear();
    }
    out
}

#[test]
fn every_cargo_command_of_the_build_and_ci_scripts_is_locked() {
    let files = build_files();
    for needed in [
        "Dockerfile",
        ".ci/run",
        "scripts/test.sh",
        "scripts/demo.sh",
    ] {
        assert!(
            files.iter().any(|f| f.ends_with(needed)),
            "{needed} is among {files:?}"
        );
    }
    let mut unlocked = Vec::new();
    let mut seen = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read build file");
        seen += text.matches("cargo ").count();
        unlocked.extend(unlocked_cargo_commands(file, &text));
    }
    assert!(
        seen > 5,
        "the scan finds the cargo commands at all ({seen})"
    );
    assert!(
        unlocked.is_empty(),
        "cargo commands without --locked (a build that may resolve other versions than \
         Cargo.lock's):\n{}",
        unlocked.join("\n")
    );
}

#[test]
fn the_locked_check_catches_an_unlocked_command() {
    let f = Path::new("x.sh");
    let text = "cargo build -p a \\\n  -p b && cargo test --locked\n# cargo run\ncargo fmt --all\n\
                RUN cargo install tansu --locked\ncargo --version\necho \"cargo test\"\n\
                command -v cargo\nA=\"$B\" cargo deny check && (cargo clippy --locked)\n";
    let found = unlocked_cargo_commands(f, text);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found[0].starts_with("x.sh:1: cargo build -p a"),
        "{found:?}"
    );
    assert!(found[1].starts_with("x.sh:9: A="), "{found:?}");
}

/// `name -> versions` of every registry package in Cargo.lock.
fn locked_versions() -> BTreeMap<String, Vec<String>> {
    let lock = std::fs::read_to_string(repo().join("Cargo.lock")).expect("read Cargo.lock");
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for block in lock.split("[[package]]").skip(1) {
        let field = |key: &str| {
            block.lines().find_map(|l| {
                l.strip_prefix(&format!("{key} = \""))
                    .and_then(|v| v.strip_suffix('"'))
                    .map(str::to_string)
            })
        };
        if let (Some(name), Some(version)) = (field("name"), field("version")) {
            out.entry(name).or_default().push(version);
        }
    }
    out
}

/// The one locked version of `name` (a crate the test picks because it has one).
fn locked(versions: &BTreeMap<String, Vec<String>>, name: &str) -> String {
    match versions.get(name).map(Vec::as_slice) {
        Some([v]) => v.clone(),
        other => panic!("Cargo.lock has one version of {name}, not {other:?}"),
    }
}

/// Copies what a fresh clone would hold (tracked files, and new files git does not ignore)
/// into `dest`.
fn copy_as_cloned(dest: &Path) {
    let output = Command::new("git")
        .current_dir(repo())
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .output()
        .expect("git ls-files runs");
    assert!(output.status.success(), "git ls-files: {output:?}");
    for name in output.stdout.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = String::from_utf8_lossy(name).into_owned();
        let from = repo().join(&name);
        if !from.is_file() {
            continue; // deleted in the working tree, not yet committed
        }
        let to = dest.join(&name);
        std::fs::create_dir_all(to.parent().expect("parent")).expect("create dir");
        std::fs::copy(&from, &to).expect("copy file");
    }
}

/// The SBOM's components by name, with their versions and purls.
fn components(bom: &Value) -> BTreeMap<String, Vec<(String, String)>> {
    let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for c in bom["components"].as_array().expect("components") {
        let field = |k: &str| c[k].as_str().unwrap_or_default().to_string();
        out.entry(field("name"))
            .or_default()
            .push((field("version"), field("purl")));
    }
    out
}

fn assert_component(bom: &Value, file: &str, name: &str, version: &str) {
    let all = components(bom);
    let found = all
        .get(name)
        .unwrap_or_else(|| panic!("{file} names {name}; it names {:?}", all.keys()));
    assert!(
        found
            .iter()
            .any(|(v, purl)| v == version && purl.starts_with(&format!("pkg:cargo/{name}@"))),
        "{file}: {name} at the locked version {version}: {found:?}"
    );
}

/// Runs the copy's `scripts/sbom.sh OUT` with cargo-cyclonedx from the tools cache on PATH.
fn run_sbom(src: &Path, out: &Path, source_date_epoch: Option<&str>) {
    let cyclonedx = tidemark_tests::find_tool("cargo-cyclonedx");
    let bin = cyclonedx.parent().expect("bin dir").to_path_buf();
    let path = std::env::join_paths(std::iter::once(bin).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .expect("PATH");
    let mut command = Command::new("bash");
    command
        .arg(src.join("scripts/sbom.sh"))
        .arg(out)
        .env("PATH", path)
        .env_remove("SOURCE_DATE_EPOCH");
    if let Some(epoch) = source_date_epoch {
        command.env("SOURCE_DATE_EPOCH", epoch);
    }
    let run = command.output().expect("scripts/sbom.sh runs");
    assert!(
        run.status.success(),
        "scripts/sbom.sh failed:\n{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is JSON: {e}", path.display()))
}

#[test]
fn sbom_command_describes_both_binaries_with_their_locked_dependencies() {
    let dir = tempfile::tempdir().expect("temp dir");
    let src = dir.path().join("src");
    copy_as_cloned(&src);
    assert!(
        !src.join("target").exists(),
        "the copy is a clone's, without build output"
    );
    let out = dir.path().join("sbom");
    run_sbom(&src, &out, Some("1700000000"));
    assert_eq!(
        std::fs::read(src.join("Cargo.lock")).expect("the copy's Cargo.lock"),
        std::fs::read(repo().join("Cargo.lock")).expect("Cargo.lock"),
        "the SBOM run leaves Cargo.lock as it was"
    );

    let versions = locked_versions();
    let workspace = locked(&versions, "tidemark");
    for (file, package, deps) in [
        (
            "tidemark.cdx.json",
            "tidemark",
            &["rdkafka", "rdkafka-sys", "object_store", "tokio"][..],
        ),
        (
            "tidemark-operator.cdx.json",
            "tidemark-operator",
            &["kube", "k8s-openapi", "tokio"][..],
        ),
    ] {
        let bom = read_json(&out.join(file));
        assert_eq!(bom["bomFormat"], "CycloneDX", "{file}");
        assert_eq!(bom["specVersion"], "1.5", "{file}");
        let subject = &bom["metadata"]["component"];
        assert_eq!(subject["name"], package, "{file} describes {package}");
        assert_eq!(subject["version"], workspace.as_str(), "{file}");
        // SOURCE_DATE_EPOCH (the commit's time by default) makes the file reproducible.
        assert!(
            bom["metadata"]["timestamp"]
                .as_str()
                .is_some_and(|t| t.starts_with("2023-11-14T22:13:20")),
            "{file}: {}",
            bom["metadata"]["timestamp"]
        );
        for dep in deps {
            assert_component(&bom, file, dep, &locked(&versions, dep));
        }
        // The test crate and its own dependencies are not part of what ships.
        let names = components(&bom);
        for test_only in ["tidemark-tests", "jsonschema"] {
            assert!(!names.contains_key(test_only), "{file} lists {test_only}");
        }
    }
    // The operator links the task contract, not the worker: its SBOM names the one, not the
    // other, nor the worker's Kafka and storage clients.
    let operator = read_json(&out.join("tidemark-operator.cdx.json"));
    assert!(components(&operator).contains_key("tidemark-task"));
    for worker_only in ["tidemark", "rdkafka-sys", "object_store"] {
        assert!(
            !components(&operator).contains_key(worker_only),
            "the operator's SBOM lists {worker_only}"
        );
    }
}
