//! The drill itself, one phase per function: pick the backup, plan the restore into scratch
//! names and refuse a prefix that is taken ([`prepare`]), restore and time it, read every scratch
//! partition back and compare it with the backup's segments, commit the translated consumer
//! offsets to scratch groups and read them back ([`exercise`]), delete the scratch topics and
//! groups whatever happened ([`cleanup`]), then judge and store the report ([`judge`]).
//!
//! Nothing outside the expanded prefix is ever written, committed or deleted: every name the
//! drill creates is `<prefix><source name>`, and cleanup deletes only names it planned that
//! start with the prefix.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};

use super::digest::{compare, Digests};
use super::readback::read_back;
use super::report::{CommittedRow, DrillError, DrillReport, GroupCheck};
use crate::backup::read::{complete_backups, load_chain, read_segment};
use crate::error::{Error, Result};
use crate::kafka::{kafka_config_with, CommittedOffset, GroupAdmin};
use crate::restore::engine::{run_restore, LiveProgress, RestoreRequest};
use crate::restore::groups::captured_offsets;
use crate::restore::mapping::{mapping_key, OffsetMapping};
use crate::restore::plan::{build_plan, RestorePlan};
use crate::snapshot::OffsetSnapshot;
use crate::storage::{open_location, Storage};
use crate::task::{ChainScope, DrillTask, RestoreTask};

/// Kafka's longest topic name.
const MAX_TOPIC_NAME: usize = 249;
/// How long cleanup waits for deleted topics and groups to leave the listings.
const CLEANUP_WAIT: Duration = Duration::from_secs(30);
/// Names listed at most in one refusal.
const NAMES_LISTED: usize = 10;

/// What the drill works with once planned and cleared to write.
struct Prepared {
    drill_id: String,
    prefix: String,
    backup_id: String,
    restore: RestoreTask,
    plan: RestorePlan,
    /// The scratch topics the restore writes (all start with the prefix).
    scratch_topics: Vec<String>,
    /// The captured offsets to check (`checkOffsets` and a backup that captured some).
    captured: Option<OffsetSnapshot>,
    /// The newest backed-up record's timestamp (ms) of the drilled topics.
    newest_ms: Option<i64>,
}

/// Runs a drill. `Err` only when it cannot start (an invalid task, no backup, a refused prefix,
/// an unreachable cluster or storage): then nothing was written. Once it has started, the report
/// comes back whatever happened, after cleanup; its `error` says why it failed.
pub async fn run_drill(
    t: &DrillTask,
    credentials: Option<(String, String)>,
    stop: Arc<AtomicBool>,
) -> Result<DrillReport> {
    t.validate()?;
    let started_at = Utc::now();
    let drill_id = t
        .drill_id
        .clone()
        .unwrap_or_else(|| generate_drill_id(started_at));
    let storage = open_location(&t.storage)?;
    let backup_id = pick_backup(&storage, t).await?;
    let admin = GroupAdmin::connect(&kafka_config_with(&t.kafka, credentials)?).await?;
    let p = prepare(&storage, &admin, t, &backup_id, &drill_id).await?;
    let mut report = first_report(t, &p, started_at);
    tracing::info!(drill_id = %p.drill_id, backup_id = %p.backup_id, prefix = %p.prefix, "drill starting");
    let outcome = exercise(&p, &storage, &admin, stop, &mut report).await;
    cleanup(&admin, &p, &mut report).await;
    judge(t, outcome, &mut report);
    store_report(&storage, t, &mut report).await;
    Ok(report)
}

/// The report as it stands when the drill starts writing: what is drilled, where, and the RPO.
fn first_report(t: &DrillTask, p: &Prepared, started_at: DateTime<Utc>) -> DrillReport {
    let mut report = DrillReport {
        status: "failed",
        drill_id: p.drill_id.clone(),
        backup_id: p.backup_id.clone(),
        links: p.plan.links.clone(),
        prefix: p.prefix.clone(),
        target_cluster: t.kafka.bootstrap_servers.join(","),
        started_at: started_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        newest_record_at: p
            .newest_ms
            .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
            .map(|d| d.to_rfc3339_opts(SecondsFormat::Millis, true)),
        topics: p.scratch_topics.len() as u64,
        partitions: count_partitions(&p.plan),
        rpo_seconds: p
            .newest_ms
            .map(|ms| (started_at.timestamp_millis() - ms) as f64 / 1000.0),
        max_rpo_seconds: t.max_rpo_seconds,
        max_rto_seconds: t.max_rto_seconds,
        scratch_topics: p.scratch_topics.clone(),
        report_key: t.report_key.clone(),
        ..DrillReport::default()
    };
    if t.check_offsets && p.captured.is_none() {
        report.warnings.push(format!(
            "backup '{}' holds no captured consumer offsets: no group was checked",
            p.backup_id
        ));
    }
    report
}

