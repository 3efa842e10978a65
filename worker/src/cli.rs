//! The `tidemark` command line: the clap tree (here: every verb and flag, and the flags turned
//! into client settings), the process around the verbs (`entry`: logging, the error report,
//! the exit code) and one handler per verb (`backup`, `restore`, `reset`, `rollback`): flags to
//! a request, the use case of [`crate::service`], the report rendered.

mod backup;
mod drill;
mod entry;
mod plan;
mod reset;
mod restore;
mod rollback;

pub use entry::{error_format, main, operation, report_error, run};
use entry::{human_time, kafka_config, open_storage_at, open_store, open_store_at, print_json};

use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

use crate::groups::DEFAULT_CONCURRENCY;
use crate::kafka::{KafkaConfig, SaslMechanism, SecurityProtocol, TlsFiles};
use crate::storage::StorageOptions;

/// Kafka backup, restore and consumer-offset safety.
#[derive(Debug, Parser)]
#[command(name = "tidemark", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "TIDEMARK_LOG_FORMAT")]
    pub log_format: LogFormat,

    /// More log output on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,
}

/// Top-level verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Snapshot consumer-group offsets and roll groups back to a snapshot.
    #[command(subcommand)]
    OffsetRollback(RollbackCommand),
    /// Export committed offsets in the kmap JSON format, with a kafka-consumer-groups restore script.
    #[command(subcommand)]
    Offsets(OffsetsCommand),
    /// Move consumer-group offsets with kafka-consumer-groups' --reset-offsets rules: plan, execute, or script.
    #[command(subcommand)]
    OffsetReset(ResetCommand),
    /// Reset many consumer groups at once, after a safety snapshot (--dry-run: only the plan).
    OffsetResetBulk(ResetExecArgs),
    /// Back up topics' records (and the consumer offsets on them) to storage.
    Backup(BackupArgs),
    /// List the backups in a storage location, newest first.
    List(BackupListArgs),
    /// Show one backup: topics, partitions, offset ranges, sizes and time ranges.
    Describe(DescribeArgs),
    /// Check a backup's segments against their checksums and the manifest (--deep: every record).
    VerifyBackup(VerifyBackupArgs),
    /// Wrap encrypted backups' data keys (and snapshots') under the current key, after a key rotation; segments are not rewritten.
    RewrapKeys(RewrapArgs),
    /// Restore a backup's records to a cluster, exactly once and resumable (kafka-backup's restore configuration).
    Restore(RestoreArgs),
    /// Check a restore configuration against the backup and the target cluster; changes nothing.
    ValidateRestore(ValidateRestoreArgs),
    /// Show a restore's source -> target offset mapping (before any restore: the backup's offset ranges).
    ShowOffsetMapping(ShowMappingArgs),
    /// Restore the data, then translate the backup's consumer offsets through the exact mapping and commit them.
    ThreePhaseRestore(RestoreArgs),
    /// Restore a backup into prefixed scratch topics, verify every record and the translated consumer offsets, then delete them again.
    Drill(DrillArgs),
    /// Run a task document rendered by the operator and write its result (used in Kubernetes Jobs).
    Run(RunArgs),
}

/// `tidemark offset-rollback …`
#[derive(Debug, Subcommand)]
pub enum RollbackCommand {
    /// Store the current committed offsets of consumer groups as a snapshot.
    Snapshot(SnapshotArgs),
    /// List the snapshots in a storage location, newest first.
    List(ListArgs),
    /// Print one snapshot's groups and partitions.
    Show(ShowArgs),
    /// Commit a snapshot's offsets back for its (inactive) consumer groups.
    Rollback(RollbackArgs),
    /// Compare current committed offsets with a snapshot; non-zero exit on any difference.
    Verify(VerifyArgs),
    /// Delete a snapshot.
    Delete(DeleteArgs),
    /// Turn a kmap consumer-offsets JSON file into a snapshot.
    Import(ImportArgs),
}

/// `tidemark offset-reset …`
#[derive(Debug, Subcommand)]
pub enum ResetCommand {
    /// Print what a reset would do (current and target offset of every partition); changes nothing.
    Plan(ResetArgs),
    /// Show the plan, then apply it after a safety snapshot (--dry-run: only the plan).
    Execute(ResetExecArgs),
    /// Write a bash script of kafka-consumer-groups commands, one per partition, to review and run.
    Script(ResetScriptArgs),
}

/// `tidemark offsets …`
#[derive(Debug, Subcommand)]
pub enum OffsetsCommand {
    /// Write committed offsets as kmap JSON (all groups with offsets unless a selection is given).
    Export(ExportArgs),
}

/// Report format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// Log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// How to reach the Kafka cluster. Credentials come only from the environment.
#[derive(Debug, Clone, Args)]
pub struct KafkaArgs {
    /// Kafka brokers, comma-separated host:port.
    #[arg(long, env = "KAFKA_BOOTSTRAP_SERVERS", value_name = "HOST:PORT,...")]
    pub bootstrap_servers: String,

    /// PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.
    #[arg(long, default_value = "PLAINTEXT", env = "KAFKA_SECURITY_PROTOCOL", value_parser = parse_protocol)]
    pub security_protocol: SecurityProtocol,

