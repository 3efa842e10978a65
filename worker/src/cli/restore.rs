//! `tidemark restore`, `three-phase-restore`, `validate-restore` and `show-offset-mapping`:
//! flags and the restore configuration file to a task, the use case of
//! [`crate::service::restore`], the report printed.

use std::io::IsTerminal as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::plan::{announce, print_written, Approved};
use super::{open_storage_at, print_json};
use super::{
    DescribeFormat, Format, MappingFormat, RestoreArgs, ShowMappingArgs, ValidateRestoreArgs,
};
use crate::error::{Error, Result};
use crate::plan::store::PlanLocation;
use crate::report::{spawn_progress_bar, thousands, BoxReport};
use crate::restore::config::{parse_config, RestoreConfig};
use crate::restore::engine::LiveProgress;
use crate::restore::plan::{fmt_ms, human_bytes, validation_box};
use crate::service::restore::{
    exit_code, mapping_view, plan_restore, run_approved_restore, run_restore_task, validate_task,
    FullReport, MappingView,
};
use crate::service::signals::stop_on_signal;
use crate::task::GroupStrategy;

fn read_config(path: &std::path::Path) -> Result<RestoreConfig> {
    let text = crate::limits::read_text_limited(path, crate::limits::MAX_CONFIG_BYTES)?;
    parse_config(&text, &path.display().to_string(), |v| {
        std::env::var(v).ok()
    })
}

/// `restore` and (`three_phase`) `three-phase-restore`.
pub async fn restore(a: RestoreArgs, three_phase: bool) -> Result<i32> {
    let c = read_config(&a.config)?;
    let mut task = c.task;
    for (k, v) in crate::kafka::config::parse_properties(&a.kafka_properties)? {
        task.kafka.properties.insert(k, v);
    }
    task.kafka.tls_insecure_skip_verify |= a.insecure_skip_tls_verify;
    if a.restore_id.is_some() {
        task.restore_id = a.restore_id.clone();
    }
    if a.dry_run {
        task.dry_run = true;
    }
    if a.single_link {
        task.chain = crate::task::ChainScope::Single;
    }
    if three_phase {
        task.reset_consumer_offsets = true;
        if task.consumer_group_strategy == GroupStrategy::Skip {
            task.consumer_group_strategy = GroupStrategy::HeaderBased;
        }
    }
    task.validate()?;
    if let Some(path) = &a.plan_out {
        let location = PlanLocation::File(path.clone());
        let (v, stored) = plan_restore(&task, c.credentials, &location).await?;
        if a.format.format == Format::Text {
            print!("{}", validation_box(&v));
            println!();
        }
        print_written(a.format.format, &stored)?;
        return Ok(0);
    }
    if task.dry_run {
        let report = validate_task(&task, c.credentials).await;
        match a.format.format {
            Format::Json => print_json(&report)?,
            Format::Text => print!("{}", validation_box(&report)),
        }
        return Ok(if report.valid { 0 } else { 2 });
    }
    let progress = Arc::new(LiveProgress::default());
    let bar = (a.format.format == Format::Text && std::io::stderr().is_terminal()).then(|| {
        let p = Arc::clone(&progress);
        spawn_progress_bar(move || {
            (
                p.records_total.load(Ordering::Relaxed),
                p.records.load(Ordering::Relaxed),
                format!(
                    "{} records, {}, {}/{} partitions",
                    thousands(p.records.load(Ordering::Relaxed)),
                    human_bytes(p.bytes.load(Ordering::Relaxed)),
                    p.partitions_done.load(Ordering::Relaxed),
                    p.partitions_total.load(Ordering::Relaxed)
                ),
            )
        })
    });
    let stop = stop_on_signal();
    let result = match &a.approved_plan {
        None => run_restore_task(&task, c.credentials, stop, progress)
            .await
            .map(|r| (r, None)),
        Some(path) => {
            let location = PlanLocation::File(path.clone());
            run_approved_restore(
                &task,
                c.credentials,
                &location,
                a.plan_hash.as_deref(),
                stop,
                progress,
            )
            .await
            .map(|(r, p)| (r, Some(p)))
        }
    };
    if let Some((done, handle)) = bar {
        done.store(true, Ordering::SeqCst);
        let _ = handle.await;
    }
    let (report, plan) = result?;
    match (a.format.format, &plan) {
        (Format::Json, Some(p)) => print_json(&Approved::new(p, &report))?,
        (Format::Json, None) => print_json(&report)?,
        (Format::Text, _) => {
            if let Some(p) = &plan {
                announce(Format::Text, p);
            }
            print!("{}", restore_box(&report));
        }
    }
    Ok(exit_code(&report))
}

