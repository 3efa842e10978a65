//! Blocks shared by every Tidemark kind: how to reach Kafka (`kafkaCluster`), where data lives
//! (`storage`), and how the worker Job runs (`resources`, `job`), plus the status conditions.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// Names of Secrets, ConfigMaps and PersistentVolumeClaims: a DNS-1123 subdomain.
pub const DNS_SUBDOMAIN_PATTERN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// Keys of a Secret or ConfigMap entry.
pub const DATA_KEY_PATTERN: &str = r"^[-._a-zA-Z0-9]+$";

/// How to reach the Kafka cluster. Credentials are referenced, never inlined.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(self.securityProtocol in ['SASL_PLAINTEXT', 'SASL_SSL']) || has(self.saslSecret)").message("saslSecret is required when securityProtocol is SASL_PLAINTEXT or SASL_SSL").reason(Reason::FieldValueRequired))]
#[x_kube(validation = Rule::new("!has(self.saslSecret) || self.securityProtocol in ['SASL_PLAINTEXT', 'SASL_SSL']").message("saslSecret is only used with securityProtocol SASL_PLAINTEXT or SASL_SSL; set securityProtocol").reason(Reason::FieldValueInvalid))]
#[x_kube(validation = Rule::new("!(has(self.tlsSecret) || has(self.caSecret)) || self.securityProtocol in ['SSL', 'SASL_SSL']").message("tlsSecret and caSecret are only used with securityProtocol SSL or SASL_SSL; set securityProtocol").reason(Reason::FieldValueInvalid))]
#[x_kube(validation = Rule::new("!has(self.tlsInsecureSkipVerify) || !self.tlsInsecureSkipVerify || self.securityProtocol in ['SSL', 'SASL_SSL']").message("tlsInsecureSkipVerify is only used with securityProtocol SSL or SASL_SSL").reason(Reason::FieldValueInvalid))]
pub struct KafkaClusterSpec {
    /// Kafka brokers as host:port (at most 100).
    #[schemars(length(min = 1, max = 100), inner(length(min = 1, max = 255)))]
    #[x_kube(validation = Rule::new("self.all(s, s.matches('^[^\\\\s,/]+:[0-9]{1,5}$'))").message("every bootstrap server must be host:port"))]
    pub bootstrap_servers: Vec<String>,

    /// PLAINTEXT (default), SSL, SASL_PLAINTEXT or SASL_SSL.
    #[serde(default)]
    pub security_protocol: SecurityProtocol,

    /// Secret with PEM files for TLS: CA and, for mutual TLS, client certificate and key
    /// (mounted read-only into the worker at `/etc/tidemark/tls`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_secret: Option<TlsSecretRef>,

    /// Secret holding only the CA certificate, when it is kept apart from the client pair
    /// (mounted at `/etc/tidemark/ca`); when set, it is the CA used, not `tlsSecret`'s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret: Option<SecretKeyRef>,

    /// Secret holding the SASL username and password (given to the worker as the
    /// `KAFKA_USERNAME` / `KAFKA_PASSWORD` environment variables, never written anywhere).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sasl_secret: Option<SaslSecretRef>,

    /// Extra librdkafka client properties. Keys that carry secrets (`sasl.password`,
    /// `ssl.key.password`, …) are refused: those belong in Secrets. So are keys that would
    /// switch a guarantee off or load code (`enable.idempotence`, `acks`, `isolation.level`,
    /// `enable.ssl.certificate.verification`, `plugin.library.paths`, …; see the docs).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 100))]
    pub properties: BTreeMap<String, String>,

    /// Connect over TLS without verifying the broker's certificate and host name. Only for a
    /// broker whose certificate cannot be verified; every run raises a Warning Event.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tls_insecure_skip_verify: bool,
}

/// Kafka's `security.protocol`: the task contract's own type (one definition for the CRD, the
/// task and the worker).
pub use tidemark_task::SecurityProtocol;

/// A Secret with TLS material (keys name the entries; defaults follow cert-manager).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.certKey) == has(self.keyKey)").message("tlsSecret.certKey and tlsSecret.keyKey go together (mutual TLS needs both)").reason(Reason::FieldValueRequired))]
pub struct TlsSecretRef {
    /// Secret name, in the resource's namespace.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN))]
    pub name: String,
    /// Entry with the CA certificate (default `ca.crt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = DATA_KEY_PATTERN))]
    pub ca_key: Option<String>,
    /// Entry with the client certificate for mutual TLS (e.g. `tls.crt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = DATA_KEY_PATTERN))]
    pub cert_key: Option<String>,
    /// Entry with the client private key for mutual TLS (e.g. `tls.key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = DATA_KEY_PATTERN))]
    pub key_key: Option<String>,
}

impl TlsSecretRef {
    /// The CA entry, `ca.crt` unless set.
    pub fn ca_key_or_default(&self) -> &str {
        self.ca_key.as_deref().unwrap_or(DEFAULT_CA_KEY)
    }
}

