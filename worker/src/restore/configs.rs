//! The topic configs a restore creates topics with, checked before any topic is created: every
//! finding is a [`RefusedConfig`] (topic, config, value, reason), listed in the restore's plan
//! and `validate-restore`'s report, and a restore with one fails before it creates a topic or
//! writes a record.
//!
//! The checks follow Kafka's topic configuration reference (Apache Kafka 3.9), kept as data in
//! [`TOPIC_CONFIGS`] (name, type, valid values) and [`BROKER_NAMES`] (broker configs a topic
//! cannot be created with): an unknown name (with the near miss it may be), a value of the wrong
//! type or outside its range or set, the rules between configs that the broker enforces when it
//! creates a topic ([`cross_rules`]), and the timestamp limits the restored records would break
//! ([`timestamp_rule`]). A name the table does not know but the target
//! reports for its own topics (a vendor's configs) is taken as known, unchecked.
//!
//! What it cannot see: the broker's own policies (a `CreateTopicPolicy`, quotas, a tiered
//! storage the broker has switched off) are only applied when the topic is created. Topics that
//! already exist on the target are written to as they are: their configs are neither changed
//! nor checked.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// A config the target would refuse on a topic the restore creates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RefusedConfig {
    pub topic: String,
    /// The config's name (`replication.factor` for the replication factor the topic is
    /// created with).
    pub config: String,
    #[serde(default)]
    pub value: String,
    /// Why the target would refuse it.
    #[serde(default)]
    pub reason: String,
}

impl RefusedConfig {
    /// `topic: config`, as a plan's bounded summary lists it.
    pub fn short(&self) -> String {
        format!("{}: {}", self.topic, self.config)
    }

    /// One line naming the topic, the config, its value and the reason.
    pub fn describe(&self) -> String {
        format!(
            "topic '{}' would be created with {}={}, which the target refuses: {}",
            self.topic, self.config, self.value, self.reason
        )
    }
}

/// The type and valid values of a topic config.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    /// A 32-bit integer within `[min, max]`.
    Int(i64, i64),
    /// A 64-bit integer within `[min, max]`.
    Long(i64, i64),
    /// A number within `[min, max]`.
    Double(f64, f64),
    Bool,
    /// One of these strings (case-sensitive).
    OneOf(&'static [&'static str]),
    /// A comma-separated list of these strings (case-sensitive; empty allowed).
    ListOf(&'static [&'static str]),
    /// `*`, or a list of `partition:broker` pairs.
    Replicas,
    /// `-1`, or a level within `[min, max]`.
    Level(i64, i64),
    /// Any string.
    Text,
}

const ANY: i64 = i64::MAX;
const INT_MAX: i64 = i32::MAX as i64;

