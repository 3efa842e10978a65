//! Synchronous checks of a resource before anything is built: what the CRD schema cannot
//! express (secret-bearing or spec-managed Kafka properties, the run annotation, what the
//! worker would refuse) plus the schema's own requirements again, for resources stored before a
//! stricter CRD was installed. Each problem is a stable `reason` for the `Stalled` condition
//! and a message a person can act on, naming the field. Also lists the Secrets (and their keys)
//! a resource references, so the controller can check they exist without ever reading a value.

use std::fmt;
use std::ops::RangeInclusive;

use croner::parser::{CronParser, Seconds, Year};
use kube::Resource;
use tidemark_task::durations::parse_age;
use tidemark_task::topics::TopicFilter;

use crate::build::restore;
use crate::build::{RunId, WorkerKind, RUN_ANNOTATION};
use crate::crd::backup::{BackupMode, Compression, MAX_PARALLELISM};
use crate::crd::common::{KafkaClusterSpec, StorageSpec, StorageType, DEFAULT_CA_KEY};
use crate::crd::reset::ResetStrategy;
use crate::crd::restore::{
    GroupStrategy, MAX_CHECKPOINT_INTERVAL_SECS, MAX_CONCURRENT_PARTITIONS, MAX_PRODUCE_BATCH,
};
use crate::crd::rollback::{Operation, SNAPSHOT_ID_PATTERN};
use crate::crd::status::Phase;
use crate::crd::{
    KafkaBackup, KafkaOffsetReset, KafkaOffsetRollback, KafkaOffsetRollbackStatus, KafkaRestore,
};

/// A property key carries a secret.
pub const REASON_SECRET_IN_PROPERTIES: &str = "SecretInProperties";
/// A property key is set from the spec's own fields.
pub const REASON_PROPERTY_MANAGED_BY_SPEC: &str = "PropertyManagedBySpec";
/// A property key would switch a guarantee off or load code
/// ([`tidemark_task::properties::REFUSED_PROPERTIES`]).
pub const REASON_UNSAFE_PROPERTY: &str = "UnsafeProperty";
/// `kafkaCluster.tlsInsecureSkipVerify` is on: the reason of the Warning Event each run raises.
pub const REASON_INSECURE_TLS: &str = "InsecureTls";
/// The `tidemark.dev/run` annotation is not a whole number.
pub const REASON_INVALID_RUN_ANNOTATION: &str = "InvalidRunAnnotation";
/// A field the operation needs is missing.
pub const REASON_MISSING_FIELD: &str = "MissingField";
/// A field is set that the chosen strategy does not use.
pub const REASON_UNUSED_FIELD: &str = "UnusedField";
/// A field holds a value the worker refuses (out of range, not a valid regex, ...).
pub const REASON_INVALID_FIELD: &str = "InvalidField";
/// The snapshot id could escape its folder or is not a valid ConfigMap key.
pub const REASON_INVALID_SNAPSHOT_ID: &str = "InvalidSnapshotId";
/// The resource has no namespace (it is namespaced).
pub const REASON_MISSING_NAMESPACE: &str = "MissingNamespace";
/// The schedule is not a cron expression a CronJob runs.
pub const REASON_INVALID_SCHEDULE: &str = "InvalidSchedule";
/// The storage type cannot hold what the kind stores.
pub const REASON_UNSUPPORTED_STORAGE: &str = "UnsupportedStorage";
/// A snapshot of a fixed id that a run of the resource took already: never taken again.
pub const REASON_SNAPSHOT_EXISTS: &str = "SnapshotExists";

/// One reason the resource cannot run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Stable CamelCase reason, used as the condition reason and in Events.
    pub reason: &'static str,
    /// What is wrong and what to do, naming the field.
    pub message: String,
}

impl Problem {
    fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Problem {
            reason,
            message: message.into(),
        }
    }
}

/// A Secret a resource references and the entries the worker will read from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretReference {
    /// The spec field that names it, e.g. `spec.kafkaCluster.saslSecret`.
    pub field: &'static str,
    /// Secret name, in the resource's namespace.
    pub name: String,
    /// Entries that must exist. Empty for Secrets passed whole as environment (`envFrom`):
    /// only their existence is checked.
    pub keys: Vec<String>,
}

/// librdkafka properties that carry a secret. Any key containing `password` or `secret` is
/// refused as well.
const SECRET_PROPERTIES: &[&str] = &["sasl.jaas.config", "ssl.key.pem", "sasl.oauthbearer.config"];

/// librdkafka properties the operator sets from the spec, and the field to use instead.
const MANAGED_PROPERTIES: &[(&str, &str)] = &[
    ("bootstrap.servers", "kafkaCluster.bootstrapServers"),
    ("metadata.broker.list", "kafkaCluster.bootstrapServers"),
    ("security.protocol", "kafkaCluster.securityProtocol"),
    ("sasl.mechanism", "kafkaCluster.saslSecret.mechanism"),
    ("sasl.mechanisms", "kafkaCluster.saslSecret.mechanism"),
    ("sasl.username", "kafkaCluster.saslSecret"),
    (
        "ssl.ca.location",
        "kafkaCluster.caSecret or kafkaCluster.tlsSecret",
    ),
    ("ssl.certificate.location", "kafkaCluster.tlsSecret.certKey"),
    ("ssl.key.location", "kafkaCluster.tlsSecret.keyKey"),
    ("ssl_key", "kafkaCluster.tlsSecret.keyKey"),
];

/// Whether a librdkafka property key carries a secret (`sasl.password`, `ssl.key.password`,
/// `sasl.jaas.config`, `ssl.key.pem`, …). Such keys are refused by [`validate`] and dropped
/// from the task by the builder.
pub fn is_secret_property(key: &str) -> bool {
    let key = key.trim().to_ascii_lowercase();
    key.contains("password") || key.contains("secret") || SECRET_PROPERTIES.contains(&key.as_str())
}

/// The checks of one kind's spec; [`validate`] adds those every kind shares.
pub trait SpecChecks: Resource {
    /// Everything wrong with the spec that the schema does not (or might not) catch.
    fn spec_problems(&self) -> Vec<Problem>;

    /// The Kafka cluster the resource's worker connects to, if any.
    fn kafka_cluster(&self) -> Option<&KafkaClusterSpec>;
}

/// What `cr` asks for that runs but gives up a guarantee (TLS verification off): each is
/// published as a Warning Event when a run's Job is created.
pub fn warnings<K: SpecChecks>(cr: &K) -> Vec<Problem> {
    cr.kafka_cluster()
        .filter(|c| c.tls_insecure_skip_verify && c.security_protocol.uses_tls())
        .map(|_| {
            Problem::new(
                REASON_INSECURE_TLS,
                "spec.kafkaCluster.tlsInsecureSkipVerify is true: the worker connects without verifying the brokers' TLS certificates and host names",
            )
        })
        .into_iter()
        .collect()
}

/// Everything wrong with `cr` that the schema does not (or might not) catch; empty when it can
/// run.
pub fn validate<K: SpecChecks>(cr: &K) -> Vec<Problem> {
    let mut problems = Vec::new();
    if cr.meta().namespace.is_none() {
        problems.push(Problem::new(
            REASON_MISSING_NAMESPACE,
            "the resource has no metadata.namespace",
        ));
    }
    if let Err(e) = RunId::of(cr) {
        let value = cr
            .meta()
            .annotations
            .as_ref()
            .and_then(|a| a.get(RUN_ANNOTATION))
            .cloned()
            .unwrap_or_default();
        problems.push(Problem::new(
            REASON_INVALID_RUN_ANNOTATION,
            format!(
                "annotation {RUN_ANNOTATION} is '{value}'; set it to a whole number (bump it to run again): {e}"
            ),
        ));
    }
    problems.extend(cr.spec_problems());
    problems
}

/// `spec.kafkaCluster`: brokers, the SASL Secret its protocol needs, and properties that carry
/// secrets or that the spec's own fields set.
fn cluster_problems(cluster: &KafkaClusterSpec, problems: &mut Vec<Problem>) {
    if cluster.bootstrap_servers.is_empty() {
        problems.push(Problem::new(
            REASON_MISSING_FIELD,
            "spec.kafkaCluster.bootstrapServers must list at least one host:port",
        ));
    }
    if cluster.security_protocol.uses_sasl() && cluster.sasl_secret.is_none() {
        problems.push(Problem::new(
            REASON_MISSING_FIELD,
            format!(
                "spec.kafkaCluster.saslSecret is required with securityProtocol {}",
                cluster.security_protocol.as_str()
            ),
        ));
    }
    for key in cluster.properties.keys() {
        let lower = key.trim().to_ascii_lowercase();
        if is_secret_property(key) {
            problems.push(Problem::new(
                REASON_SECRET_IN_PROPERTIES,
                format!(
                    "spec.kafkaCluster.properties['{key}'] carries a secret; remove it and reference a Secret instead (kafkaCluster.saslSecret for SASL credentials, kafkaCluster.tlsSecret for TLS keys)"
                ),
            ));
        } else if let Some((_, field)) = MANAGED_PROPERTIES.iter().find(|(k, _)| *k == lower) {
            problems.push(Problem::new(
                REASON_PROPERTY_MANAGED_BY_SPEC,
                format!(
                    "spec.kafkaCluster.properties['{key}'] is set by the operator; use spec.{field} instead"
                ),
            ));
        } else if let Some(why) = tidemark_task::properties::refusal(key) {
            problems.push(Problem::new(
                REASON_UNSAFE_PROPERTY,
                format!("spec.kafkaCluster.properties['{key}'] {why}"),
            ));
        }
    }
    if cluster.tls_insecure_skip_verify && !cluster.security_protocol.uses_tls() {
        problems.push(Problem::new(
            REASON_INVALID_FIELD,
            "spec.kafkaCluster.tlsInsecureSkipVerify is only used with securityProtocol SSL or SASL_SSL",
        ));
    }
}