/// `<yyyymmdd>-<hhmmss>-<4 hex>`: a drill id that sorts by time.
fn generate_drill_id(now: DateTime<Utc>) -> String {
    format!(
        "{}-{:04x}",
        now.format("%Y%m%d-%H%M%S"),
        rand::random::<u16>()
    )
}

/// The task's backup, or the newest complete one in the storage (of the task's chain).
async fn pick_backup(storage: &Storage, t: &DrillTask) -> Result<String> {
    if let Some(id) = &t.backup_id {
        return Ok(id.clone());
    }
    complete_backups(storage)
        .await?
        .into_iter()
        .find(|b| t.chain.is_none() || b.chain == t.chain)
        .map(|b| b.backup_id)
        .ok_or_else(|| {
            Error::invalid(format!(
                "no complete backup{} in {}: nothing to drill (take a backup first, or name one with backupId / --backup-id)",
                t.chain.as_deref().map(|c| format!(" of chain '{c}'")).unwrap_or_default(),
                storage.display()
            ))
        })
}

/// Plans the restore into scratch names, loads the offsets to check and refuses a taken prefix.
async fn prepare(
    storage: &Storage,
    admin: &GroupAdmin,
    t: &DrillTask,
    backup_id: &str,
    drill_id: &str,
) -> Result<Prepared> {
    let prefix = t.prefix_for(drill_id);
    // The plan without renaming names the source topics; the real one maps each to its scratch.
    let plain = build_plan(
        storage,
        &restore_task(t, backup_id, drill_id, BTreeMap::new())?,
    )
    .await?;
    let sources: Vec<String> = plain.targets.keys().cloned().collect();
    let mapping: BTreeMap<String, String> = sources
        .iter()
        .map(|s| (s.clone(), format!("{prefix}{s}")))
        .collect();
    let restore = restore_task(t, backup_id, drill_id, mapping.clone())?;
    let plan = build_plan(storage, &restore).await?;
    let captured = if t.check_offsets && !plan.offsets_keys.is_empty() {
        Some(captured_offsets(storage, backup_id, &plan.offsets_keys).await?)
    } else {
        None
    };
    let source_groups: Vec<String> = captured
        .as_ref()
        .map(|c| c.groups.keys().cloned().collect())
        .unwrap_or_default();
    let scratch_topics: Vec<String> = mapping.values().cloned().collect();
    let scratch_groups: Vec<String> = source_groups
        .iter()
        .map(|g| format!("{prefix}{g}"))
        .collect();
    refuse_taken(
        admin,
        &prefix,
        (&sources, &source_groups),
        (&scratch_topics, &scratch_groups),
    )
    .await?;
    let newest_ms = newest_record(storage, &sources, backup_id).await?;
    Ok(Prepared {
        drill_id: drill_id.to_string(),
        prefix,
        backup_id: backup_id.to_string(),
        restore,
        plan,
        scratch_topics,
        captured,
        newest_ms,
    })
}

/// The restore a drill runs: the whole chain into `mapping`'s topics, created from the
/// backed-up metadata, never over existing data, no consumer offsets (the drill checks them
/// itself, in scratch groups). Built as a task document, as the operator renders one.
fn restore_task(
    t: &DrillTask,
    backup_id: &str,
    drill_id: &str,
    mapping: BTreeMap<String, String>,
) -> Result<RestoreTask> {
    let doc = serde_json::json!({
        "kafka": t.kafka,
        "storage": t.storage,
        "backupId": backup_id,
        "restoreId": drill_id,
        "topics": t.topics,
        "timeWindowStart": t.time_window_start,
        "timeWindowEnd": t.time_window_end,
        "topicMapping": mapping,
        "createTopics": true,
        "existingData": "refuse",
        "consumerGroupStrategy": "skip",
        "maxConcurrentPartitions": t.max_concurrent_partitions,
        "rateLimitRecordsPerSec": t.rate_limit_records_per_sec,
        "rateLimitBytesPerSec": t.rate_limit_bytes_per_sec,
        "snapshotBeforeReset": false,
    });
    let task: RestoreTask = serde_json::from_value(doc)
        .map_err(|e| Error::invalid(format!("the drill's restore task cannot be built: {e}")))?;
    debug_assert_eq!(task.chain, ChainScope::Full);
    task.validate()?;
    Ok(task)
}

