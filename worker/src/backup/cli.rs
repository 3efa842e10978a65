//! The `backup`, `list`, `describe` and `verify-backup` commands, and the task runners the
//! operator's Jobs use (`run --task` with a backup or backup-cleanup task).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use chrono::{Duration as ChronoDuration, Utc};
use serde::Serialize;

use super::config::{parse_compression, parse_config, parse_mode};
use std::io::IsTerminal as _;

use super::engine::{
    run_backup, BackupReport, BackupRequest, LiveProgress, DEFAULT_CONCURRENT_PARTITIONS,
    DEFAULT_SEGMENT_BYTES,
};
use super::format::Codec;
use super::manifest::backup_dir;
use super::read::{list_backups, load_manifests, verify_backup, BackupSummary};
use super::select::TopicFilter;
use crate::app::print_json;
use crate::cli::{
    BackupArgs, BackupListArgs, DescribeArgs, DescribeFormat, Format, VerifyBackupArgs,
};
use crate::error::{Error, Result};
use crate::groups::split_names;
use crate::kafka::GroupAdmin;
use crate::report::{spawn_progress_bar, thousands, BoxReport};
use crate::task::{BackupCleanupTask, BackupTask, KafkaTarget, StorageTarget, TopicSelection};

pub use tidemark_task::env::{ENV_BACKUP_ID, ENV_COMPLETION_INDEX};

/// `backup-YYYYMMDD-HHMMSS-<8 hex>`.
pub fn generate_backup_id() -> String {
    crate::snapshot::generate_id(Utc::now()).replacen("snap-", "backup-", 1)
}

/// Runs a backup task: what both `tidemark backup` and `run --task` do.
pub async fn run_backup_task(
    t: &BackupTask,
    credentials: Option<(String, String)>,
    signals: StopSignals,
    progress: Arc<LiveProgress>,
) -> Result<BackupReport> {
    t.validate()?;
    crate::metrics::WorkerMetrics::global().watch_backup(&progress);
    let backup_id = match &t.backup_id {
        Some(id) => id.clone(),
        None => match std::env::var(ENV_BACKUP_ID)
            .ok()
            .filter(|v| !v.trim().is_empty())
        {
            Some(id) => {
                crate::snapshot::validate_id(&id)
                    .map_err(|e| Error::invalid(format!("{ENV_BACKUP_ID}: {e}")))?;
                id
            }
            None => generate_backup_id(),
        },
    };
    let shard_index = match t.shard_index {
        Some(i) => i,
        None if t.shard_count > 1 => std::env::var(ENV_COMPLETION_INDEX)
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|i| *i < t.shard_count)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "shardCount is {} but no shardIndex is given and {ENV_COMPLETION_INDEX} is not a number below it",
                    t.shard_count
                ))
            })?,
        None => 0,
    };
    let filter = TopicFilter::new(&t.topics.include, &t.topics.exclude)
        .map_err(|e| Error::invalid(format!("topics: {e}")))?;
    let storage = crate::run::open_location(&t.storage)?;
    let admin = GroupAdmin::connect(&crate::run::kafka_config_with(&t.kafka, credentials)?).await?;
    let req = BackupRequest {
        backup_id,
        chain: t.chain.clone(),
        mode: t.mode,
        filter,
        include: t.topics.include.clone(),
        codec: Codec::from_task(t.compression, t.compression_level),
        segment_max_bytes: t.segment_max_bytes.unwrap_or(DEFAULT_SEGMENT_BYTES),
        segment_max_interval_ms: t.segment_max_interval_ms,
        max_concurrent_partitions: t
            .max_concurrent_partitions
            .unwrap_or(DEFAULT_CONCURRENT_PARTITIONS),
        rate_limit_records_per_sec: t.rate_limit_records_per_sec,
        rate_limit_bytes_per_sec: t.rate_limit_bytes_per_sec,
        capture_offsets: t.capture_offsets,
        shard_index,
        shard_count: t.shard_count,
        progress: Arc::clone(&progress),
        finish: signals.finish,
    };
    tracing::info!(backup_id = %req.backup_id, shard = shard_index, shards = t.shard_count, location = %storage.display(), "backup starting");
    run_backup(&admin, &storage, &req, signals.stop).await
}

