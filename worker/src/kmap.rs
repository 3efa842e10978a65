//! Interop with the kmap consumer-offsets file: export committed offsets in its JSON shape,
//! write a bash script that applies such a file with Kafka's own `kafka-consumer-groups.sh`,
//! and turn a kmap file into an offset snapshot.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::kafka::CommittedOffset;
pub use crate::reset::script::shell_quote;
use crate::reset::script::ToolScript;
use crate::snapshot::{GroupSnapshot, OffsetSnapshot, PartitionSnapshot};

/// The whole kmap offsets file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KmapFile {
    pub timestamp: String,
    pub cluster: String,
    pub consumer_groups: Vec<KmapGroup>,
}

/// One group in a kmap file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KmapGroup {
    pub group: String,
    pub topics: BTreeMap<String, Vec<KmapPartition>>,
    pub timestamp: String,
}

/// One partition offset in a kmap file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KmapPartition {
    pub partition: i32,
    pub offset: i64,
}

impl KmapFile {
    /// Builds the file from committed offsets; groups without offsets are left out.
    pub fn from_committed(
        cluster: &str,
        at: DateTime<Utc>,
        groups: &BTreeMap<String, Vec<CommittedOffset>>,
    ) -> Self {
        let ts = at.to_rfc3339_opts(SecondsFormat::Secs, true);
        let consumer_groups = groups
            .iter()
            .filter(|(_, offs)| !offs.is_empty())
            .map(|(group, offs)| {
                let mut topics: BTreeMap<String, Vec<KmapPartition>> = BTreeMap::new();
                for o in offs {
                    topics
                        .entry(o.topic.clone())
                        .or_default()
                        .push(KmapPartition {
                            partition: o.partition,
                            offset: o.offset,
                        });
                }
                for parts in topics.values_mut() {
                    parts.sort_by_key(|p| p.partition);
                }
                KmapGroup {
                    group: group.clone(),
                    topics,
                    timestamp: ts.clone(),
                }
            })
            .collect();
        KmapFile {
            timestamp: ts,
            cluster: cluster.to_string(),
            consumer_groups,
        }
    }

    /// Parses and validates a kmap file; `file` names it in errors.
    pub fn from_json(data: &[u8], file: &str) -> Result<Self> {
        let malformed = |reason: String| Error::Malformed {
            kind: "kmap offsets file",
            file: file.to_string(),
            reason,
        };
        crate::limits::check_size(data.len(), crate::limits::MAX_SNAPSHOT_BYTES)
            .map_err(&malformed)?;
        let parsed: KmapFile = serde_json::from_slice(data)
            .map_err(|e| Error::malformed_json("kmap offsets file", file, e))?;
        parse_time(&parsed.timestamp).map_err(&malformed)?;
        let mut seen = std::collections::BTreeSet::new();
        for g in &parsed.consumer_groups {
            if g.group.is_empty() {
                return Err(malformed("a consumer group has an empty name".into()));
            }
            if !seen.insert(&g.group) {
                return Err(malformed(format!("group '{}' appears twice", g.group)));
            }
            parse_time(&g.timestamp).map_err(&malformed)?;
            for (topic, parts) in &g.topics {
                if topic.is_empty() {
                    return Err(malformed(format!(
                        "group '{}' has an empty topic name",
                        g.group
                    )));
                }
                let mut seen_parts = std::collections::BTreeSet::new();
                for p in parts {
                    if p.partition < 0 || p.offset < 0 {
                        return Err(malformed(format!(
                            "group '{}' {topic}:{} has a negative partition or offset ({})",
                            g.group, p.partition, p.offset
                        )));
                    }
                    if !seen_parts.insert(p.partition) {
                        return Err(malformed(format!(
                            "group '{}' lists {topic}:{} twice",
                            g.group, p.partition
                        )));
                    }
                }
            }
        }
        Ok(parsed)
    }

    /// Number of partition offsets in the file.
    pub fn offset_count(&self) -> usize {
        self.consumer_groups
            .iter()
            .flat_map(|g| g.topics.values())
            .map(Vec::len)
            .sum()
    }

    /// The file as an offset snapshot with the given id (metadata empty, per-partition
    /// timestamps from each group's capture time).
    pub fn to_snapshot(
        &self,
        snapshot_id: &str,
        description: Option<String>,
    ) -> Result<OffsetSnapshot> {
        let timestamp = parse_time(&self.timestamp).map_err(Error::invalid)?;
        let groups = self
            .consumer_groups
            .iter()
            .map(|g| {
                let at = parse_time(&g.timestamp)
                    .map_err(Error::invalid)?
                    .timestamp_millis();
                let topics = g
                    .topics
                    .iter()
                    .map(|(t, parts)| {
                        let parts = parts
                            .iter()
                            .map(|p| {
                                (
                                    p.partition,
                                    PartitionSnapshot {
                                        offset: p.offset,
                                        metadata: String::new(),
                                        timestamp: at,
                                    },
                                )
                            })
                            .collect();
                        (t.clone(), parts)
                    })
                    .collect();
                Ok((g.group.clone(), GroupSnapshot { topics }))
            })
            .collect::<Result<BTreeMap<_, _>>>()?;
        let snap = OffsetSnapshot {
            snapshot_id: snapshot_id.to_string(),
            timestamp,
            cluster: self.cluster.clone(),
            description,
            groups,
        };
        snap.validate().map_err(Error::invalid)?;
        Ok(snap)
    }
}

