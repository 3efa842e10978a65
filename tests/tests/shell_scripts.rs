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

/// Scripts kept exactly as the documents users copy them from print them (run unchanged by
/// `documented_workflows`), warts included: they are not ours to fix.
const VERBATIM: &str = "tests/fixtures/workflows/";

/// The shell scripts of the repository: tracked `*.sh` files and tracked files starting with a
/// `bash` or `sh` shebang such as `.ci/run`, except the [`VERBATIM`] ones. Only tracked files:
/// a tools cache or virtualenv inside the checkout holds scripts that are not ours.
fn shell_scripts() -> Vec<PathBuf> {
    let root = repo();
    let output = Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(&root)
        .output()
        .expect("git ls-files runs");
    assert!(output.status.success(), "git ls-files failed");
    let mut out: Vec<PathBuf> = output
        .stdout
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .filter(|p| !p.starts_with(VERBATIM))
        .map(|p| root.join(p))
        .filter(|p| p.is_file())
        .filter(|p| p.to_string_lossy().ends_with(".sh") || has_shell_shebang(p))
        .collect();
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