/// A storage block (`storage_field`, e.g. `spec.storage`): the block of the chosen storage type is
/// present.
fn storage_problems(storage_field: &str, storage: &StorageSpec, problems: &mut Vec<Problem>) {
    let (present, field) = match storage.storage_type.normalized() {
        StorageType::Pvc => (storage.pvc.is_some(), "pvc"),
        StorageType::S3 => (storage.s3.is_some(), "s3"),
        StorageType::Azure => (storage.azure.is_some(), "azure"),
        StorageType::Gcs => (storage.gcs.is_some(), "gcs"),
        StorageType::ConfigMap | StorageType::ConfigMapLower => {
            (storage.config_map.is_some(), "configMap")
        }
    };
    if !present {
        problems.push(Problem::new(
            REASON_MISSING_FIELD,
            format!("{storage_field}.{field} is required when storageType is {field}"),
        ));
    }
}

/// A problem with the snapshot id in `field` (`spec.snapshotId`, `spec.fromSnapshotId`).
fn snapshot_id_problem(field: &str, id: &str) -> Option<Problem> {
    id_problem(REASON_INVALID_SNAPSHOT_ID, field, id)
}

/// A problem with the id (of a snapshot, of a backup) in `field`, with `reason`: ids must be
/// valid for the worker's storage and never escape their folder.
fn id_problem(reason: &'static str, field: &str, id: &str) -> Option<Problem> {
    (!is_valid_snapshot_id(id)).then(|| {
        Problem::new(
            reason,
            format!(
                "{field} '{id}' is invalid: use letters, digits, '.', '_' and '-', starting with a letter or digit, at most 248 characters, without '..' (pattern {SNAPSHOT_ID_PATTERN})"
            ),
        )
    })
}

impl SpecChecks for KafkaOffsetRollback {
    fn kafka_cluster(&self) -> Option<&KafkaClusterSpec> {
        self.spec.kafka_cluster.as_ref()
    }

    fn spec_problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let spec = &self.spec;
        let op = spec.operation.as_str();
        match &spec.kafka_cluster {
            None if spec.operation != Operation::Delete => problems.push(Problem::new(
                REASON_MISSING_FIELD,
                format!("spec.kafkaCluster is required for operation {op}"),
            )),
            None => {}
            Some(cluster) => cluster_problems(cluster, &mut problems),
        }

        match &spec.snapshot_id {
            None if spec.operation != Operation::Snapshot => problems.push(Problem::new(
                REASON_MISSING_FIELD,
                format!("spec.snapshotId is required for operation {op}"),
            )),
            None => {}
            Some(id) => problems.extend(snapshot_id_problem("spec.snapshotId", id)),
        }
        if spec.description.is_some() && spec.operation != Operation::Snapshot {
            problems.push(Problem::new(
                REASON_UNUSED_FIELD,
                format!("spec.description is only stored by operation snapshot, not {op}: remove it or change spec.operation"),
            ));
        }
        if spec.operation == Operation::Snapshot && spec.consumer_groups.is_empty() {
            problems.push(Problem::new(
                REASON_MISSING_FIELD,
                "spec.consumerGroups must name at least one group for operation snapshot",
            ));
        }

        match &spec.storage {
            None => problems.push(Problem::new(
                REASON_MISSING_FIELD,
                format!(
                    "spec.storage is required for operation {op}: say where snapshots are kept"
                ),
            )),
            Some(storage) => storage_problems("spec.storage", storage, &mut problems),
        }
        problems.extend(snapshot_exists_problem(self));
        problems
    }
}

/// `cr`'s status when it is a snapshot of a fixed id that a run of it has taken: a completed
/// run recorded what the snapshot holds (`snapshotData`) under that id.
pub fn taken_snapshot(cr: &KafkaOffsetRollback) -> Option<&KafkaOffsetRollbackStatus> {
    let id = cr.spec.snapshot_id.as_deref()?;
    let status = cr.status.as_ref()?;
    (cr.spec.operation == Operation::Snapshot
        && status.operation == Some(Operation::Snapshot)
        && status.snapshot_id.as_deref() == Some(id)
        && status.snapshot_data.is_some())
    .then_some(status)
}

/// A new run (a changed spec, a bumped run annotation) of a snapshot whose fixed id a run of
/// it took already: snapshots are never overwritten, so it is refused rather than failing with
/// "already exists". The same manifest applied again changes no generation and runs nothing.
fn snapshot_exists_problem(cr: &KafkaOffsetRollback) -> Option<Problem> {
    let status = taken_snapshot(cr)?;
    let run = RunId::of(cr).ok()?.to_string();
    let this_run = status.common.run.as_deref() == Some(run.as_str());
    if this_run && status.common.phase != Some(Phase::Pending) {
        return None;
    }
    let id = status.snapshot_id.as_deref().unwrap_or_default();
    let taken = status
        .snapshot_data
        .as_ref()
        .map_or_else(String::new, |d| format!(" at {}", d.timestamp));
    Some(Problem::new(
        REASON_SNAPSHOT_EXISTS,
        format!(
            "snapshot '{id}' was taken{taken} by this resource and is never overwritten, so run {run} does not take it again. To take another snapshot, change spec.snapshotId (or remove it for a generated id); to keep this one, revert the change"
        ),
    ))
}

impl SpecChecks for KafkaOffsetReset {
    fn kafka_cluster(&self) -> Option<&KafkaClusterSpec> {
        Some(&self.spec.kafka_cluster)
    }

    fn spec_problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let spec = &self.spec;
        cluster_problems(&spec.kafka_cluster, &mut problems);
        if spec.consumer_groups.is_empty() && spec.consumer_group_pattern.is_none() {
            problems.push(Problem::new(
                REASON_MISSING_FIELD,
                "spec.consumerGroups or spec.consumerGroupPattern must select at least one group",
            ));
        }

        // Each strategy's parameter, and no parameter of another strategy.
        let strategy = spec.reset_strategy;
        let parameters = [
            (ResetStrategy::ToOffset, "offset", spec.offset.is_some()),
            (ResetStrategy::ShiftBy, "shiftBy", spec.shift_by.is_some()),
            (
                ResetStrategy::ToDatetime,
                "datetime",
                spec.datetime.is_some(),
            ),
            (
                ResetStrategy::ByDuration,
                "duration",
                spec.duration.is_some(),
            ),
            (
                ResetStrategy::FromFile,
                "offsetsCsv",
                spec.offsets_csv.is_some(),
            ),
            (
                ResetStrategy::FromSnapshot,
                "fromSnapshotId",
                spec.from_snapshot_id.is_some(),
            ),
            (
                ResetStrategy::FromBackup,
                "backupId",
                spec.backup_id.is_some(),
            ),
        ];
        for (owner, field, set) in parameters {
            if owner == strategy && !set {
                problems.push(Problem::new(
                    REASON_MISSING_FIELD,
                    format!(
                        "spec.{field} is required for resetStrategy {}",
                        owner.as_str()
                    ),
                ));
            } else if owner != strategy && set {
                problems.push(Problem::new(
                    REASON_UNUSED_FIELD,
                    format!(
                        "spec.{field} is only used with resetStrategy {}, not {}; remove it or change resetStrategy",
                        owner.as_str(),
                        strategy.as_str()
                    ),
                ));
            }
        }
        if let Some(offset) = spec.offset.filter(|o| *o < 0) {
            problems.push(Problem::new(
                REASON_INVALID_FIELD,
                format!("spec.offset is {offset}; offsets are 0 or more"),
            ));
        }
        if let Some(id) = &spec.from_snapshot_id {
            problems.extend(snapshot_id_problem("spec.fromSnapshotId", id));
        }
        if let Some(id) = &spec.backup_id {
            problems.extend(id_problem(REASON_INVALID_FIELD, "spec.backupId", id));
        }
        if let Some(id) = &spec.snapshot_id {
            problems.extend(snapshot_id_problem("spec.snapshotId", id));
            if !spec.snapshot_before_reset {
                problems.push(Problem::new(
                    REASON_UNUSED_FIELD,
                    "spec.snapshotId names the safety snapshot: remove it or set snapshotBeforeReset: true",
                ));
            }
        }
        problems.extend(range_problem(
            "spec.maxConcurrent",
            spec.max_concurrent,
            1..=1000,
        ));
        problems.extend(range_problem("spec.maxRetries", spec.max_retries, 0..=100));

        match &spec.storage {
            None if strategy == ResetStrategy::FromBackup => problems.push(Problem::new(
                REASON_MISSING_FIELD,
                "spec.storage is required for resetStrategy fromBackup: it is the backup's location, holding its restore's offset mapping",
            )),
            Some(storage)
                if strategy == ResetStrategy::FromBackup
                    && storage.storage_type.normalized() == StorageType::ConfigMap =>
            {
                problems.push(Problem::new(
                    REASON_UNSUPPORTED_STORAGE,
                    "spec.storage.storageType configMap cannot hold backups: resetStrategy fromBackup needs the backup's pvc, s3, azure or gcs location",
                ))
            }
            None if strategy == ResetStrategy::FromSnapshot => problems.push(Problem::new(
                REASON_MISSING_FIELD,
                "spec.storage is required for resetStrategy fromSnapshot: it is where the snapshot is read from",
            )),
            None if spec.takes_snapshot() => problems.push(Problem::new(
                REASON_MISSING_FIELD,
                "spec.storage is required for the safety snapshot taken before the reset; set storage, or snapshotBeforeReset: false to reset without a way back",
            )),
            None => {}
            Some(storage) => storage_problems("spec.storage", storage, &mut problems),
        }

        if problems.is_empty() {
            problems.extend(worker_problem(self, RESET_FIELDS));
        }
        problems
    }
}

/// What the worker's own task validation would refuse (e.g. a `consumerGroupPattern` that is
/// not a valid regex), found before any Job runs, with the task's field names replaced by the
/// spec's (`fields`: task field prefix → spec field; others become `spec.<field>`). `None` when
/// the worker accepts the task, or when it cannot be built yet (the controller reports a build
/// error then).
fn worker_problem<K: WorkerKind>(cr: &K, fields: &[(&str, &str)]) -> Option<Problem> {
    let run = RunId::of(cr).ok()?;
    task_problem(&cr.task(run).ok()?, fields)
}

/// What the worker's validation refuses in `task`, named by spec field ([`worker_problem`]).
fn task_problem(task: &tidemark_task::Task, fields: &[(&str, &str)]) -> Option<Problem> {
    let error = task.validate().err()?;
    let message = match error.field() {
        Some(field) => field.message_naming(&spec_field(fields, &field.path)),
        None => error.message(),
    };
    Some(Problem::new(REASON_INVALID_FIELD, message))
}

