//! Restores as use cases: a [`RestoreTask`] in, a [`FullReport`] out (data, then consumer
//! offsets), what both `tidemark restore` and `run --task` run; the checks of
//! `validate-restore` ([`validate_task`]); the offset mapping view of a backup ([`mapping_view`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde::Serialize;

use crate::backup::read::load_manifests;
use crate::error::{Error, Result};
use crate::kafka::{kafka_config_with, GroupAdmin};
use crate::plan::check::{check_preconditions, read_groups};
use crate::plan::restore::{
    check_same_restore, group_templates, restore_document, without_started,
};
use crate::plan::store::{PlanLocation, StoredPlan};
use crate::plan::PlanKind;
use crate::restore::engine::{
    checkpoint_store, prepare_targets, run_restore, LiveProgress, RestoreReport, RestoreRequest,
    TargetState,
};
use crate::restore::groups::{source_offsets, translate_and_apply, GroupsReport};
use crate::restore::mapping::{groups_key, mapping_key, newest_mapping, OffsetMapping};
use crate::restore::plan::{
    build_plan, deal_to_shard, fmt_ms, offset_actions, RestorePlan, TargetCheck, ValidationReport,
};
use crate::snapshot::OffsetSnapshot;
use crate::storage::{open_location, Storage};
use crate::task::{GroupStrategy, RestoreTask};

/// A whole restore run: data, then (when asked) consumer offsets.
#[derive(Debug, Clone, Serialize)]
pub struct FullReport {
    pub status: &'static str,
    #[serde(flatten)]
    pub restore: RestoreReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumer_groups: Option<GroupsReport>,
}