/// Refuses (exit 2, nothing written) a prefix the cluster's listings show taken ([`taken`]).
async fn refuse_taken(
    admin: &GroupAdmin,
    prefix: &str,
    sources: (&[String], &[String]),
    scratch: (&[String], &[String]),
) -> Result<()> {
    let topics = admin.list_topics().await?;
    let groups: Vec<String> = admin
        .list_groups()
        .await?
        .into_iter()
        .map(|g| g.group_id)
        .collect();
    let problems = taken(prefix, (&topics, &groups), sources, scratch);
    if problems.is_empty() {
        return Ok(());
    }
    Err(Error::invalid(format!(
        "drill prefix '{prefix}' refused, nothing was written: {}; choose another topicPrefix (--prefix) or drill id",
        problems.join("; ")
    )))
}

/// Why `prefix` cannot be used, one line per kind of name: topics or groups of the cluster
/// (`existing`) already under it, scratch names equal to source names (`sources`: the backed-up
/// topics and captured groups; `scratch`: their scratch names), scratch topic names longer
/// than Kafka allows.
fn taken(
    prefix: &str,
    (topics, groups): (&[String], &[String]),
    (source_topics, source_groups): (&[String], &[String]),
    (scratch_topics, scratch_groups): (&[String], &[String]),
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut refuse = |what: &str, names: Vec<&String>| {
        if !names.is_empty() {
            problems.push(format!("{what}: {}", listed(&names)));
        }
    };
    refuse(
        "topics already exist under it",
        topics.iter().filter(|n| n.starts_with(prefix)).collect(),
    );
    refuse(
        "consumer groups already exist under it",
        groups.iter().filter(|n| n.starts_with(prefix)).collect(),
    );
    refuse(
        "scratch topic names that are backed-up topic names",
        scratch_topics
            .iter()
            .filter(|n| source_topics.contains(n))
            .collect(),
    );
    refuse(
        "scratch group names that are captured group names",
        scratch_groups
            .iter()
            .filter(|n| source_groups.contains(n))
            .collect(),
    );
    refuse(
        "scratch topic names longer than 249 characters",
        scratch_topics
            .iter()
            .filter(|n| n.len() > MAX_TOPIC_NAME)
            .collect(),
    );
    problems
}

/// `a, b, c` (at most [`NAMES_LISTED`], then how many more).
fn listed(names: &[&String]) -> String {
    let shown: Vec<&str> = names
        .iter()
        .take(NAMES_LISTED)
        .map(|s| s.as_str())
        .collect();
    match names.len().saturating_sub(NAMES_LISTED) {
        0 => shown.join(", "),
        more => format!("{} and {more} more", shown.join(", ")),
    }
}

/// The newest record timestamp (ms) the drilled backup's chain holds on the drilled topics
/// (`sources`), from the manifests' segment statistics.
async fn newest_record(
    storage: &Storage,
    sources: &[String],
    backup_id: &str,
) -> Result<Option<i64>> {
    let links = load_chain(storage, backup_id, ChainScope::Full).await?;
    Ok(links
        .iter()
        .flat_map(|l| &l.manifests)
        .flat_map(|m| &m.topics)
        .filter(|(topic, _)| sources.contains(topic))
        .flat_map(|(_, td)| td.partition_data.values())
        .flat_map(|pd| &pd.segments)
        .filter(|s| s.stats.records > 0)
        .map(|s| s.stats.max_timestamp)
        .max())
}

fn count_partitions(plan: &RestorePlan) -> u64 {
    let mut seen: Vec<(&str, i32)> = plan
        .units
        .iter()
        .map(|u| (u.target_topic.as_str(), u.target_partition))
        .collect();
    seen.sort();
    seen.dedup();
    seen.len() as u64
}

