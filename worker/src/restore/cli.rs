//! `tidemark restore`, `three-phase-restore`, `validate-restore`, `show-offset-mapping`, and
//! the restore task the operator runs.

use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde::Serialize;

use super::config::parse_config;
use super::engine::{prepare_targets, run_restore, LiveProgress, RestoreReport, RestoreRequest};
use super::groups::{source_offsets, translate_and_apply, GroupsReport};
use super::mapping::{groups_key, mapping_key, OffsetMapping};
use super::plan::{
    build_plan, deal_to_shard, fmt_ms, human_bytes, offset_actions, validation_box, RestorePlan,
    TargetCheck, ValidationReport,
};
use crate::app::{open_storage_at, print_json};
use crate::backup::manifest::BACKUPS_DIR;
use crate::backup::read::load_manifests;
use crate::cli::{
    DescribeFormat, Format, MappingFormat, RestoreArgs, ShowMappingArgs, ValidateRestoreArgs,
};
use crate::error::{Error, Result};
use crate::kafka::GroupAdmin;
use crate::report::{spawn_progress_bar, thousands, BoxReport};
use crate::run::TaskOutcome;
use crate::storage::Storage;
use crate::task::{GroupStrategy, RestoreTask, ResultRestore, TaskResult, PHASE_COMPLETED};

/// A whole restore run: data, then (when asked) consumer offsets.
#[derive(Debug, Clone, Serialize)]
pub struct FullReport {
    pub status: &'static str,
    #[serde(flatten)]
    pub restore: RestoreReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumer_groups: Option<GroupsReport>,
}

fn read_config(path: &std::path::Path) -> Result<super::config::RestoreConfig> {
    let text = crate::limits::read_text_limited(path, crate::limits::MAX_CONFIG_BYTES)?;
    parse_config(&text, &path.display().to_string(), |v| {
        std::env::var(v).ok()
    })
}

/// `restore` and (`three_phase`) `three-phase-restore`.
pub async fn restore(a: RestoreArgs, three_phase: bool) -> Result<i32> {
    let c = read_config(&a.config)?;
    let mut task = c.task;
    for (k, v) in crate::kafka::config::parse_properties(&a.kafka_properties)? {
        task.kafka.properties.insert(k, v);
    }
    task.kafka.tls_insecure_skip_verify |= a.insecure_skip_tls_verify;
    if a.restore_id.is_some() {
        task.restore_id = a.restore_id.clone();
    }
    if a.dry_run {
        task.dry_run = true;
    }
    if a.single_link {
        task.chain = crate::task::ChainScope::Single;
    }
    if three_phase {
        task.reset_consumer_offsets = true;
        if task.consumer_group_strategy == GroupStrategy::Skip {
            task.consumer_group_strategy = GroupStrategy::HeaderBased;
        }
    }
    task.validate()?;
    if task.dry_run {
        let report = validate_task(&task, c.credentials).await;
        match a.format.format {
            Format::Json => print_json(&report)?,
            Format::Text => print!("{}", validation_box(&report)),
        }
        return Ok(if report.valid { 0 } else { 2 });
    }
    let progress = Arc::new(LiveProgress::default());
    let bar = (a.format.format == Format::Text && std::io::stderr().is_terminal()).then(|| {
        let p = Arc::clone(&progress);
        spawn_progress_bar(move || {
            (
                p.records_total.load(Ordering::Relaxed),
                p.records.load(Ordering::Relaxed),
                format!(
                    "{} records, {}, {}/{} partitions",
                    thousands(p.records.load(Ordering::Relaxed)),
                    human_bytes(p.bytes.load(Ordering::Relaxed)),
                    p.partitions_done.load(Ordering::Relaxed),
                    p.partitions_total.load(Ordering::Relaxed)
                ),
            )
        })
    });
    let stop = crate::backup::cli::stop_on_signal();
    let result = run_restore_task(&task, c.credentials, stop, progress).await;
    if let Some((done, handle)) = bar {
        done.store(true, Ordering::SeqCst);
        let _ = handle.await;
    }
    let report = result?;
    match a.format.format {
        Format::Json => print_json(&report)?,
        Format::Text => print!("{}", restore_box(&report)),
    }
    Ok(exit_code(&report))
}

fn exit_code(r: &FullReport) -> i32 {
    match &r.consumer_groups {
        Some(g) if g.groups_failed > 0 => tidemark_task::exit::PARTIAL,
        _ => 0,
    }
}