/// Default entry of a CA certificate in a Secret.
pub const DEFAULT_CA_KEY: &str = "ca.crt";
/// Default entry of the SASL username in a Secret.
pub const DEFAULT_USERNAME_KEY: &str = "username";
/// Default entry of the SASL password in a Secret.
pub const DEFAULT_PASSWORD_KEY: &str = "password";

/// One entry of a Secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Secret name, in the resource's namespace.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN))]
    pub name: String,
    /// Entry name (default `ca.crt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = DATA_KEY_PATTERN))]
    pub key: Option<String>,
}

impl SecretKeyRef {
    /// The entry, `ca.crt` unless set.
    pub fn key_or_default(&self) -> &str {
        self.key.as_deref().unwrap_or(DEFAULT_CA_KEY)
    }
}

/// A Secret with SASL credentials.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SaslSecretRef {
    /// Secret name, in the resource's namespace.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN))]
    pub name: String,
    /// PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (default SCRAM-SHA-512).
    #[serde(default)]
    pub mechanism: SaslMechanism,
    /// Entry with the username (default `username`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = DATA_KEY_PATTERN))]
    pub username_key: Option<String>,
    /// Entry with the password (default `password`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = DATA_KEY_PATTERN))]
    pub password_key: Option<String>,
}

impl SaslSecretRef {
    /// The username entry, `username` unless set.
    pub fn username_key_or_default(&self) -> &str {
        self.username_key.as_deref().unwrap_or(DEFAULT_USERNAME_KEY)
    }

    /// The password entry, `password` unless set.
    pub fn password_key_or_default(&self) -> &str {
        self.password_key.as_deref().unwrap_or(DEFAULT_PASSWORD_KEY)
    }
}

/// Kafka's `sasl.mechanism`.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum SaslMechanism {
    #[serde(rename = "PLAIN")]
    Plain,
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    #[default]
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

impl SaslMechanism {
    /// The Kafka spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// Where a task reads and writes its data.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.storageType != 's3' || has(self.s3)").message("storage.s3 is required when storageType is s3").reason(Reason::FieldValueRequired))]
#[x_kube(validation = Rule::new("self.storageType != 'azure' || has(self.azure)").message("storage.azure is required when storageType is azure").reason(Reason::FieldValueRequired))]
#[x_kube(validation = Rule::new("self.storageType != 'gcs' || has(self.gcs)").message("storage.gcs is required when storageType is gcs").reason(Reason::FieldValueRequired))]
#[x_kube(validation = Rule::new("self.storageType != 'pvc' || has(self.pvc)").message("storage.pvc is required when storageType is pvc").reason(Reason::FieldValueRequired))]
#[x_kube(validation = Rule::new("!(self.storageType in ['configMap', 'configmap']) || has(self.configMap)").message("storage.configMap is required when storageType is configMap").reason(Reason::FieldValueRequired))]
pub struct StorageSpec {
    /// pvc, s3, azure, gcs or configMap (`configmap` is accepted as an alias). Only the block
    /// of the chosen type is used; the others may be present and are ignored.
    pub storage_type: StorageType,
    /// A PersistentVolumeClaim, mounted into the worker at `/var/lib/tidemark`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pvc: Option<PvcStorage>,
    /// An S3 bucket (or an S3-compatible store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Storage>,
    /// An Azure Blob Storage container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure: Option<AzureStorage>,
    /// A Google Cloud Storage bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gcs: Option<GcsStorage>,
    /// A ConfigMap in the resource's namespace, one `<snapshotId>.json` entry per snapshot (for
    /// small snapshots: a ConfigMap holds at most 1 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<ConfigMapStorage>,
}

/// Storage backends.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum StorageType {
    Pvc,
    S3,
    Azure,
    Gcs,
    ConfigMap,
    /// Alias of `configMap`, as some documents spell it.
    #[serde(rename = "configmap")]
    ConfigMapLower,
}

impl StorageType {
    /// `configmap` and `configMap` are one backend.
    pub fn normalized(self) -> StorageType {
        match self {
            StorageType::ConfigMapLower => StorageType::ConfigMap,
            other => other,
        }
    }
}

/// A PersistentVolumeClaim mounted into the worker.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PvcStorage {
    /// Claim name, in the resource's namespace.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN))]
    pub claim_name: String,
    /// Folder inside the volume, relative (default: its root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 1024),
        regex(pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._/-]*$")
    )]
    #[x_kube(validation = Rule::new("!self.contains('..')").message("storage.pvc.path must not contain '..'"))]
    pub path: Option<String>,
}

/// An S3 bucket (or an S3-compatible store).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.endpoint) || !self.endpoint.startsWith('http://') || (has(self.allowHttp) && self.allowHttp)").message("storage.s3.allowHttp must be true to use a plain-HTTP endpoint").reason(Reason::FieldValueInvalid))]
pub struct S3Storage {
    /// Bucket name.
    #[schemars(length(min = 3, max = 63))]
    pub bucket: String,
    /// Region (default: the worker's `AWS_REGION`, else `us-east-1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub region: Option<String>,
    /// Folder inside the bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub prefix: Option<String>,
    /// Custom endpoint URL (MinIO, Ceph, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 8, max = 2048), regex(pattern = r"^https?://[^\s]+$"))]
    pub endpoint: Option<String>,
    /// Path-style requests (endpoint/bucket/key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_style: Option<bool>,
    /// Allow a plain-HTTP endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_http: Option<bool>,
    /// Secret with `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` entries, all given to the worker
    /// as environment variables (default: the pod's identity, e.g. IRSA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<CredentialsSecretRef>,
}