    /// PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (default PLAIN, or KAFKA_SASL_MECHANISM).
    #[arg(long, value_parser = parse_mechanism)]
    pub sasl_mechanism: Option<SaslMechanism>,

    /// CA certificate (PEM) for TLS (default: KAFKA_SSL_CA_CERT).
    #[arg(long, value_name = "FILE")]
    pub ssl_ca_location: Option<String>,

    /// Client certificate (PEM) for mutual TLS (default: KAFKA_SSL_CLIENT_CERT).
    #[arg(long, value_name = "FILE")]
    pub ssl_certificate_location: Option<String>,

    /// Client private key (PEM) for mutual TLS (default: KAFKA_SSL_CLIENT_KEY).
    #[arg(long, value_name = "FILE")]
    pub ssl_key_location: Option<String>,

    /// Extra librdkafka client property, repeatable (key=value).
    #[arg(long = "kafka-property", short = 'X', value_name = "KEY=VALUE")]
    pub kafka_properties: Vec<String>,

    /// Connect over TLS without verifying the broker's certificate or host name (never the
    /// default; refused as a -X property). Only for a broker whose certificate cannot be verified.
    #[arg(long)]
    pub insecure_skip_tls_verify: bool,

    /// Seconds to wait for the cluster to answer one request.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600), value_name = "SECS")]
    pub request_timeout: u64,
}

/// Where snapshots live.
#[derive(Debug, Clone, Args)]
pub struct StorageArgs {
    /// Storage location: a directory, file://DIR, s3://BUCKET/PREFIX, gs://BUCKET/PREFIX or az://CONTAINER/PREFIX.
    #[arg(short = 'p', long, env = "TIDEMARK_PATH", value_name = "LOCATION")]
    pub path: String,
    #[command(flatten)]
    pub endpoint: StorageEndpointArgs,
}

/// Where snapshots live, when a command only sometimes needs storage.
#[derive(Debug, Clone, Args)]
pub struct OptionalStorageArgs {
    /// Storage location for snapshots: a directory, file://DIR, s3://BUCKET/PREFIX, gs://BUCKET/PREFIX or az://CONTAINER/PREFIX.
    #[arg(short = 'p', long, env = "TIDEMARK_PATH", value_name = "LOCATION")]
    pub path: Option<String>,
    #[command(flatten)]
    pub endpoint: StorageEndpointArgs,
}

/// How to reach an object store.
#[derive(Debug, Clone, Args)]
pub struct StorageEndpointArgs {
    /// S3 region (default: AWS_REGION / AWS_DEFAULT_REGION).
    #[arg(long, env = "TIDEMARK_S3_REGION")]
    pub s3_region: Option<String>,

    /// Custom S3 endpoint URL, e.g. for MinIO or Ceph.
    #[arg(long, env = "TIDEMARK_S3_ENDPOINT", value_name = "URL")]
    pub s3_endpoint: Option<String>,

    /// Use path-style S3 requests (https://endpoint/bucket/key).
    #[arg(long, env = "TIDEMARK_S3_PATH_STYLE")]
    pub s3_path_style: bool,

    /// Allow plain-HTTP storage endpoints (off by default).
    #[arg(long, env = "TIDEMARK_ALLOW_HTTP")]
    pub allow_http: bool,

    /// Encrypt what is stored, and read encrypted data, with the keys in this file or directory (one file per key, named by its key id: a mounted Secret).
    #[arg(long, env = "TIDEMARK_ENCRYPTION_KEY_FILE", value_name = "PATH")]
    pub encryption_key_file: Option<String>,

    /// The key of --encryption-key-file that wraps new data keys (needed when it holds several).
    #[arg(long, env = "TIDEMARK_ENCRYPTION_KEY_ID", value_name = "ID")]
    pub encryption_key_id: Option<String>,

    /// AWS KMS key (id, ARN or alias) that makes the data keys of new backups and unwraps them.
    #[arg(long, env = "TIDEMARK_KMS_KEY_ID", value_name = "KEY")]
    pub kms_key_id: Option<String>,
}

/// Which consumer groups to act on.
#[derive(Debug, Clone, Args)]
pub struct GroupArgs {
    /// Consumer groups, comma-separated (repeatable).
    #[arg(short = 'g', long, value_name = "GROUP,...")]
    pub groups: Vec<String>,

    /// Consumer groups whose whole id matches this regex.
    #[arg(long, value_name = "REGEX")]
    pub groups_regex: Option<String>,

    /// Every consumer group of the cluster.
    #[arg(long)]
    pub all_groups: bool,
}

/// Output format flag.
#[derive(Debug, Clone, Args)]
pub struct FormatArgs {
    /// Report format.
    #[arg(short = 'f', long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// `offset-rollback snapshot`
#[derive(Debug, Clone, Args)]
pub struct SnapshotArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub groups: GroupArgs,
    /// Snapshot description.
    #[arg(short = 'd', long)]
    pub description: Option<String>,
    /// Snapshot id (default: snap-YYYYMMDD-HHMMSS-<8 hex>).
    #[arg(short = 's', long)]
    pub snapshot_id: Option<String>,
    /// Groups read at once.
    #[arg(long, default_value_t = DEFAULT_CONCURRENCY, value_parser = parse_concurrency)]
    pub max_concurrent: usize,
    #[command(flatten)]
    pub format: FormatArgs,
}

