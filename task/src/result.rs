//! What the worker reports back through the termination message: [`TaskResult`].

use serde::{Deserialize, Serialize};

use crate::ids::MAX_ID_LEN;
use crate::MAX_RESULT_BYTES;

/// What the worker reports back (JSON, at most [`MAX_RESULT_BYTES`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskResult {
    /// `Completed` or `Failed`.
    pub phase: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    /// One line for the Ready condition's message.
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_data: Option<ResultSnapshotData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<ResultVerification>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_rolled_back: Option<u64>,
    /// rollback: the snapshot of the offsets it replaced (roll back to it to undo the rollback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safety_snapshot_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_failed: Option<u64>,
    /// What an offset reset planned or did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset: Option<ResultReset>,
    /// What a backup stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<ResultBackup>,
    /// What a restore did (or, in a dry run, would do).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<ResultRestore>,
    /// A plan (a task with `planOut`), or the plan an approved run executed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<ResultPlan>,
    /// What a restore drill found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drill: Option<ResultDrill>,
    /// Set when the task failed: the error's label and exit code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ResultError>,
}

/// A restore's summary.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultRestore {
    pub restore_id: String,
    /// Only validated; nothing was written.
    pub dry_run: bool,
    /// Whether every selected record is in the target.
    pub complete: bool,
    pub topics: u64,
    pub partitions: u64,
    /// Records selected (the whole restore).
    pub records_total: u64,
    /// Records in the target so far (including earlier attempts).
    pub records_restored: u64,
    pub bytes_total: u64,
    pub bytes_restored: u64,
    /// Object key of the offset mapping, relative to the storage location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset_mapping: Option<String>,
    /// Groups whose offsets were translated (and committed unless a dry run or manual).
    pub groups_translated: u64,
    pub groups_failed: u64,
    /// One-line summary of a validation (dry run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<String>,
}

/// A backup's summary.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultBackup {
    pub backup_id: String,
    /// Whether this shard's part of the backup is complete (its manifest written).
    pub complete: bool,
    pub topics: u64,
    pub partitions: u64,
    pub records: u64,
    /// Record bytes (keys, values, headers) before compression.
    pub bytes: u64,
    /// Bytes written to storage.
    pub stored_bytes: u64,
    pub segments: u64,
    /// Consumer groups whose offsets were captured.
    pub groups_captured: u64,
    /// The key that wraps the backup's data key (a key file's id, or `aws-kms:<key>`); absent
    /// for a backup stored in the clear.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_key_id: Option<String>,
    /// Backups deleted by a cleanup task (the first [`MAX_RESULT_IDS`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deleted: Vec<String>,
    /// Partitions an incremental backup started at a new log start because the topic was
    /// re-created or truncated since the parent backup (named in the message and manifest).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub discontinuities: u64,
    /// Backups a cleanup task deleted, all of them (`deleted` may be cut).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub deleted_total: u64,
    /// Complete backups a cleanup task found damaged (not counted as kept; the first
    /// [`MAX_RESULT_IDS`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub damaged: Vec<String>,
    /// Offsets in the backed-up ranges that hold no record (compaction, retention,
    /// transaction markers, unexplained).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub gap_offsets: u64,
    /// Of those, the offsets nothing explains (a topic that is not compacted).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unexplained_gap_offsets: u64,
    /// When an interrupted backup last wrote its checkpoint (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_time: Option<String>,
    /// Offsets an interrupted backup was behind the high watermarks at its last checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag: Option<u64>,
}

/// A plan's bounded summary; the whole plan is in storage under `key`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultPlan {
    /// [`crate::PLAN_HASH_LEN`] hex digits of the SHA-256 of the stored plan document: what an
    /// approval names.
    pub hash: String,
    /// Where the whole plan is, relative to the task's storage.
    pub key: String,
    /// When it was made (RFC 3339).
    pub created: String,
    /// One line saying what executing it does.
    pub summary: String,
    /// restore: records and bytes to write; topics and partitions written.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub records: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub bytes: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub topics: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub partitions: u64,
    /// restore: topics it creates (the first [`MAX_RESULT_IDS`]; `topicsToCreateTotal` counts all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topics_to_create: Vec<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub topics_to_create_total: u64,
    /// restore: topic configs the target would refuse, as `topic: config` (the first
    /// [`MAX_RESULT_IDS`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused_configs: Vec<String>,
    /// Consumer groups whose offsets change (reset, rollback, restore phase three) and the
    /// partitions whose committed offset changes.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub groups: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub offsets: u64,
    /// Groups with active members now (the first [`MAX_RESULT_IDS`]; `activeGroupsTotal` counts
    /// all): executing would refuse them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub active_groups: Vec<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub active_groups_total: u64,
    /// The safety snapshot executing it takes first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safety_snapshot_id: Option<String>,
}

