//! Plan, then approve: the stored plan document of a restore, an offset reset or an offset
//! rollback. A plan says WHAT executing does (records and topics written, offsets committed,
//! the safety snapshot taken) and the PRECONDITIONS executing checks against the live cluster
//! first (topics and their end offsets; groups' committed offsets and that they have no active
//! members). Its hash is the first [`PLAN_HASH_LEN`] hex digits of the SHA-256 of the stored
//! bytes: what a person approves. Executing an approved plan whose file has another hash, or
//! whose preconditions no longer hold, is [`Error::PlanChanged`] (exit 15) and changes nothing.
//!
//! - [`check`]: the preconditions read again from the cluster and compared.
//! - [`store`]: where a plan is written and read (a local file, or a key of the task's storage).
//! - [`reset`], [`rollback`], [`restore`]: each kind's plan made from what its engine computes.

pub mod check;
pub mod reset;
pub mod restore;
pub mod rollback;
pub mod store;

use chrono::{SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::restore::configs::RefusedConfig;
use crate::task::{ResultPlan, MAX_RESULT_IDS, PLAN_HASH_LEN};

/// The `apiVersion` of plan documents this worker writes and reads.
pub const PLAN_API_VERSION: &str = "tidemark.dev/plan/v1";

/// What a plan executes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PlanKind {
    Restore,
    OffsetReset,
    OffsetRollback,
}

impl PlanKind {
    /// How messages name it.
    pub fn describe(self) -> &'static str {
        match self {
            PlanKind::Restore => "restore",
            PlanKind::OffsetReset => "offset reset",
            PlanKind::OffsetRollback => "offset rollback",
        }
    }
}

/// A plan, as stored (JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlanDocument {
    pub api_version: String,
    pub kind: PlanKind,
    /// When it was made (RFC 3339).
    pub created: String,
    /// The cluster it was made against (bootstrap servers).
    pub cluster: String,
    /// One line saying what executing it does.
    pub summary: String,
    /// A restore: what it writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<RestoreChanges>,
    /// An offset reset or rollback: the offsets it commits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offsets: Option<OffsetChanges>,
    /// What executing checks against the cluster before changing anything.
    pub preconditions: Preconditions,
}

/// The offsets an offset reset or rollback commits.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OffsetChanges {
    /// The reset spec as the CLI spells it (`--to-latest`), or `snapshot <id>` for a rollback.
    pub strategy: String,
    /// A rollback: the snapshot whose offsets it commits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    /// The safety snapshot of the offsets about to change, taken first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safety_snapshot_id: Option<String>,
    pub groups: Vec<GroupChange>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// One group's offsets, or why it is left alone.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GroupChange {
    pub group: String,
    /// Kafka's state name when planned (`Empty`, `Stable`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Why executing leaves the group alone (active members, a planning error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    pub partitions: Vec<OffsetChange>,
}

/// One partition: the committed offset when planned and the one executing commits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OffsetChange {
    pub topic: String,
    pub partition: i32,
    /// `None`: the group had no committed offset there.
    pub current: Option<i64>,
    pub target: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_start: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_end: Option<i64>,
}

impl OffsetChange {
    /// Whether executing commits this partition.
    pub fn changes(&self) -> bool {
        self.current != Some(self.target)
    }
}

/// What a restore writes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RestoreChanges {
    pub backup_id: String,
    /// The backups restored, oldest first (the chain up to `backupId`).
    pub links: Vec<String>,
    pub restore_id: String,
    pub records: u64,
    pub bytes: u64,
    /// Every source partition (and era) restored, with where it goes.
    pub partitions: Vec<RestorePartition>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topics_to_create: Vec<String>,
    /// Configs the target would refuse on the topics the restore creates (topic, config, value,
    /// reason): executing the plan fails before it creates any topic.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused_configs: Vec<RefusedConfig>,
    /// Phase three: per group, the source offsets translated through the offset mapping.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub translated_groups: Vec<TranslatedGroup>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// One unit of a restore: a source partition (era) to a target partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RestorePartition {
    pub source_topic: String,
    pub source_partition: i32,
    #[serde(default)]
    pub era: u32,
    pub target_topic: String,
    pub target_partition: i32,
    pub records: u64,
    pub bytes: u64,
}