/// The spec fields of a KafkaOffsetReset behind the fields of its task document.
const RESET_FIELDS: &[(&str, &str)] = &[
    ("groupsRegex", "spec.consumerGroupPattern"),
    ("strategy.offset", "spec.offset"),
    ("strategy.datetime", "spec.datetime"),
    ("strategy.duration", "spec.duration"),
    ("strategy.csv", "spec.offsetsCsv"),
    ("strategy.snapshotId", "spec.fromSnapshotId"),
    ("strategy.backupId", "spec.backupId"),
    ("snapshotId", "the safety snapshot id"),
    ("kafka", "spec.kafkaCluster"),
    ("storage.name", "spec.storage.configMap.name"),
    ("storage.namespace", "metadata.namespace"),
    ("storage.url", "spec.storage"),
];

/// The spec fields of a KafkaBackup behind the fields of its backup and cleanup tasks.
const BACKUP_FIELDS: &[(&str, &str)] = &[
    ("kafka", "spec.kafkaCluster"),
    ("storage.url", "spec.storage"),
    ("storage", "spec.storage"),
    ("chain", "the backup chain (<namespace>-<name>)"),
    ("shardCount", "spec.parallelism"),
    ("keepLast", "spec.retention.keepLast"),
    ("maxAge", "spec.retention.maxAge"),
    ("rateLimitRecordsPerSec", "spec.rateLimit.recordsPerSec"),
    ("rateLimitBytesPerSec", "spec.rateLimit.bytesPerSec"),
    ("segmentMaxBytes", "spec.segment.maxBytes"),
    ("segmentMaxIntervalMs", "spec.segment.maxIntervalMs"),
];

/// The spec field behind `task_field`, by `fields` (task field prefix → spec field).
fn spec_field(fields: &[(&str, &str)], task_field: &str) -> String {
    fields
        .iter()
        .find_map(|(task, spec)| {
            let rest = task_field.strip_prefix(task)?;
            (rest.is_empty() || rest.starts_with(['.', '['])).then(|| format!("{spec}{rest}"))
        })
        .unwrap_or_else(|| format!("spec.{task_field}"))
}

/// `field` holds `value` outside `range`.
fn range_problem<T>(field: &str, value: T, range: RangeInclusive<T>) -> Option<Problem>
where
    T: PartialOrd + fmt::Display,
{
    (!range.contains(&value)).then(|| {
        Problem::new(
            REASON_INVALID_FIELD,
            format!(
                "{field} is {value}; use {} to {}",
                range.start(),
                range.end()
            ),
        )
    })
}

/// The macros a CronJob schedule may be instead of five fields.
const SCHEDULE_MACROS: &[&str] = &[
    "yearly", "annually", "monthly", "weekly", "daily", "midnight", "hourly",
];

/// Month names a schedule's month field may use.
const MONTH_NAMES: &[&str] = &[
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];

/// Day names a schedule's day-of-week field may use.
const DAY_NAMES: &[&str] = &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// Parses a CronJob schedule the way Kubernetes reads it: one of its macros (`@daily`, ...), or
/// five fields — minute, hour, day of month, month, day of week — with numbers, ranges, steps,
/// lists, `*`, `?` in the day fields, and month and day names in their own fields; and checks
/// that it fires at all (`0 0 30 2 *` never does). `Err` says what is wrong.
pub fn parse_schedule(schedule: &str) -> Result<(), String> {
    let schedule = schedule.trim();
    if let Some(name) = schedule.strip_prefix('@') {
        return if SCHEDULE_MACROS.contains(&name.to_ascii_lowercase().as_str()) {
            Ok(())
        } else {
            Err(format!(
                "'@{name}' is not a schedule macro (use @hourly, @daily, @weekly, @monthly or @yearly)"
            ))
        };
    }
    let fields: Vec<&str> = schedule.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "it has {} fields; a schedule has 5: minute hour day-of-month month day-of-week (no seconds, no year)",
            fields.len()
        ));
    }
    const FIELD_NAMES: [&str; 5] = ["minute", "hour", "day-of-month", "month", "day-of-week"];
    for (i, field) in fields.iter().enumerate() {
        let names = match i {
            3 => MONTH_NAMES,
            4 => DAY_NAMES,
            _ => &[],
        };
        let bad = field
            .split(|c: char| !c.is_ascii_alphabetic())
            .find(|w| !w.is_empty() && !names.contains(&w.to_ascii_uppercase().as_str()));
        if let Some(word) = bad {
            return Err(format!(
                "the {} field '{field}' has '{word}', which is not a number{}",
                FIELD_NAMES[i],
                match i {
                    3 => " or a month name (JAN-DEC)",
                    4 => " or a day name (SUN-SAT)",
                    _ => "",
                }
            ));
        }
    }
    let parser = CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build();
    let cron = parser.parse(schedule).map_err(|e| e.to_string())?;
    // Any date would do: four years hold every day of the year, 29 February included.
    let start = k8s_openapi::jiff::civil::date(2001, 1, 1).at(0, 0, 0, 0);
    cron.find_next_occurrence(&start, true)
        .map(|_| ())
        .map_err(|_| "it never fires (no date matches its day, month and weekday)".to_string())
}

/// The entries of a topic `list` (`include` or `exclude`) in `field` that the worker's own
/// parser refuses (an exact name, a glob or a whole-name `~regex`), one problem each.
fn topic_pattern_problems(field: &str, list: &str, entries: &[String]) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let one = std::slice::from_ref(entry);
        let parsed = match list {
            "include" => TopicFilter::new(one, &[]),
            _ => TopicFilter::new(&[], one),
        };
        if let Err(e) = parsed {
            // Regex errors span lines; a condition message is one.
            let e = e.split_whitespace().collect::<Vec<_>>().join(" ");
            problems.push(Problem::new(
                REASON_INVALID_FIELD,
                format!("{field}[{i}] is invalid: {e}"),
            ));
        }
    }
    problems
}

impl SpecChecks for KafkaBackup {
    fn kafka_cluster(&self) -> Option<&KafkaClusterSpec> {
        Some(&self.spec.kafka_cluster)
    }

    fn spec_problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let spec = &self.spec;
        cluster_problems(&spec.kafka_cluster, &mut problems);
        for (field, id) in [
            ("spec.backupId", &spec.backup_id),
            ("spec.chain", &spec.chain),
        ] {
            if let Some(id) = id {
                problems.extend(id_problem(REASON_INVALID_FIELD, field, id));
            }
        }
        if spec.backup_id.is_some() && spec.schedule.is_some() {
            problems.push(Problem::new(
                REASON_UNUSED_FIELD,
                "spec.backupId names one backup, and spec.schedule makes one per run: remove backupId (each scheduled backup is named after its Job) or schedule",
            ));
        }
        if spec.storage.storage_type.normalized() == StorageType::ConfigMap {
            problems.push(Problem::new(
                REASON_UNSUPPORTED_STORAGE,
                "spec.storage.storageType configMap is not supported for backups (a ConfigMap holds at most 1 MiB): use pvc, s3, azure or gcs",
            ));
        } else {
            storage_problems("spec.storage", &spec.storage, &mut problems);
        }

        let topics = &spec.topics;
        if topics.include.is_empty() {
            problems.push(Problem::new(
                REASON_MISSING_FIELD,
                "spec.topics.include must name at least one topic, glob (orders-*) or ~regex",
            ));
        }
        for (list, entries) in [("include", &topics.include), ("exclude", &topics.exclude)] {
            problems.extend(topic_pattern_problems(
                &format!("spec.topics.{list}"),
                list,
                entries,
            ));
        }

        if let Some(level) = spec.compression_level {
            if spec.compression != Compression::Zstd {
                problems.push(Problem::new(
                    REASON_UNUSED_FIELD,
                    format!(
                        "spec.compressionLevel is only used with compression zstd, not {}; remove it or set compression: zstd",
                        spec.compression.as_str()
                    ),
                ));
            }
            problems.extend(range_problem("spec.compressionLevel", level, 1..=22));
        }

        match &spec.schedule {
            Some(schedule) => {
                if let Err(why) = parse_schedule(schedule) {
                    problems.push(Problem::new(
                        REASON_INVALID_SCHEDULE,
                        format!(
                            "spec.schedule '{schedule}' is not a valid cron schedule: {why}; e.g. '0 2 * * *' (daily at 02:00) or @hourly"
                        ),
                    ));
                }
                if spec.mode == BackupMode::Continuous {
                    problems.push(Problem::new(
                        REASON_INVALID_FIELD,
                        "spec.schedule cannot be used with mode continuous: a continuous backup runs until it is stopped; remove schedule or use mode oneShot or incremental",
                    ));
                }
            }
            None if spec.suspend && spec.mode != BackupMode::Continuous => {
                problems.push(Problem::new(
                    REASON_UNUSED_FIELD,
                    "spec.suspend is only used with spec.schedule (it pauses the schedule) or mode continuous (it finishes the running backup)",
                ))
            }
            None => {}
        }

        problems.extend(range_problem(
            "spec.parallelism",
            spec.parallelism,
            1..=MAX_PARALLELISM,
        ));
        if let Some(n) = spec.max_concurrent_partitions {
            problems.extend(range_problem("spec.maxConcurrentPartitions", n, 1..=10_000));
        }
        let rate = spec.rate_limit.clone().unwrap_or_default();
        let segment = spec.segment.clone().unwrap_or_default();
        for (field, value) in [
            ("spec.rateLimit.recordsPerSec", rate.records_per_sec),
            ("spec.rateLimit.bytesPerSec", rate.bytes_per_sec),
            ("spec.segment.maxBytes", segment.max_bytes),
            ("spec.segment.maxIntervalMs", segment.max_interval_ms),
        ] {
            if let Some(value) = value {
                problems.extend(range_problem(field, value, 1..=i64::MAX));
            }
        }