/// Restores (timed), reads back and compares, then checks the translated offsets. Findings go
/// into `report`; an error ends the exercise (cleanup still follows).
#[tracing::instrument(name = "drill", skip_all, fields(drill_id = %p.drill_id, backup_id = %p.backup_id))]
async fn exercise(
    p: &Prepared,
    storage: &Storage,
    admin: &GroupAdmin,
    stop: Arc<AtomicBool>,
    report: &mut DrillReport,
) -> Result<()> {
    let req = RestoreRequest {
        restore_id: p.drill_id.clone(),
        task: p.restore.clone(),
        progress: Arc::new(LiveProgress::default()),
    };
    let started = Instant::now();
    let restored = run_restore(admin, storage, &p.plan, &req, stop).await;
    report.rto_seconds = (started.elapsed().as_millis() as f64) / 1000.0;
    let restored = restored?;
    report.records = restored.records;
    report.bytes = restored.bytes;
    report.warnings.extend(restored.warnings);
    let expected = backup_digests(storage, &p.plan).await?;
    let mut partitions = Vec::new();
    for topic in &p.scratch_topics {
        for partition in admin.topic_partitions(topic).await? {
            partitions.push((topic.clone(), partition));
        }
    }
    let reader = format!("{}tidemark-read", p.prefix);
    let actual = read_back(admin.config(), &reader, &partitions).await?;
    let (checks, failures) = compare(&expected, &actual);
    report.records = actual.values().map(|d| d.records).sum();
    report.bytes = actual.values().map(|d| d.bytes).sum();
    report.partition_checks = checks;
    report.failures.extend(failures);
    if let Some(snap) = &p.captured {
        check_offsets(admin, storage, p, snap, report).await?;
    }
    report.verified = report.failures.is_empty();
    Ok(())
}

/// The backup's side of the comparison, per scratch partition: the records of the segments the
/// restore reads, inside the window, in the order the restore writes them.
async fn backup_digests(storage: &Storage, plan: &RestorePlan) -> Result<Digests> {
    let mut out = Digests::new();
    for unit in &plan.units {
        let key = (unit.target_topic.clone(), unit.target_partition);
        for seg in &unit.segments {
            let records = read_segment(storage, seg).await?;
            let d = out.entry(key.clone()).or_default();
            for r in records.iter().filter(|r| plan.window.contains(r.timestamp)) {
                d.add(
                    r.key.as_deref(),
                    r.value.as_deref(),
                    r.headers.iter().map(|(k, v)| (k.as_str(), v.as_deref())),
                    r.timestamp,
                );
            }
        }
        out.entry(key).or_default();
    }
    Ok(out)
}

/// Translates each captured group's offsets through the drill's offset mapping, commits them to
/// `<prefix><group>` and reads them back.
async fn check_offsets(
    admin: &GroupAdmin,
    storage: &Storage,
    p: &Prepared,
    snap: &OffsetSnapshot,
    report: &mut DrillReport,
) -> Result<()> {
    let key = mapping_key(&p.backup_id, &p.drill_id);
    let data = storage.get(&key).await?.ok_or_else(|| Error::Malformed {
        kind: "offset mapping",
        file: key.clone(),
        reason: "the object is missing".into(),
    })?;
    let mapping = OffsetMapping::from_json(&data, &key)?;
    for (group, gs) in &snap.groups {
        let committed: BTreeMap<(String, i32), i64> = gs
            .to_commits()
            .into_iter()
            .map(|c| ((c.topic, c.partition), c.offset))
            .collect();
        let expected: BTreeMap<(String, i32), i64> = mapping
            .translate_group(&committed)
            .offsets
            .into_iter()
            .filter(|((topic, _), _)| topic.starts_with(&p.prefix))
            .collect();
        if expected.is_empty() {
            continue;
        }
        let scratch = format!("{}{group}", p.prefix);
        report.scratch_groups.push(scratch.clone());
        let check = commit_and_read(admin, group, &scratch, &expected).await?;
        report.failures.extend(
            check
                .differences
                .iter()
                .map(|d| format!("group {group} ({scratch}): {d}")),
        );
        report.groups_checked += 1;
        report.group_checks.push(check);
    }
    Ok(())
}