/// Runs a restore task: the data (phase two), then the consumer offsets (phase three) when the
/// task asks for them or its strategy reports them.
pub async fn run_restore_task(
    t: &RestoreTask,
    credentials: Option<(String, String)>,
    stop: Arc<AtomicBool>,
    progress: Arc<LiveProgress>,
) -> Result<FullReport> {
    t.validate()?;
    let t = &t.for_shard()?;
    crate::metrics::WorkerMetrics::global().watch_restore(&progress);
    let restore_id = t.effective_restore_id();
    let storage = crate::run::open_location(&t.storage)?;
    let started = std::time::Instant::now();
    let admin = GroupAdmin::connect(&crate::run::kafka_config_with(&t.kafka, credentials)?).await?;
    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "cluster reached"
    );
    // Phase three translates over every shard's partitions: the whole plan is kept for it.
    let whole_plan = build_plan(&storage, t).await?;
    let mut plan = whole_plan.clone();
    deal_to_shard(&mut plan, t.shard_index.unwrap_or(0), t.shard_count)?;
    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "plan built"
    );
    let wants_groups =
        t.reset_consumer_offsets || t.consumer_group_strategy == GroupStrategy::Manual;
    // Phase one: the offsets to translate must exist before any record is written.
    if wants_groups {
        source_offsets(&storage, &plan, t).await?;
    }
    tracing::info!(
        restore_id = %restore_id,
        backup_id = %t.backup_id,
        records = plan.records,
        partitions = plan.units.len(),
        "restore starting"
    );
    let req = RestoreRequest {
        restore_id: restore_id.clone(),
        task: t.clone(),
        progress,
    };
    let mut report = run_restore(&admin, &storage, &plan, &req, stop.clone()).await?;
    if report.complete {
        store_offset_report(&storage, t, &restore_id).await?;
    }
    let mut groups = None;
    let groups_done = groups_key(&t.backup_id, &restore_id);
    if wants_groups && report.already_complete && storage.get(&groups_done).await?.is_some() {
        // Phase three ran when the restore completed: committing again would move groups
        // that have consumed since back to where the restore put them.
        report.warnings.push(format!(
            "consumer group offsets were committed when this restore completed ({groups_done}); nothing is committed again"
        ));
    } else if wants_groups && report.complete && t.shard_index.unwrap_or(0) > 0 {
        report.warnings.push(format!(
            "consumer group offsets are translated by shard 0 once all {} shards' data is in",
            t.shard_count
        ));
    } else if wants_groups && report.complete {
        let mapping = whole_mapping(&storage, t, &restore_id, &stop).await?;
        let g = translate_and_apply(&admin, &storage, &whole_plan, &mapping, t, false).await?;
        if t.consumer_group_strategy != GroupStrategy::Manual {
            let json = serde_json::to_vec_pretty(&g).map_err(|e| Error::Malformed {
                kind: "restore groups record",
                file: groups_done.clone(),
                reason: e.to_string(),
            })?;
            storage.put(&groups_done, json.into()).await?;
        }
        groups = Some(g);
    }
    Ok(FullReport {
        status: if groups.as_ref().is_some_and(|g| g.groups_failed > 0) {
            "partial_success"
        } else {
            "success"
        },
        restore: report,
        consumer_groups: groups,
    })
}

/// How often shard 0 looks for the other shards' mappings before phase three.
const SHARD_POLL: std::time::Duration = std::time::Duration::from_secs(2);

/// The offset mapping phase three translates through: the restore's own; with several shards
/// (this is shard 0), every shard's merged, waiting for each to be stored complete, up to
/// `shardWaitSecs`. A wait that runs out (or is stopped) is [`Error::Interrupted`]: the data of
/// the shards that finished is in, and running shard 0 again waits anew.
async fn whole_mapping(
    storage: &Storage,
    t: &RestoreTask,
    restore_id: &str,
    stop: &AtomicBool,
) -> Result<OffsetMapping> {
    let key = mapping_key(&t.backup_id, restore_id);
    let data = storage.get(&key).await?.ok_or_else(|| Error::Malformed {
        kind: "offset mapping",
        file: key.clone(),
        reason: "the object is missing".into(),
    })?;
    let mut mapping = OffsetMapping::from_json(&data, &key)?;
    let n = t.shard_count;
    if n <= 1 {
        return Ok(mapping);
    }
    let base = restore_id
        .strip_suffix(&format!("-s0-of-{n}"))
        .unwrap_or(restore_id);
    let wait = std::time::Duration::from_secs(t.shard_wait_secs());
    let deadline = std::time::Instant::now() + wait;
    for i in 1..n {
        let key = mapping_key(&t.backup_id, &crate::task::shard_restore_id(base, i, n));
        loop {
            if let Some(data) = storage.get(&key).await? {
                let m = OffsetMapping::from_json(&data, &key)?;
                if m.complete {
                    mapping.partitions.extend(m.partitions);
                    break;
                }
            }
            let why = if stop.load(Ordering::SeqCst) {
                "was stopped while waiting".to_string()
            } else if std::time::Instant::now() >= deadline {
                format!("waited {} s (shardWaitSecs)", wait.as_secs())
            } else {
                tokio::time::sleep(SHARD_POLL).await;
                continue;
            };
            return Err(Error::Interrupted(format!(
                "shard 0 of restore {base} {why} for shard {i} of {n} to complete its share ({key} is not stored complete): the finished shards' data is in, consumer group offsets are not translated yet; run shard 0 again once every shard has completed"
            )));
        }
    }
    mapping.partitions.sort_by(|a, b| {
        (&a.source_topic, a.source_partition, a.era).cmp(&(
            &b.source_topic,
            b.source_partition,
            b.era,
        ))
    });
    Ok(mapping)
}

