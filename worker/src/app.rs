//! Runs parsed CLI commands: builds clients from flags, calls the library, prints reports and
//! returns the process exit code.

use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use serde::Serialize;

use crate::cli::*;
use crate::error::{Error, Result};
use crate::groups::{read_committed, GroupSelector};
use crate::kafka::{GroupAdmin, KafkaConfig, TlsFiles};
use crate::kmap::{restore_script, KmapFile};
use crate::report::{opt_offset, thousands, truncate, BoxReport};
use crate::rollback::{
    rollback, take_snapshot, verify_snapshot, RollbackReport, RunStatus, SnapshotOutcome,
    SnapshotRequest, VerifyReport,
};
use crate::snapshot::{generate_id, validate_id, OffsetSnapshot, SafetySnapshot, SnapshotStore};
use crate::storage::{Storage, StorageOptions};

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
        Command::Restore(_) => "restore",
        Command::ValidateRestore(_) => "validate-restore",
        Command::ShowOffsetMapping(_) => "show-offset-mapping",
        Command::ThreePhaseRestore(_) => "three-phase-restore",
        Command::Run(_) => "run",
    }
}

/// Runs one command; `Ok(code)` is the exit code of a command that produced a report.
pub async fn run(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::OffsetRollback(cmd) => match cmd {
            RollbackCommand::Snapshot(a) => cmd_snapshot(a).await,
            RollbackCommand::List(a) => cmd_list(a).await,
            RollbackCommand::Show(a) => cmd_show(a).await,
            RollbackCommand::Rollback(a) => cmd_rollback(a).await,
            RollbackCommand::Verify(a) => cmd_verify(a).await,
            RollbackCommand::Delete(a) => cmd_delete(a).await,
            RollbackCommand::Import(a) => cmd_import(a).await,
        },
        Command::Offsets(OffsetsCommand::Export(a)) => cmd_export(a).await,
        Command::OffsetReset(ResetCommand::Plan(a)) => crate::reset::cli::plan(a).await,
        Command::OffsetReset(ResetCommand::Execute(a)) => {
            crate::reset::cli::execute(a, false).await
        }
        Command::OffsetReset(ResetCommand::Script(a)) => crate::reset::cli::script(a).await,
        Command::OffsetResetBulk(a) => crate::reset::cli::execute(a, true).await,
        Command::Backup(a) => crate::backup::cli::backup(a).await,
        Command::List(a) => crate::backup::cli::list(a).await,
        Command::Describe(a) => crate::backup::cli::describe(a).await,
        Command::VerifyBackup(a) => crate::backup::cli::verify(a).await,
        Command::Restore(a) => crate::restore::cli::restore(a, false).await,
        Command::ThreePhaseRestore(a) => crate::restore::cli::restore(a, true).await,
        Command::ValidateRestore(a) => crate::restore::cli::validate(a).await,
        Command::ShowOffsetMapping(a) => crate::restore::cli::show_offset_mapping(a).await,
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
        Command::Describe(a) => match a.format {
            DescribeFormat::Json => Format::Json,
            _ => Format::Text,
        },
        Command::Restore(a) | Command::ThreePhaseRestore(a) => a.format.format,
        Command::ValidateRestore(a) => match a.format {
            DescribeFormat::Json => Format::Json,
            _ => Format::Text,
        },
        Command::ShowOffsetMapping(a) => match a.format {
            crate::cli::MappingFormat::Json => Format::Json,
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

pub(crate) fn kafka_config(a: &KafkaArgs) -> Result<KafkaConfig> {
    let mut cfg = KafkaConfig::resolve(
        &a.bootstrap_servers,
        a.security_protocol,
        a.sasl_mechanism,
        TlsFiles {
            ca_location: a.ssl_ca_location.clone(),
            cert_location: a.ssl_certificate_location.clone(),
            key_location: a.ssl_key_location.clone(),
        },
        &a.kafka_properties,
    )?;
    cfg.request_timeout = Duration::from_secs(a.request_timeout);
    cfg.tls_insecure_skip_verify = a.insecure_skip_tls_verify;
    Ok(cfg)
}

fn open_store(a: &StorageArgs) -> Result<SnapshotStore> {
    open_store_at(&a.path, &a.endpoint)
}

/// The snapshot store at `path`, reached with `endpoint`'s settings.
pub(crate) fn open_store_at(path: &str, endpoint: &StorageEndpointArgs) -> Result<SnapshotStore> {
    Ok(SnapshotStore::new(open_storage_at(path, endpoint)?))
}

/// The storage location `path`, reached with `endpoint`'s settings.
pub(crate) fn open_storage_at(path: &str, endpoint: &StorageEndpointArgs) -> Result<Storage> {
    let options = StorageOptions {
        s3_region: endpoint.s3_region.clone(),
        s3_endpoint: endpoint.s3_endpoint.clone(),
        s3_path_style: endpoint.s3_path_style,
        allow_http: endpoint.allow_http,
    };
    Storage::open(path, &options)
}

pub(crate) fn print_json<T: Serialize>(value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::Kafka(format!("failed to encode report: {e}")))?;
    println!("{text}");
    Ok(())
}

fn human_time(t: &chrono::DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

async fn cmd_snapshot(a: SnapshotArgs) -> Result<i32> {
    let selector = GroupSelector::new(
        &a.groups.groups,
        a.groups.groups_regex.as_deref(),
        a.groups.all_groups,
    )?;
    if let Some(id) = &a.snapshot_id {
        validate_id(id)?;
    }
    let store = open_store(&a.storage)?;
    let admin = GroupAdmin::connect(&kafka_config(&a.kafka)?).await?;
    let outcome = take_snapshot(
        &admin,
        &store,
        &SnapshotRequest {
            selector,
            snapshot_id: a.snapshot_id,
            description: a.description,
            concurrency: a.max_concurrent,
        },
    )
    .await?;
    match a.format.format {
        Format::Json => print_json(&outcome)?,
        Format::Text => print!("{}", snapshot_text(&outcome)),
    }
    Ok(0)
}

fn snapshot_text(o: &SnapshotOutcome) -> String {
    let created = chrono::DateTime::parse_from_rfc3339(&o.created_at)
        .map(|t| human_time(&t.with_timezone(&Utc)))
        .unwrap_or_else(|_| o.created_at.clone());
    let mut s = format!(
        "Creating offset snapshot for {} consumer groups...\n\nSnapshot created successfully!\n",
        o.groups + o.skipped_groups.len()
    );
    s += &format!("  Snapshot ID: {}\n", o.snapshot_id);
    s += &format!("  Created at:  {created}\n");
    s += &format!("  Groups:      {}\n", o.groups);
    s += &format!("  Offsets:     {}\n", o.offsets);
    if let Some(d) = &o.description {
        s += &format!("  Description: {d}\n");
    }
    if !o.skipped_groups.is_empty() {
        s += &format!(
            "  Skipped:     {} group(s) without committed offsets: {}\n",
            o.skipped_groups.len(),
            truncate(&o.skipped_groups.join(", "), 200)
        );
    }
    s += &format!(
        "\nTo rollback to this snapshot, run:\n  tidemark offset-rollback rollback --path {} --snapshot-id {}\n",
        o.path, o.snapshot_id
    );
    s
}

async fn cmd_list(a: ListArgs) -> Result<i32> {
    let store = open_store(&a.storage)?;
    let (snaps, unreadable) = store.list().await?;
    for u in &unreadable {
        eprintln!(
            "warning: skipping unreadable snapshot {}: {}",
            u.file, u.error
        );
    }
    match a.format.format {
        Format::Json => {
            let summaries: Vec<_> = snaps
                .iter()
                .map(crate::snapshot::SnapshotSummary::from)
                .collect();
            print_json(&serde_json::json!({
                "path": store.location(),
                "total": summaries.len(),
                "snapshots": summaries,
                "unreadable": unreadable,
            }))?;
        }
        Format::Text => {
            if snaps.is_empty() {
                println!("No offset snapshots in {}.", store.location());
                return Ok(0);
            }
            println!("Available offset snapshots:\n");
            println!(
                "{:<40} {:<24} {:>8} {:>8}  DESCRIPTION",
                "SNAPSHOT ID", "CREATED AT", "GROUPS", "OFFSETS"
            );
            println!(
                "{} {} {} {}  {}",
                "-".repeat(40),
                "-".repeat(24),
                "-".repeat(8),
                "-".repeat(8),
                "-".repeat(30)
            );
            for s in &snaps {
                println!(
                    "{:<40} {:<24} {:>8} {:>8}  {}",
                    s.snapshot_id,
                    human_time(&s.timestamp),
                    s.groups.len(),
                    s.offset_count(),
                    truncate(s.description.as_deref().unwrap_or(""), 30)
                );
            }
            println!(
                "\nTotal: {} snapshot{}",
                snaps.len(),
                if snaps.len() == 1 { "" } else { "s" }
            );
        }
    }
    Ok(0)
}

async fn cmd_show(a: ShowArgs) -> Result<i32> {
    let store = open_store(&a.storage)?;
    let snap = store.load(&a.snapshot_id).await?;
    match a.format.format {
        Format::Json => print_json(&snap)?,
        Format::Text => print!("{}", show_text(&snap)),
    }
    Ok(0)
}

fn show_text(snap: &OffsetSnapshot) -> String {
    let mut b = BoxReport::new("OFFSET SNAPSHOT DETAILS");
    b.line(format!("Snapshot ID: {}", snap.snapshot_id))
        .line(format!("Created:     {}", human_time(&snap.timestamp)))
        .line(format!("Cluster:     {}", snap.cluster))
        .line(format!("Groups:      {}", snap.groups.len()))
        .line(format!("Offsets:     {}", snap.offset_count()))
        .line(format!(
            "Description: {}",
            snap.description.as_deref().unwrap_or("-")
        ))
        .heavy()
        .line("Consumer Groups");
    for (group, g) in &snap.groups {
        b.light()
            .line(format!("Group: {group}"))
            .line(format!("  Partitions: {}", g.partition_count()));
        for (topic, parts) in &g.topics {
            for (p, s) in parts {
                let meta = if s.metadata.is_empty() {
                    String::new()
                } else {
                    format!(" (metadata: {})", s.metadata)
                };
                b.line(format!("    {topic}:{p} -> offset {}{meta}", s.offset));
            }
        }
    }
    b.render()
}

async fn cmd_rollback(a: RollbackArgs) -> Result<i32> {
    let only = crate::groups::split_names(&a.groups);
    let store = open_store(&a.storage)?;
    let snap = store.load(&a.snapshot_id).await?;
    let selected_offsets: usize = crate::rollback::select_snapshot_groups(&snap, &only)?
        .iter()
        .map(|(_, g)| g.partition_count())
        .sum();
    let admin = GroupAdmin::connect(&kafka_config(&a.kafka)?).await?;
    let verify = a.verify && !a.no_verify;
    let safety = SafetySnapshot {
        store: store.clone(),
        id: a.safety_snapshot_id.clone(),
        reuse_existing: false,
    };
    let report = rollback(
        &admin,
        &snap,
        &only,
        verify,
        a.max_concurrent,
        Some(&safety),
    )
    .await?;
    match a.format.format {
        Format::Json => print_json(&report)?,
        Format::Text => {
            println!("Rolling back to snapshot: {}", snap.snapshot_id);
            println!("  Created: {}", human_time(&snap.timestamp));
            println!("  Groups: {}", report.total_groups);
            println!("  Offsets: {selected_offsets}\n");
            print!("{}", rollback_text(&report));
            if let Some(id) = &report.safety_snapshot_id {
                println!(
                    "\nSafety snapshot: {id} (the offsets this rollback replaced; to undo it: tidemark offset-rollback rollback -p {} -s {id})",
                    a.storage.path
                );
            }
            for w in &report.warnings {
                println!("Warning: {w}");
            }
            if let Some(v) = &report.verification {
                println!();
                print!("{}", verify_text(v));
            }
        }
    }
    Ok(rollback_exit_code(&report))
}

/// 0 on full success; 10 when any group failed; 11 when the post-rollback check found
/// differences.
pub fn rollback_exit_code(r: &RollbackReport) -> i32 {
    if r.status != RunStatus::Success {
        return Error::Partial(String::new()).exit_code();
    }
    if r.verification.as_ref().is_some_and(|v| !v.matched) {
        return Error::VerificationFailed(String::new()).exit_code();
    }
    0
}

fn rollback_text(r: &RollbackReport) -> String {
    let mark = match r.status {
        RunStatus::Success => "✓",
        RunStatus::PartialSuccess => "⚠",
        RunStatus::Failed => "✗",
    };
    let mut b = BoxReport::new("ROLLBACK RESULT");
    b.line(format!("Status: {mark} {}", r.status.label()))
        .light()
        .field("Groups Rolled Back", thousands(r.groups_rolled_back as i64))
        .field("Groups Failed", thousands(r.groups_failed as i64))
        .field("Offsets Restored", thousands(r.offsets_restored as i64))
        .field(
            "Safety Snapshot",
            r.safety_snapshot_id
                .as_deref()
                .unwrap_or("none (nothing changed)"),
        )
        .field(
            "Duration",
            format!("{} ms", thousands(r.duration_ms as i64)),
        );
    let failed: Vec<_> = r
        .group_outcomes
        .iter()
        .filter(|o| o.status != "success")
        .collect();
    if !failed.is_empty() {
        b.light().line("Failed groups");
        for o in failed {
            b.line(format!(
                "  {}: {}",
                o.group,
                o.error.as_deref().unwrap_or("failed")
            ));
            for pe in &o.partition_errors {
                b.line(format!("    {pe}"));
            }
        }
    }
    b.render()
}

async fn cmd_verify(a: VerifyArgs) -> Result<i32> {
    let only = crate::groups::split_names(&a.groups);
    let store = open_store(&a.storage)?;
    let snap = store.load(&a.snapshot_id).await?;
    crate::rollback::select_snapshot_groups(&snap, &only)?;
    let admin = GroupAdmin::connect(&kafka_config(&a.kafka)?).await?;
    let report = verify_snapshot(&admin, &snap, &only, a.strict, a.max_concurrent).await?;
    match a.format.format {
        Format::Json => print_json(&report)?,
        Format::Text => print!("{}", verify_text(&report)),
    }
    Ok(if report.matched {
        0
    } else {
        Error::VerificationFailed(String::new()).exit_code()
    })
}

fn verify_text(v: &VerifyReport) -> String {
    let mut b = BoxReport::new("VERIFICATION RESULT");
    if v.matched {
        b.line("✓ VERIFIED - All offsets match snapshot");
    } else {
        b.line(format!(
            "✗ MISMATCH - {} partition{} differ from snapshot {}",
            v.differences.len(),
            if v.differences.len() == 1 { "" } else { "s" },
            v.snapshot_id
        ));
    }
    b.light()
        .field("Groups Verified", v.groups_verified)
        .field("Groups Mismatched", v.groups_mismatched)
        .field("Partitions Checked", v.partitions_checked)
        .field(
            "Mode",
            if v.strict {
                "strict"
            } else {
                "snapshot partitions"
            },
        );
    let mut s = b.render();
    if !v.differences.is_empty() {
        let gw = v
            .differences
            .iter()
            .map(|d| d.group.len())
            .max()
            .unwrap_or(5)
            .max(5);
        let tw = v
            .differences
            .iter()
            .map(|d| d.topic.len())
            .max()
            .unwrap_or(5)
            .max(5);
        s += &format!(
            "\n{:<gw$}  {:<tw$}  {:>9}  {:>12}  {:>12}\n",
            "GROUP", "TOPIC", "PARTITION", "EXPECTED", "ACTUAL"
        );
        for d in &v.differences {
            s += &format!(
                "{:<gw$}  {:<tw$}  {:>9}  {:>12}  {:>12}\n",
                d.group,
                d.topic,
                d.partition,
                opt_offset(d.expected),
                opt_offset(d.actual)
            );
        }
    }
    s
}

async fn cmd_delete(a: DeleteArgs) -> Result<i32> {
    let store = open_store(&a.storage)?;
    store.delete(&a.snapshot_id).await?;
    match a.format.format {
        Format::Json => print_json(&serde_json::json!({
            "status": "deleted",
            "snapshot_id": a.snapshot_id,
            "path": store.location(),
        }))?,
        Format::Text => println!(
            "Deleted snapshot {} from {}.",
            a.snapshot_id,
            store.location()
        ),
    }
    Ok(0)
}

async fn cmd_import(a: ImportArgs) -> Result<i32> {
    let file = a.kmap.display().to_string();
    let data = crate::limits::read_limited(&a.kmap, crate::limits::MAX_SNAPSHOT_BYTES)?;
    let kmap = KmapFile::from_json(&data, &file)?;
    let id = a.snapshot_id.unwrap_or_else(|| generate_id(Utc::now()));
    let description = a
        .description
        .or_else(|| Some(format!("Imported from kmap file {file}")));
    let snap = kmap.to_snapshot(&id, description)?;
    let store = open_store(&a.storage)?;
    store.save(&snap).await?;
    let outcome = SnapshotOutcome {
        snapshot_id: snap.snapshot_id.clone(),
        created_at: snap.timestamp.to_rfc3339_opts(SecondsFormat::Secs, true),
        cluster: snap.cluster.clone(),
        path: store.location().to_string(),
        description: snap.description.clone(),
        groups: snap.groups.len(),
        offsets: snap.offset_count(),
        group_names: snap.groups.keys().cloned().collect(),
        skipped_groups: Vec::new(),
        duration_ms: 0,
    };
    match a.format.format {
        Format::Json => print_json(&outcome)?,
        Format::Text => print!("{}", snapshot_text(&outcome)),
    }
    Ok(0)
}

async fn cmd_export(a: ExportArgs) -> Result<i32> {
    let all =
        a.groups.all_groups || (a.groups.groups.is_empty() && a.groups.groups_regex.is_none());
    let selector = GroupSelector::new(&a.groups.groups, a.groups.groups_regex.as_deref(), all)?;
    let admin = GroupAdmin::connect(&kafka_config(&a.kafka)?).await?;
    let groups = selector.resolve(&admin).await?;
    let committed = read_committed(&admin, &groups, a.max_concurrent).await?;
    for name in &selector.names {
        if committed.offsets.get(name).is_none_or(Vec::is_empty) {
            return Err(Error::GroupNotFound(name.clone()));
        }
    }
    let exported: Vec<String> = committed
        .offsets
        .iter()
        .filter(|(_, o)| !o.is_empty())
        .map(|(g, _)| g.clone())
        .collect();
    for (name, desc) in exported.iter().zip(admin.describe_groups(&exported).await?) {
        match desc {
            Ok(d) if !d.state.is_inactive() => eprintln!(
                "warning: group '{name}' is active ({}, {} member(s)); its offsets may move after this export",
                d.state, d.members
            ),
            Ok(_) => {}
            Err(e) => eprintln!("warning: could not read the state of group '{name}': {e}"),
        }
    }
    let skipped = committed.offsets.len() - exported.len();
    let file = KmapFile::from_committed(
        &admin.config().bootstrap_servers,
        Utc::now(),
        &committed.offsets,
    );
    let json = serde_json::to_vec_pretty(&file)
        .map_err(|e| Error::Kafka(format!("failed to encode offsets: {e}")))?;
    match &a.output {
        Some(path) => write_file_atomic(path, &json, false)?,
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(&json)
                .and_then(|_| out.write_all(b"\n"))
                .map_err(|source| Error::Io {
                    path: "<stdout>".into(),
                    source,
                })?;
        }
    }
    if let Some(path) = &a.restore_script {
        write_file_atomic(path, restore_script(&file, Utc::now()).as_bytes(), true)?;
    }
    eprintln!(
        "Exported {} group(s), {} partition offset(s){}{}",
        file.consumer_groups.len(),
        file.offset_count(),
        if skipped > 0 {
            format!("; skipped {skipped} group(s) without committed offsets")
        } else {
            String::new()
        },
        a.output
            .as_ref()
            .map(|p| format!(" to {}", p.display()))
            .unwrap_or_default()
    );
    Ok(0)
}

/// Writes through a temporary file in the same directory and renames it into place.
fn write_file_atomic(path: &Path, data: &[u8], executable: bool) -> Result<()> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| Error::invalid(format!("'{}' is not a file path", path.display())))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    std::fs::write(&tmp, data).map_err(io)?;
    if executable {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)
}
