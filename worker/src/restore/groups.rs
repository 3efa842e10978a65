//! Phase three of a restore: the consumer offsets captured with the backup (or a given offset
//! snapshot) translated into the target's offsets, and committed through the offset-reset
//! machinery (safety snapshot first, only Empty/Dead groups, dry run available).
//!
//! Strategies (those of the kafka-backup restore configuration):
//! - `header-based`: exact, through the restore's offset mapping (the records also carry their
//!   original offsets in headers for applications that seek by them);
//! - `cluster-scan`: the mapping is rebuilt from the target itself, by reading the
//!   original-offset headers of the restored records, then used the same way;
//! - `timestamp-based`: the record a committed offset points at is looked up in the backup, and
//!   its timestamp in the target (Kafka's time index, verified): approximate when timestamps
//!   repeat or go backwards;
//! - `manual`: the translation is reported (and written to `offset_report`), nothing committed;
//! - `skip`: nothing.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use serde::Serialize;

use super::mapping::{OffsetMapping, PartitionMapping, TranslatedOffset};
use super::plan::RestorePlan;
use crate::backup::read::read_segment;
use crate::error::{Error, Result};
use crate::kafka::{GroupAdmin, OffsetSpec};
use crate::reset::engine::{
    dry_run_report, execute, prepare, ResetReport, ResetRequest, SafetySnapshot,
};
use crate::reset::plan::{Explicit, Strategy};
use crate::snapshot::{OffsetSnapshot, SnapshotStore};
use crate::storage::Storage;
use crate::task::{GroupStrategy, HeaderStyle, RestoreTask};

/// One group's translation.
#[derive(Debug, Clone, Serialize)]
pub struct GroupTranslation {
    pub group: String,
    pub offsets: Vec<TranslatedOffset>,
    /// Committed source partitions the restore does not cover (left alone).
    pub uncovered: Vec<String>,
    pub notes: Vec<String>,
}

/// What phase three did.
#[derive(Debug, Clone, Serialize)]
pub struct GroupsReport {
    pub strategy: String,
    /// Where the source offsets came from.
    pub source: String,
    pub groups_total: usize,
    pub groups_translated: usize,
    pub groups_failed: usize,
    pub translations: Vec<GroupTranslation>,
    /// The commit (or its plan, in a dry run); absent for `manual`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reset: Option<ResetReport>,
    /// For `manual`: the commands that would set the offsets.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<String>,
    pub warnings: Vec<String>,
}

/// Loads the source offsets: a named snapshot in the backup storage, or what the backup
/// captured (every shard's offsets merged).
pub async fn source_offsets(
    storage: &Storage,
    plan: &RestorePlan,
    t: &RestoreTask,
) -> Result<(OffsetSnapshot, String)> {
    if let Some(id) = &t.offsets_snapshot_id {
        let snap = SnapshotStore::new(storage.clone()).load(id).await?;
        return Ok((snap, format!("offset snapshot '{id}'")));
    }
    let snap = captured_offsets(storage, &t.backup_id, &plan.offsets_keys).await?;
    Ok((
        snap,
        format!("consumer offsets captured with backup '{}'", t.backup_id),
    ))
}

/// The consumer offsets a backup captured (`keys`: one object per shard), merged.
pub async fn captured_offsets(
    storage: &Storage,
    backup_id: &str,
    keys: &[String],
) -> Result<OffsetSnapshot> {
    if keys.is_empty() {
        return Err(Error::invalid(format!(
            "backup '{backup_id}' holds no captured consumer offsets (it was taken without capture_offsets); give offsets_snapshot_id, an offset snapshot taken before the incident"
        )));
    }
    let mut merged: Option<OffsetSnapshot> = None;
    for key in keys {
        let data = storage.get(key).await?.ok_or_else(|| Error::Malformed {
            kind: "captured offsets",
            file: key.clone(),
            reason: "the object is missing".into(),
        })?;
        let snap = OffsetSnapshot::from_json(&data, key)?;
        match &mut merged {
            None => merged = Some(snap),
            Some(m) => {
                for (g, gs) in snap.groups {
                    match m.groups.get_mut(&g) {
                        Some(existing) => {
                            for (topic, parts) in gs.topics {
                                existing.topics.entry(topic).or_default().extend(parts);
                            }
                        }
                        None => {
                            m.groups.insert(g, gs);
                        }
                    }
                }
            }
        }
    }
    merged.ok_or_else(|| Error::invalid(format!("backup '{backup_id}' holds no captured offsets")))
}