/// `validate-restore`: every check a restore makes before writing, reported together.
pub async fn validate(a: ValidateRestoreArgs) -> Result<i32> {
    let c = read_config(&a.config)?;
    if let Some(path) = &a.plan_out {
        let location = PlanLocation::File(path.clone());
        let (v, stored) = plan_restore(&c.task, c.credentials, &location).await?;
        let format = if a.format == DescribeFormat::Text {
            print!("{}", validation_box(&v));
            println!();
            Format::Text
        } else {
            Format::Json
        };
        print_written(format, &stored)?;
        return Ok(0);
    }
    let report = validate_task(&c.task, c.credentials).await;
    match a.format {
        DescribeFormat::Text => print!("{}", validation_box(&report)),
        DescribeFormat::Json => print_json(&report)?,
        DescribeFormat::Yaml => print!(
            "{}",
            serde_yaml_ng::to_string(&report).map_err(|e| Error::encode("report", e))?
        ),
    }
    Ok(if report.valid { 0 } else { 2 })
}

/// The boxed report of a restore.
pub fn restore_box(r: &FullReport) -> String {
    let d = &r.restore;
    let mut b = BoxReport::new("RESTORE REPORT");
    let status = if d.already_complete {
        "COMPLETE (already complete; nothing was written)"
    } else if d.resumed {
        "COMPLETE (resumed from a checkpoint)"
    } else {
        "COMPLETE"
    };
    b.line(format!("Status: {status}"))
        .line(format!("Backup ID: {}", d.backup_id))
        .line(format!("Restore ID: {}", d.restore_id))
        .light()
        .field("Target", &d.target_cluster)
        .field("Topics", d.topics)
        .field("Partitions", d.partitions)
        .field(
            "Records",
            format!("{} of {}", thousands(d.records), thousands(d.records_total)),
        )
        .field("Data", human_bytes(d.bytes));
    if d.links.len() > 1 {
        b.field("Chain", d.links.join(" > "));
    }
    if d.resumed {
        b.field("Found On Resume", thousands(d.records_found_on_resume));
    }
    if !d.topics_created.is_empty() {
        b.field("Topics Created", d.topics_created.join(", "));
    }
    if !d.partitions_purged.is_empty() {
        b.field("Purged", d.partitions_purged.join(", "));
    }
    b.field(
        "Duration",
        format!("{} ms", thousands(d.duration_ms as i64)),
    );
    if !d.already_complete {
        b.field(
            "Throughput",
            format!(
                "{:.0} records/s, {:.1} MiB/s",
                d.records_per_second, d.mib_per_second
            ),
        );
    }
    if let Some(g) = &r.consumer_groups {
        b.heavy()
            .line("CONSUMER GROUPS")
            .light()
            .field("Strategy", &g.strategy)
            .field("Source", &g.source)
            .field(
                "Groups",
                format!(
                    "{} translated, {} failed, of {}",
                    g.groups_translated, g.groups_failed, g.groups_total
                ),
            );
        if let Some(reset) = &g.reset {
            b.field("Offsets Committed", reset.total_offsets_reset);
            if let Some(id) = &reset.snapshot_id {
                b.field("Safety Snapshot", id);
            }
        }
    }
    let mut out = b.render();
    for w in &d.warnings {
        out.push_str(&format!("Warn: {w}\n"));
    }
    if let Some(g) = &r.consumer_groups {
        for w in &g.warnings {
            out.push_str(&format!("Warn: {w}\n"));
        }
        for t in &g.translations {
            for o in &t.offsets {
                out.push_str(&format!(
                    "{}: {}-{} offset {} -> {}-{} offset {}\n",
                    t.group,
                    o.source_topic,
                    o.source_partition,
                    o.source_offset,
                    o.target_topic,
                    o.target_partition,
                    o.target_offset
                ));
            }
        }
        if let Some(reset) = &g.reset {
            for o in reset.outcomes_failed_first() {
                if let Some(e) = &o.error {
                    out.push_str(&format!("Group {} not changed: {e}\n", o.group));
                }
            }
            if let Some(cmd) = &reset.rollback_command {
                out.push_str(&format!("To undo the offset changes: {cmd}\n"));
            }
        }
        for c in &g.commands {
            out.push_str(&format!("{c}\n"));
        }
    }
    out.push_str(&format!("Offset mapping: {}\n", d.offset_mapping));
    out
}

