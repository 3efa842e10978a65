//! `tidemark backup --config FILE`: a YAML configuration in the style of the restore
//! configuration (`mode: backup`, `source`, `storage`, `backup`), turned into the same
//! [`BackupTask`] the operator sends, so both paths run the same code.
//!
//! ```yaml
//! mode: backup
//! backup_id: nightly-2024-12-01          # optional; generated when absent
//! source:
//!   bootstrap_servers: [kafka-1:9092, kafka-2:9092]
//!   security:
//!     security_protocol: SASL_SSL
//!     sasl_mechanism: SCRAM-SHA-512
//!     sasl_username: ${KAFKA_USERNAME}     # ${VAR} is read from the environment
//!     sasl_password: ${KAFKA_PASSWORD}
//!     ssl_ca_location: /etc/ssl/ca.pem
//!   topics:
//!     include: [orders, "payments-*", "~events-\\d+"]
//!     exclude: ["*-internal"]
//! storage:
//!   backend: s3                            # filesystem | s3 | gcs | azure
//!   bucket: kafka-backups
//!   prefix: prod
//!   region: eu-west-1
//! backup:
//!   mode: one_shot                         # one_shot | continuous | incremental
//!   chain: nightly                         # incremental backups continue this chain
//!   compression: zstd                      # zstd | lz4 | none
//!   compression_level: 3
//!   segment_max_bytes: 8388608
//!   max_concurrent_partitions: 32
//!   rate_limit_records_per_sec: 50000
//!   capture_offsets: true
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::task::{
    BackupMode, BackupTask, Compression, KafkaTarget, StorageTarget, TopicSelection,
};

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    mode: String,
    #[serde(default)]
    backup_id: Option<String>,
    source: Source,
    storage: StorageSection,
    #[serde(default)]
    backup: BackupSection,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Source {
    bootstrap_servers: Vec<String>,
    #[serde(default)]
    security: Security,
    topics: TopicSelectionYaml,
    /// Extra librdkafka properties.
    #[serde(default)]
    properties: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Security {
    #[serde(default)]
    pub(crate) security_protocol: Option<String>,
    #[serde(default)]
    pub(crate) sasl_mechanism: Option<String>,
    #[serde(default)]
    pub(crate) sasl_username: Option<String>,
    #[serde(default)]
    pub(crate) sasl_password: Option<String>,
    #[serde(default)]
    pub(crate) ssl_ca_location: Option<String>,
    #[serde(default)]
    pub(crate) ssl_certificate_location: Option<String>,
    #[serde(default)]
    pub(crate) ssl_key_location: Option<String>,
    /// Connect over TLS without verifying the broker's certificate and host name.
    #[serde(default)]
    pub(crate) tls_insecure_skip_verify: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TopicSelectionYaml {
    #[serde(default)]
    pub(crate) include: Vec<String>,
    #[serde(default)]
    pub(crate) exclude: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StorageSection {
    pub(crate) backend: String,
    #[serde(default)]
    pub(crate) path: Option<String>,
    #[serde(default)]
    pub(crate) bucket: Option<String>,
    #[serde(default)]
    pub(crate) container: Option<String>,
    #[serde(default)]
    pub(crate) prefix: Option<String>,
    #[serde(default)]
    pub(crate) region: Option<String>,
    #[serde(default)]
    pub(crate) endpoint: Option<String>,
    #[serde(default)]
    pub(crate) path_style: bool,
    #[serde(default)]
    pub(crate) allow_http: bool,
    /// Envelope encryption of what is stored.
    #[serde(default)]
    pub(crate) encryption: Option<EncryptionSection>,
}

/// `storage.encryption`: where the key-encryption keys come from.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EncryptionSection {
    /// A key file, or a directory of them (one per key, named by its key id).
    #[serde(default)]
    pub(crate) key_file: Option<String>,
    /// The key of `key_file` that wraps new data keys.
    #[serde(default)]
    pub(crate) key_id: Option<String>,
    /// An AWS KMS key id, ARN or alias.
    #[serde(default)]
    pub(crate) kms_key_id: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct BackupSection {
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    chain: Option<String>,
    #[serde(default)]
    compression: Option<String>,
    #[serde(default)]
    compression_level: Option<i32>,
    #[serde(default)]
    segment_max_bytes: Option<u64>,
    #[serde(default)]
    segment_max_interval_ms: Option<u64>,
    #[serde(default)]
    max_concurrent_partitions: Option<usize>,
    #[serde(default)]
    rate_limit_records_per_sec: Option<u64>,
    #[serde(default)]
    rate_limit_bytes_per_sec: Option<u64>,
    #[serde(default)]
    capture_offsets: Option<bool>,
    #[serde(default)]
    shard_index: Option<u32>,
    #[serde(default)]
    shard_count: Option<u32>,
}

/// A parsed configuration: the task, and SASL credentials when the file gives them.
#[derive(Debug, Clone)]
pub struct BackupConfig {
    pub task: BackupTask,
    pub credentials: Option<(String, String)>,
}

/// Parses a backup configuration; `file` names it in errors. `${VAR}` in credentials is read
/// from `env`.
pub fn parse_config(
    text: &str,
    file: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<BackupConfig> {
    let bad = |reason: String| Error::Malformed {
        kind: "backup configuration",
        file: file.to_string(),
        reason,
    };
    crate::limits::check_size(text.len(), crate::limits::MAX_CONFIG_BYTES).map_err(bad)?;
    crate::limits::check_yaml_expansion(text).map_err(bad)?;
    let f: File = serde_yaml_ng::from_str(text).map_err(|e| bad(e.to_string()))?;
    if f.mode != "backup" {
        return Err(bad(format!(
            "mode is '{}'; a backup configuration has `mode: backup`",
            f.mode
        )));
    }
    let storage = storage_target(&f.storage).map_err(bad)?;
    let mode = match f.backup.mode.as_deref() {
        None => BackupMode::OneShot,
        Some(m) => parse_mode(m).map_err(bad)?,
    };
    let compression = match f.backup.compression.as_deref() {
        None => Compression::Zstd,
        Some(c) => parse_compression(c).map_err(bad)?,
    };
    let (kafka, credentials) = kafka_target(
        &f.source.bootstrap_servers,
        &f.source.security,
        &f.source.properties,
        "source",
        &env,
    )
    .map_err(bad)?;
    let task = BackupTask {
        kafka,
        storage,
        backup_id: f.backup_id.clone(),
        topics: TopicSelection {
            include: f.source.topics.include.clone(),
            exclude: f.source.topics.exclude.clone(),
        },
        mode,
        chain: f.backup.chain.clone(),
        compression,
        compression_level: f.backup.compression_level,
        max_concurrent_partitions: f.backup.max_concurrent_partitions,
        rate_limit_records_per_sec: f.backup.rate_limit_records_per_sec,
        rate_limit_bytes_per_sec: f.backup.rate_limit_bytes_per_sec,
        segment_max_bytes: f.backup.segment_max_bytes,
        segment_max_interval_ms: f.backup.segment_max_interval_ms,
        capture_offsets: f.backup.capture_offsets.unwrap_or(true),
        shard_index: f.backup.shard_index,
        shard_count: f.backup.shard_count.unwrap_or(1),
    };
    Ok(BackupConfig { task, credentials })
}

/// The cluster section of a configuration file (`source` of a backup, `target` of a restore):
/// the [`KafkaTarget`], and SASL credentials when the file gives them (`${VAR}` read from
/// `env`). `section` names the section in errors.
pub(crate) fn kafka_target(
    servers: &[String],
    sec: &Security,
    properties: &BTreeMap<String, String>,
    section: &str,
    env: &impl Fn(&str) -> Option<String>,
) -> std::result::Result<(KafkaTarget, Option<(String, String)>), String> {
    let credentials = match (&sec.sasl_username, &sec.sasl_password) {
        (None, None) => None,
        (Some(u), Some(p)) => Some((
            expand(u, env).map_err(|e| format!("{section}.security.sasl_username: {e}"))?,
            expand(p, env).map_err(|e| format!("{section}.security.sasl_password: {e}"))?,
        )),
        _ => {
            return Err(format!(
                "{section}.security: give both sasl_username and sasl_password, or neither (then KAFKA_USERNAME and KAFKA_PASSWORD are used)"
            ))
        }
    };
    if let Some((key, why)) = properties
        .keys()
        .find_map(|k| crate::kafka::properties::refusal(k).map(|why| (k, why)))
    {
        return Err(format!("{section}.properties['{key}'] {why}"));
    }
    let kafka = KafkaTarget {
        bootstrap_servers: servers.to_vec(),
        security_protocol: sec
            .security_protocol
            .clone()
            .unwrap_or_else(|| "PLAINTEXT".into()),
        sasl_mechanism: sec.sasl_mechanism.clone(),
        ssl_ca_location: sec.ssl_ca_location.clone(),
        ssl_certificate_location: sec.ssl_certificate_location.clone(),
        ssl_key_location: sec.ssl_key_location.clone(),
        properties: properties.clone(),
        tls_insecure_skip_verify: sec.tls_insecure_skip_verify,
    };
    Ok((kafka, credentials))
}

/// `one_shot`, `one-shot`, `oneShot`; `continuous`; `incremental`.
pub fn parse_mode(m: &str) -> std::result::Result<BackupMode, String> {
    m.parse()
}

/// `zstd`, `lz4` or `none`.
pub fn parse_compression(c: &str) -> std::result::Result<Compression, String> {
    c.parse()
}

/// A `${VAR}` reference read from `env`, or the literal text.
pub(crate) fn expand(
    value: &str,
    env: &impl Fn(&str) -> Option<String>,
) -> std::result::Result<String, String> {
    match value.strip_prefix("${").and_then(|v| v.strip_suffix('}')) {
        Some(var) => env(var).ok_or_else(|| format!("environment variable {var} is not set")),
        None => Ok(value.to_string()),
    }
}

pub(crate) fn storage_target(s: &StorageSection) -> std::result::Result<StorageTarget, String> {
    let need = |v: &Option<String>, what: &str| {
        v.clone()
            .filter(|x| !x.trim().is_empty())
            .ok_or_else(|| format!("storage.{what} is required for backend '{}'", s.backend))
    };
    let with_prefix = |scheme: &str, bucket: String| match s.prefix.as_deref() {
        Some(p) if !p.trim_matches('/').is_empty() => {
            format!("{scheme}://{bucket}/{}", p.trim_matches('/'))
        }
        _ => format!("{scheme}://{bucket}"),
    };
    let url = match s.backend.as_str() {
        "filesystem" | "pvc" | "local" => need(&s.path, "path")?,
        "s3" => with_prefix("s3", need(&s.bucket, "bucket")?),
        "gcs" => with_prefix("gs", need(&s.bucket, "bucket")?),
        "azure" => with_prefix("az", need(&s.container, "container")?),
        other => {
            return Err(format!(
                "storage.backend '{other}' is not one of filesystem, s3, gcs, azure"
            ))
        }
    };
    Ok(StorageTarget::Location {
        url,
        s3_region: s.region.clone(),
        s3_endpoint: s.endpoint.clone(),
        s3_path_style: s.path_style,
        allow_http: s.allow_http,
        encryption: s.encryption.as_ref().map(|e| tidemark_task::Encryption {
            key_file: e.key_file.clone(),
            key_id: e.key_id.clone(),
            kms_key_id: e.kms_key_id.clone(),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
mode: backup
backup_id: nightly-1
source:
  bootstrap_servers: [kafka-1:9092]
  security:
    security_protocol: SASL_SSL
    sasl_mechanism: SCRAM-SHA-512
    sasl_username: backup-user
    sasl_password: ${KAFKA_PASSWORD}
  topics:
    include: [orders, "payments-*"]
    exclude: ["*-internal"]
storage:
  backend: s3
  bucket: kafka-backups
  prefix: /prod/
  region: eu-west-1
backup:
  mode: incremental
  chain: nightly
  compression: lz4
  max_concurrent_partitions: 8
"#;

    fn env(var: &str) -> Option<String> {
        (var == "KAFKA_PASSWORD").then(|| "s3cret".to_string())
    }

    #[test]
    fn a_full_configuration_becomes_a_valid_task() {
        let c = parse_config(FULL, "backup.yaml", env).expect("parses");
        c.task.validate().expect("valid task");
        assert_eq!(c.credentials, Some(("backup-user".into(), "s3cret".into())));
        assert_eq!(c.task.mode, BackupMode::Incremental);
        assert_eq!(c.task.compression, Compression::Lz4);
        assert_eq!(c.task.topics.include, vec!["orders", "payments-*"]);
        match &c.task.storage {
            StorageTarget::Location { url, s3_region, .. } => {
                assert_eq!(url, "s3://kafka-backups/prod");
                assert_eq!(s3_region.as_deref(), Some("eu-west-1"));
            }
            other => panic!("{other:?}"),
        }
        assert!(
            !format!("{:?}", c.task).contains("s3cret"),
            "no secret in the task"
        );
    }

    #[test]
    fn mistakes_name_the_file_and_the_field() {
        let cases = [
            (
                FULL.replace("mode: backup", "mode: restore"),
                "mode is 'restore'",
            ),
            (
                FULL.replace("backend: s3", "backend: ftp"),
                "storage.backend 'ftp'",
            ),
            (
                FULL.replace("bucket: kafka-backups", "bukket: x"),
                "unknown field `bukket`",
            ),
            (
                FULL.replace("compression: lz4", "compression: gzip"),
                "compression 'gzip'",
            ),
            (
                FULL.replace("mode: incremental", "mode: sometimes"),
                "backup mode 'sometimes'",
            ),
            (
                FULL.replace("${KAFKA_PASSWORD}", "${NOPE}"),
                "environment variable NOPE is not set",
            ),
        ];
        for (text, want) in cases {
            let err = parse_config(&text, "backup.yaml", env).expect_err(want);
            let msg = err.to_string();
            assert!(
                msg.contains("backup.yaml") && msg.contains(want),
                "{want}: {msg}"
            );
            assert_eq!(err.exit_code(), 8);
        }
    }

    #[test]
    fn backends_map_to_locations() {
        let base =
            "mode: backup\nsource:\n  bootstrap_servers: [k:9092]\n  topics: {include: [t]}\n";
        for (storage, url) in [
            ("{backend: filesystem, path: /data}", "/data"),
            ("{backend: gcs, bucket: b}", "gs://b"),
            ("{backend: azure, container: c, prefix: p}", "az://c/p"),
        ] {
            let c = parse_config(&format!("{base}storage: {storage}\n"), "f", env).expect(storage);
            assert!(
                matches!(&c.task.storage, StorageTarget::Location { url: u, .. } if u == url),
                "{storage}"
            );
            assert_eq!(c.task.mode, BackupMode::OneShot);
            assert!(c.task.capture_offsets);
        }
    }
}