/// `offset-reset --backup-id B`: the offsets captured with backup `B`, translated through the
/// mapping of its newest restore, as an explicit plan (every captured group; the reset's group
/// selection then picks from it).
pub async fn explicit_from_backup(storage: &Storage, backup_id: &str) -> Result<Explicit> {
    let manifests = crate::backup::read::load_manifests(storage, backup_id).await?;
    let mapping = super::mapping::newest_mapping(storage, backup_id)
        .await?
        .ok_or_else(|| {
            Error::invalid(format!(
                "backup '{backup_id}' has no restore in {}: its offset mapping is written by `tidemark restore`; restore it first",
                storage.display()
            ))
        })?;
    let keys: Vec<String> = manifests.iter().filter_map(|m| m.offsets.clone()).collect();
    let snap = captured_offsets(storage, backup_id, &keys).await?;
    let mut offsets = BTreeMap::new();
    for (g, gs) in &snap.groups {
        let committed: BTreeMap<(String, i32), i64> = gs
            .to_commits()
            .into_iter()
            .map(|c| ((c.topic, c.partition), c.offset))
            .collect();
        let tr = mapping.translate_group(&committed);
        if !tr.offsets.is_empty() {
            offsets.insert(g.clone(), tr.offsets);
        }
    }
    Ok(Explicit {
        source: format!(
            "the offset mapping of restore '{}' of backup '{backup_id}'",
            mapping.restore_id
        ),
        offsets,
    })
}

/// Translates the groups' offsets and, unless `manual` or `dry_run`, commits them.
pub async fn translate_and_apply(
    admin: &GroupAdmin,
    storage: &Storage,
    plan: &RestorePlan,
    mapping: &OffsetMapping,
    t: &RestoreTask,
    dry_run: bool,
) -> Result<GroupsReport> {
    let (snap, source) = source_offsets(storage, plan, t).await?;
    let mut warnings = Vec::new();
    let selected: Vec<String> = if t.consumer_groups.is_empty() {
        snap.groups.keys().cloned().collect()
    } else {
        t.consumer_groups.clone()
    };
    let mut failed = 0;
    let mut per_group: BTreeMap<String, BTreeMap<(String, i32), i64>> = BTreeMap::new();
    for g in &selected {
        match snap.groups.get(g) {
            Some(gs) => {
                let committed: BTreeMap<(String, i32), i64> = gs
                    .to_commits()
                    .into_iter()
                    .map(|c| ((c.topic, c.partition), c.offset))
                    .collect();
                per_group.insert(g.clone(), committed);
            }
            None => {
                failed += 1;
                warnings.push(format!("Consumer group '{g}' not found in the {source}"));
            }
        }
    }
    let translated: BTreeMap<String, super::mapping::Translation> = match t.consumer_group_strategy
    {
        GroupStrategy::Skip => BTreeMap::new(),
        GroupStrategy::HeaderBased | GroupStrategy::Manual => per_group
            .iter()
            .map(|(g, c)| (g.clone(), mapping.translate_group(c)))
            .collect(),
        GroupStrategy::ClusterScan => {
            let scanned = scan_target(admin, mapping, t.original_header_style).await?;
            per_group
                .iter()
                .map(|(g, c)| (g.clone(), scanned.translate_group(c)))
                .collect()
        }
        GroupStrategy::TimestampBased => {
            let mut out = BTreeMap::new();
            let mut cache = HashMap::new();
            for (g, c) in &per_group {
                out.insert(
                    g.clone(),
                    by_timestamp(admin, storage, plan, mapping, c, &mut cache, &mut warnings)
                        .await?,
                );
            }
            out
        }
    };
    let mut translations = Vec::new();
    let mut offsets: BTreeMap<String, BTreeMap<(String, i32), i64>> = BTreeMap::new();
    for (g, tr) in &translated {
        if !tr.offsets.is_empty() {
            offsets.insert(g.clone(), tr.offsets.clone());
        }
        translations.push(GroupTranslation {
            group: g.clone(),
            offsets: tr.rows.clone(),
            uncovered: tr
                .uncovered
                .iter()
                .map(|(t, p)| format!("{t}-{p}"))
                .collect(),
            notes: tr.notes.clone(),
        });
    }
    let mut report = GroupsReport {
        strategy: strategy_name(t.consumer_group_strategy).into(),
        source,
        groups_total: selected.len(),
        groups_translated: translations
            .iter()
            .filter(|g| !g.offsets.is_empty())
            .count(),
        groups_failed: failed,
        translations,
        reset: None,
        commands: Vec::new(),
        warnings,
    };
    if t.consumer_group_strategy == GroupStrategy::Manual {
        for g in &report.translations {
            for o in &g.offsets {
                report.commands.push(format!(
                    "kafka-consumer-groups --bootstrap-server {} --group {} --topic {}:{} --reset-offsets --to-offset {} --execute",
                    t.kafka.bootstrap_servers.join(","),
                    g.group,
                    o.target_topic,
                    o.target_partition,
                    o.target_offset
                ));
            }
        }
        return Ok(report);
    }
    if offsets.is_empty() || t.consumer_group_strategy == GroupStrategy::Skip {
        return Ok(report);
    }
    let started = Instant::now();
    let req = ResetRequest {
        selector: None,
        scope: Vec::new(),
        strategy: Strategy::Explicit(Explicit {
            source: format!("the offset mapping of restore '{}'", mapping.restore_id),
            offsets,
        }),
        strategy_label: format!("--from-restore {}", mapping.restore_id),
        concurrency: crate::task::DEFAULT_RESET_CONCURRENCY,
        max_retries: crate::task::DEFAULT_RESET_RETRIES,
        baseline: None,
    };
    let reset_plan = prepare(admin, &req).await?;
    let reset = if dry_run {
        dry_run_report(&reset_plan, started)
    } else {
        let safety = if t.snapshot_before_reset {
            SafetySnapshot::Take {
                store: SnapshotStore::new(storage.clone()),
                id: Some(format!("{}-before-offsets", mapping.restore_id)),
                reuse_existing: true,
                description: Some(format!(
                    "Offsets before restore '{}' of backup '{}' committed translated offsets",
                    mapping.restore_id, mapping.backup_id
                )),
            }
        } else {
            SafetySnapshot::Skip
        };
        execute(admin, &reset_plan, &safety, &req, started).await?
    };
    report.groups_failed += reset.failed_groups;
    report.reset = Some(reset);
    Ok(report)
}

