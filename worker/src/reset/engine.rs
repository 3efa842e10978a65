//! The reset engine: [`prepare`] reads what a plan needs (group states, committed offsets,
//! topic metadata, log ranges, time lookups) with a handful of batched requests and plans every
//! group; [`execute`] stores the safety snapshot, then commits each inactive group's new offsets
//! through the admin API (sent to the group's coordinator; no consumer instance per group), many
//! groups at once, retrying failed partitions with exponential backoff.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use backoff::backoff::Backoff;
use futures::stream::{self, StreamExt, TryStreamExt};
use serde::Serialize;

use super::lookup::{offsets_for_time, LogRange, TimeOffset};
use super::plan::{
    inactive_group_error, plan_partitions, ClusterView, GroupPlan, ResetPlan, Strategy,
};
use super::spec::TopicScope;
use crate::error::{Error, Result};
use crate::groups::{read_committed, GroupSelector};
use crate::kafka::{CommittedOffset, GroupAdmin, GroupState, OffsetSpec, TopicPartition};
use crate::rollback::RunStatus;
use crate::snapshot::{OffsetSnapshot, SnapshotStore};

/// Topics whose metadata is fetched at once.
const METADATA_CONCURRENCY: usize = 8;
/// First retry delay; doubled per retry up to [`MAX_RETRY_DELAY`].
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(100);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);

/// What to reset.
#[derive(Debug, Clone)]
pub struct ResetRequest {
    /// The groups; `None` means the groups an explicit document (CSV plan, snapshot) names.
    pub selector: Option<GroupSelector>,
    /// `--topic` scopes. Empty: every partition the group has committed offsets on (Kafka's
    /// `--all-topics`), or for a document, every partition it names.
    pub scope: Vec<TopicScope>,
    pub strategy: Strategy,
    /// The spec as the CLI spells it, for reports and scripts.
    pub strategy_label: String,
    /// Groups read and committed at once.
    pub concurrency: usize,
    /// Retries per partition after the first attempt.
    pub max_retries: u32,
    /// The offsets before an earlier, interrupted attempt of this same reset (its safety
    /// snapshot). Where it holds a partition, planning starts from its offset instead of the
    /// committed one, so a retried run lands where the first attempt would have: a `--shift-by`
    /// is not applied twice.
    pub baseline: Option<OffsetSnapshot>,
}

/// Whether and where to store the offsets about to change before changing them.
#[derive(Debug, Clone)]
pub enum SafetySnapshot {
    Skip,
    Take {
        store: SnapshotStore,
        /// Snapshot id (default: generated).
        id: Option<String>,
        /// An existing snapshot with this id is reused rather than refused: a retried run
        /// keeps the offsets its first attempt captured.
        reuse_existing: bool,
        description: Option<String>,
    },
}

/// Latency and throughput of a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Performance {
    /// Offsets committed per second of the whole run (planning reads included).
    pub offsets_per_second: f64,
    /// Per-group commit latency, first attempt to last answer (retries included). With many
    /// groups in flight on one connection it includes time queued behind other groups'
    /// requests, so it grows with `--max-concurrent` while the run as a whole gets faster.
    pub avg_latency_ms: f64,
    pub p50_latency_ms: f64,
    pub p99_latency_ms: f64,
    /// Most groups in flight at once.
    pub max_concurrency: usize,
}

/// What happened to one group.
#[derive(Debug, Clone, Serialize)]
pub struct GroupResetOutcome {
    pub group: String,
    /// `success`, `unchanged` (already at the plan), `planned` (dry run) or `failed`.
    pub status: &'static str,
    pub state: Option<String>,
    pub offsets_reset: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub partition_errors: Vec<String>,
    pub latency_ms: f64,
    pub attempts: u32,
    /// The group's plan (every partition in scope, changed or not).
    pub partitions: Vec<super::PartitionPlan>,
}

/// Overall status of a reset: how its groups fared, or `dry_run` when it changed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResetStatus {
    Success,
    PartialSuccess,
    Failed,
    DryRun,
}

impl ResetStatus {
    /// Upper-case label for text reports.
    pub fn label(self) -> &'static str {
        match self {
            ResetStatus::Success => "SUCCESS",
            ResetStatus::PartialSuccess => "PARTIAL_SUCCESS",
            ResetStatus::Failed => "FAILED",
            ResetStatus::DryRun => "DRY RUN",
        }
    }
}