/// Copies the offset mapping of a complete restore to the task's `offsetReportKey`, if any:
/// created once, so a re-run (or a run that finds the restore complete) keeps the same report.
async fn store_offset_report(storage: &Storage, t: &RestoreTask, restore_id: &str) -> Result<()> {
    let Some(report_key) = &t.offset_report_key else {
        return Ok(());
    };
    let key = mapping_key(&t.backup_id, restore_id);
    let data = storage.get(&key).await?.ok_or_else(|| Error::Malformed {
        kind: "offset mapping",
        file: key.clone(),
        reason: "the object is missing".into(),
    })?;
    storage.put_once(report_key, data).await?;
    tracing::info!(key = %report_key, "offset mapping report stored");
    Ok(())
}

/// The operator's restore task: a dry run validates; otherwise the restore runs.
pub async fn run_restore_outcome(t: &RestoreTask) -> Result<TaskOutcome> {
    if t.dry_run {
        let v = validate_task(t, None).await;
        let message = validation_line(&v);
        let report = serde_json::to_value(&v).unwrap_or_default();
        if !v.valid {
            return Err(Error::invalid(message));
        }
        return Ok(TaskOutcome {
            result: TaskResult {
                phase: PHASE_COMPLETED.into(),
                operation: Some("validate-restore".into()),
                message: message.clone(),
                restore: Some(ResultRestore {
                    restore_id: v.restore_id.clone(),
                    dry_run: true,
                    complete: false,
                    topics: v.topics_to_restore as u64,
                    partitions: v.partitions_to_restore as u64,
                    records_total: v.records_to_restore,
                    bytes_total: v.bytes_to_restore,
                    validation: Some(message),
                    ..ResultRestore::default()
                }),
                ..TaskResult::default()
            },
            report,
            exit_code: 0,
        });
    }
    let stop = crate::backup::cli::stop_on_signal();
    let r = run_restore_task(t, None, stop, Arc::default()).await?;
    let g = r.consumer_groups.as_ref();
    let message = format!(
        "Restore {} of backup {}: {} of {} records in {} partitions{}{}",
        r.restore.restore_id,
        r.restore.backup_id,
        r.restore.records,
        r.restore.records_total,
        r.restore.partitions,
        if r.restore.already_complete {
            " (already complete)"
        } else {
            ""
        },
        match g {
            Some(g) => format!(
                "; {} of {} groups translated ({}), {} failed",
                g.groups_translated, g.groups_total, g.strategy, g.groups_failed
            ),
            None => String::new(),
        }
    );
    let exit_code = exit_code(&r);
    Ok(TaskOutcome {
        result: TaskResult {
            phase: PHASE_COMPLETED.into(),
            operation: Some("restore".into()),
            snapshot_id: g
                .and_then(|g| g.reset.as_ref())
                .and_then(|r| r.snapshot_id.clone()),
            message,
            restore: Some(ResultRestore {
                restore_id: r.restore.restore_id.clone(),
                dry_run: false,
                complete: r.restore.complete,
                topics: r.restore.topics,
                partitions: r.restore.partitions,
                records_total: r.restore.records_total,
                records_restored: r.restore.records,
                bytes_total: r.restore.bytes_total,
                bytes_restored: r.restore.bytes,
                offset_mapping: Some(r.restore.offset_mapping.clone()),
                groups_translated: g.map_or(0, |g| g.groups_translated as u64),
                groups_failed: g.map_or(0, |g| g.groups_failed as u64),
                validation: None,
            }),
            ..TaskResult::default()
        },
        report: serde_json::to_value(&r).unwrap_or_default(),
        exit_code,
    })
}

fn validation_line(v: &ValidationReport) -> String {
    if v.valid {
        format!(
            "Restore of backup {} is valid: {} records ({}) in {} partitions of {} topics",
            v.backup_id,
            v.records_to_restore,
            human_bytes(v.bytes_to_restore),
            v.partitions_to_restore,
            v.topics_to_restore
        )
    } else {
        format!(
            "Restore of backup {} is invalid: {}",
            v.backup_id,
            v.problems.join("; ")
        )
    }
}

