//! The `backup`, `list`, `describe` and `verify-backup` commands: flags to a backup task, the
//! use case of [`crate::service::backup`], the report printed.

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use chrono::Utc;

use super::{open_storage_at, print_json};
use super::{
    BackupArgs, BackupListArgs, DescribeArgs, DescribeFormat, Format, RewrapArgs, VerifyBackupArgs,
};
use crate::backup::config::{parse_compression, parse_config, parse_mode};
use crate::backup::engine::{BackupReport, LiveProgress};
use crate::backup::manifest::{DiscontinuityKind, Manifest, PartitionData};
use crate::backup::read::{list_backups, load_manifests, verify_backup, BackupSummary};
use crate::error::{Error, Result};
use crate::groups::split_names;
use crate::report::{spawn_progress_bar, thousands, BoxReport};
use crate::service::backup::{interrupted_error, run_backup_task};
use crate::service::signals::stop_or_finish_on_signal;
use crate::task::{BackupTask, KafkaTarget, StorageTarget, TopicSelection};
use tidemark_task::TaskError;

/// The task's refusal of a backup built from flags and a configuration file: the field is
/// named as a setting (`setting 'shardIndex' is 3; ...`).
fn setting_message(error: &TaskError) -> String {
    match error.field() {
        Some(field) => field.message_naming(&format!("setting '{}'", field.path)),
        None => error.message(),
    }
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
                        encryption: a.endpoint.encryption(),
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
        .map_err(|e| Error::invalid(setting_message(&e)))?;
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
        .field("Groups Captured", r.groups_captured);
    if let Some(k) = &r.encryption_key_id {
        b.field("Encrypted With", format!("key '{k}'"));
    }
    b.field(
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
    let storage = open_storage_at(&a.storage.path, &a.storage.endpoint)?;
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
        if let Some(k) = &b.encryption_key_id {
            out.push_str(&format!("  encrypted with key '{k}'\n"));
        }
        for p in &b.problems {
            out.push_str(&format!("  problem: {p}\n"));
        }
    }
    out.push_str(&format!("\nTotal: {} backups\n", backups.len()));
    out
}

/// `tidemark describe`
pub async fn describe(a: DescribeArgs) -> Result<i32> {
    let storage = open_storage_at(&a.storage.path, &a.storage.endpoint)?;
    let manifests = load_manifests(&storage, &a.backup_id).await?;
    // The chain this backup completes, oldest first (a restore of it restores all of them).
    let links = match manifests[0].parent {
        None => Ok(vec![a.backup_id.clone()]),
        Some(_) => {
            crate::backup::read::load_chain(&storage, &a.backup_id, crate::task::ChainScope::Full)
                .await
                .map(|l| l.into_iter().map(|l| l.backup_id).collect::<Vec<_>>())
                .map_err(|e| e.to_string())
        }
    };
    match a.format {
        DescribeFormat::Json => print_json(&manifests_doc(&manifests, &links))?,
        DescribeFormat::Yaml => print!(
            "{}",
            serde_yaml_ng::to_string(&manifests_doc(&manifests, &links))
                .map_err(|e| Error::encode("the description", e))?
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
            let mut topics: BTreeMap<&String, Vec<(i32, &PartitionData)>> = BTreeMap::new();
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
                                DiscontinuityKind::Recreated => "topic re-created",
                                DiscontinuityKind::Truncated => "log truncated",
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
    manifests: &[Manifest],
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

/// `tidemark rewrap-keys`
pub async fn rewrap(a: RewrapArgs) -> Result<i32> {
    let storage = open_storage_at(&a.storage.path, &a.storage.endpoint)?;
    if storage.vault().is_none() {
        return Err(Error::invalid(
            "rewrap-keys needs the keys: --encryption-key-file (holding the old key and the new one, named by --encryption-key-id) or --kms-key-id (the new KMS key)",
        ));
    }
    let r = crate::backup::rewrap::rewrap(&storage, &a.backup_ids, a.all).await?;
    match a.format.format {
        Format::Json => print_json(&r)?,
        Format::Text => {
            let mut b = BoxReport::new("KEY RE-WRAP");
            b.field("Re-wrapped", r.rewrapped.len())
                .field("Already current", r.current.len())
                .field("Not encrypted", r.clear.len())
                .field("Now wrapped by", &r.key_id);
            print!("{}", b.render());
            for x in &r.rewrapped {
                println!("  {}: {} -> {}", x.object, x.from, x.to);
            }
        }
    }
    Ok(0)
}

/// `tidemark verify-backup`
pub async fn verify(a: VerifyBackupArgs) -> Result<i32> {
    let storage = open_storage_at(&a.storage.path, &a.storage.endpoint)?;
    let r = verify_backup(&storage, &a.backup_id, a.deep).await?;
    match a.format.format {
        Format::Json => print_json(&r)?,
        Format::Text => {
            let mut b = BoxReport::new("BACKUP VERIFICATION");
            b.line(if r.ok && !r.content_checked {
                "? NOT CHECKED - encrypted; every segment is present".to_string()
            } else if r.ok {
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
            if let Some(k) = &r.encryption_key_id {
                b.field(
                    "Encryption",
                    if r.content_checked {
                        format!("key '{k}', every object authenticated")
                    } else {
                        format!("key '{k}' not given: presence only")
                    },
                );
            }
            if r.deep {
                b.field("Records", thousands(r.records_checked as i64));
            }
            print!("{}", b.render());
            for p in &r.problems {
                println!("  {}: {}", p.object, p.problem);
            }
        }
    }
    if !r.ok {
        if let Some(p) = r
            .problems
            .iter()
            .find(|p| p.problem.starts_with("authentication failed"))
        {
            return Err(Error::Tampered {
                object: format!("'{}' in {}", p.object, storage.display()),
                reason: format!(
                    "{} (backup '{}': {} objects failed authentication, {} problems in all)",
                    p.problem.trim_start_matches("authentication failed: "),
                    r.backup_id,
                    r.authentication_failures,
                    r.problems.len()
                ),
            });
        }
        return Err(Error::VerificationFailed(format!(
            "backup '{}' failed verification: {} problems (first: {}: {})",
            r.backup_id,
            r.problems.len(),
            r.problems[0].object,
            r.problems[0].problem
        )));
    }
    if !r.content_checked {
        return Err(Error::invalid(format!(
            "backup '{}' is encrypted with key '{}': every segment is present, but their content can only be checked with the key; give it with --encryption-key-file or --kms-key-id",
            r.backup_id,
            r.encryption_key_id.as_deref().unwrap_or("?")
        )));
    }
    Ok(0)
}