impl From<RunStatus> for ResetStatus {
    fn from(s: RunStatus) -> Self {
        match s {
            RunStatus::Success => ResetStatus::Success,
            RunStatus::PartialSuccess => ResetStatus::PartialSuccess,
            RunStatus::Failed => ResetStatus::Failed,
        }
    }
}

/// The report of a reset (kafka-backup's bulk reset report plus plan details).
#[derive(Debug, Clone, Serialize)]
pub struct ResetReport {
    pub status: ResetStatus,
    pub dry_run: bool,
    pub strategy: String,
    pub cluster: String,
    pub total_groups: usize,
    /// Groups changed (or already where the plan puts them).
    pub successful_groups: usize,
    pub failed_groups: usize,
    pub total_offsets_reset: usize,
    /// Partitions the plan changes in groups that may be changed.
    pub partitions_planned: usize,
    pub duration_ms: u128,
    pub performance: Performance,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_path: Option<String>,
    /// The safety snapshot existed (a retried run) and was kept as it was.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub snapshot_reused: bool,
    /// How to undo this reset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback_command: Option<String>,
    pub warnings: Vec<String>,
    pub group_outcomes: Vec<GroupResetOutcome>,
}

impl ResetReport {
    /// Failed groups first, then by name: the order results are shown and truncated in.
    pub fn outcomes_failed_first(&self) -> Vec<&GroupResetOutcome> {
        let mut v: Vec<&GroupResetOutcome> = self.group_outcomes.iter().collect();
        v.sort_by_key(|o| (o.status != "failed", o.group.clone()));
        v
    }
}

/// Replaces committed offsets by the baseline's where it has them (adding those it has and
/// the cluster no longer does).
fn apply_baseline(committed: &mut BTreeMap<String, Vec<CommittedOffset>>, base: &OffsetSnapshot) {
    for (group, offsets) in committed.iter_mut() {
        let Some(before) = base.groups.get(group) else {
            continue;
        };
        let mut merged: BTreeMap<(String, i32), CommittedOffset> = offsets
            .drain(..)
            .map(|o| ((o.topic.clone(), o.partition), o))
            .collect();
        for c in before.to_commits() {
            merged.insert((c.topic.clone(), c.partition), c);
        }
        offsets.extend(merged.into_values());
    }
}