/// `validate-restore`: every check a restore makes before writing, reported together.
pub async fn validate(a: ValidateRestoreArgs) -> Result<i32> {
    let c = read_config(&a.config)?;
    let report = validate_task(&c.task, c.credentials).await;
    match a.format {
        DescribeFormat::Text => print!("{}", validation_box(&report)),
        DescribeFormat::Json => print_json(&report)?,
        DescribeFormat::Yaml => print!(
            "{}",
            serde_yaml_ng::to_string(&report)
                .map_err(|e| Error::Kafka(format!("failed to encode report: {e}")))?
        ),
    }
    Ok(if report.valid { 0 } else { 2 })
}

/// Checks a task against the backup and the target; never changes anything.
pub async fn validate_task(
    t: &RestoreTask,
    credentials: Option<(String, String)>,
) -> ValidationReport {
    let mut r = ValidationReport {
        status: "invalid",
        valid: false,
        backup_id: t.backup_id.clone(),
        links: Vec::new(),
        restore_id: t.effective_restore_id(),
        target_cluster: t.kafka.bootstrap_servers.join(","),
        topics_to_restore: 0,
        partitions_to_restore: 0,
        segments_to_process: 0,
        segments_skipped_by_time_index: 0,
        records_to_restore: 0,
        bytes_to_restore: 0,
        time_window_start: t.time_window_start,
        time_window_end: t.time_window_end,
        from: None,
        to: None,
        targets: Vec::new(),
        consumer_offset_actions: offset_actions(t),
        problems: Vec::new(),
        warnings: Vec::new(),
    };
    if let Err(e) = t.validate() {
        r.problems.push(e.to_string());
        return r;
    }
    let shard = match t.for_shard() {
        Ok(s) => s,
        Err(e) => {
            r.problems.push(e.to_string());
            return r;
        }
    };
    let t = &shard;
    r.restore_id = t.effective_restore_id();
    let storage = match crate::run::open_location(&t.storage) {
        Ok(s) => s,
        Err(e) => {
            r.problems.push(e.to_string());
            return r;
        }
    };
    let plan = match build_plan(&storage, t).await.and_then(|mut p| {
        deal_to_shard(&mut p, t.shard_index.unwrap_or(0), t.shard_count)?;
        Ok(p)
    }) {
        Ok(p) => p,
        Err(e) => {
            r.problems.push(e.to_string());
            return r;
        }
    };
    fill_from_plan(&mut r, &plan);
    if t.reset_consumer_offsets || t.consumer_group_strategy == GroupStrategy::Manual {
        if let Err(e) = source_offsets(&storage, &plan, t).await {
            r.problems.push(e.to_string());
        }
    }
    let config = match crate::run::kafka_config_with(&t.kafka, credentials) {
        Ok(c) => c,
        Err(e) => {
            r.problems.push(e.to_string());
            return finish(r);
        }
    };
    let checkpoint = super::engine::checkpoint_store(&storage, t, &r.restore_id)
        .load()
        .await
        .ok()
        .flatten()
        .map(|c| c.units)
        .unwrap_or_default();
    match GroupAdmin::connect(&config).await {
        Err(e) => r
            .problems
            .push(format!("the target cluster cannot be checked: {e}")),
        Ok(admin) => match prepare_targets(&admin, &plan, t, &checkpoint, true).await {
            Err(e) => r.problems.push(e.to_string()),
            Ok(st) => {
                r.problems.extend(st.problems);
                r.warnings.extend(st.warnings);
                for c in &mut r.targets {
                    if let Some((parts, held, state)) = st.topics.get(&c.topic) {
                        c.partitions = *parts;
                        c.existing_records = *held;
                        c.state = state.clone();
                    }
                }
            }
        },
    }
    finish(r)
}

fn finish(mut r: ValidationReport) -> ValidationReport {
    r.valid = r.problems.is_empty();
    r.status = if r.valid { "valid" } else { "invalid" };
    r
}

fn fill_from_plan(r: &mut ValidationReport, plan: &RestorePlan) {
    r.links = plan.links.clone();
    r.topics_to_restore = plan.topics;
    r.partitions_to_restore = plan.units.len();
    r.segments_to_process = plan.segments;
    r.segments_skipped_by_time_index = plan.segments_pruned;
    r.records_to_restore = plan.records;
    r.bytes_to_restore = plan.bytes;
    r.from = plan.min_timestamp.map(|m| fmt_ms(Some(m)));
    r.to = plan.max_timestamp.map(|m| fmt_ms(Some(m)));
    r.warnings.extend(plan.warnings.iter().cloned());
    r.targets = plan
        .targets
        .values()
        .map(|t| TargetCheck {
            topic: t.name.clone(),
            sources: t.sources.clone(),
            partitions_written: t.partitions_written.clone(),
            state: "unknown".into(),
            partitions: None,
            existing_records: None,
        })
        .collect();
}

