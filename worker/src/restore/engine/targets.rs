//! The target before and after writing: topics exist (or are created) with the partitions the
//! restore writes, partitions hold nothing the restore did not write (or are appended to or
//! purged, as `existing_data` says), and after the restore each partition ends exactly where
//! the restored records end.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};

use super::tail::TailReader;
use super::UnitCheckpoint;
use crate::error::{Error, Result};
use crate::kafka::{GroupAdmin, OffsetSpec};
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
    pub warnings: Vec<String>,
    /// Per target topic: partitions, and records already in the partitions written.
    pub topics: BTreeMap<String, (Option<i32>, Option<u64>, String)>,
}

/// Checks (and, unless `dry_run`, prepares) the target: topics exist with enough partitions or
/// are created from the backed-up metadata; partitions not yet started by this restore are
/// empty, or appended to, or purged, as `existing_data` says.
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
    let existing = admin.list_topics().await?;
    for target in plan.targets.values() {
        if existing.contains(&target.name) {
            prepare_existing_topic(admin, target, t, &started_lanes, dry_run, &mut st).await?;
        } else {
            prepare_missing_topic(admin, target, t, dry_run, &mut st).await?;
        }
    }
    tracing::debug!(
        created = st.created.len(),
        problems = st.problems.len(),
        "targets checked"
    );
    Ok(st)
}

/// A target topic that does not exist: a problem, or created from the backed-up metadata.
async fn prepare_missing_topic(
    admin: &GroupAdmin,
    target: &TargetTopic,
    t: &RestoreTask,
    dry_run: bool,
    st: &mut TargetState,
) -> Result<()> {
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
        return Ok(());
    }
    let partitions = target.backup_partitions.max(needed);
    st.topics.insert(
        target.name.clone(),
        (Some(partitions), Some(0), "will be created".into()),
    );
    // Shards create the topics they write to; one that another shard created first
    // (with the same partition count: see `deal_to_shard`) is used as it is.
    let create = async {
        let rf = target.backup_replication_factor.max(1);
        let c = &target.backup_configs;
        if t.shard_count > 1 {
            admin
                .create_topic_if_missing(&target.name, partitions, rf, c)
                .await
        } else {
            admin
                .create_topic(&target.name, partitions, rf, c)
                .await
                .map(|_| true)
        }
    };
    if !dry_run && create.await? {
        st.created.push(target.name.clone());
    }
    for p in &target.partitions_written {
        st.lane_start.insert((target.name.clone(), *p), 0);
    }
    Ok(())
}

/// A target topic that exists: it has the partitions written, and those not yet started by
/// this restore are empty or handled as `existing_data` says.
async fn prepare_existing_topic(
    admin: &GroupAdmin,
    target: &TargetTopic,
    t: &RestoreTask,
    started_lanes: &HashSet<(String, i32)>,
    dry_run: bool,
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
    if non_empty.is_empty() {
        return Ok(());
    }
    existing_data(admin, t, &non_empty, dry_run, st).await
}

/// Target partitions that already hold records (partition, records, end): refused, appended
/// to, or purged.
async fn existing_data(
    admin: &GroupAdmin,
    t: &RestoreTask,
    non_empty: &[((String, i32), u64, i64)],
    dry_run: bool,
    st: &mut TargetState,
) -> Result<()> {
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
            if !dry_run {
                let upto: Vec<((String, i32), i64)> =
                    non_empty.iter().map(|(tp, _, l)| (tp.clone(), *l)).collect();
                admin.delete_records(&upto).await?;
            }
            for ((t, p), n, _) in non_empty {
                st.purged.push(format!("{t}-{p} ({n} records)"));
            }
        }
    }
    Ok(())
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
    // Per target partition: first restored offset and planned records.
    let mut lanes: BTreeMap<(String, i32), (i64, u64)> = BTreeMap::new();
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
        if let Some((first, _)) = m.target_range() {
            let lane = lanes
                .entry((u.target_topic.clone(), u.target_partition))
                .or_insert((first, 0));
            lane.0 = lane.0.min(first);
            lane.1 += u.records;
        }
    }
    let tps: Vec<(String, i32)> = lanes.keys().cloned().collect();
    let latest = admin
        .list_offsets_isolated(&tps, OffsetSpec::Latest, false)
        .await?;
    let mut trailing = Vec::new();
    for (tp, end) in tps.iter().zip(latest) {
        let end = end?.offset;
        let (first, records) = lanes[tp];
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
    // The partitions whose reported end trails the last record are read back at once, a few
    // at a time (each read waits for its end offset to settle).
    let reads = trailing.into_iter().map(|(tp, end, expected)| async move {
        if last_record_present(admin, tp, end, expected).await? {
            return Ok(());
        }
        Err(Error::VerificationFailed(format!(
            "{}-{} ends at offset {end}, before the restore's last record at {}: records are missing from the target",
            tp.0,
            tp.1,
            expected - 1
        )))
    });
    futures::stream::iter(reads)
        .buffered(TRAILING_READS)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// How many target partitions are read back at the same time by [`check_target_ends`].
const TRAILING_READS: usize = 8;

/// Some brokers report an end offset that trails the last batch: reads from just before it to
/// the end, and whether the last record is at `expected - 1` (an error when there are more).
async fn last_record_present(
    admin: &GroupAdmin,
    tp: &(String, i32),
    end: i64,
    expected: i64,
) -> Result<bool> {
    let config = admin.config().clone();
    let (topic, partition) = tp.clone();
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || -> Result<bool> {
        let _span = span.entered();
        let mut reader = TailReader::open(&config, &topic, partition, (end - 1).max(0))?;
        let mut last = None;
        while let Some(found) = reader.next()? {
            last = Some(found.offset);
        }
        match last {
            Some(last) if last >= expected => Err(Error::VerificationFailed(format!(
                "{topic}-{partition} holds a record at offset {last}, after this restore's last record at {}: something else wrote to it during the restore (another writer, or a second run of this restore); restore to an empty partition with no other writer",
                expected - 1
            ))),
            Some(last) => Ok(last == expected - 1),
            None => Ok(false),
        }
    })
    .await
    .map_err(|e| Error::kafka_thread("reading the target back did not complete", e))?
}