/// `offset-rollback list`
#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    #[command(flatten)]
    pub format: FormatArgs,
}

/// `offset-rollback show`
#[derive(Debug, Clone, Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Snapshot to show.
    #[arg(short = 's', long)]
    pub snapshot_id: String,
    #[command(flatten)]
    pub format: FormatArgs,
}

/// `offset-rollback rollback`
#[derive(Debug, Clone, Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Snapshot to roll back to.
    #[arg(short = 's', long, required_unless_present = "approved_plan")]
    pub snapshot_id: Option<String>,
    /// Only these groups of the snapshot, comma-separated (default: all of them).
    #[arg(short = 'g', long, value_name = "GROUP,...")]
    pub groups: Vec<String>,
    /// Write the rollback's plan (what executing does and what it checks first) to FILE and print its hash; change nothing.
    #[arg(long, value_name = "FILE", conflicts_with = "approved_plan")]
    pub plan_out: Option<std::path::PathBuf>,
    /// Execute exactly the rollback plan in FILE (from --plan-out); refused with exit 15, nothing changed, when the cluster no longer matches it.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["snapshot_id", "groups", "safety_snapshot_id"])]
    pub approved_plan: Option<std::path::PathBuf>,
    /// The approved plan's hash (printed by --plan-out): a plan file with another hash is refused (exit 15).
    #[arg(long, value_name = "HASH", requires = "approved_plan", value_parser = parse_plan_hash)]
    pub plan_hash: Option<String>,
    /// Re-read and compare offsets after the rollback (default true; `--verify false` to skip).
    #[arg(long, default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set)]
    pub verify: bool,
    /// Skip the verification (same as `--verify false`).
    #[arg(long, conflicts_with = "verify")]
    pub no_verify: bool,
    /// Groups rolled back at once.
    #[arg(long, default_value_t = DEFAULT_CONCURRENCY, value_parser = parse_concurrency)]
    pub max_concurrent: usize,
    /// Id of the safety snapshot of the offsets the rollback replaces, stored (in --path) before
    /// anything changes (default: generated; reported either way).
    #[arg(long, value_name = "ID")]
    pub safety_snapshot_id: Option<String>,
    #[command(flatten)]
    pub format: FormatArgs,
}

/// `offset-rollback verify`
#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Snapshot to compare with.
    #[arg(short = 's', long)]
    pub snapshot_id: String,
    /// Only these groups of the snapshot, comma-separated (default: all of them).
    #[arg(short = 'g', long, value_name = "GROUP,...")]
    pub groups: Vec<String>,
    /// Also fail on partitions committed now but absent from the snapshot.
    #[arg(long)]
    pub strict: bool,
    /// Groups read at once.
    #[arg(long, default_value_t = DEFAULT_CONCURRENCY, value_parser = parse_concurrency)]
    pub max_concurrent: usize,
    #[command(flatten)]
    pub format: FormatArgs,
}

/// `offset-rollback delete`
#[derive(Debug, Clone, Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Snapshot to delete.
    #[arg(short = 's', long)]
    pub snapshot_id: String,
    #[command(flatten)]
    pub format: FormatArgs,
}

/// `offset-rollback import`
#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    /// kmap consumer-offsets JSON file to import.
    #[arg(long, value_name = "FILE")]
    pub kmap: std::path::PathBuf,
    /// Snapshot id (default: snap-YYYYMMDD-HHMMSS-<8 hex>).
    #[arg(short = 's', long)]
    pub snapshot_id: Option<String>,
    /// Snapshot description.
    #[arg(short = 'd', long)]
    pub description: Option<String>,
    #[command(flatten)]
    pub format: FormatArgs,
}

/// The reset spec: exactly one.
#[derive(Debug, Clone, Args)]
#[group(id = "spec", required = true, multiple = false)]
pub struct ResetSpecArgs {
    /// Reset to the log start offset.
    #[arg(long)]
    pub to_earliest: bool,
    /// Reset to the log end offset.
    #[arg(long)]
    pub to_latest: bool,
    /// Keep the committed offset (the log end where there is none).
    #[arg(long)]
    pub to_current: bool,
    /// Reset to this offset (clamped to the log).
    #[arg(long, value_name = "OFFSET", value_parser = clap::value_parser!(i64).range(0..))]
    pub to_offset: Option<i64>,
    /// Move the committed offset by N (negative: back), clamped to the log.
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub shift_by: Option<i64>,
    /// Reset to the first offset at or after this time: YYYY-MM-DDTHH:mm:SS.sss, optional zone (Z, +01:00); UTC if none.
    #[arg(long, value_name = "DATETIME")]
    pub to_datetime: Option<String>,
    /// Reset to the first offset at or after now minus this ISO-8601 duration (PnDTnHnMnS).
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub by_duration: Option<String>,
    /// Reset to the offsets of a CSV plan: group,topic,partition,offset (or topic,partition,offset with one group).
    #[arg(long, value_name = "FILE")]
    pub from_file: Option<std::path::PathBuf>,
    /// Reset to the offsets stored in an offset-rollback snapshot (in --path).
    #[arg(long, value_name = "SNAPSHOT_ID")]
    pub from_snapshot: Option<String>,
    /// Reset to the offsets a restore of this backup mapped (in --path).
    #[arg(short = 'b', long, value_name = "BACKUP_ID")]
    pub backup_id: Option<String>,
}