        if let Some(retention) = &spec.retention {
            if retention.keep_last.is_none() && retention.max_age.is_none() {
                problems.push(Problem::new(
                    REASON_MISSING_FIELD,
                    "spec.retention needs keepLast, maxAge or both",
                ));
            }
            if let Some(n) = retention.keep_last {
                problems.extend(range_problem("spec.retention.keepLast", n, 1..=10_000));
            }
            if let Some(age) = &retention.max_age {
                // The worker's own parser, which the cleanup task runs.
                if let Err(why) = parse_age(age) {
                    problems.push(Problem::new(
                        REASON_INVALID_FIELD,
                        format!("spec.retention.{why}"),
                    ));
                }
            }
        }

        if problems.is_empty() {
            problems.extend(worker_problem(self, BACKUP_FIELDS));
        }
        if problems.is_empty() {
            if let Ok(Some(task)) = crate::build::backup::cleanup_task(self) {
                problems.extend(task_problem(&task, BACKUP_FIELDS));
            }
        }
        problems
    }
}

/// The spec fields of a KafkaRestore behind the fields of its restore task.
const RESTORE_FIELDS: &[(&str, &str)] = &[
    ("kafka", "spec.kafkaCluster"),
    ("storage.url", "spec.backupRef.storage"),
    ("storage", "spec.backupRef.storage"),
    ("backupId", "spec.backupRef.backupId"),
    ("restoreId", "the restore id (kr-<uid>)"),
    ("timeWindowStart", "spec.pitr start"),
    ("timeWindowEnd", "spec.pitr end"),
    ("consumerGroupStrategy", "spec.consumerGroups.strategy"),
    ("resetConsumerOffsets", "spec.consumerGroups.resetOffsets"),
    ("consumerGroups", "spec.consumerGroups.groups"),
    ("offsetsSnapshotId", "spec.consumerGroups.offsetsSnapshotId"),
    ("rateLimitRecordsPerSec", "spec.rateLimit.recordsPerSec"),
    ("rateLimitBytesPerSec", "spec.rateLimit.bytesPerSec"),
    ("shardCount", "spec.shards"),
];

impl SpecChecks for KafkaRestore {
    fn kafka_cluster(&self) -> Option<&KafkaClusterSpec> {
        Some(&self.spec.kafka_cluster)
    }

    fn spec_problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let spec = &self.spec;
        cluster_problems(&spec.kafka_cluster, &mut problems);

        // backupRef: a KafkaBackup by name, or a backup id in a storage.
        let backup_ref = &spec.backup_ref;
        match (&backup_ref.name, &backup_ref.storage) {
            (None, None) => problems.push(Problem::new(
                REASON_MISSING_FIELD,
                "spec.backupRef needs name (a KafkaBackup in this namespace) or backupId and storage",
            )),
            (Some(_), Some(_)) => problems.push(Problem::new(
                REASON_UNUSED_FIELD,
                "spec.backupRef.storage is only used without spec.backupRef.name: a KafkaBackup brings its own storage",
            )),
            (None, Some(storage)) => {
                if backup_ref.backup_id.is_none() {
                    problems.push(Problem::new(
                        REASON_MISSING_FIELD,
                        "spec.backupRef.backupId is required with spec.backupRef.storage",
                    ));
                }
                if storage.storage_type.normalized() == StorageType::ConfigMap {
                    problems.push(Problem::new(
                        REASON_UNSUPPORTED_STORAGE,
                        "spec.backupRef.storage.storageType configMap cannot hold backups: use pvc, s3, azure or gcs",
                    ));
                } else {
                    storage_problems("spec.backupRef.storage", storage, &mut problems);
                }
            }
            (Some(_), None) => {}
        }
        if let Some(id) = &backup_ref.backup_id {
            problems.extend(id_problem(
                REASON_INVALID_FIELD,
                "spec.backupRef.backupId",
                id,
            ));
        }
        if let Some(id) = &spec.restore_id {
            problems.extend(id_problem(REASON_INVALID_FIELD, "spec.restoreId", id));
        }
        if let Some(key) = &spec.offset_report {
            if let Err(why) = tidemark_task::validate_report_key(key) {
                problems.push(Problem::new(
                    REASON_INVALID_FIELD,
                    format!("spec.offsetReport {why}"),
                ));
            }
        }

        // The window: each end in one form, a real date-time, not before 1970, start <= end.
        if let Some(pitr) = &spec.pitr {
            let mut ends = Vec::new();
            for (end, time, ms) in [
                ("start", &pitr.start_time, pitr.start_timestamp_ms),
                ("end", &pitr.end_time, pitr.end_timestamp_ms),
            ] {
                if time.is_some() && ms.is_some() {
                    problems.push(Problem::new(
                        REASON_UNUSED_FIELD,
                        format!(
                            "spec.pitr.{end}Time and spec.pitr.{end}TimestampMs are two forms of the same bound: give one"
                        ),
                    ));
                }
                let value = match time {
                    Some(text) => match restore::epoch_ms(text) {
                        Ok(v) => Some(v),
                        Err(why) => {
                            problems.push(Problem::new(
                                REASON_INVALID_FIELD,
                                format!("spec.pitr.{end}Time {why}"),
                            ));
                            None
                        }
                    },
                    None => ms,
                };
                if let Some(v) = value.filter(|v| *v < 0) {
                    problems.push(Problem::new(
                        REASON_INVALID_FIELD,
                        format!(
                            "spec.pitr {end} is {v} ms, before 1970-01-01T00:00:00Z; record timestamps are epoch milliseconds, 0 or more"
                        ),
                    ));
                }
                ends.push(value);
            }
            match (ends[0], ends[1]) {
                (None, None) if pitr.start_time.is_none() && pitr.end_time.is_none() => {
                    problems.push(Problem::new(
                        REASON_MISSING_FIELD,
                        "spec.pitr needs a start, an end or both (startTime or startTimestampMs, endTime or endTimestampMs)",
                    ))
                }
                (Some(start), Some(end)) if start > end => problems.push(Problem::new(
                    REASON_INVALID_FIELD,
                    format!(
                        "spec.pitr starts after it ends ({start} ms > {end} ms): the window is empty"
                    ),
                )),
                _ => {}
            }
        }

        if let Some(p) = spec.source_partitions.iter().find(|p| **p < 0) {
            problems.push(Problem::new(
                REASON_INVALID_FIELD,
                format!("spec.sourcePartitions holds {p}; partitions are 0 or more"),
            ));
        }
        if let Err(e) = restore::partition_mapping(&spec.partition_mapping) {
            problems.push(Problem::new(
                REASON_INVALID_FIELD,
                e.to_string().replace("failed to build: ", ""),
            ));
        }
        if let Some((from, to)) = spec.partition_mapping.iter().find(|(_, to)| **to < 0) {
            problems.push(Problem::new(
                REASON_INVALID_FIELD,
                format!("spec.partitionMapping maps {from} to {to}; partitions are 0 or more"),
            ));
        }
        if let Some(topics) = &spec.topics {
            for (list, entries) in [("include", &topics.include), ("exclude", &topics.exclude)] {
                problems.extend(topic_pattern_problems(
                    &format!("spec.topics.{list}"),
                    list,
                    entries,
                ));
            }
        }

        // Consumer groups and headers.
        let groups = spec.consumer_groups.clone().unwrap_or_default();
        if groups.reset_offsets && groups.strategy == GroupStrategy::Skip {
            problems.push(Problem::new(
                REASON_INVALID_FIELD,
                "spec.consumerGroups.resetOffsets needs a strategy other than skip: header-based (exact), timestamp-based, cluster-scan or manual",
            ));
        }
        if (!groups.groups.is_empty() || groups.offsets_snapshot_id.is_some())
            && !groups.reset_offsets
            && groups.strategy != GroupStrategy::Manual
        {
            problems.push(Problem::new(
                REASON_UNUSED_FIELD,
                "spec.consumerGroups.groups and spec.consumerGroups.offsetsSnapshotId are only used with resetOffsets: true or strategy manual",
            ));
        }
        if groups.strategy == GroupStrategy::ClusterScan && !spec.include_original_offset_header {
            problems.push(Problem::new(
                REASON_MISSING_FIELD,
                "spec.consumerGroups.strategy cluster-scan reads the original-offset headers back from the target: set spec.includeOriginalOffsetHeader: true",
            ));
        }
        if spec.original_header_style.is_some() && !spec.include_original_offset_header {
            problems.push(Problem::new(
                REASON_UNUSED_FIELD,
                "spec.originalHeaderStyle is only used with spec.includeOriginalOffsetHeader: true",
            ));
        }
        if let Some(id) = &groups.offsets_snapshot_id {
            problems.extend(snapshot_id_problem(
                "spec.consumerGroups.offsetsSnapshotId",
                id,
            ));
        }

        if let Some(n) = spec.max_concurrent_partitions {
            problems.extend(range_problem(
                "spec.maxConcurrentPartitions",
                n,
                1..=MAX_CONCURRENT_PARTITIONS,
            ));
        }
        if let Some(n) = spec.produce_batch_size {
            problems.extend(range_problem(
                "spec.produceBatchSize",
                n,
                1..=MAX_PRODUCE_BATCH,
            ));
        }
        if let Some(n) = spec.checkpoint_interval_secs {
            problems.extend(range_problem(
                "spec.checkpointIntervalSecs",
                n,
                1..=MAX_CHECKPOINT_INTERVAL_SECS,
            ));
        }
        problems.extend(range_problem(
            "spec.shards",
            spec.shards,
            1..=crate::crd::backup::MAX_PARALLELISM,
        ));
        let rate = spec.rate_limit.clone().unwrap_or_default();
        for (field, value) in [
            ("spec.rateLimit.recordsPerSec", rate.records_per_sec),
            ("spec.rateLimit.bytesPerSec", rate.bytes_per_sec),
        ] {
            if let Some(value) = value {
                problems.extend(range_problem(field, value, 1..=i64::MAX));
            }
        }

        // Once the task can be built (a backup in the spec, or resolved), what the worker
        // refuses.
        if problems.is_empty() {
            problems.extend(worker_problem(self, RESTORE_FIELDS));
        }
        problems
    }
}

/// `^[A-Za-z0-9][A-Za-z0-9._-]{0,247}$` without `..` (the schema's rule, checked again).
fn is_valid_snapshot_id(id: &str) -> bool {
    let bytes = id.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 248
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && !id.contains("..")
}