/// Reads the cluster and plans every selected group. Changes nothing.
///
/// Bad input that can be detected before any change is an [`Error::InvalidInput`] naming it:
/// unknown topics or partitions (in `--topic`, the document, or the groups' committed offsets),
/// no group selected. Per-group problems (active group, shift-by without a committed offset, a
/// group absent from the document) refuse that group only.
#[tracing::instrument(name = "reset.prepare", skip_all, fields(strategy = %req.strategy_label))]
pub async fn prepare(admin: &GroupAdmin, req: &ResetRequest) -> Result<ResetPlan> {
    let groups = select_groups(admin, req).await?;
    // Independent reads in flight together: on a remote cluster each costs round trips.
    let (described, committed, topics) = tokio::try_join!(
        admin.describe_groups(&groups),
        read_committed(admin, &groups, req.concurrency),
        Topics::read(admin)
    )?;
    let mut committed = committed.offsets;
    if let Some(base) = &req.baseline {
        apply_baseline(&mut committed, base);
    }

    let mut scope: Vec<TopicPartition> = Vec::new();
    for s in &req.scope {
        scope.extend(topics.expand(s).await?);
    }
    scope.sort();
    scope.dedup();
    let scope_set: BTreeSet<&TopicPartition> = scope.iter().collect();

    // Per group: the partitions to plan, or why it cannot be planned.
    let mut wanted: Vec<(String, std::result::Result<Vec<TopicPartition>, String>)> = Vec::new();
    for g in &groups {
        let parts = match &req.strategy {
            Strategy::Explicit(e) => match e.offsets.get(g) {
                None => Err(format!(
                    "No reset plan for group {g} found in {}.",
                    e.source
                )),
                Some(m) => Ok(m
                    .keys()
                    .filter(|tp| scope_set.is_empty() || scope_set.contains(tp))
                    .cloned()
                    .collect()),
            },
            _ if !scope.is_empty() => Ok(scope.clone()),
            _ => Ok(committed
                .get(g)
                .map(|v| v.iter().map(|o| (o.topic.clone(), o.partition)).collect())
                .unwrap_or_default()),
        };
        if let (Ok(parts), Strategy::Explicit(e)) = (&parts, &req.strategy) {
            topics.check(parts, &e.source).await?;
        } else if let Ok(parts) = &parts {
            if scope.is_empty() {
                topics
                    .check(parts, &format!("the committed offsets of group '{g}'"))
                    .await?;
            }
        }
        wanted.push((g.clone(), parts));
    }

    let all: Vec<TopicPartition> = wanted
        .iter()
        .filter_map(|(_, p)| p.as_ref().ok())
        .flatten()
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let ranges = log_ranges(admin, &all).await?;
    let mut warnings = Vec::new();
    let times: HashMap<TopicPartition, TimeOffset> = match req.strategy.time() {
        Some(ts) if !all.is_empty() => {
            let t = offsets_for_time(admin, &all, ts, &ranges).await?;
            let mut notes: Vec<(&TopicPartition, &String)> = t
                .iter()
                .filter_map(|(tp, o)| o.warning.as_ref().map(|w| (tp, w)))
                .collect();
            notes.sort();
            warnings.extend(notes.into_iter().map(|(_, w)| w.clone()));
            t
        }
        _ => HashMap::new(),
    };
    let view = ClusterView {
        ranges: &ranges,
        times: &times,
    };

    let mut plans = Vec::with_capacity(groups.len());
    for ((group, parts), desc) in wanted.into_iter().zip(described) {
        let group_committed = committed.get(&group).cloned().unwrap_or_default();
        let by_tp: BTreeMap<TopicPartition, i64> = group_committed
            .iter()
            .map(|o| ((o.topic.clone(), o.partition), o.offset))
            .collect();
        let mut plan = GroupPlan {
            group: group.clone(),
            state: None,
            refused: None,
            partitions: Vec::new(),
            committed: group_committed,
        };
        match desc {
            Err(e) => plan.refused = Some(e.to_string()),
            Ok(d) => {
                plan.state = Some(d.state.to_string());
                if !d.state.is_inactive() {
                    plan.refused = Some(inactive_group_error(&group, d.state));
                } else if d.state == GroupState::Dead && plan.committed.is_empty() {
                    // Most often a misspelt name: say so rather than quietly doing nothing.
                    warnings.push(match parts.as_ref() {
                        Ok(p) if !p.is_empty() => format!(
                            "Consumer group '{group}' does not exist; its offsets will be created"
                        ),
                        _ => format!(
                            "Consumer group '{group}' does not exist and has no committed offsets; there is nothing to reset for it"
                        ),
                    });
                }
            }
        }
        // A group's clamping notices count only if the group is planned at all.
        let mut group_warnings = Vec::new();
        match parts.and_then(|p| {
            plan_partitions(
                &req.strategy,
                &group,
                &p,
                &by_tp,
                &view,
                &mut group_warnings,
            )
        }) {
            Ok(p) => {
                plan.partitions = p;
                warnings.append(&mut group_warnings);
            }
            Err(e) => {
                plan.refused.get_or_insert(e);
            }
        }
        plans.push(plan);
    }
    Ok(ResetPlan {
        strategy: req.strategy_label.clone(),
        cluster: admin.config().bootstrap_servers.clone(),
        groups: plans,
        warnings,
    })
}

async fn select_groups(admin: &GroupAdmin, req: &ResetRequest) -> Result<Vec<String>> {
    let groups = match (&req.selector, &req.strategy) {
        (Some(sel), _) => sel.resolve(admin).await?,
        (None, Strategy::Explicit(e)) => e.offsets.keys().cloned().collect(),
        (None, _) => {
            return Err(Error::invalid(
                "no consumer groups selected: pass --groups, --groups-regex or --all-groups",
            ))
        }
    };
    if groups.is_empty() {
        return Err(Error::invalid(
            "no consumer group matched the selection; nothing to reset",
        ));
    }
    Ok(groups)
}

/// The cluster's topics, and their partitions as they are looked up.
struct Topics<'a> {
    admin: &'a GroupAdmin,
    names: BTreeSet<String>,
    partitions: tokio::sync::Mutex<HashMap<String, Vec<i32>>>,
}

