//! The worker's error type: one variant per failure class, each with a stable label and a
//! documented process exit code (see README "Exit codes").

use std::error::Error as StdError;
use std::path::PathBuf;

use rdkafka::error::KafkaError;
use tidemark_task::exit;

/// Result alias used across the worker library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Exit code of a run stopped before it finished that resumes from its checkpoint when run
/// again (75, `EX_TEMPFAIL`): the operator's backup Jobs replace such a pod without counting a
/// failure.
pub const EXIT_INTERRUPTED: i32 = exit::INTERRUPTED;

/// Every way a `tidemark` command can fail.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A flag, field or argument is invalid; nothing was changed.
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// [`Error::InvalidInput`] with the error that made it so (e.g. an address that cannot be
    /// listened on).
    #[error("invalid input: {context}: {source}")]
    InvalidWith {
        context: String,
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },

    /// The requested snapshot does not exist in the storage location.
    #[error("snapshot '{id}' not found in {location}; {}", list_hint(.location))]
    SnapshotNotFound { id: String, location: String },

    /// The requested backup does not exist in the storage location.
    #[error("backup '{id}' not found in {location}; run `tidemark list --path {location}` to see the backups there")]
    BackupNotFound { id: String, location: String },

    /// A consumer group does not exist or has no committed offsets.
    #[error("consumer group '{0}' not found or has no committed offsets")]
    GroupNotFound(String),

    /// The brokers could not be reached in time.
    #[error("failed to connect to Kafka at {servers}: {reason}")]
    Connection { servers: String, reason: String },

    /// The brokers rejected the client's SASL credentials.
    #[error("SASL authentication failed: {0}")]
    Authentication(String),

    /// TLS could not be set up or the handshake failed.
    #[error("TLS setup failed: {0}")]
    Tls(String),

    /// A sealed or authenticated object failed its check: it was altered, moved or replayed
    /// from elsewhere, cut short, or sealed under another key. `object` names it.
    #[error("authentication failed: {object}: {reason}")]
    Tampered { object: String, reason: String },

    /// The storage location could not be read or written.
    #[error("storage unreachable at {location}: {reason}")]
    Storage { location: String, reason: String },

    /// [`Error::Storage`] caused by a failed `object_store` call (kept as the source); `reason`
    /// is the actionable text users see.
    #[error(transparent)]
    StorageClient(Box<StorageFailure>),

    /// [`Error::Storage`] caused by a failed Kubernetes API call (a ConfigMap store).
    #[error(transparent)]
    KubeApi(Box<KubeFailure>),

    /// A stored or user-supplied document could not be parsed.
    #[error("malformed {kind} '{file}': {reason}")]
    Malformed {
        kind: &'static str,
        file: String,
        reason: String,
    },

    /// [`Error::Malformed`]: a JSON document that did not parse; `hint` (empty or starting with
    /// `; `) follows the parser's message.
    #[error("malformed {kind} '{file}': {source}{hint}")]
    MalformedJson {
        kind: &'static str,
        file: String,
        hint: &'static str,
        #[source]
        source: serde_json::Error,
    },

    /// [`Error::Malformed`]: a stored object that did not decode (e.g. a backup segment).
    #[error("malformed {kind} '{file}': {source}")]
    MalformedData {
        kind: &'static str,
        file: String,
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },

    /// A Kafka request failed for a reason other than connectivity or authentication.
    #[error("Kafka request failed: {0}")]
    Kafka(String),

    /// [`Error::Kafka`] caused by a failed client call.
    #[error(transparent)]
    KafkaClient(Box<KafkaFailure>),

    /// [`Error::Kafka`]: a blocking thread doing Kafka work panicked or was cancelled.
    #[error("Kafka request failed: {context}: {source}")]
    KafkaThread {
        context: String,
        #[source]
        source: tokio::task::JoinError,
    },

    /// [`Error::Kafka`]: an admin request failed with `source` (a broker or librdkafka error, a
    /// background task that did not complete).
    #[error("Kafka request failed: {context}: {source}")]
    KafkaRequest {
        context: String,
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },

    /// A document the worker writes (a snapshot, a report) could not be encoded; reported in
    /// the Kafka class, as it always was.
    #[error("Kafka request failed: failed to encode {what}: {source}")]
    Encode {
        what: &'static str,
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },

    /// Some groups were processed and some failed; the report names them.
    #[error("{0}")]
    Partial(String),

    /// Current state differs from what was expected; the report lists every difference.
    #[error("{0}")]
    VerificationFailed(String),

    /// Another worker holds the lease on this backup shard or restore (or took it over from
    /// this one): nothing was written, or writing stopped.
    #[error("another worker holds the lease on {resource}: {detail}")]
    LeaseHeld { resource: String, detail: String },
    /// An approved plan no longer matches the cluster (or its document is missing or does not
    /// have the approved hash): nothing was changed; the message names what differs.
    #[error("{0}")]
    PlanChanged(String),
    /// The run was stopped (SIGTERM: an eviction, a drain, a deleted pod) before it finished;
    /// its checkpoint is stored and running it again resumes there.
    #[error("{0}")]
    Interrupted(String),

    /// A local file could not be read or written.
    #[error("failed to access {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// How locations of ConfigMap stores are written: `configmap://<namespace>/<name>`. Defined