pub fn strategy_name(s: GroupStrategy) -> &'static str {
    match s {
        GroupStrategy::Skip => "skip",
        GroupStrategy::HeaderBased => "header-based",
        GroupStrategy::TimestampBased => "timestamp-based",
        GroupStrategy::ClusterScan => "cluster-scan",
        GroupStrategy::Manual => "manual",
    }
}

/// `timestamp-based`: each committed offset becomes the timestamp of the backed-up record it
/// points at (the first at or after it), then the first target offset at or after that time.
async fn by_timestamp(
    admin: &GroupAdmin,
    storage: &Storage,
    plan: &RestorePlan,
    mapping: &OffsetMapping,
    committed: &BTreeMap<(String, i32), i64>,
    cache: &mut HashMap<String, Vec<(i64, i64)>>,
    warnings: &mut Vec<String>,
) -> Result<super::mapping::Translation> {
    let mut out = super::mapping::Translation::default();
    for ((topic, partition), offset) in committed {
        let (Some(pm), Some(unit)) = (
            mapping.partition(topic, *partition),
            // The newest era, as the mapping's (captured offsets refer to it).
            plan.units
                .iter()
                .rev()
                .find(|u| u.source_topic == *topic && u.source_partition == *partition),
        ) else {
            out.uncovered.push((topic.clone(), *partition));
            continue;
        };
        // The first backed-up record at or after the committed offset, and its time.
        let mut ts = None;
        for seg in unit
            .segments
            .iter()
            .filter(|s| s.stats.last_offset >= *offset)
        {
            let recs = match cache.get(&seg.key) {
                Some(r) => r.clone(),
                None => {
                    let r: Vec<(i64, i64)> = read_segment(storage, seg)
                        .await?
                        .iter()
                        .map(|r| (r.offset, r.timestamp))
                        .collect();
                    cache.insert(seg.key.clone(), r.clone());
                    r
                }
            };
            if let Some((_, t)) = recs
                .iter()
                .find(|(o, t)| *o >= *offset && plan.window.contains(*t))
            {
                ts = Some(*t);
                break;
            }
        }
        let tp = (pm.target_topic.clone(), pm.target_partition);
        let target = match ts {
            None => pm.target_end,
            Some(t) => {
                let e = admin
                    .list_offsets_isolated(std::slice::from_ref(&tp), OffsetSpec::Earliest, false)
                    .await?;
                let l = admin
                    .list_offsets_isolated(std::slice::from_ref(&tp), OffsetSpec::Latest, false)
                    .await?;
                let range = (
                    e.into_iter().next().transpose()?.map_or(0, |x| x.offset),
                    l.into_iter().next().transpose()?.map_or(0, |x| x.offset),
                );
                let ranges: HashMap<(String, i32), (i64, i64)> =
                    [(tp.clone(), range)].into_iter().collect();
                let found = crate::reset::lookup::offsets_for_time(
                    admin,
                    std::slice::from_ref(&tp),
                    t,
                    &ranges,
                )
                .await?;
                match found.get(&tp) {
                    Some(f) => {
                        if let Some(w) = &f.warning {
                            warnings.push(w.clone());
                        }
                        f.offset
                    }
                    None => pm.target_end,
                }
            }
        };
        out.rows.push(TranslatedOffset {
            source_topic: topic.clone(),
            source_partition: *partition,
            source_offset: *offset,
            target_topic: tp.0.clone(),
            target_partition: tp.1,
            target_offset: target,
        });
        let e = out.offsets.entry(tp).or_insert(target);
        *e = (*e).min(target);
    }
    Ok(out)
}