/// The Secrets the worker Job of `cr` will use (exactly those the Job builder wires in: the
/// Kafka Secrets of [`WorkerKind::kafka_cluster`] and the credentials of
/// [`WorkerKind::storage`]), with the entries it reads. The operator never reads a Secret: when
/// the kubelet reports one missing in a worker pod's status, this names the spec field.
pub fn referenced_secrets<K: WorkerKind>(cr: &K) -> Vec<SecretReference> {
    let mut refs = Vec::new();
    if let Some(cluster) = cr.kafka_cluster() {
        let protocol = cluster.security_protocol;
        if protocol.uses_tls() {
            if let Some(tls) = &cluster.tls_secret {
                let mut keys = Vec::new();
                if cluster.ca_secret.is_none() {
                    keys.push(tls.ca_key_or_default().to_string());
                }
                if let (Some(cert), Some(key)) = (&tls.cert_key, &tls.key_key) {
                    keys.push(cert.clone());
                    keys.push(key.clone());
                }
                if !keys.is_empty() {
                    refs.push(SecretReference {
                        field: "spec.kafkaCluster.tlsSecret",
                        name: tls.name.clone(),
                        keys,
                    });
                }
            }
            if let Some(ca) = &cluster.ca_secret {
                refs.push(SecretReference {
                    field: "spec.kafkaCluster.caSecret",
                    name: ca.name.clone(),
                    keys: vec![ca.key.clone().unwrap_or_else(|| DEFAULT_CA_KEY.into())],
                });
            }
        }
        if protocol.uses_sasl() {
            if let Some(sasl) = &cluster.sasl_secret {
                refs.push(SecretReference {
                    field: "spec.kafkaCluster.saslSecret",
                    name: sasl.name.clone(),
                    keys: vec![
                        sasl.username_key_or_default().to_string(),
                        sasl.password_key_or_default().to_string(),
                    ],
                });
            }
        }
    }
    let storage = cr.storage().ok().flatten();
    let credentials = storage.and_then(|storage| match storage.storage_type.normalized() {
        StorageType::S3 => storage
            .s3
            .as_ref()
            .and_then(|s| s.credentials_secret.as_ref()),
        StorageType::Azure => storage
            .azure
            .as_ref()
            .and_then(|s| s.credentials_secret.as_ref()),
        StorageType::Gcs => storage
            .gcs
            .as_ref()
            .and_then(|s| s.credentials_secret.as_ref()),
        _ => None,
    });
    if let (Some(storage), Some(secret)) = (storage, credentials) {
        refs.push(SecretReference {
            field: cr.storage_credentials_field(storage.storage_type),
            name: secret.name.clone(),
            keys: Vec::new(),
        });
    }
    refs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::fixtures::*;

    fn reasons(problems: &[Problem]) -> Vec<&'static str> {
        problems.iter().map(|p| p.reason).collect()
    }

    /// `problems` is exactly one problem with `reason`, whose message contains `message`.
    pub(super) fn assert_one_problem(problems: &[Problem], reason: &str, message: &str) {
        assert_eq!(reasons(problems), [reason], "{problems:?}");
        assert!(
            problems[0].message.contains(message),
            "{}",
            problems[0].message
        );
    }

    #[test]
    fn every_reference_example_is_valid() {
        for yaml in [
            PRE_MIGRATION_SNAPSHOT,
            FULL_SPECIFICATION,
            CREATE_SNAPSHOT,
            EMERGENCY_ROLLBACK,
            VERIFY_ROLLBACK,
            QUICK_SNAPSHOT,
            DELETE_SNAPSHOT,
            CLEANUP_OLD_SNAPSHOT,
            MTLS_PVC,
        ] {
            assert_eq!(validate(&korb(yaml)), [], "{yaml}");
        }
    }

    #[test]
    fn secret_bearing_properties_are_refused() {
        for key in [
            "sasl.password",
            "SSL.KEY.PASSWORD",
            "ssl.keystore.password",
            "ssl.truststore.password",
            "sasl.jaas.config",
            "ssl.key.pem",
            "sasl.oauthbearer.client.secret",
        ] {
            let yaml = VERIFY_ROLLBACK.replace(
                "      - kafka:9092\n",
                &format!("      - kafka:9092\n    properties:\n      {key}: hunter2\n"),
            );
            let problems = validate(&korb(&yaml));
            assert_eq!(reasons(&problems), [REASON_SECRET_IN_PROPERTIES], "{key}");
            assert!(problems[0].message.contains(key), "{}", problems[0].message);
            assert!(
                !problems[0].message.contains("hunter2"),
                "values are never echoed"
            );
        }
        assert!(!is_secret_property("client.id"));
        assert!(!is_secret_property("sasl.kerberos.service.name"));
    }

    /// A key the worker's table refuses, spelled as it would be set.
    fn refused_key(p: &tidemark_task::properties::RefusedProperty) -> String {
        if p.contains {
            format!("x.{}", p.key)
        } else {
            p.key.to_string()
        }
    }

    #[test]
    fn every_unsafe_property_stalls_naming_it_and_what_to_use_instead() {
        for p in tidemark_task::properties::REFUSED_PROPERTIES {
            let key = refused_key(p);
            let mut rollback = korb(VERIFY_ROLLBACK);
            let cluster = rollback.spec.kafka_cluster.as_mut().expect("kafkaCluster");
            cluster.properties.insert(key.clone(), "v".into());
            let mut restore = kr(RESTORE_FULL);
            restore
                .spec
                .kafka_cluster
                .properties
                .insert(key.clone(), "v".into());
            for problems in [validate(&rollback), validate(&restore)] {
                if key == "security.protocol" {
                    // Set by the spec's own field; refused as such.
                    assert_one_problem(
                        &problems,
                        REASON_PROPERTY_MANAGED_BY_SPEC,
                        "spec.kafkaCluster.securityProtocol",
                    );
                    continue;
                }
                assert_one_problem(
                    &problems,
                    REASON_UNSAFE_PROPERTY,
                    &format!("spec.kafkaCluster.properties['{key}'] {}", p.risk),
                );
                assert!(problems[0].message.contains(p.instead), "{problems:?}");
            }
        }
    }

    #[test]
    fn skipping_tls_verification_is_a_field_that_warns() {
        let mut cr = korb(VERIFY_ROLLBACK);
        assert_eq!(warnings(&cr), []);
        let cluster = cr.spec.kafka_cluster.as_mut().expect("kafkaCluster");
        cluster.tls_insecure_skip_verify = true;
        // Without TLS the field means nothing: refused, as the schema does.
        assert_one_problem(
            &validate(&cr),
            REASON_INVALID_FIELD,
            "spec.kafkaCluster.tlsInsecureSkipVerify is only used with securityProtocol SSL or SASL_SSL",
        );
        let cluster = cr.spec.kafka_cluster.as_mut().expect("kafkaCluster");
        cluster.security_protocol = crate::crd::common::SecurityProtocol::Ssl;
        assert_eq!(validate(&cr), []);
        let warned = warnings(&cr);
        assert_eq!(reasons(&warned), [REASON_INSECURE_TLS]);
        assert!(warned[0]
            .message
            .contains("spec.kafkaCluster.tlsInsecureSkipVerify"));
        // The worker's task carries it.
        let cluster = cr.spec.kafka_cluster.as_ref().expect("kafkaCluster");
        assert!(crate::build::task::kafka_target(cluster).tls_insecure_skip_verify);
    }

    #[test]
    fn spec_managed_properties_are_refused() {
        let yaml = VERIFY_ROLLBACK.replace(
            "      - kafka:9092\n",
            "      - kafka:9092\n    properties:\n      security.protocol: SSL\n      client.id: ok\n",
        );
        let problems = validate(&korb(&yaml));
        assert_eq!(reasons(&problems), [REASON_PROPERTY_MANAGED_BY_SPEC]);
        assert!(
            problems[0]
                .message
                .contains("spec.kafkaCluster.securityProtocol"),
            "{}",
            problems[0].message
        );
    }

    #[test]
    fn what_the_schema_requires_is_checked_again() {
        // Manifests the CRD's CEL rules reject, as if stored before those rules existed.
        let cases = [
            (
                VERIFY_ROLLBACK.replace("  kafkaCluster:\n    bootstrapServers:\n      - kafka:9092\n", ""),
                REASON_MISSING_FIELD,
                "spec.kafkaCluster is required for operation verify",
            ),
            (
                EMERGENCY_ROLLBACK.replace("  snapshotId: \"pre-migration-20241201-1200\"\n", ""),
                REASON_MISSING_FIELD,
                "spec.snapshotId is required for operation rollback",
            ),
            (
                QUICK_SNAPSHOT.replace("quick-snapshot-001", "a..b"),
                REASON_INVALID_SNAPSHOT_ID,
                "spec.snapshotId 'a..b' is invalid",
            ),
            (
                QUICK_SNAPSHOT.replace("  consumerGroups:\n    - my-small-group\n", ""),
                REASON_MISSING_FIELD,
                "spec.consumerGroups must name at least one group",
            ),
            (
                EMERGENCY_ROLLBACK.replace("  operation: rollback\n", "  operation: rollback\n  description: why\n"),
                REASON_UNUSED_FIELD,
                "spec.description is only stored by operation snapshot, not rollback",
            ),
            (
                PRE_MIGRATION_SNAPSHOT.replace(
                    "    saslSecret:\n      name: kafka-credentials\n      mechanism: SCRAM-SHA-256\n",
                    "",
                ),
                REASON_MISSING_FIELD,
                "spec.kafkaCluster.saslSecret is required with securityProtocol SASL_SSL",
            ),
            (
                QUICK_SNAPSHOT.replace("    configMap:\n      name: offset-snapshots\n", ""),
                REASON_MISSING_FIELD,
                "spec.storage.configMap is required when storageType is configMap",
            ),
        ];
        for (yaml, reason, message) in cases {
            assert_one_problem(&validate(&korb(&yaml)), reason, message);
        }
    }

    #[test]
    fn a_bad_run_annotation_is_reported() {
        let mut cr = korb(QUICK_SNAPSHOT);
        cr.metadata.annotations = Some([(RUN_ANNOTATION.to_string(), "twice".to_string())].into());
        let problems = validate(&cr);
        assert_eq!(reasons(&problems), [REASON_INVALID_RUN_ANNOTATION]);
        assert!(problems[0].message.contains("'twice'"));
    }

    #[test]
    fn referenced_secrets_with_default_and_custom_keys() {
        assert_eq!(
            referenced_secrets(&korb(PRE_MIGRATION_SNAPSHOT)),
            [SecretReference {
                field: "spec.kafkaCluster.saslSecret",
                name: "kafka-credentials".into(),
                keys: vec!["username".into(), "password".into()],
            }]
        );
        assert_eq!(
            referenced_secrets(&korb(FULL_SPECIFICATION)),
            [
                SecretReference {
                    field: "spec.kafkaCluster.tlsSecret",
                    name: "kafka-tls".into(),
                    keys: vec!["ca.crt".into()],
                },
                SecretReference {
                    field: "spec.kafkaCluster.saslSecret",
                    name: "kafka-credentials".into(),
                    keys: vec!["username".into(), "password".into()],
                },
            ]
        );
        assert_eq!(
            referenced_secrets(&korb(MTLS_PVC)),
            [
                SecretReference {
                    field: "spec.kafkaCluster.tlsSecret",
                    name: "client-tls".into(),
                    keys: vec!["tls.crt".into(), "tls.key".into()],
                },
                SecretReference {
                    field: "spec.kafkaCluster.caSecret",
                    name: "cluster-ca".into(),
                    keys: vec!["ca.pem".into()],
                },
            ]
        );
        for yaml in [QUICK_SNAPSHOT, VERIFY_ROLLBACK, CLEANUP_OLD_SNAPSHOT] {
            assert_eq!(referenced_secrets(&korb(yaml)), []);
        }
        let s3 = PRE_MIGRATION_SNAPSHOT.replace(
            "      prefix: offset-snapshots",
            "      prefix: offset-snapshots\n      credentialsSecret: {name: s3-credentials}",
        );
        let refs = referenced_secrets(&korb(&s3));
        assert_eq!(
            refs.last(),
            Some(&SecretReference {
                field: "spec.storage.s3.credentialsSecret",
                name: "s3-credentials".into(),
                keys: vec![],
            })
        );
    }

    #[test]
    fn delete_references_no_kafka_secret() {
        let yaml = DELETE_SNAPSHOT.replace(
            "      - kafka:9092\n",
            "      - kafka:9092\n    securityProtocol: SASL_SSL\n    saslSecret: {name: kafka-credentials}\n",
        );
        assert_eq!(referenced_secrets(&korb(&yaml)), []);
    }
}

