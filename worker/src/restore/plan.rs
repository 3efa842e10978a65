//! What a restore selects from a backup, and the report `validate-restore` prints.
//!
//! Selection, in order: topics (include/exclude patterns; empty include = every backed-up
//! topic), source partitions, then the PITR window: a segment is read only when its min/max
//! timestamps (the manifest's PITR index) overlap the window, and within a segment that
//! straddles a bound each record is kept when `start <= timestamp <= end` (both inclusive, to
//! the millisecond). Each selected source partition becomes a [`Unit`] aimed at its target
//! topic (`topic_mapping`) and partition (`partition_mapping`).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{TimeZone, Utc};
use serde::Serialize;

use crate::backup::manifest::{DiscontinuityKind, Manifest, SegmentEntry, TopicData};
use crate::backup::read::{load_chain, read_segment_shared, Link};
use crate::backup::select::TopicFilter;
use crate::error::{Error, Result};
use crate::report::thousands;
use crate::restore::configs::RefusedConfig;
use crate::storage::Storage;
use crate::task::{GroupStrategy, RestoreTask};

/// The PITR window, both ends inclusive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Window {
    pub start: Option<i64>,
    pub end: Option<i64>,
}

impl Window {
    pub fn is_open(&self) -> bool {
        self.start.is_none() && self.end.is_none()
    }

    /// Whether a record stamped `ts` is selected. With a bound set, a record without a
    /// timestamp (-1) cannot be placed in time and is not.
    pub fn contains(&self, ts: i64) -> bool {
        if self.is_open() {
            return true;
        }
        ts >= 0 && self.start.is_none_or(|s| ts >= s) && self.end.is_none_or(|e| ts <= e)
    }

    /// Whether a segment whose records span `[min, max]` may hold selected records.
    pub fn overlaps(&self, min: i64, max: i64) -> bool {
        self.start.is_none_or(|s| max >= s) && self.end.is_none_or(|e| min <= e)
    }

    /// Whether every record of a segment spanning `[min, max]` is selected.
    pub fn covers(&self, min: i64, max: i64) -> bool {
        self.is_open() || (min >= 0 && self.contains(min) && self.contains(max))
    }
}

/// One selected source partition (one era of it, see [`Unit::era`]) and where it goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Unit {
    pub source_topic: String,
    pub source_partition: i32,
    /// 0, or the number of times the topic was re-created before these records were written
    /// (within the links restored): offsets start over in each era, so each is a unit of its
    /// own, restored after the one before it into the same target partition.
    pub era: u32,
    pub target_topic: String,
    pub target_partition: i32,
    /// Segments overlapping the window, in offset order.
    pub segments: Vec<SegmentEntry>,
    /// Selected records and their key/value/header bytes (exact).
    pub records: u64,
    pub bytes: u64,
    /// Timestamps of the selected records.
    pub min_timestamp: Option<i64>,
    pub max_timestamp: Option<i64>,
    /// The partition's records and payload bytes in the backup (for byte estimates).
    pub backup_records: u64,
    pub backup_bytes: u64,
}

impl Unit {
    /// `topic/partition` of the source (`topic/partition~era` after a re-created topic), the
    /// unit's name in checkpoints and messages.
    pub fn key(&self) -> String {
        match self.era {
            0 => format!("{}/{}", self.source_topic, self.source_partition),
            e => format!("{}/{}~{e}", self.source_topic, self.source_partition),
        }
    }
}

/// A target topic and what re-creating it from the backup takes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetTopic {
    pub name: String,
    /// The backed-up topics restored into it.
    pub sources: Vec<String>,
    /// Partitions the restore writes to; the topic needs more than the largest.
    pub partitions_written: Vec<i32>,
    /// From the backup: partitions, replication factor and configs of the (first) source.
    pub backup_partitions: i32,
    pub backup_replication_factor: i32,
    pub backup_configs: BTreeMap<String, String>,
}

/// Everything a restore will do to the data, decided from the backup alone.
#[derive(Debug, Clone)]
pub struct RestorePlan {
    pub backup_id: String,
    /// The backups restored, oldest first: the chain up to `backup_id`, or that backup alone.
    pub links: Vec<String>,
    pub window: Window,
    /// In (source topic, partition) order.
    pub units: Vec<Unit>,
    pub targets: BTreeMap<String, TargetTopic>,
    pub topics: usize,
    pub segments: usize,
    /// Segments of the selected partitions skipped by the PITR index.
    pub segments_pruned: usize,
    pub records: u64,
    pub bytes: u64,
    pub min_timestamp: Option<i64>,
    pub max_timestamp: Option<i64>,
    /// The captured consumer offsets' keys (one per shard), if captured.
    pub offsets_keys: Vec<String>,
    pub warnings: Vec<String>,
}