/// Which partitions of each group: `--topic` (repeatable) or `--all-topics`.
#[derive(Debug, Clone, Args)]
pub struct ResetScopeArgs {
    /// A topic (all its partitions) or topic:0,1,2; repeatable.
    #[arg(long = "topic", value_name = "TOPIC[:P,...]")]
    pub topics: Vec<String>,
    /// Every topic the group has committed offsets on.
    #[arg(long, conflicts_with = "topics")]
    pub all_topics: bool,
}

/// `offset-reset plan` (and the shared part of the other reset verbs).
#[derive(Debug, Clone, Args)]
pub struct ResetArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub groups: GroupArgs,
    #[command(flatten)]
    pub spec: ResetSpecArgs,
    #[command(flatten)]
    pub scope: ResetScopeArgs,
    #[command(flatten)]
    pub storage: OptionalStorageArgs,
    /// Also write the plan as CSV (group,topic,partition,offset) that --from-file reads back.
    #[arg(long, value_name = "FILE")]
    pub export: Option<std::path::PathBuf>,
    /// Groups read and reset at once.
    #[arg(long, default_value_t = crate::task::DEFAULT_RESET_CONCURRENCY, value_parser = parse_concurrency)]
    pub max_concurrent: usize,
    #[command(flatten)]
    pub format: FormatArgs,
}

/// `offset-reset execute` and `offset-reset-bulk`: a reset spec, or an approved plan.
#[derive(Debug, Clone, Args)]
#[command(mut_group("spec", |g| g.required(false)))]
pub struct ResetExecArgs {
    #[command(flatten)]
    pub reset: ResetArgs,
    /// Apply the plan (the default; accepted for kafka-consumer-groups habits).
    #[arg(long)]
    pub execute: bool,
    /// Only show the plan; change nothing.
    #[arg(long, conflicts_with = "execute")]
    pub dry_run: bool,
    /// Do not store a safety snapshot of the offsets about to change (then no rollback is possible).
    #[arg(long)]
    pub no_snapshot: bool,
    /// Id of the safety snapshot (default: snap-YYYYMMDD-HHMMSS-<8 hex>).
    #[arg(short = 's', long, value_name = "ID")]
    pub snapshot_id: Option<String>,
    /// Retries per failed partition (exponential backoff).
    #[arg(long, default_value_t = crate::task::DEFAULT_RESET_RETRIES, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub max_retries: u32,
    #[command(flatten)]
    pub plan: PlanArgs,
}

/// Plan, then approve: write the plan only, or execute exactly an approved plan.
#[derive(Debug, Clone, Args)]
pub struct PlanArgs {
    /// Write the plan (what executing does and what it checks first) to FILE and print its hash; change nothing.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["approved_plan", "dry_run"])]
    pub plan_out: Option<std::path::PathBuf>,
    /// Execute exactly the plan in FILE (from --plan-out); refused with exit 15, nothing changed, when the cluster no longer matches it.
    #[arg(long, value_name = "FILE", required_unless_present = "spec", conflicts_with_all = ["spec", "topics", "all_topics", "groups", "groups_regex", "all_groups", "snapshot_id", "no_snapshot", "export"])]
    pub approved_plan: Option<std::path::PathBuf>,
    /// The approved plan's hash (printed by --plan-out): a plan file with another hash is refused (exit 15).
    #[arg(long, value_name = "HASH", requires = "approved_plan", conflicts_with_all = ["spec", "plan_out"], value_parser = parse_plan_hash)]
    pub plan_hash: Option<String>,
}

/// `offset-reset script`
#[derive(Debug, Clone, Args)]
pub struct ResetScriptArgs {
    #[command(flatten)]
    pub reset: ResetArgs,
    /// Write the script here (default: standard output).
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
    /// Properties file the script passes to kafka-consumer-groups as --command-config (SASL/TLS clusters).
    #[arg(long, value_name = "FILE")]
    pub command_config: Option<String>,
}