/// The stop flags of a backup: `stop` on SIGTERM or Ctrl-C; `finish` too on Ctrl-C (SIGINT).
#[derive(Debug, Clone, Default)]
pub struct StopSignals {
    pub stop: Arc<AtomicBool>,
    /// The user asked a continuous backup to end (it then writes its manifest).
    pub finish: Arc<AtomicBool>,
}

/// [`StopSignals`] set by the process's signals: SIGTERM (what Kubernetes sends on an
/// eviction, a drain or a deleted pod) interrupts a backup, which stores what it read and its
/// checkpoint and exits 75, to be resumed; Ctrl-C (SIGINT) also ends a continuous backup, which
/// then writes its manifest.
pub fn stop_or_finish_on_signal() -> StopSignals {
    let signals = StopSignals::default();
    let (stop, finish) = (Arc::clone(&signals.stop), Arc::clone(&signals.finish));
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let Ok(mut term) = signal(SignalKind::terminate()) else {
                return;
            };
            tokio::select! {
                _ = term.recv() => {
                    tracing::warn!("SIGTERM: storing what was read and the checkpoint; running the backup again resumes there");
                }
                _ = tokio::signal::ctrl_c() => {
                    tracing::warn!("interrupted: storing what was read; a continuous backup writes its manifest");
                    finish.store(true, Ordering::SeqCst);
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            finish.store(true, Ordering::SeqCst);
        }
        stop.store(true, Ordering::SeqCst);
    });
    signals
}

/// Sets the returned flag on SIGTERM or Ctrl-C (a restore then stops and can be resumed;
/// backups use [`stop_or_finish_on_signal`]).
pub fn stop_on_signal() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let Ok(mut term) = signal(SignalKind::terminate()) else {
                return;
            };
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::warn!("stop requested: finishing the segments in flight and writing a checkpoint");
        flag.store(true, Ordering::SeqCst);
    });
    stop
}