fn parse_time(s: &str) -> std::result::Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("timestamp '{s}' is not RFC 3339: {e}"))
}

/// Applies one group's offsets on one topic from a temporary `--from-file` CSV, through the
/// shared `run` of [`ToolScript`].
const RESTORE_FUNCTION: &str = r#"WORKDIR="$(mktemp -d)"
trap 'rm -rf "$WORKDIR"' EXIT

# restore GROUP TOPIC CSV_LINES: one --from-file call for one group and topic.
restore() {
  local csv="$WORKDIR/offsets-$((TOTAL + 1)).csv"
  printf '%s\n' "$3" > "$csv"
  run "group '$1', topic '$2'" --group "$1" --reset-offsets --from-file "$csv"
}
"#;

/// A bash script that applies `file` with `kafka-consumer-groups.sh --reset-offsets
/// --from-file`, one call per group and topic; it keeps going past failures and prints a
/// summary, exiting non-zero when anything failed.
pub fn restore_script(file: &KmapFile, generated_at: DateTime<Utc>) -> String {
    let header = [
        format!(
            "Restores consumer group offsets captured from {}",
            file.cluster
        ),
        format!("Offsets captured: {}", file.timestamp),
        format!(
            "Script generated: {}",
            generated_at.to_rfc3339_opts(SecondsFormat::Secs, true)
        ),
        format!(
            "Groups: {}, partition offsets: {}",
            file.consumer_groups.len(),
            file.offset_count()
        ),
    ];
    let mut s = ToolScript::new(&header, "localhost:9092", None);
    s.line(RESTORE_FUNCTION);
    for g in &file.consumer_groups {
        for (topic, parts) in &g.topics {
            let lines: Vec<String> = parts
                .iter()
                .map(|p| format!("{},{},{}", topic, p.partition, p.offset))
                .collect();
            s.line(&format!(
                "restore {} {} {}",
                shell_quote(&g.group),
                shell_quote(topic),
                shell_quote(&lines.join("\n"))
            ));
        }
    }
    s.finish("group/topic restores")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `consumer-offsets.json` example of the kmap guide, verbatim.
    const GUIDE_KMAP: &str = r#"{
  "timestamp": "2026-01-20T15:30:04Z",
  "cluster": "localhost:9092",
  "consumer_groups": [
    {
      "group": "my-consumer-group",
      "topics": {
        "orders": [
          {"partition": 0, "offset": 12345},
          {"partition": 1, "offset": 67890}
        ],
        "payments": [
          {"partition": 0, "offset": 98765}
        ]
      },
      "timestamp": "2026-01-20T15:30:04Z"
    }
  ]
}"#;

    #[test]
    fn parses_the_guide_kmap_file_exactly() {
        let f =
            KmapFile::from_json(GUIDE_KMAP.as_bytes(), "consumer-offsets.json").expect("parses");
        assert_eq!(f.cluster, "localhost:9092");
        assert_eq!(f.consumer_groups.len(), 1);
        let g = &f.consumer_groups[0];
        assert_eq!(g.group, "my-consumer-group");
        assert_eq!(
            g.topics["orders"][1],
            KmapPartition {
                partition: 1,
                offset: 67890
            }
        );
        assert_eq!(g.topics["payments"][0].offset, 98765);
        assert_eq!(f.offset_count(), 3);
    }

    #[test]
    fn kmap_becomes_a_snapshot() {
        let f = KmapFile::from_json(GUIDE_KMAP.as_bytes(), "f").expect("parses");
        let snap = f
            .to_snapshot("imported-1", Some("from kmap".into()))
            .expect("converts");
        assert_eq!(snap.cluster, "localhost:9092");
        assert_eq!(snap.offset_count(), 3);
        let p = &snap.groups["my-consumer-group"].topics["orders"][&0];
        assert_eq!(p.offset, 12345);
        assert_eq!(p.timestamp, 1_768_923_004_000);
        assert!(f.to_snapshot("../x", None).is_err());
    }

    #[test]
    fn export_round_trips_and_skips_empty_groups() {
        let mut groups = BTreeMap::new();
        groups.insert(
            "g1".to_string(),
            vec![
                CommittedOffset {
                    topic: "t".into(),
                    partition: 1,
                    offset: 7,
                    metadata: String::new(),
                },
                CommittedOffset {
                    topic: "t".into(),
                    partition: 0,
                    offset: 5,
                    metadata: "m".into(),
                },
            ],
        );
        groups.insert("empty".to_string(), vec![]);
        let at = DateTime::parse_from_rfc3339("2026-01-20T15:30:04Z")
            .expect("t")
            .with_timezone(&Utc);
        let f = KmapFile::from_committed("k:9092", at, &groups);
        assert_eq!(f.consumer_groups.len(), 1);
        assert_eq!(
            f.consumer_groups[0].topics["t"][0],
            KmapPartition {
                partition: 0,
                offset: 5
            }
        );
        let json = serde_json::to_vec(&f).expect("encode");
        assert_eq!(KmapFile::from_json(&json, "x").expect("decode"), f);
    }

    #[test]
    fn malformed_kmap_files_are_named() {
        let err = KmapFile::from_json(b"{\"timestamp\": 1}", "bad.json").expect_err("fails");
        assert!(err.to_string().contains("bad.json"), "{err}");
        let neg = GUIDE_KMAP.replace("12345", "-1");
        assert!(KmapFile::from_json(neg.as_bytes(), "f").is_err());
        let dup = GUIDE_KMAP.replace("\"partition\": 1", "\"partition\": 0");
        assert!(KmapFile::from_json(dup.as_bytes(), "f").is_err());
        let bad_time = GUIDE_KMAP.replacen("2026-01-20T15:30:04Z", "yesterday", 1);
        assert!(KmapFile::from_json(bad_time.as_bytes(), "f").is_err());
    }

    #[test]
    fn script_quotes_names_and_calls_kafka_tool() {
        let f = KmapFile::from_json(
            GUIDE_KMAP.replace("my-consumer-group", "it's").as_bytes(),
            "f",
        )
        .expect("parses");
        let s = restore_script(&f, Utc::now());
        assert!(s.starts_with("#!/usr/bin/env bash"));
        assert!(s.contains("BOOTSTRAP_SERVERS=") && s.contains("COMMAND_CONFIG="));
        assert!(s.contains("--reset-offsets --from-file"));
        assert!(s.contains(r"restore 'it'\''s' 'orders' 'orders,0,12345"));
        assert!(s.contains("orders,1,67890'"));
    }

    #[test]
    fn script_runs_one_from_file_call_per_group_and_topic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = KmapFile::from_json(GUIDE_KMAP.as_bytes(), "f").expect("parses");
        let script = dir.path().join("restore.sh");
        std::fs::write(&script, restore_script(&f, Utc::now())).expect("write script");
        // Logs each call's arguments and CSV (the argument before --execute); fails payments.
        let tool = dir.path().join("kcg.sh");
        std::fs::write(
            &tool,
            "#!/usr/bin/env bash\necho \"$*\" >> \"$LOG\"\nfile=\"${*: -2:1}\"\n\
             cat \"$file\" >> \"$LOG\"\n! grep -q '^payments,' \"$file\"\n",
        )
        .expect("write tool");
        let chmod = std::process::Command::new("chmod")
            .arg("+x")
            .arg(&tool)
            .status()
            .expect("chmod");
        assert!(chmod.success());
        let out = std::process::Command::new("bash")
            .arg(&script)
            .env("KAFKA_CONSUMER_GROUPS", &tool)
            .env("LOG", dir.path().join("calls.log"))
            .env("BOOTSTRAP_SERVERS", "target:9092")
            .env_remove("COMMAND_CONFIG")
            .env_remove("COMMAND_CONFIG_FILE")
            .env_remove("MODE")
            .output()
            .expect("run");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{stdout}");
        assert!(
            stdout.contains("Summary: 1 of 2 group/topic restores succeeded, 1 failed"),
            "{stdout}"
        );
        assert!(
            stdout.contains("failed: group 'my-consumer-group', topic 'payments'"),
            "{stdout}"
        );
        let log = std::fs::read_to_string(dir.path().join("calls.log")).expect("log");
        let lines: Vec<&str> = log.lines().collect();
        assert_eq!(lines.len(), 5, "{log}");
        for (call, csv) in [(lines[0], "/offsets-1.csv"), (lines[3], "/offsets-2.csv")] {
            assert!(
                call.starts_with(
                    "--bootstrap-server target:9092 --group my-consumer-group --reset-offsets \
                     --from-file "
                ) && call.ends_with(&format!("{csv} --execute")),
                "{log}"
            );
        }
        assert_eq!(&lines[1..3], ["orders,0,12345", "orders,1,67890"]);
        assert_eq!(lines[4], "payments,0,98765");
    }
}
