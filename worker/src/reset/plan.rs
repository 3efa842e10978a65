//! What a reset does to each partition, computed without I/O from what the engine read:
//! committed offsets, log ranges and (for time specs) looked-up offsets. Kafka's rules:
//!
//! - `--to-earliest` / `--to-latest`: the log start / end offset.
//! - `--to-current`: the committed offset, or the log end where the group has none.
//! - `--to-offset N`, `--shift-by N`, `--from-file`, `--from-snapshot`: the requested offset,
//!   clamped to `[log start, log end]` with Kafka's warning; `--shift-by` on a partition
//!   without a committed offset is an error.
//! - `--to-datetime`, `--by-duration`: the first offset at or after the time, or the log end.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::lookup::{LogRange, TimeOffset};
use crate::kafka::{CommittedOffset, TopicPartition};
pub use crate::rollback::inactive_group_error;

/// Where offsets go, parsed and ready to plan with.
#[derive(Debug, Clone, PartialEq)]
pub enum Strategy {
    Earliest,
    Latest,
    Current,
    Offset(i64),
    ShiftBy(i64),
    /// First offset at or after this epoch-millisecond time.
    Time(i64),
    /// Per group, per partition target offsets from a CSV plan or a snapshot.
    Explicit(Explicit),
}

/// Target offsets read from a document (`--from-file`, `--from-snapshot`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Explicit {
    /// Names the document in messages, e.g. `plan.csv` or `snapshot 'snap-1'`.
    pub source: String,
    pub offsets: BTreeMap<String, BTreeMap<TopicPartition, i64>>,
}

impl Strategy {
    /// Whether the strategy needs the log ranges' time lookups.
    pub fn time(&self) -> Option<i64> {
        match self {
            Strategy::Time(ms) => Some(*ms),
            _ => None,
        }
    }
}

/// What happens to one partition's committed offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// No committed offset yet; one is created.
    Set,
    /// Moves to a higher offset (records are skipped).
    Forward,
    /// Moves to a lower offset (records are consumed again).
    Rewind,
    /// Already there; nothing is committed.
    Unchanged,
}

impl Action {
    /// Upper-case label for the plan table.
    pub fn label(self) -> &'static str {
        match self {
            Action::Set => "SET",
            Action::Forward => "FORWARD",
            Action::Rewind => "REWIND",
            Action::Unchanged => "UNCHANGED",
        }
    }
}

/// One partition of a group's plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionPlan {
    pub topic: String,
    pub partition: i32,
    /// The committed offset now (`None`: the group has none on this partition).
    pub current: Option<i64>,
    pub target: i64,
    pub log_start: i64,
    pub log_end: i64,
    pub action: Action,
}

impl PartitionPlan {
    pub fn new(tp: &TopicPartition, current: Option<i64>, target: i64, range: LogRange) -> Self {
        let action = match current {
            None => Action::Set,
            Some(c) if c == target => Action::Unchanged,
            Some(c) if target > c => Action::Forward,
            Some(_) => Action::Rewind,
        };
        PartitionPlan {
            topic: tp.0.clone(),
            partition: tp.1,
            current,
            target,
            log_start: range.0,
            log_end: range.1,
            action,
        }
    }

    /// Whether executing the plan commits this partition.
    pub fn changes(&self) -> bool {
        self.action != Action::Unchanged
    }
}

/// One group's plan, or why it will not be changed.
#[derive(Debug, Clone, Serialize)]
pub struct GroupPlan {
    pub group: String,
    /// Kafka's state name (`Empty`, `Dead`, `Stable`, ...), when it could be read.
    pub state: Option<String>,
    /// Why the group is left alone: active (Kafka's message), or a planning error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    pub partitions: Vec<PartitionPlan>,
    /// Committed offsets before the reset (for the safety snapshot; not reported).
    #[serde(skip)]
    pub committed: Vec<CommittedOffset>,
}

impl GroupPlan {
    /// Partitions whose offset changes.
    pub fn changing(&self) -> impl Iterator<Item = &PartitionPlan> {
        self.partitions.iter().filter(|p| p.changes())
    }

    /// Whether executing would commit anything for this group.
    pub fn eligible(&self) -> bool {
        self.refused.is_none()
    }
}

/// A reset plan for every selected group.
#[derive(Debug, Clone, Serialize)]
pub struct ResetPlan {
    /// The spec as the CLI spells it, e.g. `--to-datetime 2024-12-01T10:00:00.000`.
    pub strategy: String,
    pub cluster: String,
    pub groups: Vec<GroupPlan>,
    /// Kafka's clamping and time-lookup notices, each once.
    pub warnings: Vec<String>,
}

impl ResetPlan {
    /// Partitions the plan changes, over groups that will be changed.
    pub fn partitions_changing(&self) -> usize {
        self.groups
            .iter()
            .filter(|g| g.eligible())
            .map(|g| g.changing().count())
            .sum()
    }