/// The boxed report of a restore.
pub fn restore_box(r: &FullReport) -> String {
    let d = &r.restore;
    let mut b = BoxReport::new("RESTORE REPORT");
    let status = if d.already_complete {
        "COMPLETE (already complete; nothing was written)"
    } else if d.resumed {
        "COMPLETE (resumed from a checkpoint)"
    } else {
        "COMPLETE"
    };
    b.line(format!("Status: {status}"))
        .line(format!("Backup ID: {}", d.backup_id))
        .line(format!("Restore ID: {}", d.restore_id))
        .light()
        .field("Target", &d.target_cluster)
        .field("Topics", d.topics)
        .field("Partitions", d.partitions)
        .field(
            "Records",
            format!("{} of {}", thousands(d.records), thousands(d.records_total)),
        )
        .field("Data", human_bytes(d.bytes));
    if d.links.len() > 1 {
        b.field("Chain", d.links.join(" > "));
    }
    if d.resumed {
        b.field("Found On Resume", thousands(d.records_found_on_resume));
    }
    if !d.topics_created.is_empty() {
        b.field("Topics Created", d.topics_created.join(", "));
    }
    if !d.partitions_purged.is_empty() {
        b.field("Purged", d.partitions_purged.join(", "));
    }
    b.field(
        "Duration",
        format!("{} ms", thousands(d.duration_ms as i64)),
    );
    if !d.already_complete {
        b.field(
            "Throughput",
            format!(
                "{:.0} records/s, {:.1} MiB/s",
                d.records_per_second, d.mib_per_second
            ),
        );
    }
    if let Some(g) = &r.consumer_groups {
        b.heavy()
            .line("CONSUMER GROUPS")
            .light()
            .field("Strategy", &g.strategy)
            .field("Source", &g.source)
            .field(
                "Groups",
                format!(
                    "{} translated, {} failed, of {}",
                    g.groups_translated, g.groups_failed, g.groups_total
                ),
            );
        if let Some(reset) = &g.reset {
            b.field("Offsets Committed", reset.total_offsets_reset);
            if let Some(id) = &reset.snapshot_id {
                b.field("Safety Snapshot", id);
            }
        }
    }
    let mut out = b.render();
    for w in &d.warnings {
        out.push_str(&format!("Warn: {w}\n"));
    }
    if let Some(g) = &r.consumer_groups {
        for w in &g.warnings {
            out.push_str(&format!("Warn: {w}\n"));
        }
        for t in &g.translations {
            for o in &t.offsets {
                out.push_str(&format!(
                    "{}: {}-{} offset {} -> {}-{} offset {}\n",
                    t.group,
                    o.source_topic,
                    o.source_partition,
                    o.source_offset,
                    o.target_topic,
                    o.target_partition,
                    o.target_offset
                ));
            }
        }
        if let Some(reset) = &g.reset {
            for o in reset.outcomes_failed_first() {
                if let Some(e) = &o.error {
                    out.push_str(&format!("Group {} not changed: {e}\n", o.group));
                }
            }
            if let Some(cmd) = &reset.rollback_command {
                out.push_str(&format!("To undo the offset changes: {cmd}\n"));
            }
        }
        for c in &g.commands {
            out.push_str(&format!("{c}\n"));
        }
    }
    out.push_str(&format!("Offset mapping: {}\n", d.offset_mapping));
    out
}

/// One row of `show-offset-mapping`.
#[derive(Debug, Clone, Serialize)]
pub struct MappingRow {
    pub topic: String,
    pub partition: i32,
    pub target_topic: Option<String>,
    pub target_partition: Option<i32>,
    pub source_first: Option<i64>,
    pub source_last: Option<i64>,
    pub target_first: Option<i64>,
    pub target_last: Option<i64>,
    pub records: u64,
    pub first_timestamp: Option<i64>,
    pub last_timestamp: Option<i64>,
    /// Stretches of consecutive offsets (1 without gaps).
    pub runs: usize,
}

/// What `show-offset-mapping` prints.
#[derive(Debug, Clone, Serialize)]
pub struct MappingView {
    pub backup_id: String,
    /// `None` before any restore: the rows then show the backup's own offset ranges.
    pub restore_id: Option<String>,
    pub target_cluster: Option<String>,
    pub complete: Option<bool>,
    pub partitions: Vec<MappingRow>,
    /// The full mapping (json/yaml only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mapping: Option<OffsetMapping>,
}

/// `show-offset-mapping`
pub async fn show_offset_mapping(a: ShowMappingArgs) -> Result<i32> {
    let storage = open_storage_at(&a.storage.path, &a.storage.endpoint)?;
    let view = mapping_view(&storage, &a.backup_id, a.restore_id.as_deref()).await?;
    match a.format {
        MappingFormat::Text => print!("{}", mapping_text(&view)),
        MappingFormat::Table => print!("{}", mapping_table(&view)),
        MappingFormat::Json => print_json(&view)?,
        MappingFormat::Yaml => print!(
            "{}",
            serde_yaml_ng::to_string(&view)
                .map_err(|e| Error::Kafka(format!("failed to encode report: {e}")))?
        ),
        MappingFormat::Csv => print!("{}", mapping_csv(&view)),
    }
    Ok(0)
}

