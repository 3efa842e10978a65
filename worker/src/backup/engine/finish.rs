//! The end of a backup shard: the captured consumer offsets, the manifest (written last), and
//! the reports of a complete or an interrupted run.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use bytes::Bytes;
use chrono::Utc;

use super::commit::{remove_strays, Committer};
use super::plan::ShardPlan;
use super::reader::ReadStats;
use super::{BackupReport, BackupRequest};
use crate::backup::format::Codec;
use crate::backup::manifest::{checkpoint_key, offsets_key, Manifest, TopicData, FORMAT};
use crate::error::{Error, Result};
use crate::failpoints::crash_at;
use crate::groups::read_committed;
use crate::kafka::{GroupAdmin, OffsetSpec, TopicPartition};
use crate::snapshot::{GroupSnapshot, OffsetSnapshot};
use crate::storage::Storage;
use crate::task::BackupMode;

/// Every partition read: stores the topics' metadata, the captured offsets and the manifest
/// (last), then removes what interrupted runs left behind and the checkpoint. Returns the
/// manifest and the groups captured.
#[tracing::instrument(name = "backup_finish", skip_all, fields(backup_id = %req.backup_id, shard = req.shard_index))]
pub(super) async fn write_manifest(
    admin: &GroupAdmin,
    storage: &Storage,
    req: &BackupRequest,
    plan: ShardPlan,
    committer: &Committer<'_>,
    mut warnings: Vec<String>,
) -> Result<(Manifest, u64)> {
    let (id, shard, count) = (req.backup_id.as_str(), req.shard_index, req.shard_count);
    let mut topics = plan.topics;
    for p in &committer.parts {
        if let Some(td) = topics.get_mut(&p.topic) {
            td.partition_data.insert(p.partition, p.data.clone());
        }
    }
    topics.retain(|_, td| !td.partition_data.is_empty());
    warnings.extend(unexplained_gap_warnings(&topics));
    let (offsets, groups_captured) = if req.capture_offsets {
        capture_offsets(admin, storage, req, &plan.mine, &mut warnings).await?
    } else {
        (None, 0)
    };
    let mut manifest = Manifest {
        format: FORMAT.to_string(),
        backup_id: id.to_string(),
        chain: req.chain.clone(),
        parent: plan.parent.map(|p| p.backup_id),
        mode: mode_name(req.mode).to_string(),
        shard_index: shard,
        shard_count: count,
        cluster: admin.config().bootstrap_servers.clone(),
        started_at: plan.started_at,
        completed_at: Utc::now(),
        compression: req.codec.name().to_string(),
        compression_level: match req.codec {
            Codec::Zstd { level } => Some(level),
            _ => None,
        },
        isolation: "read_committed".into(),
        topics,
        totals: Default::default(),
        offsets,
        warnings,
    };
    manifest.compute_totals();
    let json =
        serde_json::to_vec_pretty(&manifest).map_err(|e| Error::encode("the manifest", e))?;
    crash_at("before-manifest");
    let mkey = crate::backup::manifest::manifest_key(id, shard, count);
    storage.put_once(&mkey, Bytes::from(json)).await?;
    crash_at("after-manifest");
    remove_strays(storage, &manifest).await?;
    storage.delete(&checkpoint_key(id, shard, count)).await?;
    tracing::debug!(key = %mkey, groups_captured, "manifest stored");
    Ok((manifest, groups_captured))
}

/// One warning per partition of a topic that is not compacted with gaps nothing explains.
fn unexplained_gap_warnings(topics: &BTreeMap<String, TopicData>) -> Vec<String> {
    let mut out = Vec::new();
    for (t, td) in topics {
        for (p, d) in &td.partition_data {
            if d.gaps.unexplained == 0 {
                continue;
            }
            let ranges: Vec<String> = d
                .gaps
                .ranges
                .iter()
                .filter(|(from, to)| to - from > 1)
                .take(5)
                .map(|(from, to)| format!("{from}..{to}"))
                .collect();
            out.push(format!(
                "{t}-{p}: {} offsets hold no record and nothing explains it (cleanup.policy is not compact): records the broker lost or skipped, or aborted transactions (gaps {})",
                d.gaps.unexplained,
                ranges.join(", ")
            ));
        }
    }
    out
}