    /// Every planned row as `(group, partition plan)`, for CSV export and scripts.
    pub fn rows(&self) -> impl Iterator<Item = (&str, &PartitionPlan)> {
        self.groups
            .iter()
            .filter(|g| g.eligible())
            .flat_map(|g| g.partitions.iter().map(move |p| (g.group.as_str(), p)))
    }
}

/// What the planner knows about the cluster.
#[derive(Debug)]
pub struct ClusterView<'a> {
    /// `[log start, log end)` of every partition in scope.
    pub ranges: &'a HashMap<TopicPartition, LogRange>,
    /// Looked-up offsets for a time strategy.
    pub times: &'a HashMap<TopicPartition, TimeOffset>,
}

/// Plans `partitions` of `group` with committed offsets `committed`. Warnings (clamping) are
/// appended to `warnings`. `Err` names the partition a rule refuses (e.g. shift-by without a
/// committed offset); the whole group is then left alone.
pub fn plan_partitions(
    strategy: &Strategy,
    group: &str,
    partitions: &[TopicPartition],
    committed: &BTreeMap<TopicPartition, i64>,
    view: &ClusterView<'_>,
    warnings: &mut Vec<String>,
) -> Result<Vec<PartitionPlan>, String> {
    let mut out = Vec::with_capacity(partitions.len());
    for tp in partitions {
        let range = *view.ranges.get(tp).ok_or_else(|| {
            format!(
                "no log offsets were read for {}-{}; the partition may not exist",
                tp.0, tp.1
            )
        })?;
        let current = committed.get(tp).copied();
        let target = match strategy {
            Strategy::Earliest => range.0,
            Strategy::Latest => range.1,
            Strategy::Current => current.unwrap_or(range.1),
            Strategy::Offset(o) => clamp(tp, *o, range, warnings),
            Strategy::ShiftBy(n) => {
                let Some(c) = current else {
                    return Err(format!(
                        "Cannot shift offset for partition {}-{} since there is no current committed offset",
                        tp.0, tp.1
                    ));
                };
                clamp(tp, c.saturating_add(*n), range, warnings)
            }
            Strategy::Time(_) => view
                .times
                .get(tp)
                .map(|t| t.offset)
                .ok_or_else(|| format!("no offset was found by time for {}-{}", tp.0, tp.1))?,
            Strategy::Explicit(e) => {
                let requested = e
                    .offsets
                    .get(group)
                    .and_then(|m| m.get(tp))
                    .copied()
                    .ok_or_else(|| format!("{} has no offset for {}-{}", e.source, tp.0, tp.1))?;
                clamp(tp, requested, range, warnings)
            }
        };
        out.push(PartitionPlan::new(tp, current, target, range));
    }
    Ok(out)
}

