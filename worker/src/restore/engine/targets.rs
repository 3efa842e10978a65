//! The target before and after writing: topics exist (or are created) with the partitions the
//! restore writes and configs the target accepts, partitions hold nothing the restore did not
//! write (or are appended to or purged, as `existing_data` says), and after the restore each
//! partition ends exactly where the restored records end. Every check is made before anything
//! is changed: a restore that would fail creates no topic and purges nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use super::tail::read_to_last;
use super::UnitCheckpoint;
use crate::error::{Error, Result};
use crate::kafka::{GroupAdmin, OffsetSpec};
use crate::restore::configs::{
    check_topic, Creation, RefusedConfig, TargetFacts, BROKER_NAMES, TOPIC_CONFIGS,
};
use crate::restore::mapping::PartitionMapping;
use crate::restore::plan::{RestorePlan, TargetTopic};
use crate::task::{ExistingData, RestoreTask};

/// The state of the target partitions before writing, per lane.
#[derive(Debug, Clone, Default)]
pub struct TargetState {
    /// Where the next record of each lane goes.
    pub lane_start: HashMap<(String, i32), i64>,
    pub created: Vec<String>,
    pub purged: Vec<String>,
    /// Problems that stop the restore (validation reports them all).
    pub problems: Vec<String>,
    /// Configs the target would refuse on the topics the restore creates: they stop the
    /// restore too, before it creates any topic.
    pub refused: Vec<RefusedConfig>,
    /// Existing target topics whose backup has configs: written as they are, their configs
    /// neither changed nor checked.
    pub configs_kept: Vec<String>,
    pub warnings: Vec<String>,
    /// Per target topic: partitions, and records already in the partitions written.
    pub topics: BTreeMap<String, (Option<i32>, Option<u64>, String)>,
    /// The changes decided, made once every check passed.
    creates: Vec<NewTopic>,
    purges: Vec<((String, i32), i64)>,
}

impl TargetState {
    /// Whether anything stops the restore (a problem or a refused config).
    pub fn blocked(&self) -> bool {
        !self.problems.is_empty() || !self.refused.is_empty()
    }

    /// The note a validation (and a plan) carries when target topics that exist have
    /// backed-up configs: only the topics a restore creates get, and are checked for, them.
    pub fn configs_kept_note(&self) -> Option<String> {
        (!self.configs_kept.is_empty()).then(|| {
            format!(
                "target topics that exist keep their own configs: the backed-up configs of {} are neither applied nor checked",
                self.configs_kept.join(", ")
            )
        })
    }
}

/// A topic the restore creates, from the backed-up metadata.
#[derive(Debug, Clone)]
struct NewTopic {
    name: String,
    partitions: i32,
    replication_factor: i32,
    configs: BTreeMap<String, String>,
    /// The first and last timestamps of the records restored into it.
    timestamps: Option<(i64, i64)>,
}

/// Checks (and, unless `dry_run` or a check failed, prepares) the target: topics exist with
/// enough partitions or are created from the backed-up metadata, with configs the target
/// accepts; partitions not yet started by this restore are empty, or appended to, or purged,
/// as `existing_data` says. Nothing is created or purged until every topic is checked.
#[tracing::instrument(name = "restore_prepare_targets", skip_all, fields(backup_id = %t.backup_id, topics = plan.targets.len(), dry_run))]
pub async fn prepare_targets(
    admin: &GroupAdmin,
    plan: &RestorePlan,
    t: &RestoreTask,
    started: &BTreeMap<String, UnitCheckpoint>,
    dry_run: bool,
) -> Result<TargetState> {
    let mut st = TargetState::default();
    let started_lanes: HashSet<(String, i32)> = plan
        .units
        .iter()
        .filter(|u| started.contains_key(&u.key()))
        .map(|u| (u.target_topic.clone(), u.target_partition))
        .collect();
    let (existing, brokers) = admin.topics_and_brokers().await?;
    for target in plan.targets.values() {
        if existing.contains(&target.name) {
            if !target.backup_configs.is_empty() {
                st.configs_kept.push(target.name.clone());
            }
            check_existing_topic(admin, target, t, &started_lanes, &mut st).await?;
        } else {
            check_missing_topic(target, plan, t, &mut st);
        }
    }
    check_configs(admin, &existing, brokers, &mut st).await;
    tracing::debug!(
        to_create = st.creates.len(),
        problems = st.problems.len(),
        refused_configs = st.refused.len(),
        "targets checked"
    );
    if dry_run || st.blocked() {
        return Ok(st);
    }
    apply(admin, t, &mut st).await?;
    Ok(st)
}

