//! `tidemark-operator`: `run` starts the operator (see `tidemark_operator::run`; exit 0 after
//! SIGTERM, 1 on a fatal error); `crd` prints the CustomResourceDefinitions (or writes one file
//! per CRD with `--out-dir DIR`, repeatable).

use std::path::Path;
use std::process::ExitCode;

const USAGE: &str = "usage: tidemark-operator run | crd [--out-dir DIR]... | version";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("run") if args.len() == 1 => run(),
        Some("crd") => match crd(&args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(Failure::Usage(message)) => {
                eprintln!("Error: {message}\n{USAGE}");
                ExitCode::from(2)
            }
            Err(Failure::Io(message)) => {
                eprintln!("Error: {message}");
                ExitCode::from(1)
            }
        },
        Some("--version") | Some("version") => {
            println!("tidemark-operator {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// `run`: the operator, on a multi-threaded runtime, until SIGTERM.
fn run() -> ExitCode {
    tidemark_operator::run::init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("Error: failed to start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(tidemark_operator::run::run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let cause = tidemark_operator::controller::source_chain(&error);
            if cause.is_empty() {
                tracing::error!(error = %error, "tidemark-operator failed");
            } else {
                tracing::error!(error = %error, cause = %cause, "tidemark-operator failed");
            }
            ExitCode::from(1)
        }
    }
}

/// Why a command failed: bad arguments (exit 2) or anything else (exit 1).
enum Failure {
    Usage(String),
    Io(String),
}

/// `crd`: to stdout, or one `<crd-name>.yaml` per CRD into each `--out-dir`.
fn crd(args: &[String]) -> Result<(), Failure> {
    let mut out_dirs = Vec::new();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--out-dir" => match rest.next() {
                Some(dir) => out_dirs.push(dir.clone()),
                None => return Err(Failure::Usage("--out-dir needs a directory".into())),
            },
            other => match other.strip_prefix("--out-dir=") {
                Some(dir) => out_dirs.push(dir.to_string()),
                None => {
                    return Err(Failure::Usage(format!("unexpected argument '{other}'")));
                }
            },
        }
    }
    let render = |e| Failure::Io(format!("failed to render the CRDs: {e}"));
    if out_dirs.is_empty() {
        print!("{}", tidemark_operator::crd::to_yaml().map_err(render)?);
        return Ok(());
    }
    let files = tidemark_operator::crd::files().map_err(render)?;
    for dir in &out_dirs {
        std::fs::create_dir_all(dir)
            .map_err(|e| Failure::Io(format!("failed to create {dir}: {e}")))?;
        for (name, content) in &files {
            let path = Path::new(dir).join(name);
            std::fs::write(&path, content)
                .map_err(|e| Failure::Io(format!("failed to write {}: {e}", path.display())))?;
            eprintln!("wrote {}", path.display());
        }
    }
    Ok(())
}