/// The mapping of a restore of `backup_id` (the named one, else the newest), or the backup's
/// offset ranges when it has never been restored.
pub async fn mapping_view(
    storage: &Storage,
    backup_id: &str,
    restore_id: Option<&str>,
) -> Result<MappingView> {
    let manifests = load_manifests(storage, backup_id).await?;
    let mapping = match restore_id {
        Some(id) => {
            crate::snapshot::validate_id(id)?;
            let key = mapping_key(backup_id, id);
            let data = storage.get(&key).await?.ok_or_else(|| {
                Error::invalid(format!(
                    "restore '{id}' of backup '{backup_id}' has no offset mapping in {} (it has not written any record yet, or the id is misspelt)",
                    storage.display()
                ))
            })?;
            Some(OffsetMapping::from_json(&data, &key)?)
        }
        None => newest_mapping(storage, backup_id).await?,
    };
    let partitions = match &mapping {
        Some(m) => m
            .partitions
            .iter()
            .map(|p| MappingRow {
                topic: p.source_topic.clone(),
                partition: p.source_partition,
                target_topic: Some(p.target_topic.clone()),
                target_partition: Some(p.target_partition),
                source_first: p.source_range().map(|r| r.0),
                source_last: p.source_range().map(|r| r.1),
                target_first: p.target_range().map(|r| r.0),
                target_last: p.target_range().map(|r| r.1),
                records: p.records,
                first_timestamp: p.time_range().map(|r| r.0),
                last_timestamp: p.time_range().map(|r| r.1),
                runs: p.runs.len(),
            })
            .collect(),
        None => {
            let mut rows = Vec::new();
            for m in &manifests {
                for (topic, td) in &m.topics {
                    for (p, pd) in &td.partition_data {
                        rows.push(MappingRow {
                            topic: topic.clone(),
                            partition: *p,
                            target_topic: None,
                            target_partition: None,
                            source_first: pd.segments.first().map(|s| s.stats.first_offset),
                            source_last: pd.segments.last().map(|s| s.stats.last_offset),
                            target_first: None,
                            target_last: None,
                            records: pd.records,
                            first_timestamp: pd
                                .segments
                                .iter()
                                .map(|s| s.stats.min_timestamp)
                                .min(),
                            last_timestamp: pd.segments.iter().map(|s| s.stats.max_timestamp).max(),
                            runs: pd.gaps.count as usize + usize::from(pd.records > 0),
                        });
                    }
                }
            }
            rows.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
            rows
        }
    };
    Ok(MappingView {
        backup_id: backup_id.to_string(),
        restore_id: mapping.as_ref().map(|m| m.restore_id.clone()),
        target_cluster: mapping.as_ref().map(|m| m.target_cluster.clone()),
        complete: mapping.as_ref().map(|m| m.complete),
        partitions,
        mapping,
    })
}

/// The newest restore mapping of a backup, if it was ever restored.
pub async fn newest_mapping(storage: &Storage, backup_id: &str) -> Result<Option<OffsetMapping>> {
    let prefix = format!("{BACKUPS_DIR}/{backup_id}/restores/");
    let mut found: Option<OffsetMapping> = None;
    for o in storage.list(&prefix).await? {
        if !o.key.ends_with("/mapping.json") {
            continue;
        }
        let Some(data) = storage.get(&o.key).await? else {
            continue;
        };
        let m = OffsetMapping::from_json(&data, &o.key)?;
        if found.as_ref().is_none_or(|f| m.created_at > f.created_at) {
            found = Some(m);
        }
    }
    Ok(found)
}

fn opt(v: Option<i64>) -> String {
    v.map_or("-".into(), |v| v.to_string())
}