/// `tidemark backup`
pub async fn backup(a: BackupArgs) -> Result<i32> {
    let (mut task, credentials) = match &a.config {
        Some(path) => {
            let text = crate::limits::read_text_limited(path, crate::limits::MAX_CONFIG_BYTES)?;
            let c = parse_config(&text, &path.display().to_string(), |v| {
                std::env::var(v).ok()
            })?;
            (c.task, c.credentials)
        }
        None => {
            let servers = a.bootstrap_servers.clone().ok_or_else(|| {
                Error::invalid("pass --config FILE, or --bootstrap-servers, --path and --topics")
            })?;
            let path = a
                .path
                .clone()
                .ok_or_else(|| Error::invalid("--path is required (or --config)"))?;
            if a.topics.is_empty() {
                return Err(Error::invalid(
                    "--topics is required (names, globs like 'orders-*', or ~regex), or --config",
                ));
            }
            (
                BackupTask {
                    kafka: KafkaTarget {
                        bootstrap_servers: servers
                            .split(',')
                            .map(|s| s.trim().to_string())
                            .collect(),
                        security_protocol: a
                            .security_protocol
                            .clone()
                            .unwrap_or_else(|| "PLAINTEXT".into()),
                        sasl_mechanism: None,
                        ssl_ca_location: None,
                        ssl_certificate_location: None,
                        ssl_key_location: None,
                        properties: BTreeMap::new(),
                        tls_insecure_skip_verify: false,
                    },
                    storage: StorageTarget::Location {
                        url: path,
                        s3_region: a.endpoint.s3_region.clone(),
                        s3_endpoint: a.endpoint.s3_endpoint.clone(),
                        s3_path_style: a.endpoint.s3_path_style,
                        allow_http: a.endpoint.allow_http,
                    },
                    backup_id: None,
                    topics: TopicSelection {
                        include: split_names(&a.topics),
                        exclude: split_names(&a.exclude),
                    },
                    mode: Default::default(),
                    chain: None,
                    compression: Default::default(),
                    compression_level: None,
                    max_concurrent_partitions: None,
                    rate_limit_records_per_sec: None,
                    rate_limit_bytes_per_sec: None,
                    segment_max_bytes: None,
                    segment_max_interval_ms: None,
                    capture_offsets: true,
                    shard_index: None,
                    shard_count: 1,
                },
                None,
            )
        }
    };
    // Flags override the file.
    for (k, v) in crate::kafka::config::parse_properties(&a.kafka_properties)? {
        task.kafka.properties.insert(k, v);
    }
    task.kafka.tls_insecure_skip_verify |= a.insecure_skip_tls_verify;
    if let Some(id) = &a.backup_id {
        task.backup_id = Some(id.clone());
    }
    if let Some(m) = &a.mode {
        task.mode = parse_mode(m).map_err(|e| Error::invalid(format!("--mode: {e}")))?;
    }
    if let Some(c) = &a.chain {
        task.chain = Some(c.clone());
    }
    if let Some(c) = &a.compression {
        task.compression =
            parse_compression(c).map_err(|e| Error::invalid(format!("--compression: {e}")))?;
    }
    if a.compression_level.is_some() {
        task.compression_level = a.compression_level;
    }
    if a.segment_max_bytes.is_some() {
        task.segment_max_bytes = a.segment_max_bytes;
    }
    if a.max_concurrent_partitions.is_some() {
        task.max_concurrent_partitions = a.max_concurrent_partitions;
    }
    if a.rate_limit_records_per_sec.is_some() {
        task.rate_limit_records_per_sec = a.rate_limit_records_per_sec;
    }
    if a.rate_limit_bytes_per_sec.is_some() {
        task.rate_limit_bytes_per_sec = a.rate_limit_bytes_per_sec;
    }
    if a.no_capture_offsets {
        task.capture_offsets = false;
    }
    if a.shard_index.is_some() {
        task.shard_index = a.shard_index;
    }
    if let Some(n) = a.shard_count {
        task.shard_count = n;
    }
    task.validate()
        .map_err(|e| Error::invalid(e.message().replace("task field", "setting")))?;
    let progress = Arc::new(LiveProgress::default());
    let bar = (a.format.format == Format::Text && std::io::stderr().is_terminal()).then(|| {
        let p = Arc::clone(&progress);
        spawn_progress_bar(move || {
            (
                p.offsets_total.load(Ordering::Relaxed),
                p.offsets_done.load(Ordering::Relaxed),
                format!(
                    "{} records, {}, {}/{} partitions",
                    thousands(p.records.load(Ordering::Relaxed) as i64),
                    size(p.bytes.load(Ordering::Relaxed)),
                    p.partitions_done.load(Ordering::Relaxed),
                    p.partitions_total.load(Ordering::Relaxed)
                ),
            )
        })
    });
    let result = run_backup_task(&task, credentials, stop_or_finish_on_signal(), progress).await;
    if let Some((done, handle)) = bar {
        done.store(true, Ordering::SeqCst);
        let _ = handle.await;
    }
    let report = result?;
    match a.format.format {
        Format::Json => print_json(&report)?,
        Format::Text => print!("{}", backup_box(&report)),
    }
    if report.interrupted {
        return Err(interrupted_error(&report));
    }
    Ok(0)
}

/// The error of an interrupted backup run (exit code 75).
pub fn interrupted_error(r: &BackupReport) -> Error {
    Error::Interrupted(format!(
        "backup '{}' was stopped before it finished; its checkpoint ({}) holds {} records: run it again with the same backup id to resume",
        r.backup_id, r.manifest, r.records
    ))
}

fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// The boxed report of a backup run.
pub fn backup_box(r: &BackupReport) -> String {
    let mut b = BoxReport::new("BACKUP REPORT");
    let status = if r.interrupted {
        "INTERRUPTED (resumable from its checkpoint)"
    } else if r.already_complete {
        "COMPLETE (already complete; nothing was read)"
    } else if r.resumed {
        "COMPLETE (resumed from a checkpoint)"
    } else {
        "COMPLETE"
    };
    b.line(format!("Status: {status}"))
        .line(format!("Backup ID: {}", r.backup_id))
        .light()
        .field("Mode", &r.mode);
    if let Some(c) = &r.chain {
        b.field("Chain", c);
    }
    if let Some(p) = &r.parent {
        b.field("Continues", p);
    }
    if r.shard_count > 1 {
        b.field(
            "Shard",
            format!("{} of {}", r.shard_index + 1, r.shard_count),
        );
    }
    b.field("Topics", r.topics)
        .field("Partitions", r.partitions)
        .field("Records", thousands(r.records as i64))
        .field("Data", size(r.bytes))
        .field("Stored", size(r.stored_bytes))
        .field("Segments", thousands(r.segments as i64))
        .field("Groups Captured", r.groups_captured)
        .field(
            "Gaps",
            format!(
                "{} offsets ({} unexplained)",
                thousands(r.gaps.offsets as i64),
                thousands(r.gaps.unexplained as i64)
            ),
        )
        .field(
            "Duration",
            format!("{} ms", thousands(r.duration_ms as i64)),
        );
    if !r.already_complete {
        b.field(
            "Throughput",
            format!(
                "{:.0} records/s, {:.1} MiB/s",
                r.records_per_second, r.mib_per_second
            ),
        );
    }
    let mut out = b.render();
    for w in &r.warnings {
        out.push_str(&format!("Warn: {w}\n"));
    }
    if r.interrupted {
        if let Some(lag) = r.lag {
            out.push_str(&format!(
                "Lag: {} offsets behind the high watermarks\n",
                thousands(lag as i64)
            ));
        }
        out.push_str(&format!("Checkpoint: {}\n", r.manifest));
    } else {
        out.push_str(&format!("Manifest: {}\n", r.manifest));
    }
    out
}

/// `tidemark list`
pub async fn list(a: BackupListArgs) -> Result<i32> {
    let storage = crate::app::open_storage_at(&a.storage.path, &a.storage.endpoint)?;
    let backups = list_backups(&storage).await?;
    match a.format.format {
        Format::Json => {
            print_json(&serde_json::json!({ "path": storage.display(), "backups": backups }))?
        }
        Format::Text => print!("{}", list_table(&backups)),
    }
    Ok(0)
}

fn list_table(backups: &[BackupSummary]) -> String {
    let mut out = String::from("Backups:\n\n");
    out.push_str(&format!(
        "{:<36} {:<10} {:<20} {:>7} {:>12} {:>10}  {:<12} {:<16} {}\n",
        "BACKUP ID", "STATUS", "STARTED", "TOPICS", "RECORDS", "STORED", "MODE", "CHAIN", "PARENT"
    ));
    for b in backups {
        out.push_str(&format!(
            "{:<36} {:<10} {:<20} {:>7} {:>12} {:>10}  {:<12} {:<16} {}\n",
            b.backup_id,
            if b.complete {
                "complete".to_string()
            } else {
                format!("{}/{} shards", b.shards_complete, b.shards)
            },
            b.started_at
                .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                .unwrap_or_else(|| "-".into()),
            b.topics.len(),
            thousands(b.records as i64),
            size(b.stored_bytes),
            b.mode.as_deref().unwrap_or("-"),
            b.chain.as_deref().unwrap_or("-"),
            b.parent.as_deref().unwrap_or("-"),
        ));
        for p in &b.problems {
            out.push_str(&format!("  problem: {p}\n"));
        }
    }
    out.push_str(&format!("\nTotal: {} backups\n", backups.len()));
    out
}