/// The report of a run stopped before it finished: what the checkpoint holds, when it was
/// written, and how far behind the high watermarks it is.
pub(super) async fn interrupted_report(
    admin: &GroupAdmin,
    req: &BackupRequest,
    committer: &Committer<'_>,
    started: Instant,
    read: &ReadStats,
) -> BackupReport {
    let names: Vec<TopicPartition> = committer
        .parts
        .iter()
        .map(|p| (p.topic.clone(), p.partition))
        .collect();
    let lag = match admin
        .list_offsets_isolated(&names, OffsetSpec::Latest, false)
        .await
    {
        Ok(ends) => ends
            .into_iter()
            .zip(&committer.parts)
            .map(|(e, p)| e.map(|e| (e.offset - p.next_offset).max(0) as u64))
            .sum::<Result<u64>>()
            .ok(),
        Err(e) => {
            tracing::warn!(error = %e, "the lag of the interrupted backup could not be measured");
            None
        }
    };
    let mut r = BackupReport {
        backup_id: req.backup_id.clone(),
        mode: mode_name(req.mode).to_string(),
        chain: req.chain.clone(),
        shard_index: req.shard_index,
        shard_count: req.shard_count,
        partitions: committer.parts.len() as u64,
        duration_ms: started.elapsed().as_millis(),
        manifest: checkpoint_key(&req.backup_id, req.shard_index, req.shard_count),
        interrupted: true,
        checkpoint_at: Some(committer.written_at),
        lag,
        ..BackupReport::default()
    };
    for p in &committer.parts {
        r.records += p.data.records;
        r.bytes += p.data.bytes;
        r.stored_bytes += p.data.stored_bytes;
        r.segments += p.data.segments.len() as u64;
        r.gaps.absorb(&p.data.gaps);
    }
    let secs = started.elapsed().as_secs_f64();
    if secs > 0.0 {
        r.records_per_second = read.records as f64 / secs;
        r.mib_per_second = read.bytes as f64 / secs / (1024.0 * 1024.0);
    }
    r
}

pub(super) fn mode_name(mode: BackupMode) -> &'static str {
    match mode {
        BackupMode::OneShot => "one_shot",
        BackupMode::Continuous => "continuous",
        BackupMode::Incremental => "incremental",
    }
}

pub(super) fn report_from_manifest(m: &Manifest, key: &str, started: Instant) -> BackupReport {
    BackupReport {
        backup_id: m.backup_id.clone(),
        complete: true,
        mode: m.mode.clone(),
        chain: m.chain.clone(),
        parent: m.parent.clone(),
        shard_index: m.shard_index,
        shard_count: m.shard_count,
        topics: m.totals.topics,
        partitions: m.totals.partitions,
        records: m.totals.records,
        bytes: m.totals.bytes,
        stored_bytes: m.totals.stored_bytes,
        segments: m.totals.segments,
        duration_ms: started.elapsed().as_millis(),
        manifest: key.to_string(),
        warnings: m.warnings.clone(),
        discontinuities: m.discontinuities(),
        gaps: m.totals.gaps.clone(),
        ..BackupReport::default()
    }
}

/// Stores the committed offsets of every group on this shard's partitions (snapshot format).
async fn capture_offsets(
    admin: &GroupAdmin,
    storage: &Storage,
    req: &BackupRequest,
    mine: &[TopicPartition],
    warnings: &mut Vec<String>,
) -> Result<(Option<String>, u64)> {
    let wanted: BTreeSet<&TopicPartition> = mine.iter().collect();
    let groups: Vec<String> = admin
        .list_groups()
        .await?
        .into_iter()
        .map(|g| g.group_id)
        .collect();
    let read_at = Utc::now();
    let committed = match read_committed(admin, &groups, 16).await {
        Ok(c) => c,
        Err(e) => {
            warnings.push(format!("consumer offsets were not captured: {e}"));
            return Ok((None, 0));
        }
    };
    let mut snap_groups = BTreeMap::new();
    for (g, offsets) in committed.offsets {
        let on_mine: Vec<_> = offsets
            .into_iter()
            .filter(|o| wanted.contains(&(o.topic.clone(), o.partition)))
            .collect();
        if !on_mine.is_empty() {
            snap_groups.insert(
                g,
                GroupSnapshot::from_committed(&on_mine, read_at.timestamp_millis()),
            );
        }
    }
    let n = snap_groups.len() as u64;
    let key = offsets_key(&req.backup_id, req.shard_index, req.shard_count);
    let snap = OffsetSnapshot {
        snapshot_id: format!("{}-offsets", req.backup_id),
        timestamp: read_at,
        cluster: admin.config().bootstrap_servers.clone(),
        description: Some(format!(
            "Consumer offsets captured with backup {}",
            req.backup_id
        )),
        groups: snap_groups,
    };
    storage.put(&key, Bytes::from(snap.to_json()?)).await?;
    Ok((Some(key), n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::manifest::{GapCause, Gaps, PartitionData};

    #[test]
    fn unexplained_gaps_are_warned_about_per_partition() {
        let mut gaps = Gaps::default();
        gaps.add_as(4, 5, GapCause::Marker);
        gaps.add_as(7, 10, GapCause::Unexplained);
        let mut quiet = Gaps::default();
        quiet.add_as(3, 9, GapCause::Compacted);
        let topic = |g: Gaps| TopicData {
            partitions: 1,
            partition_data: BTreeMap::from([(
                0,
                PartitionData {
                    gaps: g,
                    ..PartitionData::default()
                },
            )]),
            ..TopicData::default()
        };
        let topics = BTreeMap::from([
            ("orders".to_string(), topic(gaps)),
            ("changelog".to_string(), topic(quiet)),
        ]);
        let w = unexplained_gap_warnings(&topics);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with("orders-0: 3 offsets hold no record"),
            "{w:?}"
        );
        assert!(w[0].ends_with("(gaps 7..10)"), "{w:?}");
    }
}