/// A restore drill's findings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultDrill {
    pub drill_id: String,
    /// The backup drilled (the newest of its chain).
    pub backup_id: String,
    /// The expanded prefix of the scratch topics and groups.
    pub prefix: String,
    pub topics: u64,
    pub partitions: u64,
    /// Records and record bytes restored and read back.
    pub records: u64,
    pub bytes: u64,
    /// Every restored record matched the backup (count and per-partition digest) and every
    /// translated offset checked.
    pub verified: bool,
    /// Restore wall time, seconds (milliseconds precision).
    pub rto_seconds: f64,
    /// Age of the newest backed-up record when the drill started, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpo_seconds: Option<f64>,
    /// Record bytes restored per second.
    pub bytes_per_second: u64,
    /// Consumer groups whose translated offsets were checked.
    pub groups_checked: u64,
    /// What failed, one line each (the first [`MAX_RESULT_IDS`]; `failuresTotal` counts all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failures_total: u64,
    /// The scratch topics and groups were all deleted.
    pub cleaned_up: bool,
}

/// Ids listed at most in a result's lists of backups.
pub const MAX_RESULT_IDS: usize = 20;

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// An offset reset's summary, with per-group results truncated to fit the termination message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultReset {
    /// Only planned; nothing was changed.
    pub dry_run: bool,
    /// Groups selected.
    pub groups_total: u64,
    /// Groups whose offsets were all committed (dry run: groups that would change).
    pub groups_reset: u64,
    /// Groups refused (active) or failed.
    pub groups_failed: u64,
    /// Partitions whose committed offset the plan changes.
    pub partitions_planned: u64,
    /// Offsets committed.
    pub offsets_reset: u64,
    /// Committed offsets per second over the run, rounded.
    pub offsets_per_second: u64,
    /// Number of per-group results before truncation.
    pub total_group_results: u64,
    /// The first per-group results (failed groups first, as many as fit).
    #[serde(default)]
    pub group_results: Vec<ResultGroup>,
}

/// One group's reset outcome.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultGroup {
    pub group: String,
    /// `reset`, `planned`, `unchanged` or `failed`.
    pub status: String,
    /// Partitions committed (or planned, in a dry run).
    pub partitions: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A dry run: the first partitions the plan changes (at most
    /// [`MAX_RESULT_PLAN_PARTITIONS`]; fewer than `partitions` marks a cut).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plan: Vec<ResultPartitionPlan>,
}

/// Partitions listed at most in one group's plan in a result.
pub const MAX_RESULT_PLAN_PARTITIONS: usize = 10;

/// One partition of a planned reset: where its committed offset is and where it goes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultPartitionPlan {
    pub topic: String,
    pub partition: i32,
    /// The committed offset now (absent: none yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<i64>,
    pub target: i64,
    /// `set` (no committed offset yet), `forward` (records skipped) or `rewind` (records
    /// consumed again).
    pub action: String,
}

/// Counts of a snapshot.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultSnapshotData {
    pub groups: u64,
    pub total_partitions: u64,
    pub timestamp: String,
}

/// A verification outcome, with differences truncated to fit the termination message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultVerification {
    pub matched: bool,
    pub total_differences: u64,
    /// The first differences (as many as fit).
    #[serde(default)]
    pub differences: Vec<ResultDifference>,
}

/// One difference: group, topic, partition, expected, actual.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultDifference {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual: Option<i64>,
}

/// Why a task failed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultError {
    pub kind: String,
    pub exit_code: i32,
}

/// [`TaskResult::phase`] of a task that succeeded.
pub const PHASE_COMPLETED: &str = "Completed";
/// [`TaskResult::phase`] of a task that failed.
pub const PHASE_FAILED: &str = "Failed";