/// 0, or 10 when phase three left some consumer groups untranslated.
pub fn exit_code(r: &FullReport) -> i32 {
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
    let storage = open_location(&t.storage)?;
    let started = std::time::Instant::now();
    let admin = GroupAdmin::connect(&kafka_config_with(&t.kafka, credentials)?).await?;
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
            let json = serde_json::to_vec_pretty(&g).map_err(|e| {
                Error::malformed_json("restore groups record", groups_done.clone(), e)
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

/// Plans a restore (a task with `planOut`, the CLI's `--plan-out`): validates it as
/// `validate-restore` does and writes the plan to `location`. An invalid restore is refused
/// with the validation's problems; configs the target would refuse on the topics the restore
/// creates are not such a problem but listed in the plan (`refusedConfigs`: executing it fails
/// before creating any topic), so that whoever approves sees them. Changes nothing in Kafka.
pub async fn plan_restore(
    t: &RestoreTask,
    credentials: Option<(String, String)>,
    location: &PlanLocation,
) -> Result<(ValidationReport, StoredPlan)> {
    let (v, parts) = validate_parts(t, credentials.clone()).await;
    let parts = match parts {
        Some(p) if v.problems.is_empty() => p,
        _ => {
            return Err(Error::invalid(format!(
                "the restore of backup {} cannot be planned: {}",
                v.backup_id,
                v.problems.join("; ")
            )))
        }
    };
    let targets = parts.targets.unwrap_or_default();
    // The groups phase three translates: the task's, else every group of the offsets source.
    let offsets = parts
        .offsets
        .filter(|_| t.consumer_group_strategy != GroupStrategy::Skip)
        .map(|mut snap| {
            if !t.consumer_groups.is_empty() {
                snap.groups.retain(|g, _| t.consumer_groups.contains(g));
            }
            snap
        });
    let mut doc = restore_document(
        &parts.plan,
        &v.restore_id,
        &v.target_cluster,
        &targets,
        offsets.as_ref(),
        &v.warnings,
    );
    // The groups phase three commits: their state and offsets on the target now.
    let commits_groups =
        t.reset_consumer_offsets && t.consumer_group_strategy != GroupStrategy::Manual;
    if let (true, Some(changes)) = (commits_groups, &doc.restore) {
        let templates = group_templates(&parts.plan, changes);
        if !templates.is_empty() {
            let admin = GroupAdmin::connect(&kafka_config_with(&t.kafka, credentials)?).await?;
            doc.preconditions.groups =
                read_groups(&admin, &templates, crate::groups::DEFAULT_CONCURRENCY).await?;
        }
    }
    let stored = location.write(&doc).await?;
    Ok((v, stored))
}

/// Executes an approved restore plan read from `location` (of hash `hash`, when given): the
/// restore the task builds now must be the plan's (same chain, partitions, records) and the
/// target as the plan found it (topics, partitions, end offsets), else [`Error::PlanChanged`]
/// and nothing is written; then the restore runs.
pub async fn run_approved_restore(
    t: &RestoreTask,
    credentials: Option<(String, String)>,
    location: &PlanLocation,
    hash: Option<&str>,
    stop: Arc<AtomicBool>,
    progress: Arc<LiveProgress>,
) -> Result<(FullReport, StoredPlan)> {
    let stored = location.read_approved(hash, PlanKind::Restore).await?;
    let changes = stored
        .doc
        .restore
        .as_ref()
        .ok_or_else(|| Error::Malformed {
            kind: "plan",
            file: stored.key.clone(),
            reason: "a restore plan without its restore".into(),
        })?;
    t.validate()?;
    let shard = t.for_shard()?;
    let storage = open_location(&shard.storage)?;
    let mut now = build_plan(&storage, &shard).await?;
    deal_to_shard(&mut now, shard.shard_index.unwrap_or(0), shard.shard_count)?;
    let restore_id = shard.effective_restore_id();
    check_same_restore(changes, &now, &restore_id)?;
    // A retried, resumed or completed run of this restore: what it wrote is its own doing.
    let started = lanes_started(&storage, &shard, &restore_id, &now).await?;
    let pre = without_started(&stored.doc.preconditions, &started);
    let admin = GroupAdmin::connect(&kafka_config_with(&t.kafka, credentials.clone())?).await?;
    check_preconditions(&admin, &pre, 1, None).await?;
    drop(admin);
    let report = run_restore_task(t, credentials, stop, progress).await?;
    Ok((report, stored))
}

/// The target partitions this restore already wrote to (a retried, resumed or completed run):
/// its checkpoint's units and its stored offset mapping's partitions.
async fn lanes_started(
    storage: &Storage,
    t: &RestoreTask,
    restore_id: &str,
    plan: &RestorePlan,
) -> Result<std::collections::BTreeSet<(String, i32)>> {
    let mut started = std::collections::BTreeSet::new();
    if let Some(c) = checkpoint_store(storage, t, restore_id).load().await? {
        started.extend(
            plan.units
                .iter()
                .filter(|u| c.units.contains_key(&u.key()))
                .map(|u| (u.target_topic.clone(), u.target_partition)),
        );
    }
    let key = mapping_key(&t.backup_id, restore_id);
    if let Some(data) = storage.get(&key).await? {
        let m = OffsetMapping::from_json(&data, &key)?;
        started.extend(
            m.partitions
                .into_iter()
                .map(|p| (p.target_topic, p.target_partition)),
        );
    }
    Ok(started)
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

/// Checks a task against the backup and the target; never changes anything.
pub async fn validate_task(
    t: &RestoreTask,
    credentials: Option<(String, String)>,
) -> ValidationReport {
    validate_parts(t, credentials).await.0
}

/// What validation read, kept for a plan: the restore plan, the target as it is, and the
/// source offsets phase three translates.
#[derive(Debug, Clone)]
pub struct ValidatedParts {
    pub plan: RestorePlan,
    pub targets: Option<TargetState>,
    pub offsets: Option<OffsetSnapshot>,
}

/// [`validate_task`], with what it read (once the restore plan could be built).
pub async fn validate_parts(
    t: &RestoreTask,
    credentials: Option<(String, String)>,
) -> (ValidationReport, Option<ValidatedParts>) {
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
        refused_configs: Vec::new(),
        warnings: Vec::new(),
    };
    if let Err(e) = t.validate() {
        r.problems.push(e.to_string());
        return (r, None);
    }
    let shard = match t.for_shard() {
        Ok(s) => s,
        Err(e) => {
            r.problems.push(e.to_string());
            return (r, None);
        }
    };
    let t = &shard;
    r.restore_id = t.effective_restore_id();
    let storage = match open_location(&t.storage) {
        Ok(s) => s,
        Err(e) => {
            r.problems.push(e.to_string());
            return (r, None);
        }
    };
    let plan = match build_plan(&storage, t).await.and_then(|mut p| {
        deal_to_shard(&mut p, t.shard_index.unwrap_or(0), t.shard_count)?;
        Ok(p)
    }) {
        Ok(p) => p,
        Err(e) => {
            r.problems.push(e.to_string());
            return (r, None);
        }
    };
    fill_from_plan(&mut r, &plan);
    let mut parts = ValidatedParts {
        plan: plan.clone(),
        targets: None,
        offsets: None,
    };
    if t.reset_consumer_offsets || t.consumer_group_strategy == GroupStrategy::Manual {
        match source_offsets(&storage, &plan, t).await {
            Ok((snap, _)) => parts.offsets = Some(snap),
            Err(e) => r.problems.push(e.to_string()),
        }
    }
    let config = match kafka_config_with(&t.kafka, credentials) {
        Ok(c) => c,
        Err(e) => {
            r.problems.push(e.to_string());
            return (finish(r), Some(parts));
        }
    };
    let checkpoint = checkpoint_store(&storage, t, &r.restore_id)
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
                r.problems.extend(st.problems.iter().cloned());
                r.refused_configs.extend(st.refused.iter().cloned());
                r.warnings.extend(st.warnings.iter().cloned());
                r.warnings.extend(st.configs_kept_note());
                for c in &mut r.targets {
                    if let Some((parts, held, state)) = st.topics.get(&c.topic) {
                        c.partitions = *parts;
                        c.existing_records = *held;
                        c.state = state.clone();
                    }
                }
                parts.targets = Some(st);
            }
        },
    }
    (finish(r), Some(parts))
}

fn finish(mut r: ValidationReport) -> ValidationReport {
    r.valid = r.problems.is_empty() && r.refused_configs.is_empty();
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