/// A group whose committed source offsets phase three translates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TranslatedGroup {
    pub group: String,
    /// `topic-partition: source offset`, each translated to the target offset of the first
    /// restored record at or after it.
    pub source_offsets: Vec<SourceOffset>,
}

/// A committed source offset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SourceOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// What executing checks against the live cluster before changing anything.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Preconditions {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<GroupCondition>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topics: Vec<TopicCondition>,
}

/// A group as the plan found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GroupCondition {
    pub group: String,
    /// It had no active members (executing changes only inactive groups).
    pub inactive: bool,
    /// Its committed offsets on the partitions the plan touches (`offset: null`: none).
    pub committed: Vec<CommittedAt>,
}

/// A committed offset (or its absence) on one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CommittedAt {
    pub topic: String,
    pub partition: i32,
    pub offset: Option<i64>,
}

/// A target topic as the plan found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TopicCondition {
    pub topic: String,
    pub exists: bool,
    /// Its partition count (existing topics; `None`: not a precondition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<i32>,
    /// End offsets of the partitions written (existing topics).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub end_offsets: Vec<PartitionEnd>,
}

/// A partition's end offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PartitionEnd {
    pub partition: i32,
    pub end: i64,
}

impl PlanDocument {
    /// A new document of `kind`, made now.
    pub fn new(kind: PlanKind, cluster: &str) -> PlanDocument {
        PlanDocument {
            api_version: PLAN_API_VERSION.into(),
            kind,
            created: Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
            cluster: cluster.to_string(),
            summary: String::new(),
            restore: None,
            offsets: None,
            preconditions: Preconditions::default(),
        }
    }

    /// The stored form: pretty JSON with a final newline.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut v = serde_json::to_vec_pretty(self).map_err(|e| Error::Encode {
            what: "plan document",
            source: Box::new(e),
        })?;
        v.push(b'\n');
        Ok(v)
    }

    /// Parses a stored plan; `source` names it in errors. A plan of another `apiVersion` or
    /// `kind` than `want` is refused.
    pub fn parse(data: &[u8], source: &str, want: PlanKind) -> Result<PlanDocument> {
        let doc: PlanDocument = serde_json::from_slice(data)
            .map_err(|e| Error::malformed_json("plan", source.to_string(), e))?;
        if doc.api_version != PLAN_API_VERSION {
            return Err(Error::Malformed {
                kind: "plan",
                file: source.to_string(),
                reason: format!(
                    "apiVersion is '{}'; this worker reads {PLAN_API_VERSION}",
                    doc.api_version
                ),
            });
        }
        if doc.kind != want {
            return Err(Error::invalid(format!(
                "the plan '{source}' is an {} plan, not an {} plan",
                doc.kind.describe(),
                want.describe()
            )));
        }
        Ok(doc)
    }

    /// The bounded summary a result carries.
    pub fn result(&self, hash: &str, key: &str) -> ResultPlan {
        let mut r = ResultPlan {
            hash: hash.to_string(),
            key: key.to_string(),
            created: self.created.clone(),
            summary: self.summary.clone(),
            ..ResultPlan::default()
        };
        if let Some(rs) = &self.restore {
            r.records = rs.records;
            r.bytes = rs.bytes;
            let topics: std::collections::BTreeSet<&str> = rs
                .partitions
                .iter()
                .map(|p| p.target_topic.as_str())
                .collect();
            r.topics = topics.len() as u64;
            r.partitions = rs.partitions.len() as u64;
            r.topics_to_create = first(&rs.topics_to_create);
            r.topics_to_create_total = rs.topics_to_create.len() as u64;
            let refused: Vec<String> = rs.refused_configs.iter().map(|c| c.short()).collect();
            r.refused_configs = first(&refused);
            r.groups = rs.translated_groups.len() as u64;
            r.offsets = rs
                .translated_groups
                .iter()
                .map(|g| g.source_offsets.len() as u64)
                .sum();
        }
        if let Some(o) = &self.offsets {
            let eligible = o.groups.iter().filter(|g| g.refused.is_none());
            r.groups = eligible.clone().count() as u64;
            r.offsets = eligible
                .flat_map(|g| g.partitions.iter())
                .filter(|p| p.changes())
                .count() as u64;
            r.safety_snapshot_id = o.safety_snapshot_id.clone();
        }
        let active: Vec<String> = self
            .preconditions
            .groups
            .iter()
            .filter(|g| !g.inactive)
            .map(|g| g.group.clone())
            .collect();
        r.active_groups = first(&active);
        r.active_groups_total = active.len() as u64;
        r
    }
}