/// An Azure Blob container.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AzureStorage {
    /// Container name.
    #[schemars(length(min = 3, max = 63))]
    pub container: String,
    /// Storage account name (given to the worker as `AZURE_STORAGE_ACCOUNT_NAME`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-z0-9]{3,24}$"))]
    pub account_name: Option<String>,
    /// Folder inside the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub prefix: Option<String>,
    /// Custom endpoint URL (given to the worker as `AZURE_STORAGE_ENDPOINT`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 8, max = 2048), regex(pattern = r"^https?://[^\s]+$"))]
    pub endpoint: Option<String>,
    /// Secret with an `AZURE_STORAGE_ACCOUNT_KEY` (or `AZURE_STORAGE_SAS_KEY`) entry (default:
    /// workload identity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<CredentialsSecretRef>,
}

/// A Google Cloud Storage bucket.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GcsStorage {
    /// Bucket name.
    #[schemars(length(min = 3, max = 222))]
    pub bucket: String,
    /// Folder inside the bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub prefix: Option<String>,
    /// Secret with a `GOOGLE_SERVICE_ACCOUNT_KEY` entry holding a service-account JSON key
    /// (default: workload identity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<CredentialsSecretRef>,
}

/// A ConfigMap holding small documents (offset snapshots), one entry per document.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapStorage {
    /// ConfigMap name, in the resource's namespace (created by the worker if missing).
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN))]
    pub name: String,
}

/// A Secret whose entries are exposed to the worker as environment variables.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsSecretRef {
    /// Secret name, in the resource's namespace.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN))]
    pub name: String,
}

/// A key id: the name of one key in the encryption Secret (1 to 128 letters, digits, `-`, `_`
/// and `.`, not starting with `.`; [`tidemark_task::check_key_id`]).
pub const KEY_ID_PATTERN: &str = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$";

/// Envelope encryption of what the worker stores and reads (`spec.encryption`): each backup
/// (or snapshot) gets its own data key, wrapped by a key-encryption key from a Secret or AWS
/// KMS. The operator only names the Secret: the worker Job mounts it read-only; key material
/// never appears in the task, the Job or the status.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.secretRef) || has(self.kmsKeyId)").message("encryption needs secretRef (a Secret of keys), kmsKeyId (an AWS KMS key) or both").reason(Reason::FieldValueRequired))]
pub struct EncryptionSpec {
    /// A Secret of key-encryption keys, mounted read-only into the worker at
    /// `/etc/tidemark/encryption`: one entry per key, named by its key id, holding 32 bytes
    /// (raw, 64 hex digits or base64). Keep the old keys in it after a rotation: backups
    /// made with them stay readable while their key is there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<EncryptionSecretRef>,

    /// An AWS KMS key (key id, key ARN, alias name `alias/…` or alias ARN) that makes and
    /// unwraps data keys, reached with the worker's AWS credentials (IRSA: the worker service
    /// account's role). With `secretRef` too, KMS wraps new data keys and the Secret still
    /// unwraps backups made before the move to KMS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048), regex(pattern = r"^\S+$"))]
    pub kms_key_id: Option<String>,
}

impl EncryptionSpec {
    /// The key this configuration wraps new data keys with, spelled as the worker reports it
    /// (`aws-kms:<kmsKeyId>`, else `secretRef.keyId`); `None` when that is the single key of
    /// the Secret, whose name the operator does not know (it never reads the Secret).
    pub fn key_id(&self) -> Option<String> {
        match (&self.kms_key_id, &self.secret_ref) {
            (Some(kms), _) => Some(format!("aws-kms:{kms}")),
            (None, Some(secret)) => secret.key_id.clone(),
            (None, None) => None,
        }
    }
}

/// The Secret holding encryption keys.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EncryptionSecretRef {
    /// Secret name, in the resource's namespace.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN))]
    pub name: String,
    /// The entry (key id) that wraps new data keys; may be left out when the Secret holds one
    /// key. Every entry unwraps the backups it wrapped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128), regex(pattern = KEY_ID_PATTERN))]
    pub key_id: Option<String>,
}

/// Options of the worker Job.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobOptions {
    /// Retries before the Job is marked failed (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub backoff_limit: Option<i32>,
    /// Upper bound on the Job's run time, in seconds (default: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub active_deadline_seconds: Option<i64>,
    /// How long a finished Job is kept, in seconds (default 86400).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub ttl_seconds_after_finished: Option<i32>,
}

/// Compute resources of the worker container.
pub type Resources = Option<ResourceRequirements>;