impl<'a> Topics<'a> {
    /// Lists topic names first, so a misspelt topic is never looked up by name (a metadata
    /// request for it could create it on brokers with auto-creation on).
    async fn read(admin: &'a GroupAdmin) -> Result<Topics<'a>> {
        Ok(Topics {
            admin,
            names: admin.list_topics().await?.into_iter().collect(),
            partitions: Default::default(),
        })
    }

    async fn partitions_of(&self, topics: &[String]) -> Result<HashMap<String, Vec<i32>>> {
        let missing: Vec<String> = {
            let known = self.partitions.lock().await;
            topics
                .iter()
                .filter(|t| !known.contains_key(*t))
                .cloned()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect()
        };
        let fetched: Vec<(String, Vec<i32>)> = stream::iter(missing)
            .map(|t| async move {
                let p = self.admin.topic_partitions(&t).await?;
                Ok::<_, Error>((t, p))
            })
            .buffer_unordered(METADATA_CONCURRENCY)
            .try_collect()
            .await?;
        let mut known = self.partitions.lock().await;
        known.extend(fetched);
        Ok(topics
            .iter()
            .filter_map(|t| known.get(t).map(|p| (t.clone(), p.clone())))
            .collect())
    }

    /// The partitions a `--topic` scope names, checked against the cluster.
    async fn expand(&self, s: &TopicScope) -> Result<Vec<TopicPartition>> {
        let arg = match &s.partitions {
            None => s.topic.clone(),
            Some(p) => format!(
                "{}:{}",
                s.topic,
                p.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
            ),
        };
        if !self.names.contains(&s.topic) {
            return Err(Error::invalid(format!(
                "--topic '{arg}': topic '{}' does not exist",
                s.topic
            )));
        }
        let have = self
            .partitions_of(std::slice::from_ref(&s.topic))
            .await?
            .remove(&s.topic)
            .unwrap_or_default();
        match &s.partitions {
            None => Ok(have.into_iter().map(|p| (s.topic.clone(), p)).collect()),
            Some(ps) => {
                if let Some(bad) = ps.iter().find(|p| !have.contains(p)) {
                    return Err(Error::invalid(format!(
                        "--topic '{arg}': partition {bad} does not exist ({})",
                        describe_partitions(&s.topic, &have)
                    )));
                }
                Ok(ps.iter().map(|p| (s.topic.clone(), *p)).collect())
            }
        }
    }

    /// Checks that every partition exists; `source` names where they came from.
    async fn check(&self, parts: &[TopicPartition], source: &str) -> Result<()> {
        let topics: Vec<String> = parts.iter().map(|(t, _)| t.clone()).collect();
        if let Some(t) = topics.iter().find(|t| !self.names.contains(*t)) {
            return Err(Error::invalid(format!(
                "{source} names topic '{t}', which does not exist; nothing was changed"
            )));
        }
        let known = self.partitions_of(&topics).await?;
        for (t, p) in parts {
            let have = known.get(t).map(Vec::as_slice).unwrap_or_default();
            if !have.contains(p) {
                return Err(Error::invalid(format!(
                    "{source} names partition {t}-{p}, which does not exist ({}); nothing was changed",
                    describe_partitions(t, have)
                )));
            }
        }
        Ok(())
    }
}

fn describe_partitions(topic: &str, have: &[i32]) -> String {
    match (have.first(), have.last()) {
        (Some(a), Some(b)) => format!("'{topic}' has partitions {a}-{b}"),
        _ => format!("'{topic}' has no partitions"),
    }
}

/// `[log start, log end)` of each partition, as Kafka's tool reads them (read_uncommitted).
#[tracing::instrument(name = "reset.log_ranges", skip_all, fields(partitions = partitions.len()))]
async fn log_ranges(
    admin: &GroupAdmin,
    partitions: &[TopicPartition],
) -> Result<HashMap<TopicPartition, LogRange>> {
    if partitions.is_empty() {
        return Ok(HashMap::new());
    }
    let (starts, ends) = tokio::try_join!(
        admin.list_offsets_isolated(partitions, OffsetSpec::Earliest, false),
        admin.list_offsets_isolated(partitions, OffsetSpec::Latest, false)
    )?;
    let mut out = HashMap::with_capacity(partitions.len());
    for ((tp, s), e) in partitions.iter().zip(starts).zip(ends) {
        out.insert(tp.clone(), (s?.offset, e?.offset));
    }
    Ok(out)
}

/// A dry run's report: what [`execute`] would do, nothing changed.
pub fn dry_run_report(plan: &ResetPlan, started: Instant) -> ResetReport {
    let outcomes: Vec<GroupResetOutcome> = plan
        .groups
        .iter()
        .map(|g| GroupResetOutcome {
            group: g.group.clone(),
            status: match (&g.refused, g.changing().count()) {
                (Some(_), _) => "failed",
                (None, 0) => "unchanged",
                (None, _) => "planned",
            },
            state: g.state.clone(),
            offsets_reset: 0,
            error: g.refused.clone(),
            partition_errors: Vec::new(),
            latency_ms: 0.0,
            attempts: 0,
            partitions: g.partitions.clone(),
        })
        .collect();
    report(plan, outcomes, started, true, None, Performance::default())
}

/// Executes `plan`: stores the safety snapshot of exactly the committed offsets about to
/// change, then commits every eligible group's changed partitions, `req.concurrency` groups at
/// once, each failed partition retried up to `req.max_retries` times with exponential backoff.
///
/// A snapshot that cannot be stored stops the run before any change.
#[tracing::instrument(name = "reset.execute", skip_all, fields(strategy = %req.strategy_label))]
pub async fn execute(
    admin: &GroupAdmin,
    plan: &ResetPlan,
    safety: &SafetySnapshot,
    req: &ResetRequest,
    started: Instant,
) -> Result<ResetReport> {
    let mut warnings = Vec::new();
    let snapshot = store_safety_snapshot(admin, plan, safety, &mut warnings).await?;

    let in_flight = AtomicUsize::new(0);
    let peak = AtomicUsize::new(0);
    let jobs = plan.groups.iter().map(|g| {
        let (in_flight, peak) = (&in_flight, &peak);
        async move {
            let mut out = GroupResetOutcome {
                group: g.group.clone(),
                status: "failed",
                state: g.state.clone(),
                offsets_reset: 0,
                error: g.refused.clone(),
                partition_errors: Vec::new(),
                latency_ms: 0.0,
                attempts: 0,
                partitions: g.partitions.clone(),
            };
            if g.refused.is_some() {
                return out;
            }
            let commits: Vec<CommittedOffset> = g
                .changing()
                .map(|p| CommittedOffset {
                    topic: p.topic.clone(),
                    partition: p.partition,
                    offset: p.target,
                    metadata: String::new(),
                })
                .collect();
            if commits.is_empty() {
                out.status = "unchanged";
                return out;
            }
            let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            let t = Instant::now();
            let done = commit_with_retries(admin, &g.group, commits, req.max_retries).await;
            in_flight.fetch_sub(1, Ordering::SeqCst);
            out.latency_ms = t.elapsed().as_secs_f64() * 1000.0;
            out.attempts = done.attempts;
            out.offsets_reset = done.committed;
            if done.failures.is_empty() && done.error.is_none() {
                out.status = "success";
            } else {
                out.error = Some(done.error.unwrap_or_else(|| {
                    format!(
                        "{} of {} partitions could not be committed after {} attempts",
                        done.failures.len(),
                        done.failures.len() + done.committed,
                        done.attempts
                    )
                }));
                out.partition_errors = done.failures;
            }
            out
        }
    });
    let outcomes: Vec<GroupResetOutcome> = stream::iter(jobs)
        .buffer_unordered(req.concurrency.max(1))
        .collect()
        .await;

    let mut latencies: Vec<f64> = outcomes
        .iter()
        .filter(|o| o.attempts > 0)
        .map(|o| o.latency_ms)
        .collect();
    latencies.sort_by(f64::total_cmp);
    let performance = Performance {
        offsets_per_second: 0.0,
        avg_latency_ms: if latencies.is_empty() {
            0.0
        } else {
            latencies.iter().sum::<f64>() / latencies.len() as f64
        },
        p50_latency_ms: percentile(&latencies, 50.0),
        p99_latency_ms: percentile(&latencies, 99.0),
        max_concurrency: peak.load(Ordering::SeqCst),
    };
    let mut r = report(plan, outcomes, started, false, snapshot, performance);
    r.warnings.extend(warnings);
    Ok(r)
}

/// The stored safety snapshot: id, location, reused.
type Stored = (String, String, bool);

#[tracing::instrument(name = "reset.safety_snapshot", skip_all)]
async fn store_safety_snapshot(
    admin: &GroupAdmin,
    plan: &ResetPlan,
    safety: &SafetySnapshot,
    warnings: &mut Vec<String>,
) -> Result<Option<Stored>> {
    let SafetySnapshot::Take {
        store,
        id,
        reuse_existing,
        description,
    } = safety
    else {
        return Ok(None);
    };
    let mut before = BTreeMap::new();
    let mut uncommitted = 0usize;
    for g in plan.groups.iter().filter(|g| g.eligible()) {
        let changing: BTreeSet<(&str, i32)> = g
            .changing()
            .map(|p| (p.topic.as_str(), p.partition))
            .collect();
        uncommitted += g.changing().filter(|p| p.current.is_none()).count();
        let offsets: Vec<CommittedOffset> = g
            .committed
            .iter()
            .filter(|o| changing.contains(&(o.topic.as_str(), o.partition)))
            .cloned()
            .collect();
        before.insert(g.group.clone(), offsets);
    }
    let target = crate::snapshot::SafetySnapshot {
        store: store.clone(),
        id: id.clone(),
        reuse_existing: *reuse_existing,
    };
    let description = description
        .clone()
        .unwrap_or_else(|| format!("Before offset reset {}", plan.strategy));
    let stored = target
        .store(&admin.config().bootstrap_servers, description, before)
        .await?;
    if stored.as_ref().is_some_and(|s| s.reused) {
        return Ok(stored.map(|s| (s.id, s.location, true)));
    }
    if uncommitted > 0 {
        warnings.push(format!(
            "{uncommitted} partitions had no committed offset before this reset; rolling back to the safety snapshot leaves them at their new offsets (Kafka has no way to un-commit short of deleting the group's offsets)"
        ));
    }
    if stored.is_none() && plan.partitions_changing() > 0 {
        warnings.push(
            "no partition about to change had a committed offset, so there was nothing to snapshot"
                .into(),
        );
    }
    Ok(stored.map(|s| (s.id, s.location, s.reused)))
}

struct Committed {
    committed: usize,
    failures: Vec<String>,
    error: Option<String>,
    attempts: u32,
}

/// Commits `commits` for `group`; partitions Kafka refuses, and whole requests that fail for a
/// reason a retry can cure, are retried with exponential backoff up to `max_retries` times.
#[tracing::instrument(name = "reset.commit", skip_all, fields(group = %group, partitions = commits.len()))]
async fn commit_with_retries(
    admin: &GroupAdmin,
    group: &str,
    commits: Vec<CommittedOffset>,
    max_retries: u32,
) -> Committed {
    let total = commits.len();
    let mut pending = commits;
    let mut backoff = backoff::ExponentialBackoffBuilder::new()
        .with_initial_interval(FIRST_RETRY_DELAY)
        .with_multiplier(2.0)
        .with_max_interval(MAX_RETRY_DELAY)
        .with_max_elapsed_time(None)
        .build();
    let mut attempts = 0;
    let mut last_error: Option<String>;
    let mut failures = Vec::new();
    loop {
        attempts += 1;
        match admin.alter_offsets(group, &pending).await {
            Ok(f) if f.is_empty() => {
                return Committed {
                    committed: total,
                    failures: Vec::new(),
                    error: None,
                    attempts,
                }
            }
            Ok(f) => {
                let failed: BTreeSet<(&str, i32)> =
                    f.iter().map(|x| (x.topic.as_str(), x.partition)).collect();
                failures = f
                    .iter()
                    .map(|x| format!("{}-{}: {}", x.topic, x.partition, x.error))
                    .collect();
                pending.retain(|c| failed.contains(&(c.topic.as_str(), c.partition)));
                last_error = None;
            }
            Err(e) => {
                let permanent = matches!(
                    e,
                    Error::Authentication(_) | Error::Tls(_) | Error::InvalidInput(_)
                );
                last_error = Some(e.to_string());
                if permanent {
                    break;
                }
            }
        }
        if attempts > max_retries {
            break;
        }
        let delay = backoff.next_backoff().unwrap_or(MAX_RETRY_DELAY);
        tracing::debug!(group, attempt = attempts, ?delay, "retrying offset commit");
        tokio::time::sleep(delay).await;
    }
    Committed {
        committed: total - pending.len(),
        failures,
        error: last_error,
        attempts,
    }
}

/// `s` as one shell word: as is when it holds only characters no shell treats specially.
fn shell_arg(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c));
    if plain {
        s.to_string()
    } else {
        super::script::shell_quote(s)
    }
}