fn mapping_text(v: &MappingView) -> String {
    let mut out = String::new();
    let title = "OFFSET MAPPING REPORT";
    // Columns: topic/partition 18, source range 21, target range 30, two timestamps 19 each,
    // each with a leading space and a separator.
    let w = 1 + 18 + 2 + 21 + 2 + 30 + 2 + 19 + 2 + 19;
    out += &format!("╔{}╗\n", "═".repeat(w));
    out += &format!("║{:^w$}║\n", title);
    out += &format!("╠{}╣\n", "═".repeat(w));
    out += &format!(
        "║ {:<width$}║\n",
        format!("Backup ID: {}", v.backup_id),
        width = w - 1
    );
    match &v.restore_id {
        Some(id) => {
            out += &format!(
                "║ {:<width$}║\n",
                format!(
                    "Restore ID: {id} ({}) -> {}",
                    if v.complete == Some(true) {
                        "complete"
                    } else {
                        "in progress"
                    },
                    v.target_cluster.as_deref().unwrap_or("-")
                ),
                width = w - 1
            );
        }
        None => {
            out += &format!(
                "║ {:<width$}║\n",
                "Not restored yet: source offset ranges of the backup",
                width = w - 1
            );
        }
    }
    out += &format!("╠{}╣\n", "═".repeat(w));
    out += &format!(
        "║ {:<18}│ {:<21}│ {:<30}│ {:<19}│ {:<19}║\n",
        "Topic/Partition",
        "Source Offset Range",
        "Target Offset Range",
        "First Timestamp",
        "Last Timestamp"
    );
    out += &format!("╠{}╣\n", "═".repeat(w));
    for r in &v.partitions {
        let target = match (&r.target_topic, r.target_first, r.target_last) {
            (Some(t), Some(a), Some(b))
                if t == &r.topic && r.target_partition == Some(r.partition) =>
            {
                format!("{a} - {b}")
            }
            (Some(t), Some(a), Some(b)) => {
                format!("{t}/{} {a} - {b}", r.target_partition.unwrap_or(-1))
            }
            (Some(_), _, _) => "(none restored)".into(),
            _ => "-".into(),
        };
        let short = |ms: Option<i64>| {
            let s = fmt_ms(ms);
            s.get(..19).unwrap_or(&s).to_string()
        };
        out += &format!(
            "║ {:<18}│ {:<21}│ {:<30}│ {:<19}│ {:<19}║\n",
            crate::report::truncate(&format!("{}/{}", r.topic, r.partition), 18),
            format!("{} - {}", opt(r.source_first), opt(r.source_last)),
            crate::report::truncate(&target, 30),
            short(r.first_timestamp),
            short(r.last_timestamp),
        );
    }
    out += &format!("╚{}╝\n", "═".repeat(w));
    if v.restore_id.is_some() {
        out += "\nTo move a consumer group to where it resumes in the target, translate its committed\n";
        out += "offsets with the restore (three-phase-restore, or offset-reset-bulk --backup-id), or:\n\n";
        for r in v.partitions.iter().filter(|r| r.target_first.is_some()) {
            out += &format!(
                "# start of the restored data of {}/{}\nkafka-consumer-groups --bootstrap-server <BROKER> --group <GROUP_NAME> --topic {}:{} --reset-offsets --to-offset {} --execute\n",
                r.topic,
                r.partition,
                r.target_topic.as_deref().unwrap_or(&r.topic),
                r.target_partition.unwrap_or(r.partition),
                opt(r.target_first)
            );
        }
    }
    out
}

/// The plain layout: a title, then per source topic a table of partition, first and last
/// source offset and record count (and, once restored, where each partition went).
fn mapping_table(v: &MappingView) -> String {
    let mut out = format!("Offset Mapping: {}\n{}\n", v.backup_id, "═".repeat(62));
    if let Some(id) = &v.restore_id {
        out += &format!(
            "Restore: {id} ({}) -> {}\n",
            if v.complete == Some(true) {
                "complete"
            } else {
                "in progress"
            },
            v.target_cluster.as_deref().unwrap_or("-")
        );
    }
    let restored = v.restore_id.is_some();
    let mut topics: Vec<&str> = v.partitions.iter().map(|r| r.topic.as_str()).collect();
    topics.sort_unstable();
    topics.dedup();
    for topic in topics {
        let rows: Vec<Vec<String>> = v
            .partitions
            .iter()
            .filter(|r| r.topic == topic)
            .map(|r| {
                let mut cells = vec![
                    r.partition.to_string(),
                    opt(r.source_first),
                    opt(r.source_last),
                    r.records.to_string(),
                ];
                if restored {
                    cells.push(format!(
                        "{}/{}",
                        r.target_topic.as_deref().unwrap_or("-"),
                        r.target_partition.map_or("-".into(), |p| p.to_string())
                    ));
                    cells.push(opt(r.target_first));
                    cells.push(opt(r.target_last));
                }
                cells
            })
            .collect();
        let mut header = vec!["Partition", "First Offset", "Last Offset", "Record Count"];
        if restored {
            header.extend(["Target", "Target First", "Target Last"]);
        }
        let widths: Vec<usize> = (0..header.len())
            .map(|i| {
                rows.iter()
                    .filter_map(|r| r.get(i))
                    .map(|c| c.chars().count())
                    .chain([header[i].len()])
                    .max()
                    .unwrap_or(0)
                    + 2
            })
            .collect();
        out += &format!("\nTopic: {topic}\n{}\n", "─".repeat(61));
        out += &table_line(&header, &widths);
        out += &format!("{}\n", "─".repeat(61));
        for cells in &rows {
            let cells: Vec<&str> = cells.iter().map(String::as_str).collect();
            out += &table_line(&cells, &widths);
        }
    }
    out
}