/// Kafka's topic configs (Apache Kafka 3.9), with their types and valid values.
pub const TOPIC_CONFIGS: &[(&str, Kind)] = &[
    ("cleanup.policy", Kind::ListOf(&["compact", "delete"])),
    ("compression.gzip.level", Kind::Level(1, 9)),
    ("compression.lz4.level", Kind::Int(1, 17)),
    (
        "compression.type",
        Kind::OneOf(&["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]),
    ),
    ("compression.zstd.level", Kind::Int(-131_072, 22)),
    ("delete.retention.ms", Kind::Long(0, ANY)),
    ("file.delete.delay.ms", Kind::Long(0, ANY)),
    ("flush.messages", Kind::Long(1, ANY)),
    ("flush.ms", Kind::Long(0, ANY)),
    ("follower.replication.throttled.replicas", Kind::Replicas),
    ("index.interval.bytes", Kind::Int(0, INT_MAX)),
    ("leader.replication.throttled.replicas", Kind::Replicas),
    ("local.retention.bytes", Kind::Long(-2, ANY)),
    ("local.retention.ms", Kind::Long(-2, ANY)),
    ("max.compaction.lag.ms", Kind::Long(1, ANY)),
    ("max.message.bytes", Kind::Int(0, INT_MAX)),
    ("message.downconversion.enable", Kind::Bool),
    ("message.format.version", Kind::Text),
    ("message.timestamp.after.max.ms", Kind::Long(0, ANY)),
    ("message.timestamp.before.max.ms", Kind::Long(0, ANY)),
    ("message.timestamp.difference.max.ms", Kind::Long(0, ANY)),
    (
        "message.timestamp.type",
        Kind::OneOf(&["CreateTime", "LogAppendTime"]),
    ),
    ("min.cleanable.dirty.ratio", Kind::Double(0.0, 1.0)),
    ("min.compaction.lag.ms", Kind::Long(0, ANY)),
    ("min.insync.replicas", Kind::Int(1, INT_MAX)),
    ("preallocate", Kind::Bool),
    ("remote.log.copy.disable", Kind::Bool),
    ("remote.log.delete.on.disable", Kind::Bool),
    ("remote.storage.enable", Kind::Bool),
    ("retention.bytes", Kind::Long(i64::MIN, ANY)),
    ("retention.ms", Kind::Long(-1, ANY)),
    ("segment.bytes", Kind::Int(14, INT_MAX)),
    ("segment.index.bytes", Kind::Int(4, INT_MAX)),
    ("segment.jitter.ms", Kind::Long(0, ANY)),
    ("segment.ms", Kind::Long(1, ANY)),
    ("unclean.leader.election.enable", Kind::Bool),
];

/// Broker configs (Apache Kafka 3.9) that a topic cannot be created with, and the topic config
/// that sets the same thing on one topic (`None`: nothing does).
pub const BROKER_NAMES: &[(&str, Option<&str>)] = &[
    ("auto.create.topics.enable", None),
    ("broker.id", None),
    ("default.replication.factor", None),
    (
        "log.cleaner.delete.retention.ms",
        Some("delete.retention.ms"),
    ),
    (
        "log.cleaner.max.compaction.lag.ms",
        Some("max.compaction.lag.ms"),
    ),
    (
        "log.cleaner.min.cleanable.ratio",
        Some("min.cleanable.dirty.ratio"),
    ),
    (
        "log.cleaner.min.compaction.lag.ms",
        Some("min.compaction.lag.ms"),
    ),
    ("log.cleanup.policy", Some("cleanup.policy")),
    ("log.dirs", None),
    ("log.flush.interval.messages", Some("flush.messages")),
    ("log.flush.interval.ms", Some("flush.ms")),
    ("log.index.interval.bytes", Some("index.interval.bytes")),
    ("log.index.size.max.bytes", Some("segment.index.bytes")),
    ("log.local.retention.bytes", Some("local.retention.bytes")),
    ("log.local.retention.ms", Some("local.retention.ms")),
    (
        "log.message.downconversion.enable",
        Some("message.downconversion.enable"),
    ),
    ("log.message.format.version", Some("message.format.version")),
    (
        "log.message.timestamp.after.max.ms",
        Some("message.timestamp.after.max.ms"),
    ),
    (
        "log.message.timestamp.before.max.ms",
        Some("message.timestamp.before.max.ms"),
    ),
    (
        "log.message.timestamp.difference.max.ms",
        Some("message.timestamp.difference.max.ms"),
    ),
    ("log.message.timestamp.type", Some("message.timestamp.type")),
    ("log.preallocate", Some("preallocate")),
    ("log.retention.bytes", Some("retention.bytes")),
    ("log.retention.hours", Some("retention.ms")),
    ("log.retention.minutes", Some("retention.ms")),
    ("log.retention.ms", Some("retention.ms")),
    ("log.roll.hours", Some("segment.ms")),
    ("log.roll.jitter.hours", Some("segment.jitter.ms")),
    ("log.roll.jitter.ms", Some("segment.jitter.ms")),
    ("log.roll.ms", Some("segment.ms")),
    ("log.segment.bytes", Some("segment.bytes")),
    ("log.segment.delete.delay.ms", Some("file.delete.delay.ms")),
    ("message.max.bytes", Some("max.message.bytes")),
    ("node.id", None),
    ("num.partitions", None),
];

/// What the target tells about itself: its brokers, and the config names it reports for its
/// own topics.
#[derive(Debug, Clone, Default)]
pub struct TargetFacts {
    /// Brokers in the target's metadata (`None`: not known).
    pub brokers: Option<usize>,
    pub known_names: BTreeSet<String>,
}

/// A topic the restore creates, as the check sees it.
#[derive(Debug, Clone, Copy)]
pub struct Creation<'a> {
    pub topic: &'a str,
    pub configs: &'a BTreeMap<String, String>,
    pub replication_factor: i32,
    /// The first and last timestamps (epoch ms) of the records restored into it, if known.
    pub timestamps: Option<(i64, i64)>,
    /// The time of the check (epoch ms): record timestamps are judged against it.
    pub now_ms: i64,
}

/// The findings about creating the topic `c` describes on the target `facts` describes: the
/// replication factor first, then each config alone in name order, then the rules between
/// configs and those about the records restored.
pub fn check_topic(c: &Creation<'_>, facts: &TargetFacts) -> Vec<RefusedConfig> {
    let (topic, configs, replication_factor) = (c.topic, c.configs, c.replication_factor);
    let refused = |config: &str, value: &str, reason: String| RefusedConfig {
        topic: topic.to_string(),
        config: config.to_string(),
        value: value.to_string(),
        reason,
    };
    let mut out = Vec::new();
    if let Some(brokers) = facts.brokers {
        if replication_factor as i64 > brokers as i64 {
            out.push(refused(
                "replication.factor",
                &replication_factor.to_string(),
                format!(
                    "the target has {brokers} broker{}: a topic's replication factor cannot exceed its brokers",
                    if brokers == 1 { "" } else { "s" }
                ),
            ));
        }
    }
    let mut valid = BTreeMap::new();
    for (name, value) in configs {
        match check_one(name, value, facts) {
            Some(reason) => out.push(refused(name, value, reason)),
            None => {
                valid.insert(name.as_str(), value.trim());
            }
        }
    }
    let mut rules = cross_rules(&valid, replication_factor);
    if let Some(span) = c.timestamps {
        rules.extend(timestamp_rule(&valid, span, c.now_ms));
    }
    for (name, reason) in rules {
        out.push(refused(
            name,
            valid.get(name).copied().unwrap_or(""),
            reason,
        ));
    }
    out
}

/// With create-time timestamps (the default), Kafka refuses a record stamped more than
/// `message.timestamp.before.max.ms` before now, or more than `message.timestamp.after.max.ms`
/// after it (each falling back to the deprecated `message.timestamp.difference.max.ms` when
/// that is set): the restored records' `(first, last)` timestamps against those limits at
/// `now_ms`. Records without a timestamp (-1) are not judged.
pub fn timestamp_rule<'a>(
    configs: &BTreeMap<&'a str, &str>,
    (first, last): (i64, i64),
    now_ms: i64,
) -> Vec<(&'a str, String)> {
    if configs.get("message.timestamp.type") == Some(&"LogAppendTime") {
        return Vec::new();
    }
    let limit = |name: &str| {
        [name, "message.timestamp.difference.max.ms"]
            .into_iter()
            .find_map(|n| {
                let (k, v) = configs.get_key_value(n)?;
                Some((*k, v.parse::<i64>().ok()?))
            })
    };
    let mut out = Vec::new();
    if let (true, Some((k, max))) = (first >= 0, limit("message.timestamp.before.max.ms")) {
        let age = now_ms.saturating_sub(first);
        if age > max {
            out.push((k, format!(
                "the oldest record restored is {age} ms old, more than {max}: the topic would refuse it (INVALID_TIMESTAMP)"
            )));
        }
    }
    if let Some((k, max)) = limit("message.timestamp.after.max.ms") {
        let ahead = last.saturating_sub(now_ms);
        if ahead > max {
            out.push((k, format!(
                "the newest record restored is {ahead} ms in the future, more than {max}: the topic would refuse it (INVALID_TIMESTAMP)"
            )));
        }
    }
    out
}