#[cfg(test)]
mod reset_tests {
    use super::tests::assert_one_problem;
    use super::*;
    use crate::build::fixtures::*;

    fn problems(yaml: &str) -> Vec<Problem> {
        validate(&kor(yaml))
    }

    #[test]
    fn every_reset_sample_is_valid() {
        for yaml in [
            RESET_DRY_RUN,
            RESET_TO_DATETIME,
            RESET_SHIFT_BY,
            RESET_FROM_SNAPSHOT,
            RESET_FROM_FILE,
        ] {
            assert_eq!(problems(yaml), [], "{yaml}");
        }
    }

    #[test]
    fn what_the_schema_requires_of_a_reset_is_checked_again() {
        // Manifests the CRD's rules reject, as if stored before those rules existed.
        let cases = [
            (
                RESET_SHIFT_BY.replace("  shiftBy: -500\n", ""),
                REASON_MISSING_FIELD,
                "spec.shiftBy is required for resetStrategy shiftBy",
            ),
            (
                RESET_FROM_BACKUP.replace("  backupId: orders-snapshot-g1-r0-3c9a7e10\n", ""),
                REASON_MISSING_FIELD,
                "spec.backupId is required for resetStrategy fromBackup",
            ),
            (
                RESET_FROM_BACKUP.replace(
                    "    storageType: s3\n    s3:\n      bucket: kafka-backups\n      region: eu-west-1\n      prefix: orders\n",
                    "    storageType: configMap\n    configMap:\n      name: offset-snapshots\n",
                ),
                REASON_UNSUPPORTED_STORAGE,
                "resetStrategy fromBackup needs the backup's pvc, s3, azure or gcs location",
            ),
            (
                RESET_FROM_BACKUP.replace("  storage:\n    storageType: s3\n    s3:\n      bucket: kafka-backups\n      region: eu-west-1\n      prefix: orders\n", "  snapshotBeforeReset: false\n").replace("  snapshotId: orders-dr-before-groups\n", ""),
                REASON_MISSING_FIELD,
                "spec.storage is required for resetStrategy fromBackup",
            ),
            (
                RESET_SHIFT_BY.replace("  shiftBy: -500\n", "  shiftBy: -500\n  snapshotId: a..b\n"),
                REASON_INVALID_SNAPSHOT_ID,
                "spec.snapshotId 'a..b' is invalid",
            ),
            (
                RESET_SHIFT_BY.replace("  shiftBy: -500\n", "  shiftBy: -500\n  offset: 3\n"),
                REASON_UNUSED_FIELD,
                "spec.offset is only used with resetStrategy toOffset, not shiftBy",
            ),
            (
                RESET_FROM_FILE.replace("  consumerGroups:\n    - order-processor\n", ""),
                REASON_MISSING_FIELD,
                "spec.consumerGroups or spec.consumerGroupPattern must select at least one group",
            ),
            (
                RESET_SHIFT_BY.replace(
                    "  storage:\n    storageType: pvc\n    pvc:\n      claimName: offset-backups\n      path: resets\n",
                    "",
                ),
                REASON_MISSING_FIELD,
                "spec.storage is required for the safety snapshot",
            ),
            (
                RESET_FROM_SNAPSHOT
                    .replace(
                        "  storage:\n    storageType: configMap\n    configMap:\n      name: offset-snapshots\n",
                        "",
                    )
                    .replace("  resetStrategy:", "  snapshotBeforeReset: false\n  resetStrategy:"),
                REASON_MISSING_FIELD,
                "spec.storage is required for resetStrategy fromSnapshot",
            ),
            (
                RESET_FROM_SNAPSHOT.replace("before-change", "a..b"),
                REASON_INVALID_SNAPSHOT_ID,
                "spec.fromSnapshotId 'a..b' is invalid",
            ),
            (
                RESET_DRY_RUN.replace("  dryRun: true\n", "  dryRun: true\n  maxConcurrent: 0\n"),
                REASON_INVALID_FIELD,
                "spec.maxConcurrent is 0; use 1 to 1000",
            ),
            (
                RESET_DRY_RUN.replace("  dryRun: true\n", "  dryRun: true\n  maxRetries: 101\n"),
                REASON_INVALID_FIELD,
                "spec.maxRetries is 101; use 0 to 100",
            ),
            (
                RESET_TO_DATETIME.replace(
                    "    saslSecret:\n      name: kafka-credentials\n      mechanism: SCRAM-SHA-512\n",
                    "",
                ),
                REASON_MISSING_FIELD,
                "spec.kafkaCluster.saslSecret is required with securityProtocol SASL_SSL",
            ),
        ];
        for (yaml, reason, message) in cases {
            assert_one_problem(&problems(&yaml), reason, message);
        }
        let mut negative = kor(RESET_DRY_RUN);
        negative.spec.reset_strategy = ResetStrategy::ToOffset;
        negative.spec.offset = Some(-4);
        let problems = validate(&negative);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(
            problems[0].message,
            "spec.offset is -4; offsets are 0 or more"
        );
    }

    #[test]
    fn what_the_worker_refuses_is_named_by_its_spec_field() {
        let problems = problems(&RESET_DRY_RUN.replace("payments-.*", "payments-[a-"));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].reason, REASON_INVALID_FIELD);
        assert!(
            problems[0]
                .message
                .starts_with("spec.consumerGroupPattern is not a valid regex"),
            "{}",
            problems[0].message
        );
        let spec_field = |f| spec_field(RESET_FIELDS, f);
        assert_eq!(spec_field("strategy.csv"), "spec.offsetsCsv");
        assert_eq!(spec_field("consumerGroups[2]"), "spec.consumerGroups[2]");
        assert_eq!(
            spec_field("kafka.bootstrapServers"),
            "spec.kafkaCluster.bootstrapServers"
        );
        assert_eq!(spec_field("snapshotIdentity"), "spec.snapshotIdentity");
    }

    #[test]
    fn a_reset_references_the_secrets_its_job_uses() {
        assert_eq!(
            referenced_secrets(&kor(RESET_TO_DATETIME)),
            [
                SecretReference {
                    field: "spec.kafkaCluster.tlsSecret",
                    name: "kafka-tls".into(),
                    keys: vec!["ca.crt".into()],
                },
                SecretReference {
                    field: "spec.kafkaCluster.saslSecret",
                    name: "kafka-credentials".into(),
                    keys: vec!["username".into(), "password".into()],
                },
                SecretReference {
                    field: "spec.storage.s3.credentialsSecret",
                    name: "s3-credentials".into(),
                    keys: vec![],
                },
            ]
        );
        // A dry run does not touch its storage, so its credentials are not needed.
        let dry_run = RESET_TO_DATETIME.replace(
            "  maxConcurrent: 20\n",
            "  maxConcurrent: 20\n  dryRun: true\n",
        );
        assert_eq!(
            referenced_secrets(&kor(&dry_run))
                .iter()
                .map(|r| r.field)
                .collect::<Vec<_>>(),
            [
                "spec.kafkaCluster.tlsSecret",
                "spec.kafkaCluster.saslSecret"
            ]
        );
    }
}

#[cfg(test)]
mod backup_tests {
    use super::tests::assert_one_problem;
    use super::*;
    use crate::build::fixtures::*;

    fn problems(yaml: &str) -> Vec<Problem> {
        validate(&kb(yaml))
    }

    #[test]
    fn every_backup_sample_is_valid() {
        for yaml in [
            BACKUP_ONE_SHOT_PVC,
            BACKUP_DAILY_S3,
            BACKUP_HOURLY_INCREMENTAL_GCS,
            BACKUP_CONTINUOUS_AZURE,
        ] {
            assert_eq!(problems(yaml), [], "{yaml}");
        }
    }