/// One line of a plain table: each cell left-aligned in its column's width, the last unpadded.
fn table_line(cells: &[&str], widths: &[usize]) -> String {
    let mut line = String::new();
    for (i, cell) in cells.iter().enumerate() {
        if i + 1 == cells.len() {
            line += cell;
        } else {
            let width = widths.get(i).copied().unwrap_or(0);
            line += &format!("{cell:<width$}");
        }
    }
    line + "\n"
}

fn mapping_csv(v: &MappingView) -> String {
    let mut out = String::from("topic,partition,target_topic,target_partition,source_first_offset,source_last_offset,target_first_offset,target_last_offset,records,first_timestamp,last_timestamp,runs\n");
    let o = |v: Option<i64>| v.map_or(String::new(), |v| v.to_string());
    for r in &v.partitions {
        out += &format!(
            "{},{},{},{},{},{},{},{},{},{},{},{}\n",
            csv_field(&r.topic),
            r.partition,
            r.target_topic.as_deref().map(csv_field).unwrap_or_default(),
            r.target_partition.map_or(String::new(), |p| p.to_string()),
            o(r.source_first),
            o(r.source_last),
            o(r.target_first),
            o(r.target_last),
            r.records,
            o(r.first_timestamp),
            o(r.last_timestamp),
            r.runs
        );
    }
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plain_table_has_a_table_per_topic() {
        let row = |topic: &str, partition: i32, last: i64| MappingRow {
            topic: topic.into(),
            partition,
            target_topic: None,
            target_partition: None,
            source_first: Some(0),
            source_last: Some(last),
            target_first: None,
            target_last: None,
            records: u64::try_from(last + 1).unwrap_or(0),
            first_timestamp: None,
            last_timestamp: None,
            runs: 1,
        };
        let view = MappingView {
            backup_id: "nightly".into(),
            restore_id: None,
            target_cluster: None,
            complete: None,
            partitions: vec![
                row("clicks", 0, 9),
                row("clicks", 1, 120_004),
                row("users", 0, 41),
            ],
            mapping: None,
        };
        let rule = "─".repeat(61);
        let want = format!(
            "Offset Mapping: nightly\n{}\n\n\
             Topic: clicks\n{rule}\n\
             Partition  First Offset  Last Offset  Record Count\n{rule}\n\
             0          0             9            10\n\
             1          0             120004       120005\n\n\
             Topic: users\n{rule}\n\
             Partition  First Offset  Last Offset  Record Count\n{rule}\n\
             0          0             41           42\n",
            "═".repeat(62)
        );
        assert_eq!(mapping_table(&view), want);

        // Once restored: the restore, and where each partition went.
        let mut restored = view;
        restored.restore_id = Some("dr-1".into());
        restored.target_cluster = Some("dr:9092".into());
        restored.complete = Some(true);
        restored.partitions.truncate(1);
        restored.partitions[0].target_topic = Some("clicks-dr".into());
        restored.partitions[0].target_partition = Some(3);
        restored.partitions[0].target_first = Some(100);
        restored.partitions[0].target_last = Some(109);
        let text = mapping_table(&restored);
        assert!(
            text.contains("Restore: dr-1 (complete) -> dr:9092\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "Partition  First Offset  Last Offset  Record Count  Target       Target First  Target Last\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("0          0             9            10            clicks-dr/3  100           109\n"),
            "{text}"
        );
    }

    #[test]
    fn the_mapping_box_lines_up() {
        let row = |topic: &str, target: &str| MappingRow {
            topic: topic.into(),
            partition: 0,
            target_topic: Some(target.into()),
            target_partition: Some(0),
            source_first: Some(0),
            source_last: Some(999_999),
            target_first: Some(0),
            target_last: Some(999_999),
            records: 1_000_000,
            first_timestamp: Some(1_705_312_800_000),
            last_timestamp: Some(1_705_316_400_000),
            runs: 1,
        };
        let view = MappingView {
            backup_id: "b1".into(),
            restore_id: Some("r1".into()),
            target_cluster: Some("kafka:9092".into()),
            complete: Some(true),
            partitions: vec![row("orders", "orders"), row("orders", "orders-restored")],
            mapping: None,
        };
        let text = mapping_text(&view);
        let boxed: Vec<usize> = text
            .lines()
            .take_while(|l| !l.is_empty())
            .map(|l| l.chars().count())
            .collect();
        assert!(boxed.iter().all(|n| *n == boxed[0]), "{text}");
        assert!(text.contains("orders-restored/0 0 - 999999"), "{text}");
        assert!(text.contains("2024-01-15 10:00:00"), "{text}");
        let csv = mapping_csv(&view);
        assert!(
            csv.lines().nth(2).is_some_and(
                |l| l.starts_with("orders,0,orders-restored,0,0,999999,0,999999,1000000,")
            ),
            "{csv}"
        );
    }
}