/// `show-offset-mapping`
pub async fn show_offset_mapping(a: ShowMappingArgs) -> Result<i32> {
    let storage = open_storage_at(&a.storage.path, &a.storage.endpoint)?;
    let view = mapping_view(&storage, &a.backup_id, a.restore_id.as_deref()).await?;
    match a.format {
        MappingFormat::Text => print!("{}", mapping_text(&view)),
        MappingFormat::Table => print!("{}", mapping_table(&view)),
        MappingFormat::Json => print_json(&view)?,
        MappingFormat::Yaml => print!(
            "{}",
            serde_yaml_ng::to_string(&view).map_err(|e| Error::encode("report", e))?
        ),
        MappingFormat::Csv => print!("{}", mapping_csv(&view)),
    }
    Ok(0)
}

fn opt(v: Option<i64>) -> String {
    v.map_or("-".into(), |v| v.to_string())
}

fn mapping_text(v: &MappingView) -> String {
    let mut out = String::new();
    let title = "OFFSET MAPPING REPORT";
    // Columns: topic/partition 18, source range 21, target range 30, two timestamps 19 each,
    // each with a leading space and a separator.
    let w = 1 + 18 + 2 + 21 + 2 + 30 + 2 + 19 + 2 + 19;
    out += &format!("╔{}╗\n", "═".repeat(w));
    out += &format!("║{:^w$}║\n", title);
    out += &format!("╠{}╣\n", "═".repeat(w));
    out += &format!(
        "║ {:<width$}║\n",
        format!("Backup ID: {}", v.backup_id),
        width = w - 1
    );
    match &v.restore_id {
        Some(id) => {
            out += &format!(
                "║ {:<width$}║\n",
                format!(
                    "Restore ID: {id} ({}) -> {}",
                    if v.complete == Some(true) {
                        "complete"
                    } else {
                        "in progress"
                    },
                    v.target_cluster.as_deref().unwrap_or("-")
                ),
                width = w - 1
            );
        }
        None => {
            out += &format!(
                "║ {:<width$}║\n",
                "Not restored yet: source offset ranges of the backup",
                width = w - 1
            );
        }
    }
    out += &format!("╠{}╣\n", "═".repeat(w));
    out += &format!(
        "║ {:<18}│ {:<21}│ {:<30}│ {:<19}│ {:<19}║\n",
        "Topic/Partition",
        "Source Offset Range",
        "Target Offset Range",
        "First Timestamp",
        "Last Timestamp"
    );
    out += &format!("╠{}╣\n", "═".repeat(w));
    for r in &v.partitions {
        let target = match (&r.target_topic, r.target_first, r.target_last) {
            (Some(t), Some(a), Some(b))
                if t == &r.topic && r.target_partition == Some(r.partition) =>
            {
                format!("{a} - {b}")
            }
            (Some(t), Some(a), Some(b)) => {
                format!("{t}/{} {a} - {b}", r.target_partition.unwrap_or(-1))
            }
            (Some(_), _, _) => "(none restored)".into(),
            _ => "-".into(),
        };
        let short = |ms: Option<i64>| {
            let s = fmt_ms(ms);
            s.get(..19).unwrap_or(&s).to_string()
        };
        out += &format!(
            "║ {:<18}│ {:<21}│ {:<30}│ {:<19}│ {:<19}║\n",
            crate::report::truncate(&format!("{}/{}", r.topic, r.partition), 18),
            format!("{} - {}", opt(r.source_first), opt(r.source_last)),
            crate::report::truncate(&target, 30),
            short(r.first_timestamp),
            short(r.last_timestamp),
        );
    }
    out += &format!("╚{}╝\n", "═".repeat(w));
    if v.restore_id.is_some() {
        out += "\nTo move a consumer group to where it resumes in the target, translate its committed\n";
        out += "offsets with the restore (three-phase-restore, or offset-reset-bulk --backup-id), or:\n\n";
        for r in v.partitions.iter().filter(|r| r.target_first.is_some()) {
            out += &format!(
                "# start of the restored data of {}/{}\nkafka-consumer-groups --bootstrap-server <BROKER> --group <GROUP_NAME> --topic {}:{} --reset-offsets --to-offset {} --execute\n",
                r.topic,
                r.partition,
                r.target_topic.as_deref().unwrap_or(&r.topic),
                r.target_partition.unwrap_or(r.partition),
                opt(r.target_first)
            );
        }
    }
    out
}