/// `tidemark describe`
pub async fn describe(a: DescribeArgs) -> Result<i32> {
    let storage = crate::app::open_storage_at(&a.storage.path, &a.storage.endpoint)?;
    let manifests = load_manifests(&storage, &a.backup_id).await?;
    // The chain this backup completes, oldest first (a restore of it restores all of them).
    let links = match manifests[0].parent {
        None => Ok(vec![a.backup_id.clone()]),
        Some(_) => super::read::load_chain(&storage, &a.backup_id, crate::task::ChainScope::Full)
            .await
            .map(|l| l.into_iter().map(|l| l.backup_id).collect::<Vec<_>>())
            .map_err(|e| e.to_string()),
    };
    match a.format {
        DescribeFormat::Json => print_json(&manifests_doc(&manifests, &links))?,
        DescribeFormat::Yaml => print!(
            "{}",
            serde_yaml_ng::to_string(&manifests_doc(&manifests, &links))
                .map_err(|e| Error::Kafka(format!("failed to encode the description: {e}")))?
        ),
        DescribeFormat::Text => {
            let mut out = String::new();
            let m0 = &manifests[0];
            out.push_str(&format!("Backup {}\n", m0.backup_id));
            out.push_str(&format!(
                "  Mode: {}   Shards: {}   Compression: {}   Cluster: {}\n",
                m0.mode, m0.shard_count, m0.compression, m0.cluster
            ));
            if let Some(p) = &m0.parent {
                out.push_str(&format!("  Continues: {p}\n"));
                match &links {
                    Ok(l) => out.push_str(&format!(
                        "  Chain {}: {} links, oldest first: {}\n",
                        m0.chain.as_deref().unwrap_or("-"),
                        l.len(),
                        l.join(" > ")
                    )),
                    Err(e) => out.push_str(&format!("  Chain: broken: {e}\n")),
                }
            }
            out.push_str(&format!(
                "  Started: {}   Completed: {}\n\n",
                m0.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
                manifests
                    .iter()
                    .map(|m| m.completed_at)
                    .max()
                    .unwrap_or(m0.completed_at)
                    .format("%Y-%m-%d %H:%M:%S UTC")
            ));
            let mut topics: BTreeMap<&String, Vec<(i32, &super::manifest::PartitionData)>> =
                BTreeMap::new();
            for m in &manifests {
                for (t, td) in &m.topics {
                    topics
                        .entry(t)
                        .or_default()
                        .extend(td.partition_data.iter().map(|(p, d)| (*p, d)));
                }
            }
            for (t, mut parts) in topics {
                parts.sort_by_key(|(p, _)| *p);
                out.push_str(&format!("Topic: {t}\n"));
                out.push_str(&format!(
                    "  {:>9} {:>14} {:>14} {:>12} {:>9} {:>10} {:>10}  {:<24} {}\n",
                    "PARTITION",
                    "START",
                    "END",
                    "RECORDS",
                    "SEGMENTS",
                    "DATA",
                    "STORED",
                    "FIRST TIMESTAMP",
                    "LAST TIMESTAMP"
                ));
                for (p, d) in parts {
                    let lo = d.segments.iter().map(|s| s.stats.min_timestamp).min();
                    let hi = d.segments.iter().map(|s| s.stats.max_timestamp).max();
                    let ts = |v: Option<i64>| {
                        v.and_then(chrono::DateTime::<Utc>::from_timestamp_millis)
                            .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
                            .unwrap_or_else(|| "-".into())
                    };
                    out.push_str(&format!(
                        "  {:>9} {:>14} {:>14} {:>12} {:>9} {:>10} {:>10}  {:<24} {}\n",
                        p,
                        d.start_offset,
                        d.end_offset,
                        thousands(d.records as i64),
                        d.segments.len(),
                        size(d.bytes),
                        size(d.stored_bytes),
                        ts(lo),
                        ts(hi)
                    ));
                    if let Some(x) = &d.discontinuity {
                        out.push_str(&format!(
                            "  {:>9} {}: the parent backup ended at {}, this one starts the log at {}\n",
                            "",
                            match x.kind {
                                super::manifest::DiscontinuityKind::Recreated => "topic re-created",
                                super::manifest::DiscontinuityKind::Truncated => "log truncated",
                            },
                            x.parent_end,
                            x.new_start
                        ));
                    }
                }
                out.push('\n');
            }
            print!("{out}");
        }
    }
    Ok(0)
}

