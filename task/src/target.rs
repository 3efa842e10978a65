//! Where a task connects to: the Kafka cluster and the storage.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::enums::{SaslMechanism, SecurityProtocol};
use crate::field::{field_error, field_invalid};
use crate::Result;

/// How to reach Kafka; secrets come from the environment and mounted files only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KafkaTarget {
    pub bootstrap_servers: Vec<String>,
    /// PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.
    pub security_protocol: String,
    /// PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, when SASL is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sasl_mechanism: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_ca_location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_certificate_location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_key_location: Option<String>,
    /// Extra librdkafka properties; secret-bearing keys and those that would switch a
    /// guarantee off or load code are refused.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
    /// Connect over TLS without verifying the broker's certificate and host name.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tls_insecure_skip_verify: bool,
}

/// Where snapshots are kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
pub enum StorageTarget {
    /// A `--path` style location: directory (e.g. a mounted PVC), s3://, gs://, az://.
    Location {
        url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        s3_region: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        s3_endpoint: Option<String>,
        #[serde(default)]
        s3_path_style: bool,
        #[serde(default)]
        allow_http: bool,
        /// Envelope encryption of what is stored there (absent: stored in the clear).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        encryption: Option<Encryption>,
    },
    /// A ConfigMap, one `<snapshotId>.json` entry per snapshot.
    ConfigMap { namespace: String, name: String },
}

/// Where the keys that protect a location's data come from. New data keys are wrapped by
/// `kmsKeyId` when it is set, else by `keyId` of `keyFile`; a data key wrapped by either
/// source (a backup written before a move from one to the other) is unwrapped by it as long
/// as it is given. Key material never travels in a task: `keyFile` names a mounted file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Encryption {
    /// A key file, or a directory of them (a mounted Secret): each file is one key-encryption
    /// key, named by its key id, holding 32 bytes (raw, 64 hex digits or base64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<String>,
    /// The key of `keyFile` that wraps new data keys; may be left out when it holds one key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// An AWS KMS key (id, ARN, alias name or alias ARN) that makes and unwraps data keys,
    /// reached with the standard AWS credential chain (IRSA included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
}

/// The longest key id accepted (a file name).
pub const MAX_KEY_ID_LEN: usize = 128;

impl Encryption {
    /// Checks that a key source is given and that names are plausible; `field` is the path of
    /// this value in the task (e.g. `storage.encryption`).
    pub fn validate(&self, field: &str) -> Result<()> {
        if self.key_file.is_none() && self.kms_key_id.is_none() {
            return Err(field_error(
                field,
                "names no key: set keyFile (a mounted key file or Secret) or kmsKeyId",
            ));
        }
        if let Some(f) = &self.key_file {
            if f.trim().is_empty() {
                return Err(field_error(&format!("{field}.keyFile"), "is empty"));
            }
        }
        if let Some(id) = &self.key_id {
            if self.key_file.is_none() {
                return Err(field_error(
                    &format!("{field}.keyId"),
                    "names a key of keyFile, which is not set",
                ));
            }
            if let Err(why) = check_key_id(id) {
                return Err(field_error(&format!("{field}.keyId"), why));
            }
        }
        if let Some(k) = &self.kms_key_id {
            if k.trim().is_empty() || k.len() > 2048 || k.chars().any(char::is_whitespace) {
                return Err(field_error(
                    &format!("{field}.kmsKeyId"),
                    "is not a KMS key id, ARN or alias (non-empty, no spaces, at most 2048 characters)",
                ));
            }
        }
        Ok(())
    }
}

/// A key id: 1 to [`MAX_KEY_ID_LEN`] letters, digits, `-`, `_` and `.`, not starting with `.`
/// (the file name of a key in a mounted Secret).
pub fn check_key_id(id: &str) -> std::result::Result<(), String> {
    if id.is_empty()
        || id.len() > MAX_KEY_ID_LEN
        || id.starts_with('.')
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(format!(
            "'{id}' is not a key id (1 to {MAX_KEY_ID_LEN} letters, digits, '-', '_' and '.', not starting with '.')"
        ));
    }
    Ok(())
}

impl KafkaTarget {
    /// Checks that there are bootstrap servers, that the protocol and mechanism are known,
    /// and that no property carries a secret, switches a guarantee off or loads code.
    pub fn validate(&self) -> Result<()> {
        if self.bootstrap_servers.iter().all(|s| s.trim().is_empty()) {
            return Err(field_error(
                "kafka.bootstrapServers",
                "is empty; list at least one host:port",
            ));
        }
        self.security_protocol
            .parse::<SecurityProtocol>()
            .map_err(|e| field_invalid("kafka.securityProtocol", e.message()))?;
        if let Some(m) = &self.sasl_mechanism {
            m.parse::<SaslMechanism>()
                .map_err(|e| field_invalid("kafka.saslMechanism", e.message()))?;
        }
        if let Some(k) = self.properties.keys().find(|k| k.trim().is_empty()) {
            return Err(field_error(
                "kafka.properties",
                format!("has an empty key ('{k}')"),
            ));
        }
        for key in self.properties.keys() {
            if let Some(why) = crate::properties::refusal(key) {
                return Err(field_error(&format!("kafka.properties[{key}]"), why));
            }
        }
        if self.tls_insecure_skip_verify
            && !self
                .security_protocol
                .parse::<SecurityProtocol>()
                .is_ok_and(SecurityProtocol::uses_tls)
        {
            return Err(field_error(
                "kafka.tlsInsecureSkipVerify",
                "is only used with securityProtocol SSL or SASL_SSL",
            ));
        }
        Ok(())
    }
}

impl StorageTarget {
    /// Checks that a location is given, or that the ConfigMap's name and namespace are valid
    /// Kubernetes names.
    pub fn validate(&self) -> Result<()> {
        match self {
            StorageTarget::Location {
                url, encryption, ..
            } => {
                if url.trim().is_empty() {
                    return Err(field_error("storage.url", "is empty"));
                }
                if let Some(e) = encryption {
                    e.validate("storage.encryption")?;
                }
            }
            StorageTarget::ConfigMap { namespace, name } => {
                if !is_dns_subdomain(name) {
                    return Err(field_error(
                        "storage.name",
                        format!("'{name}' is not a valid ConfigMap name (lower-case letters, digits, '-' and '.', at most 253 characters, starting and ending with a letter or digit)"),
                    ));
                }
                if !is_dns_label(namespace) {
                    return Err(field_error(
                        "storage.namespace",
                        format!("'{namespace}' is not a valid namespace name (lower-case letters, digits and '-', at most 63 characters, starting and ending with a letter or digit)"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// RFC 1123 label: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// RFC 1123 subdomain: dot-separated labels, at most 253 characters.
fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}