fn first(v: &[String]) -> Vec<String> {
    v.iter().take(MAX_RESULT_IDS).cloned().collect()
}

/// A plan's hash: the first [`PLAN_HASH_LEN`] lowercase hex digits of the SHA-256 of `data`.
pub fn plan_hash(data: &[u8]) -> String {
    let digest = Sha256::digest(data);
    let mut hex = String::with_capacity(64);
    for b in digest {
        hex.push_str(&format!("{b:02x}"));
    }
    hex.truncate(PLAN_HASH_LEN);
    hex
}

/// Checks that `data` (the plan read from `source`) has the approved hash: a missing or
/// changed plan is [`Error::PlanChanged`].
pub fn check_hash(data: &[u8], approved: &str, source: &str) -> Result<()> {
    let actual = plan_hash(data);
    if actual != approved {
        return Err(Error::PlanChanged(format!(
            "the plan {source} has hash {actual}, not the approved {approved}: it was changed or replaced after approval; nothing was changed. Plan again and approve the new plan"
        )));
    }
    Ok(())
}

/// A plan that executes nothing useful: a reset or rollback that commits no offset.
pub fn offsets_summary(kind: PlanKind, o: &OffsetChanges) -> String {
    let eligible: Vec<&GroupChange> = o.groups.iter().filter(|g| g.refused.is_none()).collect();
    let offsets: usize = eligible
        .iter()
        .map(|g| g.partitions.iter().filter(|p| p.changes()).count())
        .sum();
    let refused = o.groups.len() - eligible.len();
    let mut s = match kind {
        PlanKind::OffsetRollback => format!(
            "Roll back {} ({}) to snapshot {}",
            count(eligible.len(), "group"),
            count(offsets, "offset"),
            o.snapshot_id.as_deref().unwrap_or("-")
        ),
        _ => format!(
            "Reset {} ({}) {}",
            count(eligible.len(), "group"),
            count(offsets, "offset"),
            o.strategy
        ),
    };
    if refused > 0 {
        s.push_str(&format!("; {} left alone", count(refused, "group")));
    }
    if let Some(id) = &o.safety_snapshot_id {
        s.push_str(&format!("; safety snapshot {id} first"));
    }
    s
}