/// Commits `expected` to `scratch` and compares what the cluster then holds.
async fn commit_and_read(
    admin: &GroupAdmin,
    group: &str,
    scratch: &str,
    expected: &BTreeMap<(String, i32), i64>,
) -> Result<GroupCheck> {
    let offsets: Vec<CommittedOffset> = expected
        .iter()
        .map(|((topic, partition), offset)| CommittedOffset {
            topic: topic.clone(),
            partition: *partition,
            offset: *offset,
            metadata: String::new(),
        })
        .collect();
    let mut differences: Vec<String> = admin
        .alter_offsets(scratch, &offsets)
        .await?
        .into_iter()
        .map(|f| format!("{}-{}: not committed: {}", f.topic, f.partition, f.error))
        .collect();
    let back: BTreeMap<(String, i32), i64> = admin
        .committed_offsets(scratch)
        .await?
        .into_iter()
        .map(|o| ((o.topic, o.partition), o.offset))
        .collect();
    for ((topic, partition), want) in expected {
        match back.get(&(topic.clone(), *partition)) {
            Some(got) if got == want => {}
            got => differences.push(format!(
                "{topic}-{partition}: expected offset {want}, read back {}",
                got.map_or("none".to_string(), i64::to_string)
            )),
        }
    }
    Ok(GroupCheck {
        group: group.to_string(),
        scratch_group: scratch.to_string(),
        offsets: expected.len() as u64,
        matched: differences.is_empty(),
        committed: back
            .into_iter()
            .map(|((topic, partition), offset)| CommittedRow {
                topic,
                partition,
                offset,
            })
            .collect(),
        differences,
    })
}

/// Deletes the scratch groups and topics (only names under the prefix) and waits until the
/// listings no longer show them; `cleaned_up` says whether that worked.
#[tracing::instrument(name = "drill_cleanup", skip_all, fields(drill_id = %p.drill_id))]
async fn cleanup(admin: &GroupAdmin, p: &Prepared, report: &mut DrillReport) {
    let mut groups: Vec<String> = report.scratch_groups.clone();
    groups.push(format!("{}tidemark-read", p.prefix));
    groups.retain(|g| g.starts_with(&p.prefix));
    let topics: Vec<String> = p
        .scratch_topics
        .iter()
        .filter(|t| t.starts_with(&p.prefix))
        .cloned()
        .collect();
    let mut problems = Vec::new();
    match admin.delete_groups(&groups).await {
        Ok(failed) => problems.extend(
            failed
                .into_iter()
                .map(|(g, e)| format!("consumer group {g}: {e}")),
        ),
        Err(e) => problems.push(format!("consumer groups: {e}")),
    }
    match admin.delete_topics(&topics).await {
        Ok(failed) => problems.extend(failed.into_iter().map(|(t, e)| format!("topic {t}: {e}"))),
        Err(e) => problems.push(format!("topics: {e}")),
    }
    if problems.is_empty() {
        if let Err(e) = wait_gone(admin, &topics, &groups).await {
            problems.push(e);
        }
    }
    for p in &problems {
        tracing::warn!(problem = %p, "drill cleanup");
    }
    report.cleaned_up = problems.is_empty();
    report.cleanup_problems = problems;
}