/// A target topic that does not exist: a problem, or one to create from the backed-up
/// metadata.
fn check_missing_topic(
    target: &TargetTopic,
    plan: &RestorePlan,
    t: &RestoreTask,
    st: &mut TargetState,
) {
    let needed = target.partitions_written.iter().max().copied().unwrap_or(0) + 1;
    if !t.create_topics {
        st.problems.push(format!(
            "target topic '{}' does not exist: create it, or set create_topics to create it from the backup ({} partitions, replication factor {})",
            target.name,
            target.backup_partitions.max(needed),
            target.backup_replication_factor.max(1)
        ));
        st.topics
            .insert(target.name.clone(), (None, None, "missing".into()));
        return;
    }
    let partitions = target.backup_partitions.max(needed);
    st.topics.insert(
        target.name.clone(),
        (Some(partitions), Some(0), "will be created".into()),
    );
    st.creates.push(NewTopic {
        name: target.name.clone(),
        partitions,
        replication_factor: target.backup_replication_factor.max(1),
        configs: target.backup_configs.clone(),
        timestamps: timestamps_into(plan, &target.name),
    });
    for p in &target.partitions_written {
        st.lane_start.insert((target.name.clone(), *p), 0);
    }
}

/// The configs of the topics to create, against Kafka's topic configs and the target (`brokers`
/// in its metadata; the config names it reports for one of its `existing` topics, read only
/// when a config is not in Kafka's reference).
async fn check_configs(
    admin: &GroupAdmin,
    existing: &[String],
    brokers: usize,
    st: &mut TargetState,
) {
    let mut facts = TargetFacts {
        brokers: (brokers > 0).then_some(brokers),
        known_names: BTreeSet::new(),
    };
    let listed = |name: &String| {
        TOPIC_CONFIGS.iter().any(|(n, _)| n == name) || BROKER_NAMES.iter().any(|(n, _)| n == name)
    };
    let unlisted = st
        .creates
        .iter()
        .any(|c| c.configs.keys().any(|k| !listed(k)));
    let sample = existing
        .iter()
        .find(|t| !t.starts_with("__"))
        .or(existing.first());
    if let (true, Some(sample)) = (unlisted, sample) {
        match admin.topic_config_names(sample).await {
            Ok(names) => facts.known_names = names,
            Err(e) => st.warnings.push(format!(
                "the topic configs the target knows could not be read ({e}): configs outside Kafka's topic configuration reference are taken as unknown"
            )),
        }
    }
    let now_ms = chrono::Utc::now().timestamp_millis();
    for c in &st.creates {
        let creation = Creation {
            topic: &c.name,
            configs: &c.configs,
            replication_factor: c.replication_factor,
            timestamps: c.timestamps,
            now_ms,
        };
        st.refused.extend(check_topic(&creation, &facts));
    }
}

/// The first and last timestamps of the records `plan` restores into `topic`.
fn timestamps_into(plan: &RestorePlan, topic: &str) -> Option<(i64, i64)> {
    let units = plan.units.iter().filter(|u| u.target_topic == topic);
    let first = units.clone().filter_map(|u| u.min_timestamp).min()?;
    let last = units.filter_map(|u| u.max_timestamp).max()?;
    Some((first, last))
}

/// Makes the changes every check allowed: the topics created (a shard creates the topics it
/// writes to; one that another shard created first, with the same partition count, see
/// `deal_to_shard`, is used as it is), then the partitions purged.
async fn apply(admin: &GroupAdmin, t: &RestoreTask, st: &mut TargetState) -> Result<()> {
    for c in &st.creates {
        let (name, parts, rf, configs) = (&c.name, c.partitions, c.replication_factor, &c.configs);
        let created = if t.shard_count > 1 {
            admin
                .create_topic_if_missing(name, parts, rf, configs)
                .await?
        } else {
            admin.create_topic(name, parts, rf, configs).await?;
            true
        };
        if created {
            st.created.push(name.clone());
        }
    }
    if !st.purges.is_empty() {
        admin.delete_records(&st.purges).await?;
    }
    Ok(())
}