/// Reads the backup's manifests and selects what `t` asks for. Every selection mistake is an
/// [`Error::InvalidInput`] naming the option: nothing selected, a mapping or partition the
/// backup does not hold, two sources merged out of order, an empty window.
pub async fn build_plan(storage: &Storage, t: &RestoreTask) -> Result<RestorePlan> {
    let links = load_chain(storage, &t.backup_id, t.chain).await?;
    let mut plan = select_links(&links, t)?;
    let manifests: Vec<Manifest> = links.into_iter().flat_map(|l| l.manifests).collect();
    count_selected(storage, &mut plan).await?;
    if plan.records == 0 {
        return Err(Error::invalid(format!(
            "no record of backup '{}' is selected: {} (the backup holds records from {} to {})",
            t.backup_id,
            describe_window(plan.window),
            fmt_ms(backup_min(&manifests)),
            fmt_ms(backup_max(&manifests)),
        )));
    }
    Ok(plan)
}

/// Keeps the share of shard `index` of `count`: the target partitions, in (topic, partition)
/// order, are dealt round-robin (as a backup deals its partitions), and a shard restores every
/// unit written to its target partitions, so no two shards ever write to one partition. The
/// counts follow the share; a target topic keeps the partition count the whole restore needs,
/// so whichever shard creates it creates it the same. A shard left without a partition is an
/// error naming how many shards the restore can use.
pub fn deal_to_shard(plan: &mut RestorePlan, index: u32, count: u32) -> Result<()> {
    if count <= 1 {
        return Ok(());
    }
    let lanes: BTreeSet<(String, i32)> = plan
        .units
        .iter()
        .map(|u| (u.target_topic.clone(), u.target_partition))
        .collect();
    let total = lanes.len();
    let mine: BTreeSet<(String, i32)> = lanes
        .into_iter()
        .enumerate()
        .filter(|(i, _)| (*i as u64) % u64::from(count) == u64::from(index))
        .map(|(_, lane)| lane)
        .collect();
    if mine.is_empty() {
        return Err(Error::invalid(format!(
            "task field 'shardCount': is {count}, but the restore writes to only {total} target partition{}: shard {index} has none; use at most {total} shards",
            if total == 1 { "" } else { "s" }
        )));
    }
    plan.units
        .retain(|u| mine.contains(&(u.target_topic.clone(), u.target_partition)));
    for target in plan.targets.values_mut() {
        let needed = target.partitions_written.iter().max().copied().unwrap_or(0) + 1;
        target.backup_partitions = target.backup_partitions.max(needed);
        target
            .partitions_written
            .retain(|p| mine.contains(&(target.name.clone(), *p)));
    }
    plan.targets.retain(|_, t| !t.partitions_written.is_empty());
    let topics: BTreeSet<&str> = plan.units.iter().map(|u| u.source_topic.as_str()).collect();
    plan.topics = topics.len();
    plan.segments = plan.units.iter().map(|u| u.segments.len()).sum();
    plan.records = plan.units.iter().map(|u| u.records).sum();
    plan.bytes = plan.units.iter().map(|u| u.bytes).sum();
    plan.min_timestamp = plan.units.iter().filter_map(|u| u.min_timestamp).min();
    plan.max_timestamp = plan.units.iter().filter_map(|u| u.max_timestamp).max();
    Ok(())
}

fn describe_window(w: Window) -> String {
    match (w.start, w.end) {
        (None, None) => "the selected partitions are empty".into(),
        _ => format!(
            "no record is stamped within the time window {} .. {}",
            w.start
                .map_or("(open)".into(), |s| format!("{s} ({})", fmt_ms(Some(s)))),
            w.end
                .map_or("(open)".into(), |e| format!("{e} ({})", fmt_ms(Some(e)))),
        ),
    }
}

fn backup_min(ms: &[Manifest]) -> Option<i64> {
    ms.iter()
        .flat_map(|m| m.topics.values())
        .flat_map(|t| t.partition_data.values())
        .flat_map(|p| p.segments.iter())
        .map(|s| s.stats.min_timestamp)
        .filter(|t| *t >= 0)
        .min()
}

fn backup_max(ms: &[Manifest]) -> Option<i64> {
    ms.iter()
        .flat_map(|m| m.topics.values())
        .flat_map(|t| t.partition_data.values())
        .flat_map(|p| p.segments.iter())
        .map(|s| s.stats.max_timestamp)
        .max()
}

/// `2024-01-15 10:00:00.000 UTC`, or `-` when unknown.
pub fn fmt_ms(ms: Option<i64>) -> String {
    match ms.and_then(|m| Utc.timestamp_millis_opt(m).single()) {
        Some(t) => t.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string(),
        None => "-".into(),
    }
}

/// A stretch of one partition's offsets over consecutive links (offsets only increase in it).
#[derive(Debug, Clone, Default)]
struct Era {
    segments: Vec<SegmentEntry>,
    records: u64,
    bytes: u64,
    /// Where the last link that covered the partition ended (exclusive).
    end: i64,
}

/// A topic over the links: the newest link's metadata and each partition's eras in order.
struct MergedTopic<'a> {
    meta: &'a TopicData,
    partitions: BTreeMap<i32, Vec<Era>>,
}