/// `backup`
#[derive(Debug, Clone, Args)]
pub struct BackupArgs {
    /// Backup configuration (YAML, `mode: backup`); flags given as well override it.
    #[arg(short = 'c', long, value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
    /// Kafka brokers, comma-separated host:port.
    #[arg(long, env = "KAFKA_BOOTSTRAP_SERVERS", value_name = "HOST:PORT,...")]
    pub bootstrap_servers: Option<String>,
    /// PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL (credentials: KAFKA_USERNAME / KAFKA_PASSWORD).
    #[arg(long, env = "KAFKA_SECURITY_PROTOCOL")]
    pub security_protocol: Option<String>,
    /// Extra librdkafka client property, repeatable (key=value), e.g. -X fetch.wait.max.ms=5.
    #[arg(long = "kafka-property", short = 'X', value_name = "KEY=VALUE")]
    pub kafka_properties: Vec<String>,
    /// Connect over TLS without verifying the broker's certificate or host name (never the
    /// default; refused as a -X property). Only for a broker whose certificate cannot be verified.
    #[arg(long)]
    pub insecure_skip_tls_verify: bool,
    /// Storage location: a directory, s3://BUCKET/PREFIX, gs://BUCKET/PREFIX or az://CONTAINER/PREFIX.
    #[arg(short = 'p', long, env = "TIDEMARK_PATH", value_name = "LOCATION")]
    pub path: Option<String>,
    #[command(flatten)]
    pub endpoint: StorageEndpointArgs,
    /// Topics to back up: names, globs (orders-*) or ~regex; comma-separated, repeatable.
    #[arg(short = 't', long, value_name = "TOPIC,...")]
    pub topics: Vec<String>,
    /// Topics to leave out (same patterns).
    #[arg(long, value_name = "TOPIC,...")]
    pub exclude: Vec<String>,
    /// Backup id (default: backup-YYYYMMDD-HHMMSS-<8 hex>); the same id resumes an interrupted backup.
    #[arg(short = 'b', long)]
    pub backup_id: Option<String>,
    /// one-shot (default), continuous (until stopped) or incremental (continue --chain).
    #[arg(long)]
    pub mode: Option<String>,
    /// Chain of backups that incremental backups continue.
    #[arg(long)]
    pub chain: Option<String>,
    /// zstd (default), lz4 or none.
    #[arg(long)]
    pub compression: Option<String>,
    /// zstd level, 1-22 (default 1).
    #[arg(long)]
    pub compression_level: Option<i32>,
    /// Close segments at this many uncompressed bytes (default 8 MiB).
    #[arg(long, value_name = "BYTES")]
    pub segment_max_bytes: Option<u64>,
    /// Partitions read at once (default 32).
    #[arg(long, value_name = "N")]
    pub max_concurrent_partitions: Option<usize>,
    /// Read at most this many records per second.
    #[arg(long, value_name = "N")]
    pub rate_limit_records_per_sec: Option<u64>,
    /// Read at most this many record bytes per second.
    #[arg(long, value_name = "N")]
    pub rate_limit_bytes_per_sec: Option<u64>,
    /// Do not capture the consumer offsets on the backed-up topics.
    #[arg(long)]
    pub no_capture_offsets: bool,
    /// This process's shard (with --shard-count; default JOB_COMPLETION_INDEX).
    #[arg(long)]
    pub shard_index: Option<u32>,
    /// Number of shards the partitions are dealt to.
    #[arg(long)]
    pub shard_count: Option<u32>,
    #[command(flatten)]
    pub format: FormatArgs,
}

/// `list`
#[derive(Debug, Clone, Args)]
pub struct BackupListArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    #[command(flatten)]
    pub format: FormatArgs,
}

/// Output of `describe`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DescribeFormat {
    Text,
    Json,
    Yaml,
}

/// `describe`
#[derive(Debug, Clone, Args)]
pub struct DescribeArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Backup to describe.
    #[arg(short = 'b', long)]
    pub backup_id: String,
    /// Report format.
    #[arg(short = 'f', long, value_enum, default_value_t = DescribeFormat::Text)]
    pub format: DescribeFormat,
}

/// `verify-backup`
#[derive(Debug, Clone, Args)]
pub struct VerifyBackupArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Backup to verify.
    #[arg(short = 'b', long)]
    pub backup_id: String,
    /// Decode every record and check offsets, not only checksums and headers.
    #[arg(long)]
    pub deep: bool,
    #[command(flatten)]
    pub format: FormatArgs,
}

/// `rewrap-keys`
#[derive(Debug, Clone, Args)]
pub struct RewrapArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Backups whose data keys to re-wrap (comma-separated, repeatable).
    #[arg(
        short = 'b',
        long = "backup-id",
        value_name = "ID,...",
        value_delimiter = ',',
        required_unless_present = "all"
    )]
    pub backup_ids: Vec<String>,
    /// Every encrypted backup and snapshot in the location.
    #[arg(long, conflicts_with = "backup_ids")]
    pub all: bool,
    #[command(flatten)]
    pub format: FormatArgs,
}

/// `restore`, `three-phase-restore`
#[derive(Debug, Clone, Args)]
pub struct RestoreArgs {
    /// Restore configuration (YAML, `mode: restore`).
    #[arg(short = 'c', long, value_name = "FILE")]
    pub config: std::path::PathBuf,
    /// Validate and report only (as `restore.dry_run: true`).
    #[arg(long)]
    pub dry_run: bool,
    /// Name of this restore (default: derived from the configuration, so the same configuration resumes the same restore).
    #[arg(long)]
    pub restore_id: Option<String>,
    /// Restore only the named backup of an incremental chain, not the links before it (as `restore.chain: single`).
    #[arg(long)]
    pub single_link: bool,
    /// Write the restore's plan (what it writes and what it checks first) to FILE and print its hash; change nothing.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["approved_plan", "dry_run"])]
    pub plan_out: Option<std::path::PathBuf>,
    /// Restore exactly the plan in FILE (from --plan-out); refused with exit 15, nothing written, when the backup or the target no longer matches it.
    #[arg(long, value_name = "FILE")]
    pub approved_plan: Option<std::path::PathBuf>,
    /// The approved plan's hash (printed by --plan-out): a plan file with another hash is refused (exit 15).
    #[arg(long, value_name = "HASH", requires = "approved_plan", value_parser = parse_plan_hash)]
    pub plan_hash: Option<String>,
    /// Extra librdkafka client property for the target, repeatable (key=value).
    #[arg(long = "kafka-property", short = 'X', value_name = "KEY=VALUE")]
    pub kafka_properties: Vec<String>,
    /// Connect over TLS without verifying the broker's certificate or host name (never the
    /// default; refused as a -X property). Only for a broker whose certificate cannot be verified.
    #[arg(long)]
    pub insecure_skip_tls_verify: bool,
    #[command(flatten)]
    pub format: FormatArgs,
}