/// `n thing` / `n things`.
pub fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> PlanDocument {
        let mut d = PlanDocument::new(PlanKind::OffsetReset, "k:9092");
        d.created = "2026-12-07T08:00:00Z".into();
        let o = OffsetChanges {
            strategy: "--to-latest".into(),
            safety_snapshot_id: Some("snap-1".into()),
            groups: vec![
                GroupChange {
                    group: "a".into(),
                    state: Some("Empty".into()),
                    refused: None,
                    partitions: vec![
                        OffsetChange {
                            topic: "t".into(),
                            partition: 0,
                            current: Some(3),
                            target: 10,
                            log_start: Some(0),
                            log_end: Some(10),
                        },
                        OffsetChange {
                            topic: "t".into(),
                            partition: 1,
                            current: Some(10),
                            target: 10,
                            log_start: Some(0),
                            log_end: Some(10),
                        },
                    ],
                },
                GroupChange {
                    group: "b".into(),
                    state: Some("Stable".into()),
                    refused: Some("active".into()),
                    partitions: Vec::new(),
                },
            ],
            ..OffsetChanges::default()
        };
        d.summary = offsets_summary(PlanKind::OffsetReset, &o);
        d.offsets = Some(o);
        d.preconditions.groups = vec![
            GroupCondition {
                group: "a".into(),
                inactive: true,
                committed: vec![CommittedAt {
                    topic: "t".into(),
                    partition: 0,
                    offset: Some(3),
                }],
            },
            GroupCondition {
                group: "b".into(),
                inactive: false,
                committed: Vec::new(),
            },
        ];
        d
    }

    #[test]
    fn a_plan_reads_back_as_written_and_its_hash_is_of_the_bytes() {
        let d = doc();
        let bytes = d.to_bytes().expect("encode");
        let back = PlanDocument::parse(&bytes, "p.json", PlanKind::OffsetReset).expect("parse");
        assert_eq!(back, d);
        let h = plan_hash(&bytes);
        assert_eq!(h.len(), PLAN_HASH_LEN);
        tidemark_task::validate_plan_hash("hash", &h).expect("well formed");
        // The SHA-256 of "abc" starts ba7816bf8f01cfea.
        assert_eq!(plan_hash(b"abc"), "ba7816bf8f01cfea");
        check_hash(&bytes, &h, "p.json").expect("same bytes");
        let mut tampered = bytes.clone();
        let at = tampered.len() - 3;
        tampered[at] ^= 1;
        let e = check_hash(&tampered, &h, "p.json").expect_err("tampered");
        assert_eq!(e.exit_code(), 15, "{e}");
        assert_eq!(e.label(), "plan_changed");
        assert!(e.to_string().contains(&h), "{e}");
    }

    #[test]
    fn a_plan_of_another_kind_or_version_is_refused() {
        let bytes = doc().to_bytes().expect("encode");
        let e = PlanDocument::parse(&bytes, "p.json", PlanKind::Restore).expect_err("kind");
        assert!(e.to_string().contains("offset reset plan"), "{e}");
        let other = String::from_utf8(bytes)
            .expect("utf8")
            .replace(PLAN_API_VERSION, "tidemark.dev/plan/v9");
        let e = PlanDocument::parse(other.as_bytes(), "p.json", PlanKind::OffsetReset)
            .expect_err("version");
        assert!(e.to_string().contains("apiVersion"), "{e}");
    }

    #[test]
    fn a_restore_plan_keeps_its_refused_configs_and_its_result_names_them() {
        let mut d = PlanDocument::new(PlanKind::Restore, "k:9092");
        let refused = |config: &str| RefusedConfig {
            topic: "orders".into(),
            config: config.into(),
            value: "x".into(),
            reason: "not a topic config".into(),
        };
        d.restore = Some(RestoreChanges {
            backup_id: "b1".into(),
            refused_configs: vec![refused("a.b"), refused("c.d")],
            ..RestoreChanges::default()
        });
        let bytes = d.to_bytes().expect("encode");
        let back = PlanDocument::parse(&bytes, "p.json", PlanKind::Restore).expect("parse");
        assert_eq!(back, d);
        let text = String::from_utf8(bytes).expect("utf8");
        assert!(
            text.contains("\"reason\": \"not a topic config\""),
            "{text}"
        );
        let r = d.result("0123456789abcdef", "plans/r.json");
        assert_eq!(r.refused_configs, vec!["orders: a.b", "orders: c.d"]);
    }

    #[test]
    fn the_result_counts_what_changes_and_names_the_active_groups() {
        let d = doc();
        let r = d.result("0123456789abcdef", "plans/u/1.json");
        assert_eq!(r.groups, 1);
        assert_eq!(r.offsets, 1, "only t-0 moves");
        assert_eq!(r.active_groups, vec!["b".to_string()]);
        assert_eq!(r.active_groups_total, 1);
        assert_eq!(r.safety_snapshot_id.as_deref(), Some("snap-1"));
        assert_eq!(
            r.summary,
            "Reset 1 group (1 offset) --to-latest; 1 group left alone; safety snapshot snap-1 first"
        );
    }
}