/// Why `name=value` alone is refused, if it is.
fn check_one(name: &str, value: &str, facts: &TargetFacts) -> Option<String> {
    if let Some((_, kind)) = TOPIC_CONFIGS.iter().find(|(n, _)| *n == name) {
        return check_value(*kind, value);
    }
    if let Some((_, topic)) = BROKER_NAMES.iter().find(|(n, _)| *n == name) {
        return Some(match topic {
            Some(t) => format!("a broker config, not a topic config (a topic sets {t})"),
            None => "a broker config, not a topic config".to_string(),
        });
    }
    if facts.known_names.contains(name) {
        return None;
    }
    Some(match did_you_mean(name) {
        Some(near) => format!("not a topic config (did you mean {near}?)"),
        None => "not a topic config".to_string(),
    })
}

/// Why `value` is not a valid value of a config of `kind`, if it is not (Kafka trims values
/// before it parses them).
pub fn check_value(kind: Kind, value: &str) -> Option<String> {
    let v = value.trim();
    match kind {
        Kind::Int(min, max) => match v.parse::<i32>() {
            Ok(n) => in_range(n as i64, min, max),
            Err(_) => Some("not a number of type int".into()),
        },
        Kind::Long(min, max) => match v.parse::<i64>() {
            Ok(n) => in_range(n, min, max),
            Err(_) => Some("not a number of type long".into()),
        },
        Kind::Level(min, max) => match v.parse::<i32>() {
            Ok(-1) => None,
            Ok(n) => in_range(n as i64, min, max).map(|r| format!("{r} (or -1)")),
            Err(_) => Some("not a number of type int".into()),
        },
        Kind::Double(min, max) => match v.parse::<f64>() {
            Ok(n) if n.is_finite() && (min..=max).contains(&n) => None,
            Ok(_) => Some(format!("outside [{min}, {max}]")),
            Err(_) => Some("not a number of type double".into()),
        },
        Kind::Bool => (!v.eq_ignore_ascii_case("true") && !v.eq_ignore_ascii_case("false"))
            .then(|| "not true or false".into()),
        Kind::OneOf(set) => (!set.contains(&v)).then(|| format!("not one of {}", set.join(", "))),
        Kind::ListOf(set) => list(v)
            .into_iter()
            .find(|item| !set.contains(item))
            .map(|item| format!("'{item}' is not one of {}", set.join(", "))),
        Kind::Replicas => {
            let items = list(v);
            let pairs = items.iter().all(|i| is_replica_pair(i));
            (!pairs && items.first() != Some(&"*"))
                .then(|| "not '*' or a list of partition:broker pairs".into())
        }
        Kind::Text => None,
    }
}