/// `validate-restore`
#[derive(Debug, Clone, Args)]
pub struct ValidateRestoreArgs {
    /// Restore configuration (YAML, `mode: restore`).
    #[arg(short = 'c', long, value_name = "FILE")]
    pub config: std::path::PathBuf,
    /// Also write the restore's plan to FILE and print its hash (`restore --approved-plan FILE` executes it).
    #[arg(long, value_name = "FILE")]
    pub plan_out: Option<std::path::PathBuf>,
    /// Report format.
    #[arg(short = 'f', long, value_enum, default_value_t = DescribeFormat::Text)]
    pub format: DescribeFormat,
}

/// Output of `show-offset-mapping`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MappingFormat {
    /// The boxed report.
    Text,
    /// A plain table per topic (partition, first and last offset, record count).
    Table,
    Json,
    Yaml,
    Csv,
}

/// `show-offset-mapping`
#[derive(Debug, Clone, Args)]
pub struct ShowMappingArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    /// The backup.
    #[arg(short = 'b', long)]
    pub backup_id: String,
    /// The restore whose mapping to show (default: the newest restore of the backup).
    #[arg(short = 'r', long)]
    pub restore_id: Option<String>,
    /// Report format: `text` (a box), `table` (plain, a table per topic), `json`, `yaml`, `csv`.
    #[arg(short = 'f', long, value_enum, default_value_t = MappingFormat::Text)]
    pub format: MappingFormat,
}

/// `drill`
#[derive(Debug, Clone, Args)]
pub struct DrillArgs {
    /// Drill configuration (YAML: a restore configuration's `target` and `storage`, and a `drill:` section).
    #[arg(short = 'c', long, value_name = "FILE")]
    pub config: std::path::PathBuf,
    /// The backup to drill, with its whole chain (default: the newest complete backup, of `drill.chain` when set).
    #[arg(short = 'b', long)]
    pub backup_id: Option<String>,
    /// Prefix of the scratch topics and consumer groups; {id} is the drill id (default drill-{id}-).
    #[arg(long, value_name = "PREFIX")]
    pub prefix: Option<String>,
    /// Name of this drill (default: generated from the time).
    #[arg(long, value_name = "ID")]
    pub drill_id: Option<String>,
    /// Extra librdkafka client property for the target, repeatable (key=value).
    #[arg(long = "kafka-property", short = 'X', value_name = "KEY=VALUE")]
    pub kafka_properties: Vec<String>,
    /// Connect over TLS without verifying the broker's certificate or host name (never the
    /// default; refused as a -X property). Only for a broker whose certificate cannot be verified.
    #[arg(long)]
    pub insecure_skip_tls_verify: bool,
    #[command(flatten)]
    pub format: FormatArgs,
}

/// `run`
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Task document (YAML or JSON) to run.
    #[arg(long, value_name = "FILE")]
    pub task: std::path::PathBuf,
    /// Where to write the compact JSON result (at most 4096 bytes); the full report goes to stdout.
    #[arg(long, env = crate::run::ENV_RESULT_FILE, default_value = crate::run::DEFAULT_RESULT_FILE, value_name = "PATH")]
    pub result_file: std::path::PathBuf,
}

/// `offsets export`
#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub groups: GroupArgs,
    /// Write the JSON here instead of standard output.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
    /// Also write a bash script applying the offsets with kafka-consumer-groups.sh.
    #[arg(long, value_name = "FILE")]
    pub restore_script: Option<std::path::PathBuf>,
    /// Groups read at once.
    #[arg(long, default_value_t = DEFAULT_CONCURRENCY, value_parser = parse_concurrency)]
    pub max_concurrent: usize,
}

impl KafkaArgs {
    /// The connection these flags describe.
    pub fn config(&self) -> crate::Result<KafkaConfig> {
        let a = self;
        let mut cfg = KafkaConfig::resolve(
            &a.bootstrap_servers,
            a.security_protocol,
            a.sasl_mechanism,
            TlsFiles {
                ca_location: a.ssl_ca_location.clone(),
                cert_location: a.ssl_certificate_location.clone(),
                key_location: a.ssl_key_location.clone(),
            },
            &a.kafka_properties,
        )?;
        cfg.request_timeout = Duration::from_secs(a.request_timeout);
        cfg.tls_insecure_skip_verify = a.insecure_skip_tls_verify;
        Ok(cfg)
    }
}

impl StorageEndpointArgs {
    /// The storage options these flags set.
    pub fn options(&self) -> StorageOptions {
        StorageOptions {
            s3_region: self.s3_region.clone(),
            s3_endpoint: self.s3_endpoint.clone(),
            s3_path_style: self.s3_path_style,
            allow_http: self.allow_http,
            encryption: self.encryption(),
        }
    }