fn manifests_doc(
    manifests: &[super::manifest::Manifest],
    links: &std::result::Result<Vec<String>, String>,
) -> serde_json::Value {
    let mut doc = if manifests.len() == 1 {
        serde_json::to_value(&manifests[0]).unwrap_or(serde_json::Value::Null)
    } else {
        serde_json::json!({ "backup_id": manifests[0].backup_id, "shards": manifests })
    };
    if let Some(o) = doc.as_object_mut() {
        match links {
            Ok(l) => o.insert("links".into(), serde_json::json!(l)),
            Err(e) => o.insert("links_problem".into(), serde_json::json!(e)),
        };
    }
    doc
}

/// `tidemark verify-backup`
pub async fn verify(a: VerifyBackupArgs) -> Result<i32> {
    let storage = crate::app::open_storage_at(&a.storage.path, &a.storage.endpoint)?;
    let r = verify_backup(&storage, &a.backup_id, a.deep).await?;
    match a.format.format {
        Format::Json => print_json(&r)?,
        Format::Text => {
            let mut b = BoxReport::new("BACKUP VERIFICATION");
            b.line(if r.ok {
                "✓ VERIFIED - every segment is intact and matches the manifest".to_string()
            } else {
                format!("✗ {} PROBLEMS FOUND", r.problems.len())
            })
            .light()
            .field("Backup ID", &r.backup_id)
            .field(
                "Mode",
                if r.deep {
                    "deep (every record decoded)"
                } else {
                    "checksums and headers"
                },
            )
            .field("Partitions", r.partitions)
            .field("Segments", thousands(r.segments_checked as i64))
            .field("Bytes Read", size(r.bytes_checked));
            if r.deep {
                b.field("Records", thousands(r.records_checked as i64));
            }
            print!("{}", b.render());
            for p in &r.problems {
                println!("  {}: {}", p.object, p.problem);
            }
        }
    }
    if r.ok {
        Ok(0)
    } else {
        Err(Error::VerificationFailed(format!(
            "backup '{}' failed verification: {} problems (first: {}: {})",
            r.backup_id,
            r.problems.len(),
            r.problems[0].object,
            r.problems[0].problem
        )))
    }
}

/// Default of [`BackupCleanupTask::incomplete_grace_period`].
pub const DEFAULT_INCOMPLETE_GRACE: &str = "24h";

/// What a retention run deleted and kept.
#[derive(Debug, Clone, Serialize)]
pub struct CleanupReport {
    pub chain: String,
    /// Every backup deleted: complete ones past the retention, then incomplete ones.
    pub deleted: Vec<String>,
    /// Of `deleted`, the incomplete backups whose last write was older than the grace period.
    pub deleted_incomplete: Vec<String>,
    pub kept: Vec<String>,
    /// Backups kept only because a kept incremental backup builds on them.
    pub kept_as_parents: Vec<String>,
    /// Complete backups that failed verification (or build on one that did): never counted
    /// as kept and never deleted by retention, so a person can look at them.
    pub damaged: Vec<String>,
}

