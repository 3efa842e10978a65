//! A drill's full report ([`DrillReport`]: what `tidemark drill -f json` prints and what is stored
//! at `reportKey`), its compact form for the termination message ([`DrillReport::to_result`])
//! and its text box.

use serde::Serialize;

use super::digest::PartitionCheck;
use crate::report::{thousands, BoxReport};
use crate::restore::plan::human_bytes;
use crate::task::{
    ResultDrill, ResultError, TaskResult, MAX_RESULT_IDS, PHASE_COMPLETED, PHASE_FAILED,
};

/// One consumer group's translated offsets, committed to its scratch group and read back.
#[derive(Debug, Clone, Serialize)]
pub struct GroupCheck {
    pub group: String,
    pub scratch_group: String,
    /// Partitions whose translated offset was committed.
    pub offsets: u64,
    pub matched: bool,
    /// The offsets read back from the scratch group.
    pub committed: Vec<CommittedRow>,
    /// `topic-partition: expected E, read back A` for each offset that differs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub differences: Vec<String>,
}

/// One committed offset of a scratch group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommittedRow {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// Why a drill failed: the error's label, exit code and message.
#[derive(Debug, Clone, Serialize)]
pub struct DrillError {
    pub kind: String,
    pub exit_code: i32,
    pub message: String,
}

/// Everything a drill found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DrillReport {
    /// `verified` or `failed`.
    pub status: &'static str,
    pub drill_id: String,
    pub backup_id: String,
    /// The backups restored, oldest first (the chain up to `backup_id`).
    pub links: Vec<String>,
    pub prefix: String,
    pub target_cluster: String,
    /// When the drill started (RFC 3339).
    pub started_at: String,
    /// The newest backed-up record's timestamp (RFC 3339), what `rpo_seconds` is measured from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub newest_record_at: Option<String>,
    pub topics: u64,
    pub partitions: u64,
    pub records: u64,
    pub bytes: u64,
    pub verified: bool,
    pub rto_seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rpo_seconds: Option<f64>,
    pub bytes_per_second: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_rpo_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_rto_seconds: Option<u64>,
    pub groups_checked: u64,
    pub scratch_topics: Vec<String>,
    pub scratch_groups: Vec<String>,
    pub partition_checks: Vec<PartitionCheck>,
    pub group_checks: Vec<GroupCheck>,
    pub failures: Vec<String>,
    pub cleaned_up: bool,
    /// What cleanup could not delete, one line each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cleanup_problems: Vec<String>,
    pub warnings: Vec<String>,
    /// Where the report was stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<DrillError>,
}

impl DrillReport {
    /// 0, or the exit code of the failure.
    pub fn exit_code(&self) -> i32 {
        self.error.as_ref().map_or(0, |e| e.exit_code)
    }

    /// The one-line summary.
    pub fn message(&self) -> String {
        let what = format!(
            "Drill {} of backup {} into {}*: {} records ({}) in {} partitions, RTO {:.3} s{}",
            self.drill_id,
            self.backup_id,
            self.prefix,
            self.records,
            human_bytes(self.bytes),
            self.partitions,
            self.rto_seconds,
            self.rpo_seconds
                .map(|r| format!(", RPO {r:.0} s"))
                .unwrap_or_default()
        );
        let cleanup = if self.cleaned_up {
            "scratch topics and groups deleted"
        } else {
            "scratch topics or groups left behind (see cleanup_problems)"
        };
        match &self.error {
            None => format!("{what}; verified; {cleanup}"),
            Some(e) => format!("{what}; FAILED: {}; {cleanup}", e.message),
        }
    }