/// here, below every other module, because error messages read it; `configmap` re-exports it.
pub const CONFIGMAP_SCHEME: &str = "configmap://";

/// How to see the snapshots that do exist at `location`.
fn list_hint(location: &str) -> String {
    match location
        .strip_prefix(CONFIGMAP_SCHEME)
        .and_then(|rest| rest.split_once('/'))
    {
        Some((namespace, name)) => format!(
            "its snapshots are the ConfigMap's <snapshotId>.json keys: run `kubectl describe configmap {name} -n {namespace}` to see them"
        ),
        None => format!(
            "run `tidemark offset-rollback list --path {location}` to see the available snapshots"
        ),
    }
}

// The causes below are large (64 to 80 bytes): boxed, so that `Error`, and every `Result` of the
// worker, stays as small as it was. Their variants forward text and source to them.

/// A failed Kafka client call; `context` (may be empty) says what was being done.
#[derive(Debug, thiserror::Error)]
#[error("Kafka request failed: {}", with_context(.context, .source))]
pub struct KafkaFailure {
    pub context: String,
    #[source]
    pub source: KafkaError,
}

/// A failed `object_store` call; `reason` is the actionable text users see.
#[derive(Debug, thiserror::Error)]
#[error("storage unreachable at {location}: {reason}")]
pub struct StorageFailure {
    pub location: String,
    pub reason: String,
    #[source]
    pub source: object_store::Error,
}

/// A failed Kubernetes API call of a ConfigMap store.
#[derive(Debug, thiserror::Error)]
#[error("storage unreachable at {location}: {reason}")]
pub struct KubeFailure {
    pub location: String,
    pub reason: String,
    #[source]
    pub source: kube::Error,
}

/// `context: source`, or the source alone when there is no context.
fn with_context(context: &str, source: &dyn std::fmt::Display) -> String {
    if context.is_empty() {
        source.to_string()
    } else {
        format!("{context}: {source}")
    }
}

