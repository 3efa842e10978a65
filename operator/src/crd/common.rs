//! Blocks shared by every Tidemark kind: how to reach Kafka (`kafkaCluster`), where data lives
//! (`storage`), and how the worker Job runs (`resources`, `job`), plus the status conditions.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// How to reach the Kafka cluster. Credentials are referenced, never inlined.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(self.securityProtocol in ['SASL_PLAINTEXT', 'SASL_SSL']) || has(self.saslSecret)").message("saslSecret is required when securityProtocol is SASL_PLAINTEXT or SASL_SSL").reason(Reason::FieldValueRequired))]
pub struct KafkaClusterSpec {
    /// Kafka brokers as host:port.
    #[schemars(length(min = 1))]
    #[x_kube(validation = Rule::new("self.all(s, s.matches('^[^\\\\s,]+:[0-9]{1,5}$'))").message("every bootstrap server must be host:port"))]
    pub bootstrap_servers: Vec<String>,

    /// PLAINTEXT (default), SSL, SASL_PLAINTEXT or SASL_SSL.
    #[serde(default)]
    pub security_protocol: SecurityProtocol,

    /// Secret with PEM files for TLS: CA and, for mutual TLS, client certificate and key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_secret: Option<TlsSecretRef>,

    /// Secret holding only the CA certificate, when it is kept apart from the client pair.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret: Option<SecretKeyRef>,

    /// Secret holding the SASL username and password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sasl_secret: Option<SaslSecretRef>,

    /// Extra librdkafka client properties (no secrets: those belong in Secrets).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
}

/// Kafka's `security.protocol`.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum SecurityProtocol {
    #[default]
    #[serde(rename = "PLAINTEXT")]
    Plaintext,
    #[serde(rename = "SSL")]
    Ssl,
    #[serde(rename = "SASL_PLAINTEXT")]
    SaslPlaintext,
    #[serde(rename = "SASL_SSL")]
    SaslSsl,
}

impl SecurityProtocol {
    /// The Kafka spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }
}

/// A Secret with TLS material (keys name the entries; defaults follow cert-manager).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsSecretRef {
    /// Secret name, in the resource's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Entry with the CA certificate (default `ca.crt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_key: Option<String>,
    /// Entry with the client certificate for mutual TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_key: Option<String>,
    /// Entry with the client private key for mutual TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_key: Option<String>,
}

/// One entry of a Secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Secret name, in the resource's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Entry name (default `ca.crt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// A Secret with SASL credentials.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SaslSecretRef {
    /// Secret name, in the resource's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (default SCRAM-SHA-512).
    #[serde(default)]
    pub mechanism: SaslMechanism,
    /// Entry with the username (default `username`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_key: Option<String>,
    /// Entry with the password (default `password`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_key: Option<String>,
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
    /// pvc, s3, azure, gcs or configMap (`configmap` is accepted as an alias).
    pub storage_type: StorageType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pvc: Option<PvcStorage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Storage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure: Option<AzureStorage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gcs: Option<GcsStorage>,
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
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PvcStorage {
    /// Claim name, in the resource's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub claim_name: String,
    /// Folder inside the volume (default: its root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[^.][^\x00]*$"))]
    pub path: Option<String>,
}

/// An S3 bucket (or an S3-compatible store).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3Storage {
    #[schemars(length(min = 3, max = 63))]
    pub bucket: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Custom endpoint URL (MinIO, Ceph, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Path-style requests (endpoint/bucket/key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_style: Option<bool>,
    /// Allow a plain-HTTP endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_http: Option<bool>,
    /// Secret with `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` entries (default: the pod's
    /// identity, e.g. IRSA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<CredentialsSecretRef>,
}

/// An Azure Blob container.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AzureStorage {
    #[schemars(length(min = 3, max = 63))]
    pub container: String,
    /// Storage account name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Custom endpoint URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Secret with an `AZURE_STORAGE_ACCOUNT_KEY` (or SAS) entry (default: workload identity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<CredentialsSecretRef>,
}

/// A Google Cloud Storage bucket.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GcsStorage {
    #[schemars(length(min = 3, max = 222))]
    pub bucket: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Secret with a service-account JSON key (default: workload identity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<CredentialsSecretRef>,
}

/// A ConfigMap holding small documents (offset snapshots), one entry per document.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapStorage {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// A Secret whose entries are exposed to the worker as environment variables.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsSecretRef {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// Options of the worker Job.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobOptions {
    /// Retries before the Job is marked failed (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub backoff_limit: Option<i32>,
    /// Upper bound on the Job's run time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub active_deadline_seconds: Option<i64>,
    /// How long a finished Job is kept (default 86400).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub ttl_seconds_after_finished: Option<i32>,
}

/// Compute resources of the worker container.
pub type Resources = Option<ResourceRequirements>;
