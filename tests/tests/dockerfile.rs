//! The Dockerfile builds and ships what the workspace produces (no Docker engine needed):
//!
//! - the build stage copies every workspace member, builds with `--locked`, and installs one
//!   file per bin target of the packages it builds (`cargo metadata`), no more, no less;
//! - the final stage copies exactly those binaries from the build stage, its entrypoint is one
//!   of them, it runs as a numeric non-root user (the operator's worker UID), and it carries the
//!   OCI labels, with the workspace's license, repository and version;
//! - librdkafka is linked statically (rdkafka-sys without `dynamic-linking`), and every shared
//!   library the built binaries load is in the runtime image (the base image's libc and libgcc,
//!   or a package the final stage installs), with the matching `-dev` package in the build
//!   stage;
//! - the build resolves the worker without its `failpoints` feature (the crash points of the
//!   kill tests), and without it the worker has no crash point code;
//! - `.dockerignore` keeps `target/` and `.git` out of the context and excludes nothing the
//!   Dockerfile copies.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("repository root")
}

/// One instruction: keyword (upper case) and arguments, continuation lines joined.
#[derive(Clone, Debug)]
struct Instruction {
    keyword: String,
    args: String,
}

/// One stage: its name (`AS`), base image and instructions.
#[derive(Debug)]
struct Stage {
    name: Option<String>,
    from: String,
    instructions: Vec<Instruction>,
}

impl Stage {
    fn all(&self, keyword: &str) -> impl Iterator<Item = &Instruction> + '_ {
        let keyword = keyword.to_string();
        self.instructions
            .iter()
            .filter(move |i| i.keyword == keyword)
    }

    /// The words of every `RUN`.
    fn run_words(&self) -> Vec<Vec<String>> {
        self.all("RUN").map(|i| words(&i.args)).collect()
    }
}

/// The instructions of a Dockerfile (comments and parser directives dropped).
fn instructions(text: &str) -> Vec<Instruction> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        if !current.is_empty() && trimmed.starts_with('#') {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
            continue;
        }
        current.push_str(trimmed);
        let (keyword, args) = current
            .split_once(char::is_whitespace)
            .unwrap_or((current.as_str(), ""));
        out.push(Instruction {
            keyword: keyword.to_ascii_uppercase(),
            args: args.trim().to_string(),
        });
        current.clear();
    }
    assert!(current.is_empty(), "a continuation line ends the file");
    out
}

fn stages(text: &str) -> (Vec<Instruction>, Vec<Stage>) {
    let mut global = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for i in instructions(text) {
        if i.keyword == "FROM" {
            let w = words(&i.args);
            let name = match w.as_slice() {
                [_, as_, name] if as_.eq_ignore_ascii_case("as") => Some(name.clone()),
                [_] => None,
                _ => panic!("unexpected FROM {}", i.args),
            };
            stages.push(Stage {
                name,
                from: w[0].clone(),
                instructions: Vec::new(),
            });
        } else if let Some(stage) = stages.last_mut() {
            stage.instructions.push(i);
        } else {
            global.push(i);
        }
    }
    (global, stages)
}

/// Shell-ish words: whitespace separated, `&&` its own word, quotes removed.
fn words(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|w| w.trim_matches('"').to_string())
        .collect()
}

/// `COPY` arguments: flags (`--from=x`), sources, destination.
fn copy_parts(args: &str) -> (BTreeMap<String, String>, Vec<String>, String) {
    let w = words(args);
    let mut flags = BTreeMap::new();
    let mut rest = Vec::new();
    for word in w {
        match word.strip_prefix("--") {
            Some(flag) if rest.is_empty() => {
                let (k, v) = flag.split_once('=').unwrap_or((flag, ""));
                flags.insert(k.to_string(), v.to_string());
            }
            _ => rest.push(word),
        }
    }
    let dest = rest.pop().expect("a destination");
    (flags, rest, dest)
}

