//! `tidemark-operator`: `run` starts the operator (see `tidemark_operator::run`; exit 0 after
//! SIGTERM, 1 on a fatal error); `crd` prints the CustomResourceDefinitions (or writes one file
//! per CRD with `--out-dir DIR`, repeatable).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The operator's command line.
#[derive(Debug, Parser)]
#[command(
    name = "tidemark-operator",
    version,
    about = "The Tidemark Kubernetes operator: reconciles KafkaBackup, KafkaRestore, \
             KafkaOffsetReset and KafkaOffsetRollback resources into worker Jobs",
    subcommand_required = true,
    arg_required_else_help = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, PartialEq, Eq, Subcommand)]
enum Command {
    /// Run the operator until SIGTERM (exit 0), or until a fatal error (exit 1). Logging:
    /// RUST_LOG (default info), TIDEMARK_LOG_FORMAT=text for plain text instead of JSON.
    Run,
    /// Print the CustomResourceDefinitions as YAML, or write one <crd-name>.yaml per CRD into
    /// each --out-dir.
    Crd {
        /// A directory to write the CRD files into (created if missing); repeatable.
        #[arg(long = "out-dir", value_name = "DIR")]
        out_dirs: Vec<PathBuf>,
    },
    /// Print the version.
    Version,
}

fn main() -> ExitCode {
    // Bad arguments: clap prints the error and the usage and exits 2; `--help` and `--version`
    // print to stdout and exit 0.
    let cli = Cli::parse();
    match cli.command {
        Command::Run => run(),
        Command::Crd { out_dirs } => match crd(&out_dirs) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("Error: {message}");
                ExitCode::from(1)
            }
        },
        Command::Version => {
            println!("tidemark-operator {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
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

/// `crd`: to stdout, or one `<crd-name>.yaml` per CRD into each of `out_dirs`; the error says
/// what could not be rendered or written (exit 1).
fn crd(out_dirs: &[PathBuf]) -> Result<(), String> {
    let render = |e| format!("failed to render the CRDs: {e}");
    if out_dirs.is_empty() {
        print!("{}", tidemark_operator::crd::to_yaml().map_err(render)?);
        return Ok(());
    }
    let files = tidemark_operator::crd::files().map_err(render)?;
    for dir in out_dirs {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("failed to create {}: {e}", dir.display()))?;
        for (name, content) in &files {
            let path = Path::new(dir).join(name);
            std::fs::write(&path, content)
                .map_err(|e| format!("failed to write {}: {e}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Command, clap::Error> {
        Cli::try_parse_from(std::iter::once("tidemark-operator").chain(args.iter().copied()))
            .map(|cli| cli.command)
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn the_subcommands_the_deployment_and_the_crd_regeneration_use_parse() {
        assert_eq!(parse(&["run"]).expect("parses"), Command::Run);
        assert_eq!(parse(&["version"]).expect("parses"), Command::Version);
        assert_eq!(
            parse(&["crd"]).expect("parses"),
            Command::Crd { out_dirs: vec![] }
        );
        assert_eq!(
            parse(&["crd", "--out-dir", "crds", "--out-dir=config/crd"]).expect("parses"),
            Command::Crd {
                out_dirs: vec![PathBuf::from("crds"), PathBuf::from("config/crd")]
            }
        );
    }

    #[test]
    fn bad_arguments_are_usage_errors_and_help_and_version_are_not() {
        use clap::error::ErrorKind;
        let kind = |args: &[&str]| parse(args).expect_err("refused").kind();
        assert_eq!(kind(&["run", "extra"]), ErrorKind::UnknownArgument);
        assert_eq!(kind(&["crd", "--out-dir"]), ErrorKind::InvalidValue);
        assert_eq!(kind(&["crd", "--bogus"]), ErrorKind::UnknownArgument);
        assert_eq!(kind(&["bogus"]), ErrorKind::InvalidSubcommand);
        for args in [&["--help"][..], &["crd", "--help"], &["--version"]] {
            let err = parse(args).expect_err("refused");
            assert_eq!(err.exit_code(), 0, "{args:?}: {err}");
        }
        let err = parse(&[]).expect_err("a subcommand is required");
        assert_eq!(err.exit_code(), 2, "{err}");
        for args in [&["run", "extra"][..], &["crd", "--bogus"], &["bogus"]] {
            assert_eq!(parse(args).expect_err("refused").exit_code(), 2, "{args:?}");
        }
    }
}