    /// The encryption these flags set: `None` unless a key file or KMS key is named.
    pub fn encryption(&self) -> Option<tidemark_task::Encryption> {
        (self.encryption_key_file.is_some()
            || self.encryption_key_id.is_some()
            || self.kms_key_id.is_some())
        .then(|| tidemark_task::Encryption {
            key_file: self.encryption_key_file.clone(),
            key_id: self.encryption_key_id.clone(),
            kms_key_id: self.kms_key_id.clone(),
        })
    }
}

fn parse_protocol(s: &str) -> Result<SecurityProtocol, String> {
    s.parse().map_err(|e: crate::task::TaskError| e.to_string())
}

fn parse_mechanism(s: &str) -> Result<SaslMechanism, String> {
    s.parse().map_err(|e: crate::task::TaskError| e.to_string())
}

fn parse_plan_hash(s: &str) -> Result<String, String> {
    tidemark_task::validate_plan_hash("--plan-hash", s)
        .map(|()| s.to_string())
        .map_err(|e| e.to_string())
}

fn parse_concurrency(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=1000).contains(&n) => Ok(n),
        _ => Err(format!("'{s}' is not a number between 1 and 1000")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &str) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("tidemark").chain(args.split_whitespace()))
    }

    #[test]
    fn argument_table() {
        // (arguments, should parse)
        let table: &[(&str, bool)] = &[
            ("offset-rollback snapshot -p /s -g a,b --bootstrap-servers k:9092", true),
            ("offset-rollback snapshot --path /s --groups a --bootstrap-servers k:9092 -d x -f json", true),
            ("offset-rollback snapshot -p /s --all-groups --bootstrap-servers k:9092 -s snap-1", true),
            ("offset-rollback snapshot -p /s --groups-regex o.* --bootstrap-servers k:9092 --security-protocol SASL_SSL", true),
            ("offset-rollback snapshot -p /s -g a --bootstrap-servers k:9092 --security-protocol TLS", false),
            ("offset-rollback snapshot -p /s -g a --bootstrap-servers k:9092 --max-concurrent 0", false),
            ("offset-rollback snapshot -p /s -g a --bootstrap-servers k:9092 -f yaml", false),
            ("offset-rollback list -p /s", true),
            ("offset-rollback list", false),
            ("offset-rollback show -p /s -s snap-1 --format json", true),
            ("offset-rollback show -p /s", false),
            ("offset-rollback rollback -p /s -s x --bootstrap-servers k:9092 --verify", true),
            ("offset-rollback rollback -p /s -s x --bootstrap-servers k:9092 --verify false", true),
            ("offset-rollback rollback -p /s -s x --bootstrap-servers k:9092 --no-verify", true),
            ("offset-rollback rollback -p /s -s x --bootstrap-servers k:9092 --verify --no-verify", false),
            ("offset-rollback verify -p /s -s x --bootstrap-servers k:9092 --strict", true),
            ("offset-rollback delete -p /s -s x", true),
            ("offset-rollback import -p /s --kmap f.json", true),
            ("offsets export --bootstrap-servers k:9092 --restore-script r.sh -o o.json", true),
            ("offset-rollback explode -p /s", false),
            ("offset-reset plan --bootstrap-servers k:9092 -g a --topic t --to-earliest", true),
            ("offset-reset plan --bootstrap-servers k:9092 -g a --all-topics --to-latest -f json", true),
            ("offset-reset plan --bootstrap-servers k:9092 -g a --topic t:0,1 --topic u --shift-by -5", true),
            ("offset-reset plan --bootstrap-servers k:9092 -g a --topic t --to-earliest --to-latest", false),
            ("offset-reset plan --bootstrap-servers k:9092 -g a --topic t", false),
            ("offset-reset plan --bootstrap-servers k:9092 -g a --topic t --all-topics --to-earliest", false),
            ("offset-reset plan --bootstrap-servers k:9092 -g a --topic t --to-offset -1", false),
            ("offset-reset plan --bootstrap-servers k:9092 -g a --topic t --to-earliest --execute", false),
            ("offset-reset execute --bootstrap-servers k:9092 -g a --topic t --to-datetime 2024-12-01T10:00:00.000 --execute -p /s", true),
            ("offset-reset execute --bootstrap-servers k:9092 -g a --topic t --by-duration -PT1H --execute --dry-run", false),
            ("offset-reset execute --bootstrap-servers k:9092 --from-file plan.csv --execute --no-snapshot", true),
            ("offset-reset execute --bootstrap-servers k:9092 -g a --from-snapshot snap-1 -p /s --execute --max-retries 5", true),
            ("offset-reset script --bootstrap-servers k:9092 -g a --all-topics --to-earliest -o reset.sh", true),
            ("offset-reset execute --bootstrap-servers k:9092 -g a --topic t --to-latest -p /s --plan-out p.json", true),
            ("offset-reset execute --bootstrap-servers k:9092 -g a --topic t --to-latest --plan-out p.json --dry-run", false),
            ("offset-reset execute --bootstrap-servers k:9092 -p /s --approved-plan p.json", true),
            ("offset-reset execute --bootstrap-servers k:9092 -p /s --approved-plan p.json --plan-hash 0123456789abcdef", true),
            ("offset-reset execute --bootstrap-servers k:9092 -p /s --approved-plan p.json --plan-hash 0123", false),
            ("offset-reset execute --bootstrap-servers k:9092 -p /s --approved-plan p.json --to-latest", false),
            ("offset-reset execute --bootstrap-servers k:9092 -p /s --approved-plan p.json -g a", false),
            ("offset-reset execute --bootstrap-servers k:9092 -p /s --plan-hash 0123456789abcdef -g a --topic t --to-latest", false),
            ("offset-reset execute --bootstrap-servers k:9092 -p /s -g a --topic t", false),
            ("offset-reset-bulk --bootstrap-servers k:9092 -p /s -g a --topic t", false),
            ("offset-reset-bulk --bootstrap-servers k:9092 -p /s --approved-plan p.json -f json", true),
            ("offset-rollback rollback -p /s -s x --bootstrap-servers k:9092 --plan-out p.json", true),
            ("offset-rollback rollback -p /s --bootstrap-servers k:9092 --approved-plan p.json", true),
            ("offset-rollback rollback -p /s -s x --bootstrap-servers k:9092 --approved-plan p.json", false),
            ("offset-rollback rollback -p /s --bootstrap-servers k:9092", false),
            ("restore -c r.yaml --plan-out p.json", true),
            ("restore -c r.yaml --approved-plan p.json --plan-hash 0123456789abcdef", true),
            ("restore -c r.yaml --plan-out p.json --approved-plan q.json", false),
            ("validate-restore -c r.yaml --plan-out p.json", true),
            ("offset-reset-bulk -p /s -b backup-1 -g a,b --bootstrap-servers k:9092 --max-concurrent 100 -f json", true),
            ("offset-reset-bulk -p /s -g a --all-topics --to-earliest --bootstrap-servers k:9092 --execute --max-retries 101", false),
            ("backup --config backup.yaml", true),
            ("backup --bootstrap-servers k:9092 -p /s -t orders,payments --compression lz4 -b b1", true),
            ("list -p /s -f json", true),
            ("describe -p /s -b b1 -f yaml", true),
            ("describe -p /s", false),
            ("verify-backup -p /s -b b1 --deep", true),
            ("drill --config drill.yaml", true),
            ("drill -c drill.yaml -b b1 --prefix dr-{id}- --drill-id d1 -f json -X linger.ms=5", true),
            ("drill -b b1", false),
            ("drill -c drill.yaml -f yaml", false),
            ("run --task /etc/tidemark/task.yaml", true),
            ("run --task t.yaml --result-file /tmp/result.json", true),
            ("run", false),
            ("run --task t.yaml --format json", false),
        ];
        for (args, ok) in table {
            assert_eq!(parse(args).is_ok(), *ok, "{args}: {:?}", parse(args).err());
        }
    }

    #[test]
    fn verify_defaults_on_and_can_be_turned_off() {
        let get = |args: &str| match parse(args).map(|c| c.command) {
            Ok(Command::OffsetRollback(RollbackCommand::Rollback(a))) => a.verify && !a.no_verify,
            other => panic!("unexpected parse of {args}: {other:?}"),
        };
        assert!(get(
            "offset-rollback rollback -p /s -s x --bootstrap-servers k:9092"
        ));
        assert!(get(
            "offset-rollback rollback -p /s -s x --bootstrap-servers k:9092 --verify"
        ));
        assert!(!get(
            "offset-rollback rollback -p /s -s x --bootstrap-servers k:9092 --verify false"
        ));
        assert!(!get(
            "offset-rollback rollback -p /s -s x --bootstrap-servers k:9092 --no-verify"
        ));
    }

    #[test]
    fn reset_verbs_execute_unless_dry_run() {
        let dry = |args: &str| match parse(args).map(|c| c.command) {
            Ok(Command::OffsetReset(ResetCommand::Execute(a)) | Command::OffsetResetBulk(a)) => {
                a.dry_run
            }
            other => panic!("unexpected parse of {args}: {other:?}"),
        };
        let base = "-p /s -b b1 -g a --bootstrap-servers k:9092";
        assert!(!dry(&format!("offset-reset execute {base}")));
        assert!(!dry(&format!("offset-reset-bulk {base}")));
        assert!(!dry(&format!("offset-reset-bulk {base} --execute")));
        assert!(dry(&format!("offset-reset execute {base} --dry-run")));
        assert!(dry(&format!("offset-reset-bulk {base} --dry-run")));
    }

    #[test]
    fn run_result_file_defaults_to_the_termination_log() {
        match parse("run --task t.yaml").map(|c| c.command) {
            Ok(Command::Run(a)) => {
                assert_eq!(a.task, std::path::PathBuf::from("t.yaml"));
                // The environment may set TIDEMARK_RESULT_FILE; without it, the default applies.
                if std::env::var_os(crate::run::ENV_RESULT_FILE).is_none() {
                    assert_eq!(
                        a.result_file,
                        std::path::PathBuf::from("/dev/termination-log")
                    );
                }
            }
            other => panic!("unexpected parse: {other:?}"),
        }
    }

    #[test]
    fn clap_tree_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