/// The `LABEL key="value" …` pairs.
fn labels(args: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = args.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=').expect("key=value");
        let after = after.trim_start();
        let (value, tail) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"').expect("closing quote");
            (&quoted[..end], &quoted[end + 1..])
        } else {
            after.split_at(after.find(char::is_whitespace).unwrap_or(after.len()))
        };
        out.insert(key.trim().to_string(), value.to_string());
        rest = tail.trim_start();
    }
    out
}

/// `ARG NAME=default` values.
fn arg_defaults<'a>(
    instructions: impl Iterator<Item = &'a Instruction>,
) -> BTreeMap<String, String> {
    instructions
        .filter(|i| i.keyword == "ARG")
        .filter_map(|i| {
            let (k, v) = i.args.split_once('=')?;
            Some((k.trim().to_string(), v.trim().trim_matches('"').to_string()))
        })
        .collect()
}

struct Dockerfile {
    global: Vec<Instruction>,
    stages: Vec<Stage>,
}

impl Dockerfile {
    fn load() -> Self {
        let text = std::fs::read_to_string(repo().join("Dockerfile")).expect("Dockerfile");
        let (global, stages) = stages(&text);
        assert_eq!(stages.len(), 2, "a build stage and a runtime stage");
        Dockerfile { global, stages }
    }

    fn build(&self) -> &Stage {
        &self.stages[0]
    }

    fn runtime(&self) -> &Stage {
        self.stages.last().expect("a final stage")
    }

    /// The `cargo build` command of the build stage.
    fn cargo_build(&self) -> Vec<String> {
        let runs = self.build().run_words();
        let run = runs
            .iter()
            .find(|w| w.windows(2).any(|p| p[0] == "cargo" && p[1] == "build"))
            .expect("a RUN with cargo build");
        let start = run
            .windows(2)
            .position(|p| p[0] == "cargo" && p[1] == "build")
            .expect("cargo build");
        run[start..]
            .iter()
            .take_while(|w| *w != "&&")
            .cloned()
            .collect()
    }

    /// `install … target/release/<bin> <dest>` of the build stage: bin name → destination.
    fn installed(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for run in self.build().run_words() {
            for command in run.split(|w| w == "&&") {
                if command.first().map(String::as_str) != Some("install") {
                    continue;
                }
                let paths: Vec<&String> = command
                    .iter()
                    .skip(1)
                    .filter(|w| !w.starts_with('-') && w.parse::<u32>().is_err())
                    .collect();
                let [source, dest] = paths.as_slice() else {
                    panic!("install with one source and one destination: {command:?}");
                };
                let bin = source
                    .strip_prefix("target/release/")
                    .unwrap_or_else(|| panic!("{source} is not a release build output"));
                out.insert(bin.to_string(), dest.to_string());
            }
        }
        out
    }

    /// Packages installed by `apt-get install` in `stage`.
    fn apt_packages(stage: &Stage) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for run in stage.run_words() {
            for command in run.split(|w| w == "&&") {
                if let Some(at) = command
                    .windows(2)
                    .position(|p| p[0] == "apt-get" && p[1] == "install")
                {
                    out.extend(
                        command[at + 2..]
                            .iter()
                            .filter(|w| !w.starts_with('-'))
                            .cloned(),
                    );
                }
            }
        }
        out
    }
}

fn cargo_metadata(no_deps: bool) -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command.current_dir(repo()).args([
        "metadata",
        "--format-version",
        "1",
        "--locked",
        "--offline",
    ]);
    if no_deps {
        command.arg("--no-deps");
    } else {
        // The whole dependency graph of every platform needs crates that a build for this one
        // never downloads (a fresh machine's registry has only those): resolve for the host.
        command.args(["--filter-platform", &host_triple()]);
    }
    let output = command.output().expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("metadata JSON")
}

/// The platform this toolchain builds for by default, from `rustc -vV`.
fn host_triple() -> String {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let output = Command::new(rustc)
        .arg("-vV")
        .output()
        .expect("rustc -vV runs");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("host: "))
        .expect("rustc -vV names its host")
        .trim()
        .to_string()
}