/// A target topic that exists: it has the partitions written, and those not yet started by
/// this restore are empty or handled as `existing_data` says.
async fn check_existing_topic(
    admin: &GroupAdmin,
    target: &TargetTopic,
    t: &RestoreTask,
    started_lanes: &HashSet<(String, i32)>,
    st: &mut TargetState,
) -> Result<()> {
    let layout = admin.topic_layout(&target.name).await?;
    let count = layout.partitions.len() as i32;
    let missing: Vec<i32> = target
        .partitions_written
        .iter()
        .copied()
        .filter(|p| !layout.partitions.contains(p))
        .collect();
    if !missing.is_empty() {
        st.problems.push(format!(
            "target topic '{}' has {count} partitions; the restore writes to partition{} {} (use partition_mapping, or add partitions)",
            target.name,
            if missing.len() > 1 { "s" } else { "" },
            missing.iter().map(i32::to_string).collect::<Vec<_>>().join(", ")
        ));
        st.topics
            .insert(target.name.clone(), (Some(count), None, "exists".into()));
        return Ok(());
    }
    let tps: Vec<(String, i32)> = target
        .partitions_written
        .iter()
        .map(|p| (target.name.clone(), *p))
        .collect();
    let earliest = admin
        .list_offsets_isolated(&tps, OffsetSpec::Earliest, false)
        .await?;
    let latest = admin
        .list_offsets_isolated(&tps, OffsetSpec::Latest, false)
        .await?;
    let mut held = 0u64;
    let mut non_empty = Vec::new();
    for ((tp, e), l) in tps.iter().zip(earliest).zip(latest) {
        let (e, l) = (e?.offset, l?.offset);
        let records = (l - e).max(0) as u64;
        if started_lanes.contains(tp) {
            continue;
        }
        held += records;
        if records > 0 {
            non_empty.push((tp.clone(), records, l));
        }
        st.lane_start.insert(tp.clone(), l);
    }
    st.topics.insert(
        target.name.clone(),
        (Some(count), Some(held), "exists".into()),
    );
    existing_data(t, &non_empty, st);
    Ok(())
}

/// Target partitions that already hold records (partition, records, end): refused, appended
/// to, or to be purged.
fn existing_data(t: &RestoreTask, non_empty: &[((String, i32), u64, i64)], st: &mut TargetState) {
    if non_empty.is_empty() {
        return;
    }
    let list = non_empty
        .iter()
        .map(|((t, p), n, _)| format!("{t}-{p} ({n} records)"))
        .collect::<Vec<_>>()
        .join(", ");
    match t.existing_data {
        ExistingData::Refuse => st.problems.push(format!(
            "target partitions already hold records: {list}; restoring would mix them with the backup's. Choose existing_data: append (add after them) or purge (delete them first), or restore to another topic (topic_mapping)"
        )),
        ExistingData::Append => st
            .warnings
            .push(format!("appending after the records already in {list}")),
        ExistingData::Purge => {
            for (tp, n, l) in non_empty {
                st.purges.push((tp.clone(), *l));
                st.purged.push(format!("{}-{} ({n} records)", tp.0, tp.1));
            }
        }
    }
}

