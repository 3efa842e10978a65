//! The worker's error type: one variant per failure class, each with a stable label and a
//! documented process exit code (see README "Exit codes").

use std::path::PathBuf;

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

    /// The storage location could not be read or written.
    #[error("storage unreachable at {location}: {reason}")]
    Storage { location: String, reason: String },

    /// A stored or user-supplied document could not be parsed.
    #[error("malformed {kind} '{file}': {reason}")]
    Malformed {
        kind: &'static str,
        file: String,
        reason: String,
    },

    /// A Kafka request failed for a reason other than connectivity or authentication.
    #[error("Kafka request failed: {0}")]
    Kafka(String),

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

/// How to see the snapshots that do exist at `location`.
fn list_hint(location: &str) -> String {
    match location
        .strip_prefix(crate::configmap::CONFIGMAP_SCHEME)
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

impl Error {
    /// Stable short label, used in JSON reports, logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Error::InvalidInput(_) => "invalid_input",
            Error::SnapshotNotFound { .. } => "snapshot_not_found",
            Error::BackupNotFound { .. } => "backup_not_found",
            Error::GroupNotFound(_) => "group_not_found",
            Error::Connection { .. } => "connection_failed",
            Error::Authentication(_) => "authentication_failed",
            Error::Tls(_) => "tls_failed",
            Error::Storage { .. } => "storage_unreachable",
            Error::Malformed { .. } => "malformed_file",
            Error::Kafka(_) => "kafka_error",
            Error::Partial(_) => "partial_failure",
            Error::VerificationFailed(_) => "verification_failed",
            Error::Io { .. } => "io_error",
            Error::LeaseHeld { .. } => "lease_held",
            Error::Interrupted(_) => "backup_interrupted",
        }
    }

    /// Process exit code for this error class (documented in the README).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::InvalidInput(_) => exit::INVALID_INPUT,
            Error::SnapshotNotFound { .. } | Error::BackupNotFound { .. } => exit::NOT_FOUND,
            Error::GroupNotFound(_) => exit::GROUP_NOT_FOUND,
            Error::Connection { .. } => exit::CONNECTION,
            Error::Authentication(_) => exit::AUTHENTICATION,
            Error::Tls(_) => exit::TLS,
            Error::Storage { .. } => exit::STORAGE,
            Error::Malformed { .. } => exit::MALFORMED,
            Error::Kafka(_) => exit::KAFKA,
            Error::Partial(_) => exit::PARTIAL,
            Error::VerificationFailed(_) => exit::VERIFICATION_FAILED,
            Error::Io { .. } => exit::IO,
            Error::LeaseHeld { .. } => exit::LEASE_HELD,
            Error::Interrupted(_) => EXIT_INTERRUPTED,
        }
    }

    /// Shorthand for [`Error::InvalidInput`].
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidInput(msg.into())
    }
}
