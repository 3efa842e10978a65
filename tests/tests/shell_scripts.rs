//! Every shell script of the repository passes `shellcheck` (installed by
//! `scripts/install-test-tools.sh`; missing, the test fails instead of skipping).

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("repository root")
}

/// The shell scripts of the repository: `*.sh` files and files starting with a `bash` or `sh`
/// shebang such as `.ci/run` (build output and version control aside).
fn shell_scripts() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![repo()];
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
            } else if name.ends_with(".sh") || has_shell_shebang(&path) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn has_shell_shebang(path: &Path) -> bool {
    let Ok(text) = std::fs::read(path) else {
        return false;
    };
    let first = text.split(|b| *b == b'\n').next().unwrap_or_default();
    let first = String::from_utf8_lossy(first);
    first.starts_with("#!")
        && (first.ends_with("/bash") || first.ends_with(" bash") || first.ends_with("/sh"))
}

#[test]
fn every_shell_script_passes_shellcheck() {
    let scripts = shell_scripts();
    for needed in [
        "scripts/install-test-tools.sh",
        "scripts/test.sh",
        "e2e/run.sh",
    ] {
        assert!(
            scripts.iter().any(|s| s.ends_with(needed)),
            "{needed} is among {scripts:?}"
        );
    }
    let shellcheck = tidemark_tests::find_tool("shellcheck");
    for script in &scripts {
        let output = Command::new(&shellcheck)
            .arg("-x")
            .arg(script)
            .current_dir(script.parent().expect("a directory"))
            .output()
            .expect("shellcheck runs");
        assert!(
            output.status.success(),
            "shellcheck {}:\n{}",
            script.display(),
            String::from_utf8_lossy(&output.stdout)
        );
    }
}