/// Waits until freshly created topics show up in metadata with their partitions.
pub(super) async fn wait_for_topics(admin: &GroupAdmin, topics: &[String]) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    for t in topics {
        loop {
            match admin.topic_layout(t).await {
                Ok(_) => break,
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
    Ok(())
}

/// After the restore, the target against the plan: every unit confirmed the records the plan
/// selected for it, and each target partition ends exactly where those records end (its first
/// restored offset plus the planned records). A partition that ends later holds records this
/// restore did not write (another writer, or a second restore of the same id); one that ends
/// earlier lost records.
#[tracing::instrument(name = "restore_verify_targets", skip_all, fields(partitions = parts.len()))]
pub(super) async fn check_target_ends(
    admin: &GroupAdmin,
    plan: &RestorePlan,
    parts: &[PartitionMapping],
) -> Result<()> {
    // Per target partition: first restored offset, planned records, last acknowledged offset.
    let mut lanes: BTreeMap<(String, i32), (i64, u64, i64)> = BTreeMap::new();
    for (u, m) in plan.units.iter().zip(parts) {
        if m.records != u.records {
            return Err(Error::VerificationFailed(format!(
                "{} selected {} records for {}-{} but {} were confirmed",
                u.key(),
                u.records,
                u.target_topic,
                u.target_partition,
                m.records
            )));
        }
        if let Some((first, last)) = m.target_range() {
            let lane = lanes
                .entry((u.target_topic.clone(), u.target_partition))
                .or_insert((first, 0, last));
            lane.0 = lane.0.min(first);
            lane.1 += u.records;
            lane.2 = lane.2.max(last);
        }
    }
    // The delivery reports give every record's offset: a lane's records follow one another, so
    // a span wider than its records holds another writer's. (A narrower one is not proof of
    // anything: a batch the broker already had, answered as a duplicate after a retry, can come
    // back with another offset; the end check below covers those records.)
    for (tp, (first, records, last)) in &lanes {
        if last + 1 > first + *records as i64 {
            return Err(Error::VerificationFailed(format!(
                "{}-{} holds this restore's {records} records between offsets {first} and {last}: something else wrote to it during the restore (another writer, or a second run of this restore); restore to an empty partition with no other writer",
                tp.0, tp.1
            )));
        }
    }
    let tps: Vec<(String, i32)> = lanes.keys().cloned().collect();
    let latest = admin
        .list_offsets_isolated(&tps, OffsetSpec::Latest, false)
        .await?;
    let mut trailing = Vec::new();
    for (tp, end) in tps.iter().zip(latest) {
        let end = end?.offset;
        let (first, records, _) = lanes[tp];
        let expected = first + records as i64;
        if end > expected {
            return Err(Error::VerificationFailed(format!(
                "{}-{} ends at offset {end}, but this restore's {records} records there end at {expected}: something else wrote to it during the restore (another writer, or a second run of this restore); restore to an empty partition with no other writer",
                tp.0, tp.1
            )));
        }
        if end < expected {
            trailing.push((tp, end, expected));
        }
    }
    check_trailing(admin, &trailing).await
}

/// Partitions whose reported end (`end`) trails the restore's last acknowledged record (at
/// `expected - 1`), as on brokers that report the last batch's base offset: each is read back
/// from just before its end, with one reader per topic, and must hold that record and none
/// after it. Errors name the first such partition in order.
async fn check_trailing(admin: &GroupAdmin, trailing: &[(&(String, i32), i64, i64)]) -> Result<()> {
    let mut topics: BTreeMap<&str, Vec<(i32, i64, i64)>> = BTreeMap::new();
    for (tp, end, expected) in trailing {
        topics
            .entry(tp.0.as_str())
            .or_default()
            .push((tp.1, (end - 1).max(0), expected - 1));
    }
    let reads = topics.into_iter().map(|(topic, parts)| {
        let config = admin.config().clone();
        let topic = topic.to_string();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _span = span.entered();
            let seen = read_to_last(&config, &topic, &parts)?;
            Ok::<_, Error>((topic, parts, seen))
        })
    });
    let mut problems = BTreeMap::new();
    for read in futures::future::join_all(reads).await {
        let (topic, parts, seen) =
            read.map_err(|e| Error::kafka_thread("reading the target back did not complete", e))??;
        for ((partition, from, last), seen) in parts.into_iter().zip(seen) {
            let problem = match seen {
                Some(s) if s > last => format!(
                    "{topic}-{partition} holds a record at offset {s}, after this restore's last record at {last}: something else wrote to it during the restore (another writer, or a second run of this restore); restore to an empty partition with no other writer"
                ),
                Some(s) if s == last => continue,
                // Read from just before the reported end (or from 0).
                _ => format!(
                    "{topic}-{partition} ends at offset {}, before the restore's last record at {last}: records are missing from the target",
                    seen.map_or(from, |s| s + 1)
                ),
            };
            problems.insert((topic.clone(), partition), problem);
        }
    }
    match problems.into_values().next() {
        Some(p) => Err(Error::VerificationFailed(p)),
        None => Ok(()),
    }
}