fn in_range(n: i64, min: i64, max: i64) -> Option<String> {
    if (min..=max).contains(&n) {
        return None;
    }
    Some(match (min, max) {
        (_, ANY) | (_, INT_MAX) => format!("below the minimum {min}"),
        _ => format!("outside [{min}, {max}]"),
    })
}

/// Kafka's list parsing: comma-separated, items trimmed; an empty value is an empty list.
fn list(v: &str) -> Vec<&str> {
    if v.is_empty() {
        return Vec::new();
    }
    v.split(',').map(str::trim).collect()
}

fn is_replica_pair(item: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    item.is_empty()
        || item
            .split_once(':')
            .is_some_and(|(p, b)| digits(p) && digits(b))
}

/// The rules between configs the broker enforces when it creates a topic with `configs`
/// (each already valid alone) and `replication_factor`: the config each finding is about, why.
pub fn cross_rules<'a>(
    configs: &BTreeMap<&'a str, &str>,
    replication_factor: i32,
) -> Vec<(&'a str, String)> {
    let get = |name: &str| configs.get_key_value(name).map(|(k, v)| (*k, *v));
    let long = |name: &str| get(name).and_then(|(_, v)| v.parse::<i64>().ok());
    let mut out = Vec::new();
    if let Some((k, v)) = get("min.insync.replicas") {
        if v.parse::<i64>()
            .is_ok_and(|n| n > replication_factor as i64)
        {
            out.push((k, format!(
                "above the replication factor {replication_factor} the topic is created with: the topic would refuse every acks=all write"
            )));
        }
    }
    if let (Some((k, _)), Some(min), Some(max)) = (
        get("min.compaction.lag.ms"),
        long("min.compaction.lag.ms"),
        long("max.compaction.lag.ms"),
    ) {
        if min > max {
            out.push((
                k,
                format!("above max.compaction.lag.ms ({max}): Kafka refuses the conflict"),
            ));
        }
    }
    let remote = get("remote.storage.enable").is_some_and(|(_, v)| v.eq_ignore_ascii_case("true"));
    if remote {
        if let Some((k, v)) = get("cleanup.policy") {
            if list(v).contains(&"compact") {
                out.push((
                    k,
                    "compaction with remote.storage.enable=true: Kafka keeps no remote copy of a compacted topic"
                        .into(),
                ));
            }
        }
        for (local, total) in [
            ("local.retention.ms", "retention.ms"),
            ("local.retention.bytes", "retention.bytes"),
        ] {
            if let (Some((k, _)), Some(l), Some(t)) = (get(local), long(local), long(total)) {
                if t != -1 && l != -2 && (l == -1 || l > t) {
                    out.push((k, format!("more than {total} ({t}) with remote storage")));
                }
            }
        }
    }
    out
}