/// The bin targets of each workspace package.
fn bin_targets(metadata: &Value) -> BTreeMap<String, BTreeSet<String>> {
    metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| {
            let bins = p["targets"]
                .as_array()
                .expect("targets")
                .iter()
                .filter(|t| {
                    t["kind"]
                        .as_array()
                        .is_some_and(|k| k.iter().any(|k| k == "bin"))
                })
                .map(|t| t["name"].as_str().expect("name").to_string())
                .collect();
            (p["name"].as_str().expect("name").to_string(), bins)
        })
        .collect()
}

#[test]
fn the_build_stage_builds_every_binary_of_the_packages_it_names_locked() {
    let dockerfile = Dockerfile::load();
    let cargo = dockerfile.cargo_build();
    assert!(cargo.contains(&"--locked".to_string()), "{cargo:?}");
    assert!(cargo.contains(&"--release".to_string()), "{cargo:?}");
    let packages: BTreeSet<String> = cargo
        .windows(2)
        .filter(|p| p[0] == "-p" || p[0] == "--package")
        .map(|p| p[1].clone())
        .collect();
    assert_eq!(
        packages,
        BTreeSet::from(["tidemark".to_string(), "tidemark-operator".to_string()])
    );

    let metadata = cargo_metadata(true);
    let bins = bin_targets(&metadata);
    let expected: BTreeSet<String> = packages
        .iter()
        .flat_map(|p| {
            bins.get(p)
                .unwrap_or_else(|| panic!("{p} is not a workspace package"))
                .clone()
        })
        .collect();
    let installed = dockerfile.installed();
    assert_eq!(
        installed.keys().cloned().collect::<BTreeSet<_>>(),
        expected,
        "one installed file per bin target of the built packages"
    );
    for (bin, dest) in &installed {
        assert_eq!(dest, &format!("/out/{bin}"), "{bin} keeps its name");
    }

    // Cargo reads every member's manifest: each member directory is copied, from paths that
    // exist, into the same place.
    let root = repo();
    let members: BTreeSet<String> = metadata["workspace_members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|id| {
            let package = metadata["packages"]
                .as_array()
                .expect("packages")
                .iter()
                .find(|p| p["id"] == *id)
                .expect("member package");
            let manifest = PathBuf::from(package["manifest_path"].as_str().expect("path"));
            manifest
                .parent()
                .expect("dir")
                .strip_prefix(&root)
                .expect("inside the repository")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let mut copied = BTreeSet::new();
    for copy in dockerfile.build().all("COPY") {
        let (flags, sources, dest) = copy_parts(&copy.args);
        assert!(flags.is_empty(), "the build stage copies from the context");
        for source in &sources {
            assert!(root.join(source).exists(), "COPY {source}: no such path");
            if dest != "./" {
                assert_eq!(&dest, source, "{source} is copied to its own path");
            }
            copied.insert(source.clone());
        }
    }
    for needed in ["Cargo.toml", "Cargo.lock"] {
        assert!(copied.contains(needed), "{needed} is copied");
    }
    assert!(
        members.is_subset(&copied),
        "members {members:?}, copied {copied:?}"
    );
    let workdir = dockerfile.build().all("WORKDIR").last().expect("WORKDIR");
    assert_eq!(workdir.args, "/src");
}

#[test]
fn the_image_ships_exactly_the_built_binaries_as_a_non_root_user() {
    let dockerfile = Dockerfile::load();
    let build_name = dockerfile
        .build()
        .name
        .clone()
        .expect("the build stage is named");
    let installed: BTreeSet<String> = dockerfile.installed().into_values().collect();

    let runtime = dockerfile.runtime();
    let mut in_image = BTreeMap::new();
    for copy in runtime.all("COPY") {
        let (flags, sources, dest) = copy_parts(&copy.args);
        assert_eq!(flags.get("from"), Some(&build_name), "COPY {}", copy.args);
        assert!(dest.ends_with('/'), "copied into a directory: {dest}");
        for source in sources {
            assert!(installed.contains(&source), "{source} is not built");
            let name = source.rsplit('/').next().expect("name").to_string();
            in_image.insert(format!("{dest}{name}"), source);
        }
    }
    let shipped: BTreeSet<String> = in_image.values().cloned().collect();
    assert_eq!(shipped, installed, "every built binary is shipped");

    let entrypoint = runtime.all("ENTRYPOINT").last().expect("ENTRYPOINT");
    let exec: Vec<String> = serde_json::from_str(&entrypoint.args).expect("exec form");
    assert!(
        in_image.contains_key(&exec[0]),
        "the entrypoint {} is one of {:?}",
        exec[0],
        in_image.keys()
    );
    assert_eq!(exec[0], "/usr/local/bin/tidemark");
    // Worker Jobs run `tidemark` from PATH; the operator manifests run the operator by path.
    assert!(in_image.contains_key("/usr/local/bin/tidemark-operator"));

    let user = runtime.all("USER").last().expect("USER").args.clone();
    let (uid, gid) = user.split_once(':').expect("uid:gid");
    let uid: i64 = uid.parse().expect("numeric uid");
    let gid: i64 = gid.parse().expect("numeric gid");
    assert!(uid > 0 && gid > 0, "non-root");
    assert_eq!(uid, tidemark_operator::build::job::WORKER_UID);
    assert_eq!(gid, tidemark_operator::build::job::WORKER_UID);
}

#[test]
fn the_image_carries_the_oci_labels_of_the_workspace() {
    let dockerfile = Dockerfile::load();
    let runtime = dockerfile.runtime();
    let mut all = BTreeMap::new();
    for label in runtime.all("LABEL") {
        all.extend(labels(&label.args));
    }
    for key in [
        "title",
        "description",
        "version",
        "revision",
        "licenses",
        "source",
    ] {
        let key = format!("org.opencontainers.image.{key}");
        assert!(all.get(&key).is_some_and(|v| !v.is_empty()), "{key}");
    }
    let metadata = cargo_metadata(true);
    let worker = metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .find(|p| p["name"] == "tidemark")
        .expect("tidemark");
    assert_eq!(
        all["org.opencontainers.image.licenses"],
        worker["license"].as_str().expect("license")
    );
    assert_eq!(
        all["org.opencontainers.image.source"],
        worker["repository"].as_str().expect("repository")
    );
    let args = arg_defaults(runtime.instructions.iter());
    assert_eq!(all["org.opencontainers.image.version"], "${VERSION}");
    assert_eq!(
        args.get("VERSION").map(String::as_str),
        worker["version"].as_str(),
        "the default VERSION is the workspace version"
    );
    assert!(args.contains_key("REVISION"));
    // The build stage's base comes from a global ARG with a default.
    let globals = arg_defaults(dockerfile.global.iter());
    assert!(dockerfile.build().from.contains("${RUST_VERSION}"));
    assert!(globals.contains_key("RUST_VERSION"));
}

/// The Debian package of a shared library the binaries load, and whether the bookworm-slim base
/// image already has it.
fn package_of(library: &str) -> Option<(&'static str, bool)> {
    let name = library.rsplit('/').next().unwrap_or(library);
    let table: [(&str, &str, bool); 10] = [
        ("linux-vdso.so", "(kernel)", true),
        ("ld-linux", "libc6", true),
        ("libc.so", "libc6", true),
        ("libm.so", "libc6", true),
        ("libdl.so", "libc6", true),
        ("libpthread.so", "libc6", true),
        ("librt.so", "libc6", true),
        ("libgcc_s.so", "libgcc-s1", true),
        ("libssl.so.3", "libssl3", false),
        ("libcrypto.so.3", "libssl3", false),
    ];
    if name.starts_with("libz.so.1") {
        return Some(("zlib1g", false));
    }
    table
        .iter()
        .find(|(prefix, _, _)| name.starts_with(prefix))
        .map(|(_, package, base)| (*package, *base))
}

/// The shared libraries `binary` loads, by `ldd`.
fn shared_libraries(binary: &Path) -> Vec<String> {
    let output = Command::new("ldd")
        .arg(binary)
        .output()
        .unwrap_or_else(|e| panic!("failed to run ldd on {}: {e}", binary.display()));
    assert!(output.status.success(), "ldd {}", binary.display());
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

#[test]
fn librdkafka_is_static_and_the_runtime_image_has_every_shared_library() {
    // rdkafka-sys builds librdkafka from source and links it statically unless told otherwise.
    let metadata = cargo_metadata(false);
    let features = |crate_name: &str| -> BTreeSet<String> {
        metadata["resolve"]["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .find(|n| {
                n["id"]
                    .as_str()
                    .is_some_and(|id| id.contains(&format!("#{crate_name}@")))
            })
            .map(|n| {
                n["features"]
                    .as_array()
                    .expect("features")
                    .iter()
                    .map(|f| f.as_str().expect("feature").to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let rdkafka = features("rdkafka-sys");
    assert!(
        rdkafka.contains("ssl") && rdkafka.contains("zstd"),
        "{rdkafka:?}"
    );
    for dynamic in [
        "dynamic-linking",
        "dynamic_linking",
        "ssl-vendored",
        "libz-static",
    ] {
        assert!(
            !rdkafka.contains(dynamic),
            "{dynamic}: the Dockerfile expects otherwise"
        );
    }

    let dockerfile = Dockerfile::load();
    let build_packages = Dockerfile::apt_packages(dockerfile.build());
    let runtime_packages = Dockerfile::apt_packages(dockerfile.runtime());
    assert!(
        runtime_packages.contains("ca-certificates"),
        "TLS to brokers and object stores"
    );
    // System OpenSSL (rdkafka's ssl without ssl-vendored) and zlib (libz without libz-static).
    for (dev, runtime) in [("libssl-dev", "libssl3"), ("zlib1g-dev", "zlib1g")] {
        assert!(
            build_packages.contains(dev),
            "the build stage installs {dev}"
        );
        assert!(
            runtime_packages.contains(runtime),
            "the final stage installs {runtime}"
        );
    }

    // The built binaries: the worker as the test crate builds it (the same entry point and
    // libraries as `tidemark`; only the std-only crash points added), and the operator when it
    // has been built here.
    let mut binaries = vec![PathBuf::from(env!("CARGO_BIN_EXE_tidemark-under-test"))];
    let profile_dir = PathBuf::from(env!("CARGO_BIN_EXE_tidemark-under-test"))
        .parent()
        .expect("target dir")
        .to_path_buf();
    for bin in ["tidemark", "tidemark-operator"] {
        let path = profile_dir.join(bin);
        if path.exists() {
            binaries.push(path);
        }
    }
    let mut needed = BTreeSet::new();
    for binary in &binaries {
        for library in shared_libraries(binary) {
            assert!(
                !library.contains("rdkafka"),
                "{} loads {library}: librdkafka must be linked statically",
                binary.display()
            );
            let (package, in_base) = package_of(&library).unwrap_or_else(|| {
                panic!(
                    "{} loads {library}, which no package of the runtime image provides",
                    binary.display()
                )
            });
            if !in_base {
                needed.insert(package);
            }
        }
    }
    for package in &needed {
        assert!(
            runtime_packages.contains(*package),
            "the binaries need {package}; the final stage installs {runtime_packages:?}"
        );
    }
    assert!(
        needed.contains("libssl3"),
        "the worker uses the system OpenSSL"
    );
}

/// The features cargo resolves for `tidemark` when building with `args` (the feature-relevant
/// arguments of a `cargo build`), as `cargo tree` reports them for normal and build edges (what
/// a build compiles; dev-dependencies are not).
fn tidemark_features_when_building(args: &[String]) -> BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(repo())
        .args([
            "tree",
            "--offline",
            "--prefix",
            "none",
            "--edges",
            "normal,build",
        ])
        .args(["--format", "{p}|{f}", "--target", &host_triple()])
        .args(args)
        .output()
        .expect("cargo tree runs");
    assert!(
        output.status.success(),
        "cargo tree {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let line = text
        .lines()
        .find(|l| l.starts_with("tidemark v"))
        .unwrap_or_else(|| panic!("cargo tree {args:?} builds no tidemark:\n{text}"));
    let (_, features) = line.split_once('|').expect("{p}|{f}");
    features
        .trim()
        .trim_end_matches("(*)")
        .split(',')
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(str::to_string)
        .collect()
}

/// The arguments of the Dockerfile's `cargo build` that choose packages and features; any
/// other argument must be one known to change neither.
fn feature_arguments(cargo_build: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut words = cargo_build.iter().skip(2);
    while let Some(word) = words.next() {
        match word.as_str() {
            "--release" => {}
            "--locked"
            | "--frozen"
            | "--workspace"
            | "--all-features"
            | "--no-default-features" => out.push(word.clone()),
            "-p" | "--package" | "-F" | "--features" | "--exclude" => {
                out.push(word.clone());
                out.push(words.next().expect("a value").clone());
            }
            other if other.starts_with("--features=") || other.starts_with("--package=") => {
                out.push(other.to_string())
            }
            other => panic!("`cargo build {other}` in the Dockerfile: teach this test about it"),
        }
    }
    out
}

#[test]
fn the_image_build_resolves_the_worker_without_its_crash_points() {
    let dockerfile = Dockerfile::load();
    let args = feature_arguments(&dockerfile.cargo_build());
    let released = tidemark_features_when_building(&args);
    assert!(
        !released.contains("failpoints"),
        "the Dockerfile's `cargo build {args:?}` builds tidemark with {released:?}: the image \
         would carry the TIDEMARK_CRASH_AT crash points"
    );
    // The same query sees the feature where it is on: the tests crate's binary has it.
    let tested = tidemark_features_when_building(&[
        "--locked".to_string(),
        "-p".to_string(),
        "tidemark-tests".to_string(),
    ]);
    assert!(tested.contains("failpoints"), "{tested:?}");
}

/// A program built from the worker's `failpoints` module alone (it uses only `std`), with or
/// without the feature, that passes the `record` crash point once.
struct Probe {
    _dir: tempfile::TempDir,
    binary: PathBuf,
}

impl Probe {
    fn build(with_feature: bool) -> Probe {
        let dir = tempfile::tempdir().expect("temp dir");
        let main = dir.path().join("main.rs");
        let module = repo().join("worker/src/failpoints.rs");
        std::fs::write(
            &main,
            format!(
                "#[path = {module:?}]\nmod failpoints;\nfn main() {{\n    failpoints::crash_at(\"record\");\n}}\n"
            ),
        )
        .expect("write the probe");
        let binary = dir.path().join("probe");
        let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
        let mut command = Command::new(rustc);
        command
            .args(["--edition", "2021", "-C", "opt-level=0"])
            .arg(&main)
            .arg("-o")
            .arg(&binary);
        if with_feature {
            command.args(["--cfg", "feature=\"failpoints\""]);
        }
        let output = command.output().expect("rustc runs");
        assert!(
            output.status.success(),
            "rustc worker/src/failpoints.rs: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Probe { _dir: dir, binary }
    }

    fn bytes(&self) -> Vec<u8> {
        std::fs::read(&self.binary).expect("the probe binary")
    }

    /// Runs it with `TIDEMARK_CRASH_AT=record:1`: whether it aborted.
    fn crashes(&self) -> bool {
        let output = Command::new(&self.binary)
            .env("TIDEMARK_CRASH_AT", "record:1")
            .output()
            .expect("the probe runs");
        !output.status.success()
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn without_the_feature_the_worker_has_no_crash_point_code() {
    let hook = b"TIDEMARK_CRASH_AT";
    let with = Probe::build(true);
    assert!(
        contains(&with.bytes(), hook) && with.crashes(),
        "with the feature"
    );
    let without = Probe::build(false);
    assert!(
        !contains(&without.bytes(), hook),
        "worker/src/failpoints.rs without the feature still reads TIDEMARK_CRASH_AT"
    );
    assert!(
        !without.crashes(),
        "without the feature a crash point aborts"
    );
    // Nothing else in the worker reads the variable or aborts on its own: every crash point
    // goes through that module (whose other functions do not exist without the feature).
    let mut stack = vec![repo().join("worker/src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.ends_with("failpoints.rs") || path.extension() != Some("rs".as_ref()) {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("source");
            for needle in ["TIDEMARK_CRASH_AT", "process::abort"] {
                assert!(
                    !text.contains(needle),
                    "{} uses {needle} outside worker/src/failpoints.rs",
                    path.display()
                );
            }
        }
    }
}

/// `.dockerignore` patterns (comments and blanks dropped).
fn dockerignore() -> Vec<String> {
    std::fs::read_to_string(repo().join(".dockerignore"))
        .expect(".dockerignore")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// Whether `path` (relative, `/`-separated) is excluded by `pattern` (Docker's rules for the
/// forms used here: a literal path or prefix directory, `**/name`, and `*` within a component).
fn excluded(pattern: &str, path: &str) -> bool {
    fn component(pattern: &str, name: &str) -> bool {
        match pattern.split_once('*') {
            None => pattern == name,
            Some((head, tail)) => {
                name.len() >= head.len() + tail.len()
                    && name.starts_with(head)
                    && name.ends_with(tail)
            }
        }
    }
    let parts: Vec<&str> = path.split('/').collect();
    if let Some(rest) = pattern.strip_prefix("**/") {
        let rest: Vec<&str> = rest.split('/').collect();
        return (0..parts.len()).any(|start| {
            parts.len() - start >= rest.len()
                && rest
                    .iter()
                    .zip(&parts[start..])
                    .all(|(p, n)| component(p, n))
        });
    }
    let pattern: Vec<&str> = pattern.split('/').collect();
    parts.len() >= pattern.len() && pattern.iter().zip(&parts).all(|(p, n)| component(p, n))
}

#[test]
fn the_dockerignore_keeps_the_context_to_what_the_dockerfile_copies() {
    let patterns = dockerignore();
    assert!(
        !patterns.iter().any(|p| p.starts_with('!')),
        "no exceptions"
    );
    let is_excluded = |path: &str| patterns.iter().any(|p| excluded(p, path));
    for heavy in ["target", ".git", "worker/target", "demo-data"] {
        assert!(is_excluded(heavy), "{heavy} is sent to the daemon");
    }
    let dockerfile = Dockerfile::load();
    let root = repo();
    for copy in dockerfile.build().all("COPY") {
        let (_, sources, _) = copy_parts(&copy.args);
        for source in sources {
            assert!(!is_excluded(&source), "{source} is copied but excluded");
            // Nothing the build reads inside a copied directory is excluded either.
            let dir = root.join(&source);
            if dir.is_dir() {
                let mut stack = vec![dir];
                while let Some(d) = stack.pop() {
                    for entry in std::fs::read_dir(&d).expect("read dir") {
                        let path = entry.expect("entry").path();
                        let relative = path
                            .strip_prefix(&root)
                            .expect("inside")
                            .to_string_lossy()
                            .into_owned();
                        if relative.ends_with("/target") || relative.ends_with(".swp") {
                            continue;
                        }
                        assert!(!is_excluded(&relative), "{relative} is excluded");
                        if path.is_dir() {
                            stack.push(path);
                        }
                    }
                }
            }
        }
    }
    // The other top-level directories are left out of the context.
    let copied: BTreeSet<String> = dockerfile
        .build()
        .all("COPY")
        .flat_map(|c| copy_parts(&c.args).1)
        .collect();
    for entry in std::fs::read_dir(&root).expect("root") {
        let entry = entry.expect("entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        if copied.contains(&name) || !entry.path().is_dir() {
            continue;
        }
        assert!(
            is_excluded(&name),
            "{name}/ is sent to the daemon but not used"
        );
    }
}

#[test]
fn the_dockerignore_matcher_follows_dockers_rules() {
    assert!(excluded("**/target", "target"));
    assert!(excluded("**/target", "worker/target/debug"));
    assert!(excluded(".git", ".git/HEAD"));
    assert!(excluded("**/*.swp", "worker/src/.main.rs.swp"));
    assert!(!excluded("docs", "worker/docs"));
    assert!(!excluded("**/target", "worker/src"));
}