/// Nearest-rank percentile of sorted values (0 when empty).
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn report(
    plan: &ResetPlan,
    mut outcomes: Vec<GroupResetOutcome>,
    started: Instant,
    dry_run: bool,
    snapshot: Option<Stored>,
    mut performance: Performance,
) -> ResetReport {
    outcomes.sort_by(|a, b| a.group.cmp(&b.group));
    let failed = outcomes.iter().filter(|o| o.status == "failed").count();
    let ok = outcomes.len() - failed;
    let total_offsets: usize = outcomes.iter().map(|o| o.offsets_reset).sum();
    let elapsed = started.elapsed();
    if elapsed.as_secs_f64() > 0.0 {
        performance.offsets_per_second = total_offsets as f64 / elapsed.as_secs_f64();
    }
    let status = if dry_run {
        ResetStatus::DryRun
    } else {
        RunStatus::from_counts(ok, failed).into()
    };
    let (snapshot_id, snapshot_path, snapshot_reused) = match snapshot {
        Some((id, path, reused)) => (Some(id), Some(path), reused),
        None => (None, None, false),
    };
    let rollback_command = snapshot_id
        .as_ref()
        .zip(snapshot_path.as_ref())
        .map(|(id, path)| {
            format!(
            "tidemark offset-rollback rollback --path {} --snapshot-id {} --bootstrap-servers {}",
            shell_arg(path),
            shell_arg(id),
            shell_arg(&plan.cluster)
        )
        });
    ResetReport {
        status,
        dry_run,
        strategy: plan.strategy.clone(),
        cluster: plan.cluster.clone(),
        total_groups: outcomes.len(),
        successful_groups: ok,
        failed_groups: failed,
        total_offsets_reset: total_offsets,
        partitions_planned: plan.partitions_changing(),
        duration_ms: elapsed.as_millis(),
        performance,
        snapshot_id,
        snapshot_path,
        snapshot_reused,
        rollback_command,
        warnings: plan.warnings.clone(),
        group_outcomes: outcomes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::GroupSnapshot;
    use chrono::Utc;

    #[test]
    fn a_baseline_replaces_the_offsets_an_interrupted_attempt_moved() {
        let co = |t: &str, p: i32, o: i64| CommittedOffset {
            topic: t.into(),
            partition: p,
            offset: o,
            metadata: String::new(),
        };
        // Attempt 1 moved orders-0 from 50 to 40 and stopped before orders-1 (still 60).
        let mut committed: BTreeMap<String, Vec<CommittedOffset>> = [(
            "g".to_string(),
            vec![co("orders", 0, 40), co("orders", 1, 60), co("orders", 2, 7)],
        )]
        .into();
        let base = OffsetSnapshot {
            snapshot_id: "s".into(),
            timestamp: Utc::now(),
            cluster: "k".into(),
            description: None,
            groups: [(
                "g".to_string(),
                GroupSnapshot::from_committed(&[co("orders", 0, 50), co("orders", 1, 60)], 0),
            )]
            .into(),
        };
        apply_baseline(&mut committed, &base);
        let got: Vec<i64> = committed["g"].iter().map(|o| o.offset).collect();
        assert_eq!(got, vec![50, 60, 7]);
    }

    #[test]
    fn rollback_commands_quote_only_what_needs_it() {
        assert_eq!(shell_arg("/backup/storage"), "/backup/storage");
        assert_eq!(shell_arg("s3://b/p"), "s3://b/p");
        assert_eq!(shell_arg("k1:9092,k2:9092"), "k1:9092,k2:9092");
        assert_eq!(
            shell_arg("/my dir/it's"),
            crate::kmap::shell_quote("/my dir/it's")
        );
        assert_ne!(shell_arg("$HOME"), "$HOME");
        assert_ne!(shell_arg(""), "");
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
        assert_eq!(percentile(&[1.0, 2.0, 3.0], 50.0), 2.0);
    }
}