impl Error {
    /// Stable short label, used in JSON reports, logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Error::InvalidInput(_) | Error::InvalidWith { .. } => "invalid_input",
            Error::SnapshotNotFound { .. } => "snapshot_not_found",
            Error::BackupNotFound { .. } => "backup_not_found",
            Error::GroupNotFound(_) => "group_not_found",
            Error::Connection { .. } => "connection_failed",
            Error::Authentication(_) => "authentication_failed",
            Error::Tls(_) => "tls_failed",
            Error::Storage { .. } | Error::StorageClient(_) | Error::KubeApi(_) => {
                "storage_unreachable"
            }
            Error::Malformed { .. } | Error::MalformedJson { .. } | Error::MalformedData { .. } => {
                "malformed_file"
            }
            Error::Kafka(_)
            | Error::KafkaClient(_)
            | Error::KafkaThread { .. }
            | Error::KafkaRequest { .. }
            | Error::Encode { .. } => "kafka_error",
            Error::Partial(_) => "partial_failure",
            Error::VerificationFailed(_) => "verification_failed",
            Error::Io { .. } => "io_error",
            Error::LeaseHeld { .. } => "lease_held",
            Error::PlanChanged(_) => "plan_changed",
            Error::Tampered { .. } => "object_authentication_failed",
            Error::Interrupted(_) => "backup_interrupted",
        }
    }

    /// Process exit code for this error class (documented in the README).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::InvalidInput(_) | Error::InvalidWith { .. } => exit::INVALID_INPUT,
            Error::SnapshotNotFound { .. } | Error::BackupNotFound { .. } => exit::NOT_FOUND,
            Error::GroupNotFound(_) => exit::GROUP_NOT_FOUND,
            Error::Connection { .. } => exit::CONNECTION,
            Error::Authentication(_) => exit::AUTHENTICATION,
            Error::Tls(_) => exit::TLS,
            Error::Storage { .. } | Error::StorageClient(_) | Error::KubeApi(_) => exit::STORAGE,
            Error::Malformed { .. }
            | Error::MalformedJson { .. }
            | Error::MalformedData { .. }
            | Error::Tampered { .. } => exit::MALFORMED,
            Error::Kafka(_)
            | Error::KafkaClient(_)
            | Error::KafkaThread { .. }
            | Error::KafkaRequest { .. }
            | Error::Encode { .. } => exit::KAFKA,
            Error::Partial(_) => exit::PARTIAL,
            Error::VerificationFailed(_) => exit::VERIFICATION_FAILED,
            Error::Io { .. } => exit::IO,
            Error::LeaseHeld { .. } => exit::LEASE_HELD,
            Error::PlanChanged(_) => exit::PLAN_CHANGED,
            Error::Interrupted(_) => EXIT_INTERRUPTED,
        }
    }

    /// The location and the reason users read of a storage error ([`Error::Storage`],
    /// [`Error::StorageClient`], [`Error::KubeApi`]); `None` for other classes.
    pub fn storage_parts(&self) -> Option<(&str, &str)> {
        match self {
            Error::Storage { location, reason } => Some((location, reason)),
            Error::StorageClient(f) => Some((&f.location, &f.reason)),
            Error::KubeApi(f) => Some((&f.location, &f.reason)),
            _ => None,
        }
    }

    /// Shorthand for [`Error::InvalidInput`].
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidInput(msg.into())
    }

    /// [`Error::InvalidWith`]: `invalid input: <context>: <source>`.
    pub fn invalid_with(
        context: impl Into<String>,
        source: impl Into<Box<dyn StdError + Send + Sync>>,
    ) -> Self {
        Error::InvalidWith {
            context: context.into(),
            source: source.into(),
        }
    }

    /// [`Error::KafkaClient`]: `Kafka request failed: <context>: <source>` (the context left
    /// out when empty).
    pub fn kafka(context: impl Into<String>, source: KafkaError) -> Self {
        Error::KafkaClient(Box::new(KafkaFailure {
            context: context.into(),
            source,
        }))
    }

    /// [`Error::KafkaRequest`]: `Kafka request failed: <context>: <source>`.
    pub fn kafka_request(
        context: impl Into<String>,
        source: impl Into<Box<dyn StdError + Send + Sync>>,
    ) -> Self {
        Error::KafkaRequest {
            context: context.into(),
            source: source.into(),
        }
    }

    /// [`Error::KafkaThread`]: a blocking Kafka task that did not complete.
    pub fn kafka_thread(context: impl Into<String>, source: tokio::task::JoinError) -> Self {
        Error::KafkaThread {
            context: context.into(),
            source,
        }
    }

    /// [`Error::Encode`]: `what` could not be encoded as JSON.
    pub fn encode(what: &'static str, source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Error::Encode {
            what,
            source: source.into(),
        }
    }

    /// [`Error::StorageClient`]: an `object_store` call at `location` failed; `reason` is what
    /// users read.
    pub fn storage(
        location: impl Into<String>,
        reason: impl Into<String>,
        source: object_store::Error,
    ) -> Self {
        Error::StorageClient(Box::new(StorageFailure {
            location: location.into(),
            reason: reason.into(),
            source,
        }))
    }

    /// [`Error::KubeApi`]: a Kubernetes API call for the store at `location` failed.
    pub fn kube(
        location: impl Into<String>,
        reason: impl Into<String>,
        source: kube::Error,
    ) -> Self {
        Error::KubeApi(Box::new(KubeFailure {
            location: location.into(),
            reason: reason.into(),
            source,
        }))
    }

    /// [`Error::MalformedJson`]: `file` (a `kind`) is not the JSON expected.
    pub fn malformed_json(
        kind: &'static str,
        file: impl Into<String>,
        source: serde_json::Error,
    ) -> Self {
        Error::MalformedJson {
            kind,
            file: file.into(),
            hint: "",
            source,
        }
    }

    /// [`Error::MalformedData`]: `file` (a `kind`) did not decode.
    pub fn malformed_data(
        kind: &'static str,
        file: impl Into<String>,
        source: impl Into<Box<dyn StdError + Send + Sync>>,
    ) -> Self {
        Error::MalformedData {
            kind,
            file: file.into(),
            source: source.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;

    /// The causes below, rendered with the `format!` the call sites used before their errors
    /// kept them, must read the same through the typed variants.
    #[tokio::test]
    async fn a_failed_object_store_call_stays_the_source_of_a_storage_error() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = object_store::local::LocalFileSystem::new_with_prefix(dir.path())
            .expect("a local store");
        let failure = store
            .get(&object_store::path::Path::from("missing.json"))
            .await
            .expect_err("the object is missing");
        let reason = format!("get 'missing.json' failed: {failure}");
        let err = Error::storage("file:///data", reason.clone(), failure);
        assert_eq!(
            err.to_string(),
            format!("storage unreachable at file:///data: {reason}")
        );
        assert_eq!((err.label(), err.exit_code()), ("storage_unreachable", 7));
        let source = err.source().expect("the object_store error is kept");
        assert!(
            matches!(
                source.downcast_ref::<object_store::Error>(),
                Some(object_store::Error::NotFound { .. })
            ),
            "{source:?}"
        );
    }

    #[test]
    fn a_malformed_snapshot_keeps_the_parser_error_and_its_text() {
        let parse = serde_json::from_slice::<serde_json::Value>(b"{\"groups\": ")
            .expect_err("truncated JSON");
        let err = crate::snapshot::OffsetSnapshot::from_json(b"{\"groups\": ", "s1.json")
            .expect_err("truncated JSON is refused");
        assert_eq!(
            err.to_string(),
            format!("malformed snapshot 's1.json': {parse}")
        );
        assert_eq!((err.label(), err.exit_code()), ("malformed_file", 8));
        let source = err.source().expect("the parser's error is kept");
        assert!(
            source.downcast_ref::<serde_json::Error>().is_some(),
            "{source:?}"
        );
    }

    #[test]
    fn a_failed_kafka_call_keeps_the_client_error_and_its_text() {
        use rdkafka::consumer::BaseConsumer;
        let failure = rdkafka::ClientConfig::new()
            .set("no.such.property", "1")
            .create::<BaseConsumer>()
            .err()
            .expect("librdkafka refuses an unknown property");
        let text = failure.to_string();
        let err = Error::kafka("failed to create a record reader", failure);
        assert_eq!(
            err.to_string(),
            format!("Kafka request failed: failed to create a record reader: {text}")
        );
        assert_eq!((err.label(), err.exit_code()), ("kafka_error", 9));
        assert!(err
            .source()
            .and_then(|s| s.downcast_ref::<KafkaError>())
            .is_some());
        // An empty context prints the client's error alone, as `Error::Kafka(e.to_string())` did.
        let bare = Error::kafka("", KafkaError::Canceled);
        assert_eq!(
            bare.to_string(),
            format!("Kafka request failed: {}", KafkaError::Canceled)
        );
    }

    #[test]
    fn the_error_is_no_larger_than_before_causes_were_kept() {
        // The largest variant before: `Malformed` (a &str and two Strings) and its tag.
        assert!(
            std::mem::size_of::<Error>() <= 72,
            "{}",
            std::mem::size_of::<Error>()
        );
    }

    #[test]
    fn every_variant_with_a_cause_keeps_its_class_label_and_exit_code() {
        let json = || serde_json::from_str::<u8>("x").expect_err("not a number");
        let cases = [
            (
                Error::invalid_with("bad", "why"),
                Error::invalid("bad: why"),
            ),
            (
                Error::kube("configmap://ns/cm", "r", kube::Error::TlsRequired),
                Error::Storage {
                    location: "configmap://ns/cm".into(),
                    reason: "r".into(),
                },
            ),
            (
                Error::malformed_data("backup segment", "k", "corrupt"),
                Error::Malformed {
                    kind: "backup segment",
                    file: "k".into(),
                    reason: "corrupt".into(),
                },
            ),
            (
                Error::kafka_request("describing groups", "GROUP_AUTHORIZATION_FAILED"),
                Error::Kafka("describing groups: GROUP_AUTHORIZATION_FAILED".into()),
            ),
            (
                Error::encode("snapshot", json()),
                Error::Kafka(format!("failed to encode snapshot: {}", json())),
            ),
        ];
        for (typed, flat) in cases {
            assert_eq!(typed.to_string(), flat.to_string());
            assert_eq!(typed.label(), flat.label());
            assert_eq!(typed.exit_code(), flat.exit_code());
            assert!(typed.source().is_some(), "{typed:?}");
        }
    }
}