/// Kafka's range check: above the log end becomes the log end, below the log start becomes the
/// log start, each with Kafka's warning.
fn clamp(
    tp: &TopicPartition,
    offset: i64,
    (start, end): LogRange,
    warnings: &mut Vec<String>,
) -> i64 {
    if offset > end {
        warnings.push(format!(
            "New offset ({offset}) is higher than latest offset for topic partition {}-{}. Value will be set to {end}.",
            tp.0, tp.1
        ));
        end
    } else if offset < start {
        warnings.push(format!(
            "New offset ({offset}) is lower than earliest offset for topic partition {}-{}. Value will be set to {start}.",
            tp.0, tp.1
        ));
        start
    } else {
        offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(t: &str, p: i32) -> TopicPartition {
        (t.to_string(), p)
    }

    struct Fixture {
        ranges: HashMap<TopicPartition, LogRange>,
        times: HashMap<TopicPartition, TimeOffset>,
        committed: BTreeMap<TopicPartition, i64>,
    }

    /// orders-0: [10, 100), committed 50; orders-1: [0, 40), no commit.
    fn fixture() -> Fixture {
        Fixture {
            ranges: [(tp("orders", 0), (10, 100)), (tp("orders", 1), (0, 40))].into(),
            times: [
                (
                    tp("orders", 0),
                    TimeOffset {
                        offset: 70,
                        warning: None,
                    },
                ),
                (
                    tp("orders", 1),
                    TimeOffset {
                        offset: 40,
                        warning: None,
                    },
                ),
            ]
            .into(),
            committed: [(tp("orders", 0), 50)].into(),
        }
    }

    /// (current, target, action) per partition.
    type Rows = Vec<(Option<i64>, i64, Action)>;

    fn run(strategy: Strategy) -> (Result<Rows, String>, Vec<String>) {
        let f = fixture();
        let view = ClusterView {
            ranges: &f.ranges,
            times: &f.times,
        };
        let mut warnings = Vec::new();
        let parts = [tp("orders", 0), tp("orders", 1)];
        let got =
            plan_partitions(&strategy, "g", &parts, &f.committed, &view, &mut warnings).map(|v| {
                v.into_iter()
                    .map(|p| (p.current, p.target, p.action))
                    .collect()
            });
        (got, warnings)
    }

    #[test]
    fn every_kafka_spec_lands_where_kafka_puts_it() {
        use Action::*;
        let table: Vec<(Strategy, Rows)> = vec![
            (
                Strategy::Earliest,
                vec![(Some(50), 10, Rewind), (None, 0, Set)],
            ),
            (
                Strategy::Latest,
                vec![(Some(50), 100, Forward), (None, 40, Set)],
            ),
            (
                Strategy::Current,
                vec![(Some(50), 50, Unchanged), (None, 40, Set)],
            ),
            (
                Strategy::Offset(20),
                vec![(Some(50), 20, Rewind), (None, 20, Set)],
            ),
            (
                Strategy::Time(123),
                vec![(Some(50), 70, Forward), (None, 40, Set)],
            ),
        ];
        for (strategy, want) in table {
            let (got, warnings) = run(strategy.clone());
            assert_eq!(got.as_ref(), Ok(&want), "{strategy:?}");
            assert!(warnings.is_empty(), "{strategy:?}: {warnings:?}");
        }
    }

    #[test]
    fn out_of_range_offsets_are_clamped_with_kafkas_warnings() {
        let (got, warnings) = run(Strategy::Offset(5));
        assert_eq!(
            got.expect("planned")
                .iter()
                .map(|r| r.1)
                .collect::<Vec<_>>(),
            vec![10, 5]
        );
        assert_eq!(
            warnings,
            vec!["New offset (5) is lower than earliest offset for topic partition orders-0. Value will be set to 10."]
        );
        let (got, warnings) = run(Strategy::Offset(1000));
        assert_eq!(
            got.expect("planned")
                .iter()
                .map(|r| r.1)
                .collect::<Vec<_>>(),
            vec![100, 40]
        );
        assert_eq!(warnings.len(), 2);
        assert_eq!(
            warnings[1],
            "New offset (1000) is higher than latest offset for topic partition orders-1. Value will be set to 40."
        );
    }

    #[test]
    fn shift_by_needs_a_committed_offset_and_clamps() {
        let (got, _) = run(Strategy::ShiftBy(5));
        assert_eq!(
            got.expect_err("orders-1 has no committed offset"),
            "Cannot shift offset for partition orders-1 since there is no current committed offset"
        );
        let f = fixture();
        let view = ClusterView {
            ranges: &f.ranges,
            times: &f.times,
        };
        let mut warnings = Vec::new();
        let only0 = [tp("orders", 0)];
        let back = plan_partitions(
            &Strategy::ShiftBy(-45),
            "g",
            &only0,
            &f.committed,
            &view,
            &mut warnings,
        )
        .expect("planned");
        assert_eq!((back[0].target, back[0].action), (10, Action::Rewind));
        assert_eq!(warnings.len(), 1, "clamped to the log start: {warnings:?}");
        let fwd = plan_partitions(
            &Strategy::ShiftBy(i64::MAX),
            "g",
            &only0,
            &f.committed,
            &view,
            &mut warnings,
        )
        .expect("planned");
        assert_eq!(fwd[0].target, 100, "no overflow");
    }

    #[test]
    fn explicit_offsets_are_per_group_and_clamped() {
        let e = Explicit {
            source: "plan.csv".into(),
            offsets: [(
                "g".to_string(),
                [(tp("orders", 0), 60), (tp("orders", 1), 99)].into(),
            )]
            .into(),
        };
        let (got, warnings) = run(Strategy::Explicit(e.clone()));
        assert_eq!(
            got.expect("planned"),
            vec![(Some(50), 60, Action::Forward), (None, 40, Action::Set)]
        );
        assert_eq!(warnings.len(), 1);
        let f = fixture();
        let view = ClusterView {
            ranges: &f.ranges,
            times: &f.times,
        };
        let err = plan_partitions(
            &Strategy::Explicit(e),
            "other",
            &[tp("orders", 0)],
            &f.committed,
            &view,
            &mut Vec::new(),
        )
        .expect_err("no entry for group 'other'");
        assert_eq!(err, "plan.csv has no offset for orders-0");
    }

    #[test]
    fn unknown_partitions_are_an_error() {
        let f = fixture();
        let view = ClusterView {
            ranges: &f.ranges,
            times: &f.times,
        };
        let err = plan_partitions(
            &Strategy::Earliest,
            "g",
            &[tp("orders", 9)],
            &f.committed,
            &view,
            &mut Vec::new(),
        )
        .expect_err("unknown");
        assert!(err.contains("orders-9"), "{err}");
    }
}
