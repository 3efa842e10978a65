//! The `tidemark` process: arguments parsed, logging set up, the verb's handler run, the error
//! reported and the exit code returned; and the helpers the handlers share.

use chrono::Utc;
use serde::Serialize;

use super::*;
use crate::error::{Error, Result};
use crate::kafka::KafkaConfig;
use crate::snapshot::SnapshotStore;
use crate::storage::Storage;

/// The whole `tidemark` process: parse arguments, set up logging, run, exit with the
/// command's code. `main.rs` is only this call.
pub fn main() -> ! {
    use clap::Parser as _;
    crate::malloc::tune();
    let cli = Cli::parse();
    init_logging(cli.log_format, cli.verbose);
    let format = error_format(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: failed to start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let operation = operation(&cli.command);
    let code = match runtime.block_on(async move {
        // Opt-in Prometheus endpoint (TIDEMARK_METRICS_ADDR), bound before any work starts.
        crate::metrics::serve_from_env().await?;
        crate::metrics::WorkerMetrics::global().start(operation);
        run(cli).await
    }) {
        Ok(code) => code,
        Err(err) => {
            report_error(&err, format);
            err.exit_code()
        }
    };
    crate::metrics::WorkerMetrics::global().finish(code == 0);
    drop(runtime);
    std::process::exit(code);
}

fn init_logging(format: LogFormat, verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// The top-level verb of `command`, as metrics name the operation.
pub fn operation(command: &Command) -> &'static str {
    match command {
        Command::OffsetRollback(_) => "offset-rollback",
        Command::Offsets(_) => "offsets",
        Command::OffsetReset(_) => "offset-reset",
        Command::OffsetResetBulk(_) => "offset-reset-bulk",
        Command::Backup(_) => "backup",
        Command::List(_) => "list",
        Command::Describe(_) => "describe",
        Command::VerifyBackup(_) => "verify-backup",
        Command::RewrapKeys(_) => "rewrap-keys",
        Command::Restore(_) => "restore",
        Command::ValidateRestore(_) => "validate-restore",
        Command::ShowOffsetMapping(_) => "show-offset-mapping",
        Command::ThreePhaseRestore(_) => "three-phase-restore",
        Command::Drill(_) => "drill",
        Command::Run(_) => "run",
    }
}

/// Runs one command; `Ok(code)` is the exit code of a command that produced a report.
pub async fn run(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::OffsetRollback(cmd) => match cmd {
            RollbackCommand::Snapshot(a) => rollback::cmd_snapshot(a).await,
            RollbackCommand::List(a) => rollback::cmd_list(a).await,
            RollbackCommand::Show(a) => rollback::cmd_show(a).await,
            RollbackCommand::Rollback(a) => rollback::cmd_rollback(a).await,
            RollbackCommand::Verify(a) => rollback::cmd_verify(a).await,
            RollbackCommand::Delete(a) => rollback::cmd_delete(a).await,
            RollbackCommand::Import(a) => rollback::cmd_import(a).await,
        },
        Command::Offsets(OffsetsCommand::Export(a)) => rollback::cmd_export(a).await,
        Command::OffsetReset(ResetCommand::Plan(a)) => reset::plan(a).await,
        Command::OffsetReset(ResetCommand::Execute(a)) => reset::execute(a, false).await,
        Command::OffsetReset(ResetCommand::Script(a)) => reset::script(a).await,
        Command::OffsetResetBulk(a) => reset::execute(a, true).await,
        Command::Backup(a) => backup::backup(a).await,
        Command::List(a) => backup::list(a).await,
        Command::Describe(a) => backup::describe(a).await,
        Command::VerifyBackup(a) => backup::verify(a).await,
        Command::RewrapKeys(a) => backup::rewrap(a).await,
        Command::Restore(a) => restore::restore(a, false).await,
        Command::ThreePhaseRestore(a) => restore::restore(a, true).await,
        Command::ValidateRestore(a) => restore::validate(a).await,
        Command::ShowOffsetMapping(a) => restore::show_offset_mapping(a).await,
        Command::Drill(a) => drill::drill(a).await,
        Command::Run(a) => crate::run::run_task(&a.task, &a.result_file).await,
    }
}

/// The format a failing command should report its error in.
pub fn error_format(cli: &Cli) -> Format {
    match &cli.command {
        Command::OffsetRollback(cmd) => match cmd {
            RollbackCommand::Snapshot(a) => a.format.format,
            RollbackCommand::List(a) => a.format.format,
            RollbackCommand::Show(a) => a.format.format,
            RollbackCommand::Rollback(a) => a.format.format,
            RollbackCommand::Verify(a) => a.format.format,
            RollbackCommand::Delete(a) => a.format.format,
            RollbackCommand::Import(a) => a.format.format,
        },
        Command::OffsetReset(ResetCommand::Plan(a)) => a.format.format,
        Command::OffsetReset(ResetCommand::Execute(a)) | Command::OffsetResetBulk(a) => {
            a.reset.format.format
        }
        Command::OffsetReset(ResetCommand::Script(a)) => a.reset.format.format,
        Command::Backup(a) => a.format.format,
        Command::List(a) => a.format.format,
        Command::VerifyBackup(a) => a.format.format,
        Command::RewrapKeys(a) => a.format.format,
        Command::Describe(a) => match a.format {
            DescribeFormat::Json => Format::Json,
            _ => Format::Text,
        },
        Command::Restore(a) | Command::ThreePhaseRestore(a) => a.format.format,
        Command::Drill(a) => a.format.format,
        Command::ValidateRestore(a) => match a.format {
            DescribeFormat::Json => Format::Json,
            _ => Format::Text,
        },
        Command::ShowOffsetMapping(a) => match a.format {
            MappingFormat::Json => Format::Json,
            _ => Format::Text,
        },
        // `run` has already printed its JSON report, failure included.
        Command::Offsets(_) | Command::Run(_) => Format::Text,
    }
}

/// Prints an error: always to stderr, and as a JSON document on stdout for `--format json`.
pub fn report_error(err: &Error, format: Format) {
    eprintln!("Error: {err}");
    if format == Format::Json {
        let doc = serde_json::json!({
            "status": "error",
            "error": { "kind": err.label(), "exit_code": err.exit_code(), "message": err.to_string() },
        });
        println!("{doc}");
    }
}

pub(super) fn kafka_config(a: &KafkaArgs) -> Result<KafkaConfig> {
    a.config()
}

/// The snapshot store of `--path` and its endpoint flags.
pub(super) fn open_store(a: &StorageArgs) -> Result<SnapshotStore> {
    open_store_at(&a.path, &a.endpoint)
}

/// The snapshot store at `path`, reached with `endpoint`'s settings.
pub(super) fn open_store_at(path: &str, endpoint: &StorageEndpointArgs) -> Result<SnapshotStore> {
    Ok(SnapshotStore::new(open_storage_at(path, endpoint)?))
}

/// The storage location `path`, reached with `endpoint`'s settings.
pub(super) fn open_storage_at(path: &str, endpoint: &StorageEndpointArgs) -> Result<Storage> {
    Storage::open(path, &endpoint.options())
}

pub(super) fn print_json<T: Serialize>(value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::encode("report", e))?;
    println!("{text}");
    Ok(())
}

pub(super) fn human_time(t: &chrono::DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}