/// Puts the links' partitions end to end. A link whose partition records a re-created topic
/// starts a new era; a link that would repeat offsets its parent already holds is refused (a
/// chain never overlaps, so its manifests are inconsistent).
fn merge_links(links: &[Link]) -> Result<BTreeMap<&str, MergedTopic<'_>>> {
    let mut topics: BTreeMap<&str, MergedTopic<'_>> = BTreeMap::new();
    for link in links {
        for m in &link.manifests {
            for (name, td) in &m.topics {
                let merged = topics.entry(name.as_str()).or_insert(MergedTopic {
                    meta: td,
                    partitions: BTreeMap::new(),
                });
                merged.meta = td;
                for (p, pd) in &td.partition_data {
                    let eras = merged.partitions.entry(*p).or_default();
                    let new_era = eras.is_empty()
                        || pd
                            .discontinuity
                            .is_some_and(|d| d.kind == DiscontinuityKind::Recreated);
                    if new_era {
                        eras.push(Era::default());
                    }
                    let era = eras.last_mut().expect("an era was just ensured");
                    if let Some(first) = pd.segments.first() {
                        if !new_era && first.stats.first_offset < era.end {
                            return Err(Error::Malformed {
                                kind: "backup manifest",
                                file: crate::backup::manifest::manifest_key(
                                    &link.backup_id,
                                    m.shard_index,
                                    m.shard_count,
                                ),
                                reason: format!(
                                    "{name}-{p} starts at offset {}, before offset {} where the backups before it in the chain ended: the links overlap",
                                    first.stats.first_offset, era.end
                                ),
                            });
                        }
                    }
                    era.segments.extend(pd.segments.iter().cloned());
                    era.records += pd.records;
                    era.bytes += pd.bytes;
                    era.end = pd.end_offset;
                }
            }
        }
    }
    Ok(topics)
}

/// The pure part of planning for one backup (a chain of one link).
pub fn select(manifests: &[Manifest], t: &RestoreTask) -> Result<RestorePlan> {
    select_links(
        &[Link {
            backup_id: t.backup_id.clone(),
            manifests: manifests.to_vec(),
        }],
        t,
    )
}

/// The pure part of planning: topics, partitions, mappings and segment pruning, over the
/// links of a chain (oldest first).
pub fn select_links(links: &[Link], t: &RestoreTask) -> Result<RestorePlan> {
    let include: Vec<String> = if t.topics.include.is_empty() {
        vec!["*".into()]
    } else {
        t.topics.include.clone()
    };
    let filter = TopicFilter::new(&include, &t.topics.exclude)
        .map_err(|e| Error::invalid(format!("topics: {e}")))?;
    // Merge the links and their shards: topic -> partition -> eras.
    let topics = merge_links(links)?;
    let mut warnings = Vec::new();
    let selected = select_topics(&topics, &filter, &include, t, &mut warnings)?;
    let window = Window {
        start: t.time_window_start,
        end: t.time_window_end,
    };
    let wanted: BTreeSet<i32> = t.source_partitions.iter().copied().collect();
    let mut plan = empty_plan(links, t, window);
    let seen_partitions = add_topics(&mut plan, &topics, &selected, &wanted, t, &mut warnings);
    check_partitions(&plan, &seen_partitions, &wanted, t, &mut warnings)?;
    overlap_warnings(&mut plan, t, &mut warnings);
    plan.warnings = warnings;
    Ok(plan)
}