    /// The compact result for the termination message.
    pub fn to_result(&self) -> TaskResult {
        TaskResult {
            phase: if self.error.is_some() {
                PHASE_FAILED
            } else {
                PHASE_COMPLETED
            }
            .into(),
            operation: Some("drill".into()),
            message: self.message(),
            drill: Some(ResultDrill {
                drill_id: self.drill_id.clone(),
                backup_id: self.backup_id.clone(),
                prefix: self.prefix.clone(),
                topics: self.topics,
                partitions: self.partitions,
                records: self.records,
                bytes: self.bytes,
                verified: self.verified,
                rto_seconds: self.rto_seconds,
                rpo_seconds: self.rpo_seconds,
                bytes_per_second: self.bytes_per_second,
                groups_checked: self.groups_checked,
                failures: self.failures.iter().take(MAX_RESULT_IDS).cloned().collect(),
                failures_total: self.failures.len() as u64,
                cleaned_up: self.cleaned_up,
            }),
            error: self.error.as_ref().map(|e| ResultError {
                kind: e.kind.clone(),
                exit_code: e.exit_code,
            }),
            ..TaskResult::default()
        }
    }

    /// The boxed text report.
    pub fn text(&self) -> String {
        let mut b = BoxReport::new("RESTORE DRILL REPORT");
        b.line(format!(
            "Status: {}",
            if self.error.is_none() {
                "VERIFIED"
            } else {
                "FAILED"
            }
        ))
        .line(format!("Drill ID: {}", self.drill_id))
        .line(format!("Backup ID: {}", self.backup_id))
        .light()
        .field("Target", &self.target_cluster)
        .field("Prefix", &self.prefix)
        .field("Topics", self.topics)
        .field("Partitions", self.partitions)
        .field("Records", thousands(self.records))
        .field("Data", human_bytes(self.bytes))
        .field("Data Verified", if self.verified { "yes" } else { "no" })
        .field("Groups Checked", self.groups_checked)
        .field("RTO", format!("{:.3} s", self.rto_seconds))
        .field(
            "RPO",
            self.rpo_seconds
                .map_or("-".to_string(), |r| format!("{r:.0} s")),
        )
        .field("Cleaned Up", if self.cleaned_up { "yes" } else { "no" });
        if self.links.len() > 1 {
            b.field("Chain", self.links.join(" > "));
        }
        for f in &self.failures {
            b.field("Failure", f);
        }
        for p in &self.cleanup_problems {
            b.field("Not Deleted", p);
        }
        b.render()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_result_carries_every_drill_figure_and_the_error() {
        let mut r = DrillReport {
            status: "failed",
            drill_id: "d1".into(),
            backup_id: "b1".into(),
            prefix: "drill-d1-".into(),
            topics: 2,
            partitions: 3,
            records: 10,
            bytes: 100,
            verified: true,
            rto_seconds: 1.5,
            rpo_seconds: Some(30.0),
            bytes_per_second: 66,
            groups_checked: 1,
            failures: (0..25).map(|i| format!("f{i}")).collect(),
            cleaned_up: true,
            error: Some(DrillError {
                kind: "verification_failed".into(),
                exit_code: 11,
                message: "RPO exceeded".into(),
            }),
            ..DrillReport::default()
        };
        let res = r.to_result();
        assert_eq!(res.phase, PHASE_FAILED);
        assert_eq!(res.error.as_ref().map(|e| e.exit_code), Some(11));
        let d = res.drill.clone().expect("drill");
        assert_eq!(
            (
                d.topics,
                d.partitions,
                d.records,
                d.bytes,
                d.groups_checked,
                d.bytes_per_second
            ),
            (2, 3, 10, 100, 1, 66)
        );
        assert_eq!((d.rto_seconds, d.rpo_seconds), (1.5, Some(30.0)));
        assert_eq!((d.failures.len(), d.failures_total), (MAX_RESULT_IDS, 25));
        assert!(d.verified && d.cleaned_up);
        assert!(
            res.message.contains("FAILED: RPO exceeded"),
            "{}",
            res.message
        );
        assert!(res.to_bounded_json().len() <= crate::task::MAX_RESULT_BYTES);
        r.error = None;
        assert_eq!(r.to_result().phase, PHASE_COMPLETED);
        assert_eq!(r.exit_code(), 0);
        assert!(r.text().contains("VERIFIED"));
    }
}