/// Waits up to [`CLEANUP_WAIT`] until no listed topic or group is one of `topics` / `groups`.
async fn wait_gone(
    admin: &GroupAdmin,
    topics: &[String],
    groups: &[String],
) -> std::result::Result<(), String> {
    let deadline = Instant::now() + CLEANUP_WAIT;
    loop {
        let mut left: Vec<String> = admin
            .list_topics()
            .await
            .map_err(|e| format!("topics cannot be listed after deletion: {e}"))?
            .into_iter()
            .filter(|t| topics.contains(t))
            .collect();
        left.extend(
            admin
                .list_groups()
                .await
                .map_err(|e| format!("groups cannot be listed after deletion: {e}"))?
                .into_iter()
                .map(|g| g.group_id)
                .filter(|g| groups.contains(g)),
        );
        if left.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "still listed {} s after deletion: {}",
                CLEANUP_WAIT.as_secs(),
                left.join(", ")
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Sets the limits' failures, throughput, status and the error the drill reports: the one that
/// ended it, else a verification failure, else a cleanup failure.
fn judge(t: &DrillTask, outcome: Result<()>, report: &mut DrillReport) {
    if report.rto_seconds > 0.0 {
        report.bytes_per_second = (report.bytes as f64 / report.rto_seconds) as u64;
    }
    if outcome.is_ok() {
        if let Some(max) = t.max_rto_seconds.filter(|m| report.rto_seconds > *m as f64) {
            report.failures.push(format!(
                "RTO {:.3} s exceeds maxRtoSeconds {max}",
                report.rto_seconds
            ));
        }
    }
    if let (Some(max), Some(rpo)) = (t.max_rpo_seconds, report.rpo_seconds) {
        if rpo > max as f64 {
            report
                .failures
                .push(format!("RPO {rpo:.0} s exceeds maxRpoSeconds {max}"));
        }
    }
    let error = match outcome {
        Err(e) => {
            report.verified = false;
            report.failures.insert(0, e.to_string());
            Some(e)
        }
        Ok(()) if !report.failures.is_empty() => {
            Some(Error::VerificationFailed(report.failures.join("; ")))
        }
        Ok(()) if !report.cleaned_up => Some(Error::Partial(format!(
            "the backup verified, but cleanup did not finish: {}",
            report.cleanup_problems.join("; ")
        ))),
        Ok(()) => None,
    };
    report.status = if error.is_none() {
        "verified"
    } else {
        "failed"
    };
    report.error = error.map(|e| DrillError {
        kind: e.label().to_string(),
        exit_code: e.exit_code(),
        message: e.to_string(),
    });
}

/// Stores the report at `reportKey`, when set; a failure to store it fails a drill that had
/// not failed otherwise.
async fn store_report(storage: &Storage, t: &DrillTask, report: &mut DrillReport) {
    let Some(key) = &t.report_key else {
        return;
    };
    let stored = match serde_json::to_vec_pretty(&report) {
        Ok(json) => storage.put(key, json.into()).await,
        Err(e) => Err(Error::encode("drill report", e)),
    };
    if let Err(e) = stored {
        tracing::error!(key = %key, error = %e, "the drill report could not be stored");
        report
            .warnings
            .push(format!("the report could not be stored at {key}: {e}"));
        if report.error.is_none() {
            report.status = "failed";
            report.error = Some(DrillError {
                kind: e.label().to_string(),
                exit_code: e.exit_code(),
                message: format!("the report could not be stored at {key}: {e}"),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_prefix_is_taken_by_existing_names_source_names_and_overlong_names() {
        let none: Vec<String> = Vec::new();
        let free = taken(
            "drill-1-",
            (&names(&["orders", "drill-2-orders"]), &names(&["billing"])),
            (&names(&["orders"]), &names(&["billing"])),
            (&names(&["drill-1-orders"]), &names(&["drill-1-billing"])),
        );
        assert!(free.is_empty(), "{free:?}");
        let p = taken(
            "dr-",
            (
                &names(&["dr-old", "orders"]),
                &names(&["dr-g", "dr-h", "x"]),
            ),
            (&names(&["orders", "dr-orders"]), &names(&["dr-billing"])),
            (
                &names(&["dr-orders", "dr-dr-orders"]),
                &names(&["dr-dr-billing", "dr-dr-billing2"]),
            ),
        );
        assert_eq!(
            p,
            [
                "topics already exist under it: dr-old",
                "consumer groups already exist under it: dr-g, dr-h",
                "scratch topic names that are backed-up topic names: dr-orders",
            ]
        );
        let long = format!("d-{}", "t".repeat(248));
        let p = taken("d-", (&none, &none), (&none, &none), (&[long], &none));
        assert_eq!(p.len(), 1);
        assert!(
            p[0].starts_with("scratch topic names longer than 249"),
            "{p:?}"
        );
        let many: Vec<String> = (0..12).map(|i| format!("z-{i:02}")).collect();
        let p = taken("z-", (&many, &none), (&none, &none), (&none, &none));
        assert!(p[0].ends_with("z-09 and 2 more"), "{p:?}");
        let p = taken(
            "z-",
            (&none, &none),
            (&none, &names(&["z-g"])),
            (&none, &names(&["z-g"])),
        );
        assert_eq!(
            p,
            ["scratch group names that are captured group names: z-g"]
        );
    }
}