/// `cluster-scan`: rebuilds the mapping by reading every restored target partition and the
/// original-offset headers of its records.
pub async fn scan_target(
    admin: &GroupAdmin,
    mapping: &OffsetMapping,
    style: HeaderStyle,
) -> Result<OffsetMapping> {
    let config = admin.config().clone();
    let parts = mapping.partitions.clone();
    let scanned = tokio::task::spawn_blocking(move || -> Result<Vec<PartitionMapping>> {
        let mut lanes: BTreeMap<(String, i32), Vec<&PartitionMapping>> = BTreeMap::new();
        for p in &parts {
            lanes
                .entry((p.target_topic.clone(), p.target_partition))
                .or_default()
                .push(p);
        }
        let mut out = Vec::new();
        for ((topic, partition), sources) in lanes {
            let start = sources
                .iter()
                .map(|p| p.target_end - p.records as i64)
                .min()
                .unwrap_or(0)
                .max(0);
            let mut fresh: Vec<PartitionMapping> = sources
                .iter()
                .map(|p| {
                    PartitionMapping::new(
                        (&p.source_topic, p.source_partition),
                        (&p.target_topic, p.target_partition),
                        start,
                    )
                })
                .collect();
            scan_partition(&config, &topic, partition, start, style, &mut fresh)?;
            out.extend(fresh);
        }
        Ok(out)
    })
    .await
    .map_err(|e| Error::kafka_thread("scanning the target did not complete", e))??;
    Ok(OffsetMapping {
        partitions: scanned,
        ..mapping.clone()
    })
}

fn scan_partition(
    config: &crate::kafka::KafkaConfig,
    topic: &str,
    partition: i32,
    from: i64,
    style: HeaderStyle,
    out: &mut [PartitionMapping],
) -> Result<()> {
    let (off_name, _, part_name) = super::engine::header_names(style);
    let consumer = config.partition_reader(
        "tidemark-cluster-scan",
        crate::kafka::Isolation::ReadCommitted,
        "earliest",
        topic,
        partition,
    )?;
    let (_, high) = consumer
        .fetch_watermarks(topic, partition, Duration::from_secs(10))
        .map_err(|e| Error::kafka(format!("cannot read the end of {topic}-{partition}"), e))?;
    crate::kafka::assign_from(&consumer, topic, partition, from)?;
    let mut missing = 0u64;
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut next = from;
    loop {
        if Instant::now() > deadline {
            return Err(Error::Kafka(format!(
                "scanning {topic}-{partition} timed out at offset {next}"
            )));
        }
        match consumer.poll(Duration::from_millis(500)) {
            None if next >= high => break,
            None => continue,
            Some(Err(KafkaError::PartitionEOF(_))) => break,
            Some(Err(e)) => {
                return Err(Error::kafka(
                    format!("scanning {topic}-{partition} failed"),
                    e,
                ))
            }
            Some(Ok(m)) => {
                next = m.offset() + 1;
                let mut source_offset = None;
                let mut source_partition = None;
                if let Some(h) = m.headers() {
                    for hd in h.iter() {
                        let text = hd.value.and_then(|v| std::str::from_utf8(v).ok());
                        if hd.key == off_name {
                            source_offset = text.and_then(|t| t.parse::<i64>().ok());
                        } else if Some(hd.key) == part_name {
                            source_partition = text.and_then(|t| t.parse::<i32>().ok());
                        }
                    }
                }
                let Some(so) = source_offset else {
                    missing += 1;
                    continue;
                };
                let (ts, _) = crate::backup::format::TimestampType::split_kafka(m.timestamp());
                let slot = match source_partition {
                    Some(sp) => out.iter_mut().find(|p| p.source_partition == sp),
                    None if out.len() == 1 => out.first_mut(),
                    None => None,
                };
                if let Some(p) = slot {
                    p.push(so, m.offset(), ts);
                }
            }
        }
    }
    if missing > 0 {
        tracing::warn!(
            topic,
            partition,
            records = missing,
            "records without an original-offset header were skipped by the scan"
        );
    }
    Ok(())
}