/// The plain layout: a title, then per source topic a table of partition, first and last
/// source offset and record count (and, once restored, where each partition went).
fn mapping_table(v: &MappingView) -> String {
    let mut out = format!("Offset Mapping: {}\n{}\n", v.backup_id, "═".repeat(62));
    if let Some(id) = &v.restore_id {
        out += &format!(
            "Restore: {id} ({}) -> {}\n",
            if v.complete == Some(true) {
                "complete"
            } else {
                "in progress"
            },
            v.target_cluster.as_deref().unwrap_or("-")
        );
    }
    let restored = v.restore_id.is_some();
    let mut topics: Vec<&str> = v.partitions.iter().map(|r| r.topic.as_str()).collect();
    topics.sort_unstable();
    topics.dedup();
    for topic in topics {
        let rows: Vec<Vec<String>> = v
            .partitions
            .iter()
            .filter(|r| r.topic == topic)
            .map(|r| {
                let mut cells = vec![
                    r.partition.to_string(),
                    opt(r.source_first),
                    opt(r.source_last),
                    r.records.to_string(),
                ];
                if restored {
                    cells.push(format!(
                        "{}/{}",
                        r.target_topic.as_deref().unwrap_or("-"),
                        r.target_partition.map_or("-".into(), |p| p.to_string())
                    ));
                    cells.push(opt(r.target_first));
                    cells.push(opt(r.target_last));
                }
                cells
            })
            .collect();
        let mut header = vec!["Partition", "First Offset", "Last Offset", "Record Count"];
        if restored {
            header.extend(["Target", "Target First", "Target Last"]);
        }
        let widths: Vec<usize> = (0..header.len())
            .map(|i| {
                rows.iter()
                    .filter_map(|r| r.get(i))
                    .map(|c| c.chars().count())
                    .chain([header[i].len()])
                    .max()
                    .unwrap_or(0)
                    + 2
            })
            .collect();
        out += &format!("\nTopic: {topic}\n{}\n", "─".repeat(61));
        out += &table_line(&header, &widths);
        out += &format!("{}\n", "─".repeat(61));
        for cells in &rows {
            let cells: Vec<&str> = cells.iter().map(String::as_str).collect();
            out += &table_line(&cells, &widths);
        }
    }
    out
}

/// One line of a plain table: each cell left-aligned in its column's width, the last unpadded.
fn table_line(cells: &[&str], widths: &[usize]) -> String {
    let mut line = String::new();
    for (i, cell) in cells.iter().enumerate() {
        if i + 1 == cells.len() {
            line += cell;
        } else {
            let width = widths.get(i).copied().unwrap_or(0);
            line += &format!("{cell:<width$}");
        }
    }
    line + "\n"
}