/// The known topic config `name` is a near miss of (a case slip or up to two edits), if any.
pub fn did_you_mean(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    TOPIC_CONFIGS
        .iter()
        .map(|(known, _)| (edit_distance(&lower, known), *known))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, known)| known)
}

/// Levenshtein distance of two ASCII-ish strings (by char).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(name: &str) -> Kind {
        TOPIC_CONFIGS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, k)| *k)
            .unwrap_or_else(|| panic!("{name} is in the table"))
    }

    fn check(configs: &[(&str, &str)], rf: i32, brokers: usize) -> Vec<(String, String)> {
        let configs = configs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let facts = TargetFacts {
            brokers: Some(brokers),
            known_names: ["confluent.tier.enable".to_string()].into(),
        };
        let c = Creation {
            topic: "orders",
            configs: &configs,
            replication_factor: rf,
            timestamps: None,
            now_ms: 0,
        };
        check_topic(&c, &facts)
            .into_iter()
            .map(|r| {
                assert_eq!(r.topic, "orders");
                (r.config, r.reason)
            })
            .collect()
    }

    #[test]
    fn the_table_is_sorted_without_duplicates_and_broker_names_point_at_topic_configs() {
        let names: Vec<&str> = TOPIC_CONFIGS.iter().map(|(n, _)| *n).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(names, sorted);
        for (broker, topic) in BROKER_NAMES {
            assert!(!names.contains(broker), "{broker} is a topic config");
            if let Some(t) = topic {
                assert!(names.contains(t), "{broker} -> {t}");
            }
        }
    }

    #[test]
    fn numbers_are_checked_for_type_and_range() {
        let segment = kind("segment.bytes");
        assert_eq!(check_value(segment, "1073741824"), None);
        assert_eq!(check_value(segment, " 14 "), None, "trimmed");
        assert_eq!(
            check_value(segment, "13"),
            Some("below the minimum 14".into())
        );
        assert_eq!(
            check_value(segment, "3000000000"),
            Some("not a number of type int".into()),
            "beyond 32 bits"
        );
        assert_eq!(
            check_value(kind("retention.ms"), "1d"),
            Some("not a number of type long".into())
        );
        assert_eq!(check_value(kind("retention.ms"), "-1"), None);
        assert!(check_value(kind("retention.ms"), "-2").is_some());
        assert_eq!(check_value(kind("retention.bytes"), "-5"), None, "no range");
        assert!(check_value(kind("min.insync.replicas"), "0").is_some());
        assert_eq!(check_value(kind("min.cleanable.dirty.ratio"), "0.5"), None);
        assert_eq!(
            check_value(kind("min.cleanable.dirty.ratio"), "1.5"),
            Some("outside [0, 1]".into())
        );
        assert!(check_value(kind("min.cleanable.dirty.ratio"), "half").is_some());
        let gzip = kind("compression.gzip.level");
        assert_eq!(check_value(gzip, "-1"), None);
        assert_eq!(check_value(gzip, "9"), None);
        assert_eq!(
            check_value(gzip, "0"),
            Some("outside [1, 9] (or -1)".into())
        );
        assert_eq!(check_value(kind("compression.zstd.level"), "-7"), None);
        assert!(check_value(kind("compression.lz4.level"), "18").is_some());
    }

    #[test]
    fn booleans_sets_and_lists_are_checked() {
        assert_eq!(check_value(Kind::Bool, "TRUE"), None);
        assert_eq!(
            check_value(Kind::Bool, "yes"),
            Some("not true or false".into())
        );
        let compression = kind("compression.type");
        assert_eq!(check_value(compression, "zstd"), None);
        assert_eq!(
            check_value(compression, "ZSTD"),
            Some("not one of uncompressed, zstd, lz4, snappy, gzip, producer".into()),
            "case-sensitive"
        );
        let ts = kind("message.timestamp.type");
        assert_eq!(check_value(ts, "LogAppendTime"), None);
        assert!(check_value(ts, "logappendtime").is_some());
        let policy = kind("cleanup.policy");
        assert_eq!(check_value(policy, "compact, delete"), None);
        assert_eq!(check_value(policy, ""), None, "an empty list");
        assert_eq!(
            check_value(policy, "compact,compacted"),
            Some("'compacted' is not one of compact, delete".into())
        );
        let throttled = kind("leader.replication.throttled.replicas");
        assert_eq!(check_value(throttled, "0:1, 1:2"), None);
        assert_eq!(check_value(throttled, "*"), None);
        assert!(check_value(throttled, "0-1").is_some());
        assert_eq!(check_value(Kind::Text, "3.0-IV1"), None);
    }

    #[test]
    fn unknown_and_broker_names_are_refused_with_what_was_meant() {
        let found = check(
            &[
                ("retention.msx", "1000"),
                ("Cleanup.Policy", "compact"),
                ("log.retention.hours", "168"),
                ("num.partitions", "3"),
                ("made.up.setting", "1"),
                ("confluent.tier.enable", "true"),
            ],
            1,
            1,
        );
        let reason = |c: &str| {
            found
                .iter()
                .find(|(n, _)| n == c)
                .map(|(_, r)| r.as_str())
                .unwrap_or("(not refused)")
        };
        assert_eq!(
            reason("retention.msx"),
            "not a topic config (did you mean retention.ms?)"
        );
        assert_eq!(
            reason("Cleanup.Policy"),
            "not a topic config (did you mean cleanup.policy?)"
        );
        assert_eq!(
            reason("log.retention.hours"),
            "a broker config, not a topic config (a topic sets retention.ms)"
        );
        assert_eq!(
            reason("num.partitions"),
            "a broker config, not a topic config"
        );
        assert_eq!(reason("made.up.setting"), "not a topic config");
        assert_eq!(
            reason("confluent.tier.enable"),
            "(not refused)",
            "a name the target reports is known"
        );
        assert_eq!(found.len(), 5, "{found:?}");
    }

    #[test]
    fn the_replication_factor_and_min_insync_replicas_are_checked_against_the_target() {
        assert_eq!(check(&[("min.insync.replicas", "2")], 3, 3), vec![]);
        let found = check(&[("min.insync.replicas", "2")], 1, 3);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "min.insync.replicas");
        assert!(
            found[0].1.contains("above the replication factor 1"),
            "{found:?}"
        );
        let found = check(&[], 3, 1);
        assert_eq!(
            found,
            vec![(
                "replication.factor".to_string(),
                "the target has 1 broker: a topic's replication factor cannot exceed its brokers"
                    .to_string()
            )]
        );
        let none = BTreeMap::new();
        let c = Creation {
            topic: "t",
            configs: &none,
            replication_factor: 3,
            timestamps: None,
            now_ms: 0,
        };
        assert!(
            check_topic(&c, &TargetFacts::default()).is_empty(),
            "brokers unknown"
        );
    }

    #[test]
    fn conflicting_configs_are_refused() {
        let found = check(
            &[
                ("min.compaction.lag.ms", "100"),
                ("max.compaction.lag.ms", "10"),
            ],
            1,
            1,
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "min.compaction.lag.ms");
        assert_eq!(
            check(
                &[
                    ("min.compaction.lag.ms", "10"),
                    ("max.compaction.lag.ms", "100")
                ],
                1,
                1
            ),
            vec![]
        );
        let found = check(
            &[
                ("remote.storage.enable", "true"),
                ("cleanup.policy", "compact"),
            ],
            1,
            1,
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "cleanup.policy");
        let found = check(
            &[
                ("remote.storage.enable", "true"),
                ("retention.ms", "1000"),
                ("local.retention.ms", "2000"),
                ("retention.bytes", "-1"),
                ("local.retention.bytes", "5"),
            ],
            1,
            1,
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "local.retention.ms");
        assert_eq!(
            check(
                &[("retention.ms", "1000"), ("local.retention.ms", "2000")],
                1,
                1
            ),
            vec![],
            "local retention only matters with remote storage"
        );
        // An invalid value is reported once, and not compared with others.
        let found = check(
            &[
                ("min.insync.replicas", "many"),
                ("cleanup.policy", "compact"),
            ],
            1,
            1,
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].1, "not a number of type int");
    }

    #[test]
    fn records_older_or_newer_than_the_timestamp_limits_are_refused() {
        const DAY: i64 = 86_400_000;
        let now = 100 * DAY;
        let found = |configs: &[(&str, &str)], span: (i64, i64)| -> Vec<(String, String)> {
            let configs = configs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let c = Creation {
                topic: "orders",
                configs: &configs,
                replication_factor: 1,
                timestamps: Some(span),
                now_ms: now,
            };
            check_topic(&c, &TargetFacts::default())
                .into_iter()
                .map(|r| (r.config, r.reason))
                .collect()
        };
        let week_old = (now - 7 * DAY, now - DAY);
        let day = DAY.to_string();
        let refused = found(&[("message.timestamp.before.max.ms", &day)], week_old);
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert_eq!(refused[0].0, "message.timestamp.before.max.ms");
        let want = format!("the oldest record restored is {} ms old", 7 * DAY);
        assert!(refused[0].1.starts_with(&want), "{refused:?}");
        let refused = found(&[("message.timestamp.difference.max.ms", &day)], week_old);
        assert_eq!(
            refused.len(),
            1,
            "the deprecated limit applies: {refused:?}"
        );
        assert_eq!(refused[0].0, "message.timestamp.difference.max.ms");
        let ten_days = (10 * DAY).to_string();
        let within = found(&[("message.timestamp.before.max.ms", &ten_days)], week_old);
        assert_eq!(within, vec![]);
        let log_append = [
            ("message.timestamp.before.max.ms", day.as_str()),
            ("message.timestamp.type", "LogAppendTime"),
        ];
        assert_eq!(found(&log_append, week_old), vec![], "stamped anew");
        let untimed = found(&[("message.timestamp.before.max.ms", &day)], (-1, now));
        assert_eq!(
            untimed,
            vec![],
            "records without a timestamp are not judged"
        );
        let ahead = found(
            &[("message.timestamp.after.max.ms", "1000")],
            (now, now + DAY),
        );
        assert_eq!(ahead.len(), 1, "{ahead:?}");
        assert_eq!(ahead[0].0, "message.timestamp.after.max.ms");
    }

    #[test]
    fn a_refused_config_reads_as_topic_config_value_and_reason() {
        let r = RefusedConfig {
            topic: "orders".into(),
            config: "cleanup.policy".into(),
            value: "compactt".into(),
            reason: "'compactt' is not one of compact, delete".into(),
        };
        assert_eq!(r.short(), "orders: cleanup.policy");
        assert_eq!(
            r.describe(),
            "topic 'orders' would be created with cleanup.policy=compactt, which the target refuses: 'compactt' is not one of compact, delete"
        );
        let json = serde_json::to_string(&r).expect("json");
        let back: RefusedConfig = serde_json::from_str(&json).expect("back");
        assert_eq!(back, r);
        let bare: RefusedConfig =
            serde_json::from_str(r#"{"topic":"t","config":"c"}"#).expect("defaults");
        assert_eq!((bare.value.as_str(), bare.reason.as_str()), ("", ""));
    }
}