    #[test]
    fn schedules_are_read_as_a_cron_job_reads_them() {
        for ok in [
            "0 2 * * *",
            "*/15 * * * *",
            "0 0 1 JAN,jul *",
            "30 4 * * MON-FRI",
            "0 0 ? * SUN",
            "0 9-17/2 1,15 * *",
            "0 0 29 2 *",
            " 0 2  * * * ",
            "@daily",
            "@Hourly",
            "@midnight",
            "@annually",
        ] {
            assert_eq!(parse_schedule(ok), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("61 * * * *", ""),
            ("0 24 * * *", ""),
            ("0 0 0 * *", ""),
            ("0 0 * 13 *", ""),
            ("0 0 * * 8", ""),
            ("* * * *", "it has 4 fields; a schedule has 5"),
            ("0 0 0 * * *", "it has 6 fields; a schedule has 5: minute hour day-of-month month day-of-week (no seconds, no year)"),
            ("@every 5m", "'@every 5m' is not a schedule macro"),
            ("@reboot", "'@reboot' is not a schedule macro"),
            ("0 0 L * *", "the day-of-month field 'L' has 'L', which is not a number"),
            ("0 0 * * 5L", "the day-of-week field '5L' has 'L', which is not a number or a day name (SUN-SAT)"),
            ("0 0 * JAN-FOO *", "the month field 'JAN-FOO' has 'FOO', which is not a number or a month name (JAN-DEC)"),
            ("0 0 * MON *", "has 'MON', which is not a number or a month name"),
            ("0 0 31 2 *", "it never fires"),
            ("0 0 30 FEB *", "it never fires"),
        ] {
            let err = parse_schedule(bad).expect_err(bad);
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn what_the_schema_requires_of_a_backup_is_checked_again() {
        // Manifests the CRD's rules reject, as if stored before those rules existed.
        let daily = BACKUP_DAILY_S3;
        let cases = [
            (
                daily.replace("spec:\n", "spec:\n  backupId: payments-once\n"),
                REASON_UNUSED_FIELD,
                "spec.backupId names one backup, and spec.schedule makes one per run",
            ),
            (
                BACKUP_ONE_SHOT_PVC.replace("spec:\n", "spec:\n  chain: a..b\n"),
                REASON_INVALID_FIELD,
                "spec.chain 'a..b' is invalid",
            ),
            (
                BACKUP_ONE_SHOT_PVC.replace(
                    "    storageType: pvc\n    pvc:\n      claimName: kafka-backups\n      path: orders\n",
                    "    storageType: configMap\n    configMap:\n      name: backups\n",
                ),
                REASON_UNSUPPORTED_STORAGE,
                "spec.storage.storageType configMap is not supported for backups",
            ),
            (
                daily.replace("\"0 2 * * *\"", "\"0 2 * *\""),
                REASON_INVALID_SCHEDULE,
                "spec.schedule '0 2 * *' is not a valid cron schedule: it has 4 fields",
            ),
            (
                daily.replace("\"0 2 * * *\"", "\"0 25 * * *\""),
                REASON_INVALID_SCHEDULE,
                "spec.schedule '0 25 * * *' is not a valid cron schedule",
            ),
            (
                BACKUP_CONTINUOUS_AZURE.replace("  mode: continuous\n", "  mode: continuous\n  schedule: \"@daily\"\n"),
                REASON_INVALID_FIELD,
                "spec.schedule cannot be used with mode continuous",
            ),
            (
                BACKUP_ONE_SHOT_PVC.replace("  mode: oneShot\n", "  mode: oneShot\n  suspend: true\n"),
                REASON_UNUSED_FIELD,
                "spec.suspend is only used with spec.schedule (it pauses the schedule) or mode continuous",
            ),
            (
                BACKUP_CONTINUOUS_AZURE.replace("  compression: lz4\n", "  compression: lz4\n  compressionLevel: 3\n"),
                REASON_UNUSED_FIELD,
                "spec.compressionLevel is only used with compression zstd, not lz4",
            ),
            (
                daily.replace("compressionLevel: 6", "compressionLevel: 23"),
                REASON_INVALID_FIELD,
                "spec.compressionLevel is 23; use 1 to 22",
            ),
            (
                BACKUP_HOURLY_INCREMENTAL_GCS.replace("parallelism: 3", "parallelism: 0"),
                REASON_INVALID_FIELD,
                "spec.parallelism is 0; use 1 to 100",
            ),
            (
                daily.replace("keepLast: 7", "keepLast: 0"),
                REASON_INVALID_FIELD,
                "spec.retention.keepLast is 0; use 1 to 10000",
            ),
            (
                BACKUP_HOURLY_INCREMENTAL_GCS.replace("maxAge: 14d", "maxAge: 2y"),
                REASON_INVALID_FIELD,
                "spec.retention.maxAge '2y' is not a duration like 30d, 12h, 90m or 2w",
            ),
            (
                BACKUP_HOURLY_INCREMENTAL_GCS.replace("maxAge: 14d", "maxAge: 0d"),
                REASON_INVALID_FIELD,
                "spec.retention.maxAge '0d' is not a duration",
            ),
            (
                daily.replace("    keepLast: 7\n", "    {}\n").replace("  retention:\n    {}\n", "  retention: {}\n"),
                REASON_MISSING_FIELD,
                "spec.retention needs keepLast, maxAge or both",
            ),
            (
                BACKUP_ONE_SHOT_PVC.replace(
                    "    include:\n      - orders\n      - \"orders-*\"\n",
                    "    include: []\n",
                ),
                REASON_MISSING_FIELD,
                "spec.topics.include must name at least one topic",
            ),
            (
                BACKUP_ONE_SHOT_PVC.replace("      - \"*-retry\"\n", "      - \" \"\n"),
                REASON_INVALID_FIELD,
                "spec.topics.exclude[0] is invalid: exclude pattern ' ' is empty",
            ),
            (
                BACKUP_HOURLY_INCREMENTAL_GCS.replace("~events-(eu|us)-.*", "~events-(eu"),
                REASON_INVALID_FIELD,
                "spec.topics.include[0] is invalid: include pattern '~events-(eu' is not a valid regex: regex parse error:",
            ),
            (
                BACKUP_ONE_SHOT_PVC.replace("\"orders-*\"", "\"orders-[ab\""),
                REASON_INVALID_FIELD,
                "spec.topics.include[1] is invalid: include pattern 'orders-[ab' is not a valid glob",
            ),
            (
                BACKUP_CONTINUOUS_AZURE.replace("bytesPerSec: 10485760", "bytesPerSec: 0"),
                REASON_INVALID_FIELD,
                "spec.rateLimit.bytesPerSec is 0",
            ),
            (
                BACKUP_HOURLY_INCREMENTAL_GCS.replace("maxConcurrentPartitions: 8", "maxConcurrentPartitions: 0"),
                REASON_INVALID_FIELD,
                "spec.maxConcurrentPartitions is 0; use 1 to 10000",
            ),
            (
                daily.replace(
                    "    saslSecret:\n      name: kafka-credentials\n      mechanism: SCRAM-SHA-512\n",
                    "",
                ),
                REASON_MISSING_FIELD,
                "spec.kafkaCluster.saslSecret is required with securityProtocol SASL_SSL",
            ),
        ];
        for (yaml, reason, message) in cases {
            assert_one_problem(&problems(&yaml), reason, message);
        }
    }

    #[test]
    fn a_backup_references_the_secrets_its_jobs_use() {
        assert_eq!(
            referenced_secrets(&kb(BACKUP_DAILY_S3))
                .iter()
                .map(|r| (r.field, r.name.as_str()))
                .collect::<Vec<_>>(),
            [
                ("spec.kafkaCluster.tlsSecret", "kafka-tls"),
                ("spec.kafkaCluster.saslSecret", "kafka-credentials"),
                ("spec.storage.s3.credentialsSecret", "s3-credentials"),
            ]
        );
        assert_eq!(referenced_secrets(&kb(BACKUP_ONE_SHOT_PVC)), []);
        assert_eq!(
            referenced_secrets(&kb(BACKUP_CONTINUOUS_AZURE)),
            [SecretReference {
                field: "spec.storage.azure.credentialsSecret",
                name: "azure-storage".into(),
                keys: vec![],
            }]
        );
    }

    #[test]
    fn task_fields_are_named_by_their_backup_spec_field() {
        assert_eq!(spec_field(BACKUP_FIELDS, "shardCount"), "spec.parallelism");
        assert_eq!(
            spec_field(BACKUP_FIELDS, "keepLast"),
            "spec.retention.keepLast"
        );
        assert_eq!(spec_field(BACKUP_FIELDS, "storage.url"), "spec.storage");
        assert_eq!(
            spec_field(BACKUP_FIELDS, "topics.include"),
            "spec.topics.include"
        );
        assert_eq!(
            spec_field(BACKUP_FIELDS, "kafka.securityProtocol"),
            "spec.kafkaCluster.securityProtocol"
        );
    }
}

#[cfg(test)]
mod restore_tests {
    use super::tests::assert_one_problem;
    use super::*;
    use crate::build::fixtures::*;
    use crate::controller::restore::resolve;

    fn problems(yaml: &str) -> Vec<Problem> {
        validate(&kr(yaml))
    }

    /// The restore samples, by name resolved through the KafkaBackup `orders-snapshot`.
    fn resolved(yaml: &str) -> KafkaRestore {
        resolve(
            &kr(yaml),
            Some(&orders_backup(
                "orders-snapshot-g1-r0-3c9a7e10",
                "Completed",
            )),
        )
        .expect("resolved")
    }

    #[test]
    fn every_restore_sample_is_valid_before_and_after_resolution() {
        for yaml in [
            RESTORE_FULL,
            RESTORE_PITR_NEW_TOPIC,
            RESTORE_THREE_PHASE,
            RESTORE_DRY_RUN,
        ] {
            assert_eq!(problems(yaml), [], "{yaml}");
            assert_eq!(validate(&resolved(yaml)), [], "{yaml}");
        }
    }

    #[test]
    fn what_the_schema_requires_of_a_restore_is_checked_again() {
        // Manifests the CRD's rules reject, as if stored before those rules existed.
        let pitr = RESTORE_PITR_NEW_TOPIC;
        let three = RESTORE_THREE_PHASE;
        let cases = [
            (
                RESTORE_FULL.replace("  backupRef:\n    name: orders-snapshot\n", "  backupRef: {}\n"),
                REASON_MISSING_FIELD,
                "spec.backupRef needs name (a KafkaBackup in this namespace) or backupId and storage",
            ),
            (
                pitr.replace("  backupRef:\n", "  backupRef:\n    name: payments-nightly\n"),
                REASON_UNUSED_FIELD,
                "spec.backupRef.storage is only used without spec.backupRef.name",
            ),
            (
                pitr.replace("    backupId: payments-nightly-2b1e4c7d-29000000\n", ""),
                REASON_MISSING_FIELD,
                "spec.backupRef.backupId is required with spec.backupRef.storage",
            ),
            (
                three.replace("  createTopics: true\n", "  createTopics: true\n  restoreId: a..b\n"),
                REASON_INVALID_FIELD,
                "spec.restoreId 'a..b' is invalid",
            ),
            (
                three.replace("  createTopics: true\n", "  createTopics: true\n  offsetReport: reports/../x.json\n"),
                REASON_INVALID_FIELD,
                "spec.offsetReport is 'reports/../x.json'",
            ),
            (
                pitr.replace("      storageType: s3\n", "      storageType: configMap\n"),
                REASON_UNSUPPORTED_STORAGE,
                "spec.backupRef.storage.storageType configMap cannot hold backups",
            ),
            (
                pitr.replace("      storageType: s3\n", "      storageType: gcs\n"),
                REASON_MISSING_FIELD,
                "spec.backupRef.storage.gcs is required when storageType is gcs",
            ),
            (
                RESTORE_DRY_RUN.replace("orders-snapshot-g1-r0-6f1c2a9e", "a..b"),
                REASON_INVALID_FIELD,
                "spec.backupRef.backupId 'a..b' is invalid",
            ),
            (
                pitr.replace("    endTime: \"2025-01-15T15:00:00Z\"\n", "    endTime: \"2025-01-15T15:00:00Z\"\n    endTimestampMs: 5\n"),
                REASON_UNUSED_FIELD,
                "spec.pitr.endTime and spec.pitr.endTimestampMs are two forms of the same bound",
            ),
            (
                pitr.replace("2025-01-15T00:00:00Z", "2025-01-16T00:00:00Z"),
                REASON_INVALID_FIELD,
                "spec.pitr starts after it ends (1736985600000 ms > 1736953200000 ms)",
            ),
            (
                pitr.replace("2025-01-15T00:00:00Z", "2025-01-15 00:00"),
                REASON_INVALID_FIELD,
                "spec.pitr.startTime '2025-01-15 00:00' is not an RFC 3339 date-time",
            ),
            (
                pitr.replace(
                    "    startTime: \"2025-01-15T00:00:00Z\"\n    endTime: \"2025-01-15T15:00:00Z\"\n",
                    "    {}\n",
                ).replace("  pitr:\n    {}\n", "  pitr: {}\n"),
                REASON_MISSING_FIELD,
                "spec.pitr needs a start, an end or both",
            ),
            (
                RESTORE_DRY_RUN.replace("    \"2\": 0\n", "    \"02\": 0\n"),
                REASON_INVALID_FIELD,
                "spec.partitionMapping has the key '02', which is not a partition number",
            ),
            (
                RESTORE_DRY_RUN.replace("    \"2\": 0\n", "    \"2\": -3\n"),
                REASON_INVALID_FIELD,
                "spec.partitionMapping maps 2 to -3; partitions are 0 or more",
            ),
            (
                RESTORE_DRY_RUN.replace("  sourcePartitions:\n    - 2\n", "  sourcePartitions:\n    - -2\n"),
                REASON_INVALID_FIELD,
                "spec.sourcePartitions holds -2",
            ),
            (
                three.replace("    strategy: header-based\n", "    strategy: skip\n"),
                REASON_INVALID_FIELD,
                "spec.consumerGroups.resetOffsets needs a strategy other than skip",
            ),
            (
                three.replace("    resetOffsets: true\n", ""),
                REASON_UNUSED_FIELD,
                "spec.consumerGroups.groups and spec.consumerGroups.offsetsSnapshotId are only used with resetOffsets: true or strategy manual",
            ),
            (
                three
                    .replace("    strategy: header-based\n", "    strategy: cluster-scan\n")
                    .replace("  includeOriginalOffsetHeader: true\n  originalHeaderStyle: original\n", ""),
                REASON_MISSING_FIELD,
                "spec.consumerGroups.strategy cluster-scan reads the original-offset headers back from the target",
            ),
            (
                three.replace("  includeOriginalOffsetHeader: true\n", ""),
                REASON_UNUSED_FIELD,
                "spec.originalHeaderStyle is only used with spec.includeOriginalOffsetHeader: true",
            ),
            (
                three.replace("    snapshotBeforeReset: true\n", "    snapshotBeforeReset: true\n    offsetsSnapshotId: a..b\n"),
                REASON_INVALID_SNAPSHOT_ID,
                "spec.consumerGroups.offsetsSnapshotId 'a..b' is invalid",
            ),
            (
                RESTORE_FULL.replace("maxConcurrentPartitions: 8", "maxConcurrentPartitions: 0"),
                REASON_INVALID_FIELD,
                "spec.maxConcurrentPartitions is 0; use 1 to 10000",
            ),
            (
                pitr.replace("checkpointIntervalSecs: 30", "checkpointIntervalSecs: 0"),
                REASON_INVALID_FIELD,
                "spec.checkpointIntervalSecs is 0; use 1 to 86400",
            ),
            (
                pitr.replace("recordsPerSec: 50000", "recordsPerSec: 0"),
                REASON_INVALID_FIELD,
                "spec.rateLimit.recordsPerSec is 0",
            ),
            (
                three.replace("      - \"*-retry\"\n", "      - \"~(\"\n"),
                REASON_INVALID_FIELD,
                "spec.topics.exclude[0] is invalid: exclude pattern '~(' is not a valid regex",
            ),
            (
                pitr.replace(
                    "    saslSecret:\n      name: kafka-credentials\n      mechanism: SCRAM-SHA-512\n",
                    "",
                ),
                REASON_MISSING_FIELD,
                "spec.kafkaCluster.saslSecret is required with securityProtocol SASL_SSL",
            ),
        ];
        for (yaml, reason, message) in cases {
            assert_one_problem(&problems(&yaml), reason, message);
        }
    }

    #[test]
    fn shards_are_bounded_and_refuse_an_offset_report() {
        let with = |yaml: &str, shards: &str| {
            yaml.replace(
                "  createTopics: true\n",
                &format!("  createTopics: true\n  shards: {shards}\n"),
            )
        };
        assert_eq!(validate(&resolved(&with(RESTORE_FULL, "4"))), []);
        let problems = validate(&resolved(&with(RESTORE_FULL, "0")));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].message, "spec.shards is 0; use 1 to 100");
        assert_eq!(validate(&resolved(&with(RESTORE_THREE_PHASE, "2"))), []);
        let report = with(RESTORE_FULL, "2\n  offsetReport: reports/r.json");
        let problems = validate(&resolved(&report));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].reason, REASON_INVALID_FIELD);
        assert!(
            problems[0]
                .message
                .starts_with("spec.shards is 2, and an offset report is to be stored"),
            "{}",
            problems[0].message
        );
    }

    #[test]
    fn what_the_worker_refuses_is_named_by_its_spec_field() {
        // A target topic Kafka reserves: only the worker's own check knows.
        let yaml = RESTORE_PITR_NEW_TOPIC.replace("transactions-recovered", "..");
        let problems = problems(&yaml);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].reason, REASON_INVALID_FIELD);
        assert!(
            problems[0]
                .message
                .starts_with("spec.topicMapping.transactions: topic name '..' is not allowed"),
            "{}",
            problems[0].message
        );
        // By name, the worker's check runs once the backup is resolved.
        let yaml = RESTORE_FULL.replace(
            "  createTopics: true\n",
            "  createTopics: true\n  topicMapping:\n    orders: \"..\"\n",
        );
        assert_eq!(
            validate(&kr(&yaml)),
            [],
            "nothing to build the task from yet"
        );
        let problems = validate(&resolved(&yaml));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].message.starts_with("spec.topicMapping.orders"));

        let field = |f| spec_field(RESTORE_FIELDS, f);
        assert_eq!(field("storage.url"), "spec.backupRef.storage");
        assert_eq!(field("backupId"), "spec.backupRef.backupId");
        assert_eq!(field("consumerGroups"), "spec.consumerGroups.groups");
        assert_eq!(
            field("consumerGroupStrategy"),
            "spec.consumerGroups.strategy"
        );
        assert_eq!(field("topicMapping.orders"), "spec.topicMapping.orders");
        assert_eq!(
            field("kafka.bootstrapServers"),
            "spec.kafkaCluster.bootstrapServers"
        );
    }

    #[test]
    fn a_restore_references_the_secrets_its_job_uses() {
        assert_eq!(
            referenced_secrets(&kr(RESTORE_PITR_NEW_TOPIC))
                .iter()
                .map(|r| (r.field, r.name.as_str()))
                .collect::<Vec<_>>(),
            [
                ("spec.kafkaCluster.tlsSecret", "kafka-tls"),
                ("spec.kafkaCluster.saslSecret", "kafka-credentials"),
                (
                    "spec.backupRef.storage.s3.credentialsSecret",
                    "s3-credentials"
                ),
            ]
        );
        // Before resolution the storage of a KafkaBackup is unknown; after, its Secret is the
        // KafkaBackup's.
        let by_name = RESTORE_FULL;
        assert_eq!(referenced_secrets(&kr(by_name)), []);
        assert_eq!(referenced_secrets(&resolved(by_name)), []);
        let mut cr = kr(by_name);
        let mut backup = kb(BACKUP_DAILY_S3);
        backup.metadata.name = Some("orders-snapshot".into());
        backup.status = orders_backup("b1", "Completed").status;
        cr = resolve(&cr, Some(&backup)).expect("resolved");
        assert_eq!(
            referenced_secrets(&cr),
            [SecretReference {
                field:
                    "spec.storage.s3.credentialsSecret of the KafkaBackup in spec.backupRef.name",
                name: "s3-credentials".into(),
                keys: vec![],
            }]
        );
    }
}