/// Applies retention to one chain. Only *usable* complete backups count: their manifests and
/// every segment's checksum verify (what `verify-backup` checks), and so does every backup
/// they build on. The newest usable one is always kept, then the newest `keep_last` usable
/// ones within `max_age`; a backup a kept incremental builds on is never deleted; damaged
/// ones are reported and left alone. Incomplete backups of the chain (interrupted, never
/// resumed) are deleted once their last write is older than the grace period. Each deleted
/// backup loses its manifests first, so a partly deleted backup is never mistaken for a
/// complete one.
pub async fn run_cleanup_task(t: &BackupCleanupTask) -> Result<CleanupReport> {
    t.validate()?;
    let storage = crate::run::open_location(&t.storage)?;
    let max_age = t.max_age.as_deref().map(parse_age).transpose()?;
    let grace = parse_age(
        t.incomplete_grace_period
            .as_deref()
            .unwrap_or(DEFAULT_INCOMPLETE_GRACE),
    )?;
    let all = list_backups(&storage).await?;
    let mut chain: Vec<&BackupSummary> = all
        .iter()
        .filter(|b| b.complete && b.chain.as_deref() == Some(t.chain.as_str()))
        .collect();
    chain.sort_by_key(|b| std::cmp::Reverse(b.completed_at));
    let parents: BTreeMap<&str, &str> = chain
        .iter()
        .filter_map(|b| b.parent.as_deref().map(|p| (b.backup_id.as_str(), p)))
        .collect();
    let mut verdicts: BTreeMap<String, bool> = BTreeMap::new();
    let now = Utc::now();
    let mut keep: BTreeSet<String> = BTreeSet::new();
    let mut damaged = Vec::new();
    let mut counted = 0u32;
    for b in &chain {
        let within_count = t.keep_last.is_none_or(|n| counted < n);
        let within_age = match (max_age, b.completed_at) {
            (Some(age), Some(done)) => now - done <= age,
            _ => true,
        };
        if !(counted == 0 || (within_count && within_age)) {
            continue;
        }
        if usable(&storage, &b.backup_id, &parents, &mut verdicts).await? {
            keep.insert(b.backup_id.clone());
            counted += 1;
        } else {
            damaged.push(b.backup_id.clone());
        }
    }
    let mut kept_as_parents = Vec::new();
    let mut frontier: Vec<String> = keep.iter().chain(&damaged).cloned().collect();
    while let Some(id) = frontier.pop() {
        if let Some(p) = parents.get(id.as_str()) {
            if keep.insert((*p).to_string()) {
                kept_as_parents.push((*p).to_string());
                frontier.push((*p).to_string());
            }
        }
    }
    let mut deleted = Vec::new();
    for b in &chain {
        if keep.contains(&b.backup_id) || damaged.contains(&b.backup_id) {
            continue;
        }
        delete_backup(&storage, &b.backup_id).await?;
        tracing::info!(backup_id = %b.backup_id, "deleted by retention");
        deleted.push(b.backup_id.clone());
    }
    let deleted_incomplete = remove_stale_incomplete(&storage, &all, &t.chain, grace).await?;
    deleted.extend(deleted_incomplete.iter().cloned());
    Ok(CleanupReport {
        chain: t.chain.clone(),
        deleted,
        deleted_incomplete,
        kept: chain
            .iter()
            .filter(|b| keep.contains(&b.backup_id))
            .map(|b| b.backup_id.clone())
            .collect(),
        kept_as_parents,
        damaged,
    })
}