/// The backed-up topics the patterns select (an error when none), warning of include patterns
/// that match nothing; every topic_mapping source must be among them.
fn select_topics(
    topics: &BTreeMap<&str, MergedTopic<'_>>,
    filter: &TopicFilter,
    include: &[String],
    t: &RestoreTask,
    warnings: &mut Vec<String>,
) -> Result<Vec<String>> {
    let all: Vec<String> = topics.keys().map(|s| s.to_string()).collect();
    let selected: Vec<&String> = filter.select(&all);
    if selected.is_empty() {
        return Err(Error::invalid(format!(
            "no topic of backup '{}' matches the topic patterns (include {:?}, exclude {:?}); it holds: {}",
            t.backup_id,
            include,
            t.topics.exclude,
            if all.is_empty() { "no topics".to_string() } else { all.join(", ") }
        )));
    }
    for pattern in filter.unmatched_includes(&all) {
        warnings.push(format!(
            "topic pattern '{pattern}' matches no backed-up topic"
        ));
    }
    for from in t.topic_mapping.keys() {
        if !selected.contains(&from) {
            return Err(Error::invalid(format!(
                "topic_mapping names '{from}', which is not among the topics restored ({})",
                selected
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    Ok(selected.into_iter().cloned().collect())
}

/// A plan with nothing in it yet, restoring the consumer offsets captured with the newest link
/// that captured any.
fn empty_plan(links: &[Link], t: &RestoreTask, window: Window) -> RestorePlan {
    let offsets_keys = links
        .iter()
        .rev()
        .map(|l| {
            l.manifests
                .iter()
                .filter_map(|m| m.offsets.clone())
                .collect::<Vec<_>>()
        })
        .find(|keys| !keys.is_empty())
        .unwrap_or_default();
    RestorePlan {
        backup_id: t.backup_id.clone(),
        links: links.iter().map(|l| l.backup_id.clone()).collect(),
        window,
        units: Vec::new(),
        targets: BTreeMap::new(),
        topics: 0,
        segments: 0,
        segments_pruned: 0,
        records: 0,
        bytes: 0,
        min_timestamp: None,
        max_timestamp: None,
        offsets_keys,
        warnings: Vec::new(),
    }
}

/// Adds the units of every selected topic's wanted partitions; returns the partitions the
/// selected topics have.
fn add_topics(
    plan: &mut RestorePlan,
    topics: &BTreeMap<&str, MergedTopic<'_>>,
    selected: &[String],
    wanted: &BTreeSet<i32>,
    t: &RestoreTask,
    warnings: &mut Vec<String>,
) -> BTreeSet<i32> {
    let mut seen_partitions = BTreeSet::new();
    for name in selected {
        let MergedTopic {
            meta: td,
            partitions: parts,
        } = &topics[name.as_str()];
        let target_topic = t
            .topic_mapping
            .get(name)
            .cloned()
            .unwrap_or_else(|| name.clone());
        let mut any = false;
        for (p, eras) in parts {
            seen_partitions.insert(*p);
            if !wanted.is_empty() && !wanted.contains(p) {
                continue;
            }
            let target_partition = t.partition_mapping.get(p).copied().unwrap_or(*p);
            add_units(
                plan,
                (name, *p),
                (&target_topic, target_partition),
                td,
                eras,
            );
            if eras.len() > 1 {
                warnings.push(format!(
                    "{name}-{p} was re-created within the chain: its {} eras are restored one after another into {target_topic}-{target_partition}; captured consumer offsets translate through the newest",
                    eras.len()
                ));
            }
            any = true;
        }
        if any {
            plan.topics += 1;
        }
    }
    seen_partitions
}

/// Every wanted source partition exists and something is restored; warns of partition_mapping
/// entries that restore nothing.
fn check_partitions(
    plan: &RestorePlan,
    seen_partitions: &BTreeSet<i32>,
    wanted: &BTreeSet<i32>,
    t: &RestoreTask,
    warnings: &mut Vec<String>,
) -> Result<()> {
    for p in wanted {
        if !seen_partitions.contains(p) {
            return Err(Error::invalid(format!(
                "source_partitions names partition {p}, which no restored topic has in backup '{}'",
                t.backup_id
            )));
        }
    }
    for from in t.partition_mapping.keys() {
        if !plan.units.iter().any(|u| u.source_partition == *from) {
            warnings.push(format!(
                "partition_mapping maps partition {from}, which is not restored"
            ));
        }
    }
    if plan.units.is_empty() {
        return Err(Error::invalid(format!(
            "no partition of the selected topics is restored (source_partitions {:?})",
            t.source_partitions
        )));
    }
    Ok(())
}

/// Warns where several sources are written one after another into one target topic or
/// partition, and of header-based group translation without original-offset headers.
fn overlap_warnings(plan: &mut RestorePlan, t: &RestoreTask, warnings: &mut Vec<String>) {
    for target in plan.targets.values_mut() {
        target.partitions_written.sort_unstable();
        if target.sources.len() > 1 {
            warnings.push(format!(
                "target topic '{}' receives several backed-up topics ({}); they are written one after another",
                target.name,
                target.sources.join(", ")
            ));
        }
    }
    let mut lanes: BTreeMap<(&str, i32), Vec<String>> = BTreeMap::new();
    for u in plan.units.iter().filter(|u| u.era == 0) {
        lanes
            .entry((u.target_topic.as_str(), u.target_partition))
            .or_default()
            .push(u.key());
    }
    for ((topic, p), sources) in lanes {
        if sources.len() > 1 {
            warnings.push(format!(
                "{topic}-{p} receives {} source partitions ({}), one after another: their records are not interleaved by time",
                sources.len(),
                sources.join(", ")
            ));
        }
    }
    if t.consumer_group_strategy == GroupStrategy::HeaderBased && !t.include_original_offset_header
    {
        warnings.push("consumer_group_strategy header-based without include_original_offset_header: offsets are translated through the restore's exact mapping, but records carry no original-offset headers".into());
    }
}

/// One unit per era of the source partition `source`, aimed at `target`, with the segments
/// that overlap the window.
fn add_units(
    plan: &mut RestorePlan,
    source: (&String, i32),
    target: (&String, i32),
    td: &TopicData,
    eras: &[Era],
) {
    let (name, p) = source;
    let (target_topic, target_partition) = target;
    let t = plan
        .targets
        .entry(target_topic.clone())
        .or_insert_with(|| TargetTopic {
            name: target_topic.clone(),
            sources: Vec::new(),
            partitions_written: Vec::new(),
            backup_partitions: td.partitions,
            backup_replication_factor: td.replication_factor,
            backup_configs: td.configs.clone(),
        });
    if !t.sources.contains(name) {
        t.sources.push(name.clone());
    }
    if !t.partitions_written.contains(&target_partition) {
        t.partitions_written.push(target_partition);
    }
    for (era, pd) in eras.iter().enumerate() {
        let mut segments = Vec::new();
        for s in &pd.segments {
            if plan
                .window
                .overlaps(s.stats.min_timestamp, s.stats.max_timestamp)
            {
                segments.push(s.clone());
            } else {
                plan.segments_pruned += 1;
            }
        }
        plan.segments += segments.len();
        plan.units.push(Unit {
            source_topic: name.clone(),
            source_partition: p,
            era: u32::try_from(era).unwrap_or(u32::MAX),
            target_topic: target_topic.clone(),
            target_partition,
            segments,
            records: 0,
            bytes: 0,
            min_timestamp: None,
            max_timestamp: None,
            backup_records: pd.records,
            backup_bytes: pd.bytes,
        });
    }
}

/// Counts the selected records: whole segments inside the window from the manifest, segments
/// straddling a bound by reading them.
async fn count_selected(storage: &Storage, plan: &mut RestorePlan) -> Result<()> {
    let window = plan.window;
    for u in &mut plan.units {
        let whole = u.segments.iter().map(|s| s.stats.records).sum::<u64>() == u.backup_records
            && u.segments
                .iter()
                .all(|s| window.covers(s.stats.min_timestamp, s.stats.max_timestamp));
        for s in &u.segments {
            if window.covers(s.stats.min_timestamp, s.stats.max_timestamp) {
                u.records += s.stats.records;
                u.bytes += segment_payload_bytes(u.backup_bytes, u.backup_records, s);
                u.min_timestamp = Some(
                    u.min_timestamp
                        .map_or(s.stats.min_timestamp, |m| m.min(s.stats.min_timestamp)),
                );
                u.max_timestamp = Some(
                    u.max_timestamp
                        .map_or(s.stats.max_timestamp, |m| m.max(s.stats.max_timestamp)),
                );
                continue;
            }
            for r in read_segment_shared(storage, s, Vec::new()).await?.iter() {
                if window.contains(r.timestamp) {
                    u.records += 1;
                    u.bytes += r.payload_bytes();
                    u.min_timestamp =
                        Some(u.min_timestamp.map_or(r.timestamp, |m| m.min(r.timestamp)));
                    u.max_timestamp =
                        Some(u.max_timestamp.map_or(r.timestamp, |m| m.max(r.timestamp)));
                }
            }
        }
        if whole {
            u.bytes = u.backup_bytes;
        }
        plan.records += u.records;
        plan.bytes += u.bytes;
        if let Some(m) = u.min_timestamp {
            plan.min_timestamp = Some(plan.min_timestamp.map_or(m, |x| x.min(m)));
        }
        if let Some(m) = u.max_timestamp {
            plan.max_timestamp = Some(plan.max_timestamp.map_or(m, |x| x.max(m)));
        }
    }
    Ok(())
}

/// Key/value/header bytes of a whole segment: the manifest counts them per partition, so a
/// segment gets its share by records (exact when every segment of the partition is selected,
/// since the shares then add up to the partition's count up to rounding).
fn segment_payload_bytes(partition_bytes: u64, partition_records: u64, s: &SegmentEntry) -> u64 {
    if partition_records == 0 {
        return 0;
    }
    (u128::from(partition_bytes) * u128::from(s.stats.records) / u128::from(partition_records))
        as u64
}

/// `validate-restore`'s report (kafka-backup's validation fields, plus the problems found).
#[derive(Debug, Clone, Serialize)]
pub struct ValidationReport {
    /// `valid` or `invalid`.
    pub status: &'static str,
    pub valid: bool,
    pub backup_id: String,
    /// The backups restored, oldest first (the chain up to `backup_id`).
    pub links: Vec<String>,
    pub restore_id: String,
    pub target_cluster: String,
    pub topics_to_restore: usize,
    pub partitions_to_restore: usize,
    pub segments_to_process: usize,
    pub segments_skipped_by_time_index: usize,
    pub records_to_restore: u64,
    pub bytes_to_restore: u64,
    pub time_window_start: Option<i64>,
    pub time_window_end: Option<i64>,
    /// Timestamps of the first and last selected record.
    pub from: Option<String>,
    pub to: Option<String>,
    /// Per target topic: sources, partitions written, and whether it exists / will be created.
    pub targets: Vec<TargetCheck>,
    pub consumer_offset_actions: Vec<String>,
    pub problems: Vec<String>,
    /// Configs the target would refuse on the topics the restore creates: the restore would
    /// fail before creating any (a plan still lists them).
    pub refused_configs: Vec<RefusedConfig>,
    pub warnings: Vec<String>,
}

impl ValidationReport {
    /// Everything that stops the restore: each refused config, then the problems.
    pub fn reasons(&self) -> Vec<String> {
        self.refused_configs
            .iter()
            .map(RefusedConfig::describe)
            .chain(self.problems.iter().cloned())
            .collect()
    }
}

/// What validation found about one target topic.
#[derive(Debug, Clone, Serialize)]
pub struct TargetCheck {
    pub topic: String,
    pub sources: Vec<String>,
    pub partitions_written: Vec<i32>,
    /// `exists`, `will be created`, `missing`, or `unknown` (cluster not reachable).
    pub state: String,
    /// Partitions of the existing topic.
    pub partitions: Option<i32>,
    /// Records already in the partitions written (existing topic).
    pub existing_records: Option<u64>,
}

/// Lines for the report's CONSUMER OFFSET ACTIONS section.
pub fn offset_actions(t: &RestoreTask) -> Vec<String> {
    let mut v = Vec::new();
    if t.include_original_offset_header {
        v.push(match t.original_header_style {
            crate::task::HeaderStyle::Original => {
                "Original offsets will be stored in message headers (x-original-offset, x-original-timestamp)".to_string()
            }
            crate::task::HeaderStyle::KafkaBackup => {
                "Original offsets will be stored in message headers (x-kafka-backup-offset, -timestamp, -partition)".to_string()
            }
        });
    }
    v.push(match t.consumer_group_strategy {
        GroupStrategy::Skip => "Consumer group offsets are left as they are (skip)".to_string(),
        GroupStrategy::HeaderBased => "Consumer group offsets are translated exactly through the restore's offset mapping (header-based)".to_string(),
        GroupStrategy::TimestampBased => "Consumer group offsets are translated through record timestamps (timestamp-based, approximate)".to_string(),
        GroupStrategy::ClusterScan => "The offset mapping is rebuilt by scanning the restored records' headers in the target (cluster-scan)".to_string(),
        GroupStrategy::Manual => "An offset mapping report is produced; no group is changed (manual)".to_string(),
    });
    if t.reset_consumer_offsets && t.consumer_group_strategy != GroupStrategy::Manual {
        v.push(format!(
            "Committed offsets of {} will be translated and committed (inactive groups only, safety snapshot first)",
            if t.consumer_groups.is_empty() {
                "every group captured with the backup".to_string()
            } else {
                t.consumer_groups.join(", ")
            }
        ));
    }
    v
}

/// Bytes as `12.5 GB` (decimal, like kafka-backup's validation report).
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < UNITS.len() {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

/// The boxed text form of a validation report.
pub fn validation_box(r: &ValidationReport) -> String {
    const W: usize = 70;
    let line = |s: &str| {
        let pad = W.saturating_sub(s.chars().count());
        format!("║ {s}{} ║\n", " ".repeat(pad))
    };
    let center = |s: &str| {
        let total = W.saturating_sub(s.chars().count());
        format!(
            "║ {}{s}{} ║\n",
            " ".repeat(total / 2),
            " ".repeat(total - total / 2)
        )
    };
    let rule = format!("╠{}╣\n", "═".repeat(W + 2));
    let mut out = format!("╔{}╗\n", "═".repeat(W + 2));
    out += &center("RESTORE VALIDATION REPORT");
    out += &rule;
    out += &line(&format!(
        "Status:         {}",
        if r.valid { "✓ VALID" } else { "✗ INVALID" }
    ));
    out += &line(&format!("Backup ID:      {}", r.backup_id));
    if r.links.len() > 1 {
        for chunk in wrap(&format!("Chain:          {}", r.links.join(" > ")), W) {
            out += &line(&chunk);
        }
    }
    out += &line(&format!("Restore ID:     {}", r.restore_id));
    out += &line(&format!("Target:         {}", r.target_cluster));
    out += &rule;
    out += &center("RESTORE SUMMARY");
    out += &rule;
    out += &line(&format!("Topics to restore:    {}", r.topics_to_restore));
    out += &line(&format!(
        "Partitions:           {}",
        r.partitions_to_restore
    ));
    out += &line(&format!(
        "Segments to process:  {} ({} skipped by the time index)",
        r.segments_to_process, r.segments_skipped_by_time_index
    ));
    out += &line(&format!(
        "Records to restore:   {}",
        thousands(r.records_to_restore)
    ));
    out += &line(&format!(
        "Bytes to restore:     {}",
        human_bytes(r.bytes_to_restore)
    ));
    out += &rule;
    out += &center("TIME RANGE");
    out += &rule;
    out += &line(&format!("From: {}", r.from.as_deref().unwrap_or("-")));
    out += &line(&format!("To:   {}", r.to.as_deref().unwrap_or("-")));
    if !r.targets.is_empty() {
        out += &rule;
        out += &center("TARGET TOPICS");
        out += &rule;
        for t in &r.targets {
            let parts = match t.partitions {
                Some(p) => format!(", {p} partitions"),
                None => String::new(),
            };
            let existing = match t.existing_records {
                Some(n) if n > 0 => format!(", {} records already there", thousands(n)),
                _ => String::new(),
            };
            out += &line(&format!(
                "{} <- {}: {}{parts}{existing}",
                t.topic,
                t.sources.join(", "),
                t.state
            ));
        }
    }
    out += &rule;
    out += &center("CONSUMER OFFSET ACTIONS");
    out += &rule;
    for a in &r.consumer_offset_actions {
        for chunk in wrap(&format!("• {a}"), W) {
            out += &line(&chunk);
        }
    }
    if !r.refused_configs.is_empty() {
        out += &rule;
        out += &center("TOPIC CONFIGS THE TARGET WOULD REFUSE");
        out += &rule;
        for c in &r.refused_configs {
            let text = format!("✗ {}: {}={}: {}", c.topic, c.config, c.value, c.reason);
            for chunk in wrap(&text, W) {
                out += &line(&chunk);
            }
        }
    }
    if !r.problems.is_empty() {
        out += &rule;
        out += &center("PROBLEMS");
        out += &rule;
        for p in &r.problems {
            for chunk in wrap(&format!("✗ {p}"), W) {
                out += &line(&chunk);
            }
        }
    }
    if !r.warnings.is_empty() {
        out += &rule;
        out += &center("WARNINGS");
        out += &rule;
        for w in &r.warnings {
            for chunk in wrap(&format!("! {w}"), W) {
                out += &line(&chunk);
            }
        }
    }
    out += &format!("╚{}╝\n", "═".repeat(W + 2));
    out
}

/// Splits text into lines of at most `width` characters at spaces.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut cur = String::new();
    for word in text.split(' ') {
        if !cur.is_empty() && cur.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut cur));
            cur.push_str("  ");
        } else if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(word);
    }
    if !cur.is_empty() {
        lines.push(cur);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plan of `units` (source partition, target partition, records) of topic t into u.
    fn plan_of(units: &[(i32, i32, u64)]) -> RestorePlan {
        let unit = |&(sp, tp, records): &(i32, i32, u64)| Unit {
            source_topic: "t".into(),
            source_partition: sp,
            era: 0,
            target_topic: "u".into(),
            target_partition: tp,
            segments: Vec::new(),
            records,
            bytes: records * 10,
            min_timestamp: Some(i64::from(sp)),
            max_timestamp: Some(i64::from(sp) + 100),
            backup_records: records,
            backup_bytes: records * 10,
        };
        let mut written: Vec<i32> = units.iter().map(|u| u.1).collect();
        written.sort_unstable();
        written.dedup();
        let target = TargetTopic {
            name: "u".into(),
            sources: vec!["t".into()],
            partitions_written: written,
            backup_partitions: 3,
            backup_replication_factor: 1,
            backup_configs: BTreeMap::new(),
        };
        RestorePlan {
            backup_id: "b".into(),
            links: vec!["b".into()],
            window: Window::default(),
            units: units.iter().map(unit).collect(),
            targets: BTreeMap::from([("u".to_string(), target)]),
            topics: 1,
            segments: 0,
            segments_pruned: 0,
            records: units.iter().map(|u| u.2).sum(),
            bytes: units.iter().map(|u| u.2 * 10).sum(),
            min_timestamp: None,
            max_timestamp: None,
            offsets_keys: Vec::new(),
            warnings: Vec::new(),
        }
    }

    #[test]
    fn shards_get_whole_target_partitions_dealt_in_order() {
        // Sources 0 and 3 both write to target 0 (a partition mapping): one shard takes both.
        let units = [(0, 0, 5), (1, 1, 7), (2, 5, 11), (3, 0, 13)];
        let mut seen = Vec::new();
        for shard in 0..2 {
            let mut plan = plan_of(&units);
            deal_to_shard(&mut plan, shard, 2).expect("a share");
            let sources: Vec<i32> = plan.units.iter().map(|u| u.source_partition).collect();
            seen.extend(sources.iter().copied());
            assert_eq!(
                plan.records,
                plan.units.iter().map(|u| u.records).sum::<u64>()
            );
            let target = &plan.targets["u"];
            assert_eq!(target.backup_partitions, 6, "created alike by every shard");
            match shard {
                0 => {
                    assert_eq!(sources, [0, 2, 3]);
                    assert_eq!(target.partitions_written, [0, 5]);
                    assert_eq!(plan.records, 29);
                    assert_eq!(
                        (plan.min_timestamp, plan.max_timestamp),
                        (Some(0), Some(103))
                    );
                }
                _ => {
                    assert_eq!(sources, [1]);
                    assert_eq!(target.partitions_written, [1]);
                    assert_eq!(plan.records, 7);
                }
            }
        }
        seen.sort_unstable();
        assert_eq!(seen, [0, 1, 2, 3], "every unit exactly once");
        let mut one = plan_of(&units);
        deal_to_shard(&mut one, 0, 1).expect("one shard");
        assert_eq!(one.units.len(), 4);
        let e = deal_to_shard(&mut plan_of(&units), 3, 4).expect_err("nothing left");
        assert!(e.to_string().contains("use at most 3 shards"), "{e}");
    }

    #[test]
    fn the_window_is_inclusive_at_both_ends() {
        let w = Window {
            start: Some(1000),
            end: Some(2000),
        };
        assert!(!w.contains(999));
        assert!(w.contains(1000));
        assert!(w.contains(2000));
        assert!(!w.contains(2001));
        assert!(!w.contains(-1), "no timestamp, no place in a window");
        assert!(Window::default().contains(-1));
        assert!(w.overlaps(500, 1000));
        assert!(w.overlaps(2000, 3000));
        assert!(!w.overlaps(2001, 3000));
        assert!(!w.overlaps(0, 999));
        assert!(w.covers(1000, 2000));
        assert!(!w.covers(999, 2000));
        let open_end = Window {
            start: Some(5),
            end: None,
        };
        assert!(open_end.contains(i64::MAX));
        assert!(!open_end.contains(4));
    }

    fn segment(backup: &str, first: i64, last: i64) -> SegmentEntry {
        SegmentEntry {
            key: format!("backups/{backup}/topics/t/0/{first:020}.seg"),
            stats: crate::backup::format::SegmentStats {
                records: (last - first + 1) as u64,
                first_offset: first,
                last_offset: last,
                min_timestamp: first,
                max_timestamp: last,
                uncompressed_bytes: 0,
                stored_bytes: 0,
                crc32c: 0,
                codec: "none".into(),
            },
        }
    }

    /// A one-shard backup of partition t-0 holding offsets `[from, to)` in one segment.
    fn link(id: &str, parent: Option<&str>, from: i64, to: i64, recreated: Option<i64>) -> Link {
        let data = crate::backup::manifest::PartitionData {
            start_offset: from,
            end_offset: to,
            records: (to - from) as u64,
            segments: vec![segment(id, from, to - 1)],
            discontinuity: recreated.map(|parent_end| crate::backup::manifest::Discontinuity {
                kind: DiscontinuityKind::Recreated,
                parent_end,
                new_start: from,
            }),
            ..Default::default()
        };
        let manifest: Manifest = serde_json::from_value(serde_json::json!({
            "format": crate::backup::manifest::FORMAT, "backup_id": id, "parent": parent,
            "mode": "incremental", "shard_index": 0, "shard_count": 1, "cluster": "k",
            "started_at": "2026-01-01T00:00:00Z", "completed_at": "2026-01-01T00:00:00Z",
            "compression": "none", "isolation": "read_committed",
            "totals": {"topics": 1, "partitions": 1, "records": 0, "bytes": 0,
                       "stored_bytes": 0, "segments": 1},
            "topics": {"t": {"partitions": 1, "replication_factor": 1, "configs": {},
                             "partition_data": {"0": data}}}
        }))
        .expect("a manifest");
        Link {
            backup_id: id.into(),
            manifests: vec![manifest],
        }
    }

    fn task(id: &str) -> RestoreTask {
        serde_json::from_value(serde_json::json!({
            "kafka": {"bootstrapServers": ["k:9092"], "securityProtocol": "PLAINTEXT"},
            "storage": {"type": "location", "url": "/b"},
            "backupId": id,
        }))
        .expect("a task")
    }

    #[test]
    fn a_chain_is_one_unit_per_partition_with_every_links_segments_in_order() {
        let links = [
            link("n1", None, 0, 40, None),
            link("n2", Some("n1"), 40, 70, None),
            link("n3", Some("n2"), 70, 100, None),
        ];
        let plan = select_links(&links, &task("n3")).expect("plans");
        assert_eq!(plan.links, ["n1", "n2", "n3"]);
        assert_eq!(plan.units.len(), 1);
        let firsts: Vec<i64> = plan.units[0]
            .segments
            .iter()
            .map(|s| s.stats.first_offset)
            .collect();
        assert_eq!(firsts, [0, 40, 70]);
        assert_eq!(plan.units[0].backup_records, 100);
    }

    #[test]
    fn a_recreated_topic_starts_a_new_unit_after_the_old_one() {
        let links = [
            link("e1", None, 0, 30, None),
            link("e2", Some("e1"), 0, 40, Some(30)),
            link("e3", Some("e2"), 40, 50, None),
        ];
        let plan = select_links(&links, &task("e3")).expect("plans");
        let units: Vec<(String, u64, i32)> = plan
            .units
            .iter()
            .map(|u| (u.key(), u.backup_records, u.target_partition))
            .collect();
        assert_eq!(
            units,
            [("t/0".to_string(), 30, 0), ("t/0~1".to_string(), 50, 0)]
        );
    }

    #[test]
    fn links_that_overlap_are_refused_naming_the_manifest() {
        let links = [
            link("n1", None, 0, 40, None),
            link("n2", Some("n1"), 35, 70, None),
        ];
        let err = select_links(&links, &task("n2")).expect_err("refused");
        let msg = err.to_string();
        assert!(
            msg.contains("backups/n2/manifest/00000-of-00001.json") && msg.contains("overlap"),
            "{msg}"
        );
    }

    #[test]
    fn numbers_read_like_kafka_backups_report() {
        assert_eq!(human_bytes(12_500_000_000), "12.5 GB");
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(
            fmt_ms(Some(1_705_312_800_000)),
            "2024-01-15 10:00:00.000 UTC"
        );
        assert_eq!(wrap("aaa bbb ccc", 7), vec!["aaa bbb", "  ccc"]);
    }
}