impl TaskResult {
    /// The result as compact JSON of at most [`MAX_RESULT_BYTES`] bytes, always valid JSON.
    ///
    /// The message is made one line first. When the whole result does not fit, it is shortened
    /// in this order until it does: verification differences are dropped from the end
    /// (`totalDifferences` keeps the real count, so `differences.len() < totalDifferences`
    /// marks the truncation), then the message is cut (ending in `…`); as a last resort only
    /// the phase, operation, a fixed message and the error remain. A snapshot id longer than
    /// any valid one is cut to [`MAX_ID_LEN`] characters.
    pub fn to_bounded_json(&self) -> Vec<u8> {
        let mut r = self.clone();
        r.message = one_line(&r.message);
        if let Some(id) = &r.snapshot_id {
            // Longer ids are invalid anyway (and the message says so).
            let id: Vec<char> = id.chars().collect();
            r.snapshot_id = Some(cut(&id, MAX_ID_LEN));
        }
        let full = encode(&r);
        if full.len() <= MAX_RESULT_BYTES {
            return full;
        }
        // What is cut, in this order, each as little as needed: the verification's differences,
        // then the plans of the last reset groups (their counts stay), then whole groups, then a
        // plan's name lists, then the message.
        if let Some(all) = r
            .verification
            .as_mut()
            .map(|v| std::mem::take(&mut v.differences))
        {
            fit(&mut r, all.len(), |r, k| {
                if let Some(v) = r.verification.as_mut() {
                    v.differences = all[..k].to_vec();
                }
            });
            if let Some(out) = fitting(&r) {
                return out;
            }
        }
        let plans: Option<Vec<Vec<ResultPartitionPlan>>> = r.reset.as_mut().map(|reset| {
            reset
                .group_results
                .iter_mut()
                .map(|g| std::mem::take(&mut g.plan))
                .collect()
        });
        if let Some(plans) = plans {
            fit(&mut r, plans.len(), |r, k| {
                if let Some(reset) = r.reset.as_mut() {
                    for (i, g) in reset.group_results.iter_mut().enumerate() {
                        g.plan = if i < k { plans[i].clone() } else { Vec::new() };
                    }
                }
            });
            if let Some(out) = fitting(&r) {
                return out;
            }
        }
        if let Some(all) = r
            .reset
            .as_mut()
            .map(|reset| std::mem::take(&mut reset.group_results))
        {
            fit(&mut r, all.len(), |r, k| {
                if let Some(reset) = r.reset.as_mut() {
                    reset.group_results = all[..k].to_vec();
                }
            });
            if let Some(out) = fitting(&r) {
                return out;
            }
        }
        // A plan's name lists (its hash, key and counts always stay: an approval names them).
        if let Some(p) = r.plan.as_mut() {
            let lists = [
                std::mem::take(&mut p.topics_to_create),
                std::mem::take(&mut p.refused_configs),
                std::mem::take(&mut p.active_groups),
            ];
            let n = lists.iter().map(Vec::len).max().unwrap_or(0);
            fit(&mut r, n, |r, k| {
                if let Some(p) = r.plan.as_mut() {
                    let first = |v: &Vec<String>| v.iter().take(k).cloned().collect();
                    p.topics_to_create = first(&lists[0]);
                    p.refused_configs = first(&lists[1]);
                    p.active_groups = first(&lists[2]);
                }
            });
            if let Some(out) = fitting(&r) {
                return out;
            }
        }
        let message: Vec<char> = r.message.chars().collect();
        fit(&mut r, message.len(), |r, k| r.message = cut(&message, k));
        if let Some(out) = fitting(&r) {
            return out;
        }
        encode(&TaskResult {
            phase: r.phase,
            operation: r.operation,
            message: "the result did not fit in the termination message; see the pod log".into(),
            plan: r.plan,
            error: r.error,
            ..TaskResult::default()
        })
    }
}

/// Applies `keep(r, k)` with the largest `k` in `0..=n` for which `r` encodes within
/// [`MAX_RESULT_BYTES`] (or 0), by binary search: `keep` must make the encoding grow with `k`.
fn fit(r: &mut TaskResult, n: usize, mut keep: impl FnMut(&mut TaskResult, usize)) {
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        keep(r, mid);
        if encode(r).len() <= MAX_RESULT_BYTES {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    keep(r, lo);
}

/// `r` encoded, when that fits in [`MAX_RESULT_BYTES`].
fn fitting(r: &TaskResult) -> Option<Vec<u8>> {
    Some(encode(r)).filter(|out| out.len() <= MAX_RESULT_BYTES)
}

/// Compact JSON; these types always serialize (string keys only).
fn encode(r: &TaskResult) -> Vec<u8> {
    serde_json::to_vec(r).unwrap_or_else(|_| {
        br#"{"phase":"Failed","message":"the result could not be encoded"}"#.to_vec()
    })
}

/// `text` with line breaks and other control characters replaced by spaces.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

/// The first `n` characters, with `…` in place of the last kept one when anything was cut.
fn cut(chars: &[char], n: usize) -> String {
    if n >= chars.len() {
        return chars.iter().collect();
    }
    let mut s: String = chars[..n.saturating_sub(1)].iter().collect();
    if n > 0 {
        s.push('…');
    }
    s
}