/// Whether backup `id` verifies (manifests, segment checksums and headers) and so does every
/// backup it builds on (`parents`); a parent that is gone makes it unusable too. Verdicts are
/// kept in `seen`.
async fn usable(
    storage: &crate::storage::Storage,
    id: &str,
    parents: &BTreeMap<&str, &str>,
    seen: &mut BTreeMap<String, bool>,
) -> Result<bool> {
    let mut lineage = vec![id.to_string()];
    while let Some(p) = lineage.last().and_then(|c| parents.get(c.as_str())) {
        if lineage.iter().any(|l| l == p) {
            break;
        }
        lineage.push((*p).to_string());
    }
    for b in &lineage {
        let ok = match seen.get(b) {
            Some(ok) => *ok,
            None => {
                let ok = match verify_backup(storage, b, false).await {
                    Ok(r) => {
                        for p in r.problems.iter().take(5) {
                            tracing::warn!(backup_id = %b, object = %p.object, problem = %p.problem, "retention: the backup does not verify");
                        }
                        r.ok
                    }
                    Err(e @ (Error::Storage { .. } | Error::Connection { .. })) => return Err(e),
                    Err(e) => {
                        tracing::warn!(backup_id = %b, error = %e, "retention: the backup does not verify");
                        false
                    }
                };
                seen.insert(b.clone(), ok);
                ok
            }
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Deletes every object of backup `id`, its manifests first.
async fn delete_backup(storage: &crate::storage::Storage, id: &str) -> Result<()> {
    let dir = backup_dir(id);
    let mut objects = storage.list(&dir).await?;
    objects.sort_by_key(|o| !o.key.starts_with(&format!("{dir}manifest/")));
    for o in objects {
        storage.delete(&o.key).await?;
    }
    Ok(())
}

/// Deletes the incomplete backups of `chain` whose newest object is older than `grace`. The
/// chain of a backup no shard finished comes from its checkpoints; one whose chain is unknown
/// is left alone.
async fn remove_stale_incomplete(
    storage: &crate::storage::Storage,
    all: &[BackupSummary],
    chain: &str,
    grace: ChronoDuration,
) -> Result<Vec<String>> {
    let now = Utc::now();
    let mut removed = Vec::new();
    for b in all.iter().filter(|b| !b.complete) {
        let dir = backup_dir(&b.backup_id);
        let objects = storage.list(&dir).await?;
        let Some(last_write) = objects.iter().map(|o| o.last_modified).max() else {
            continue;
        };
        if now - last_write <= grace {
            continue;
        }
        let of_chain = match &b.chain {
            Some(c) => c == chain,
            None => checkpoint_chain(storage, &objects).await?.as_deref() == Some(chain),
        };
        if !of_chain {
            continue;
        }
        delete_backup(storage, &b.backup_id).await?;
        tracing::info!(backup_id = %b.backup_id, last_write = %last_write, "deleted by retention: incomplete past its grace period");
        removed.push(b.backup_id.clone());
    }
    Ok(removed)
}

/// The chain named by the first readable checkpoint among `objects`.
async fn checkpoint_chain(
    storage: &crate::storage::Storage,
    objects: &[crate::storage::ObjectInfo],
) -> Result<Option<String>> {
    for o in objects.iter().filter(|o| o.key.contains("/checkpoint/")) {
        let Some(data) = storage.get(&o.key).await? else {
            continue;
        };
        if let Ok(c) = super::manifest::Checkpoint::from_json(&data, &o.key) {
            if c.chain.is_some() {
                return Ok(c.chain);
            }
        }
    }
    Ok(None)
}

/// `30d`, `12h`, `90m`, `3600s`, `2w`.
pub fn parse_age(s: &str) -> Result<ChronoDuration> {
    tidemark_task::durations::parse_age(s).map_err(Error::invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_parse_and_bad_ones_are_refused() {
        assert_eq!(parse_age("30d").ok(), ChronoDuration::try_days(30));
        assert_eq!(parse_age("12h").ok(), ChronoDuration::try_hours(12));
        assert_eq!(parse_age("2w").ok(), ChronoDuration::try_weeks(2));
        for bad in ["", "d", "10", "10y", "-1d", "0h", "1.5d"] {
            assert!(parse_age(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn generated_ids_are_valid() {
        let id = generate_backup_id();
        assert!(id.starts_with("backup-"), "{id}");
        crate::snapshot::validate_id(&id).expect("valid");
    }
}