fn mapping_csv(v: &MappingView) -> String {
    let mut out = String::from("topic,partition,target_topic,target_partition,source_first_offset,source_last_offset,target_first_offset,target_last_offset,records,first_timestamp,last_timestamp,runs\n");
    let o = |v: Option<i64>| v.map_or(String::new(), |v| v.to_string());
    for r in &v.partitions {
        out += &format!(
            "{},{},{},{},{},{},{},{},{},{},{},{}\n",
            csv_field(&r.topic),
            r.partition,
            r.target_topic.as_deref().map(csv_field).unwrap_or_default(),
            r.target_partition.map_or(String::new(), |p| p.to_string()),
            o(r.source_first),
            o(r.source_last),
            o(r.target_first),
            o(r.target_last),
            r.records,
            o(r.first_timestamp),
            o(r.last_timestamp),
            r.runs
        );
    }
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::restore::MappingRow;

    #[test]
    fn the_plain_table_has_a_table_per_topic() {
        let row = |topic: &str, partition: i32, last: i64| MappingRow {
            topic: topic.into(),
            partition,
            target_topic: None,
            target_partition: None,
            source_first: Some(0),
            source_last: Some(last),
            target_first: None,
            target_last: None,
            records: u64::try_from(last + 1).unwrap_or(0),
            first_timestamp: None,
            last_timestamp: None,
            runs: 1,
        };
        let view = MappingView {
            backup_id: "nightly".into(),
            restore_id: None,
            target_cluster: None,
            complete: None,
            partitions: vec![
                row("clicks", 0, 9),
                row("clicks", 1, 120_004),
                row("users", 0, 41),
            ],
            mapping: None,
        };
        let rule = "─".repeat(61);
        let want = format!(
            "Offset Mapping: nightly\n{}\n\n\
             Topic: clicks\n{rule}\n\
             Partition  First Offset  Last Offset  Record Count\n{rule}\n\
             0          0             9            10\n\
             1          0             120004       120005\n\n\
             Topic: users\n{rule}\n\
             Partition  First Offset  Last Offset  Record Count\n{rule}\n\
             0          0             41           42\n",
            "═".repeat(62)
        );
        assert_eq!(mapping_table(&view), want);

        // Once restored: the restore, and where each partition went.
        let mut restored = view;
        restored.restore_id = Some("dr-1".into());
        restored.target_cluster = Some("dr:9092".into());
        restored.complete = Some(true);
        restored.partitions.truncate(1);
        restored.partitions[0].target_topic = Some("clicks-dr".into());
        restored.partitions[0].target_partition = Some(3);
        restored.partitions[0].target_first = Some(100);
        restored.partitions[0].target_last = Some(109);
        let text = mapping_table(&restored);
        assert!(
            text.contains("Restore: dr-1 (complete) -> dr:9092\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "Partition  First Offset  Last Offset  Record Count  Target       Target First  Target Last\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("0          0             9            10            clicks-dr/3  100           109\n"),
            "{text}"
        );
    }

    #[test]
    fn the_mapping_box_lines_up() {
        let row = |topic: &str, target: &str| MappingRow {
            topic: topic.into(),
            partition: 0,
            target_topic: Some(target.into()),
            target_partition: Some(0),
            source_first: Some(0),
            source_last: Some(999_999),
            target_first: Some(0),
            target_last: Some(999_999),
            records: 1_000_000,
            first_timestamp: Some(1_705_312_800_000),
            last_timestamp: Some(1_705_316_400_000),
            runs: 1,
        };
        let view = MappingView {
            backup_id: "b1".into(),
            restore_id: Some("r1".into()),
            target_cluster: Some("kafka:9092".into()),
            complete: Some(true),
            partitions: vec![row("orders", "orders"), row("orders", "orders-restored")],
            mapping: None,
        };
        let text = mapping_text(&view);
        let boxed: Vec<usize> = text
            .lines()
            .take_while(|l| !l.is_empty())
            .map(|l| l.chars().count())
            .collect();
        assert!(boxed.iter().all(|n| *n == boxed[0]), "{text}");
        assert!(text.contains("orders-restored/0 0 - 999999"), "{text}");
        assert!(text.contains("2024-01-15 10:00:00"), "{text}");
        let csv = mapping_csv(&view);
        assert!(
            csv.lines().nth(2).is_some_and(
                |l| l.starts_with("orders,0,orders-restored,0,0,999999,0,999999,1000000,")
            ),
            "{csv}"
        );
    }
}
