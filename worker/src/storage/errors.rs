//! Storage errors the user can act on: an `object_store` error is classified ([`Cause`]) and
//! becomes an [`Error::StorageClient`] naming the location as the user wrote it, the operation and key,
//! and what to check (endpoint, network, TLS, credentials, bucket or directory permissions).

use std::error::Error as StdError;

use object_store::client::{HttpError, HttpErrorKind};

use super::{Provider, Storage};
use crate::error::Error;

impl Storage {
    /// A "not found" that means the object is missing, not the bucket or container.
    pub(super) fn is_missing_object(&self, err: &object_store::Error) -> bool {
        matches!(err, object_store::Error::NotFound { .. }) && !bucket_missing(err)
    }

    pub(super) fn storage_error(&self, reason: String) -> Error {
        Error::Storage {
            location: self.display.clone(),
            reason,
        }
    }

    /// Turns an `object_store` error into an actionable [`Error::StorageClient`] (the
    /// `object_store` error kept as its source).
    pub(super) fn failure(&self, op: &str, key: &str, err: object_store::Error) -> Error {
        let reason = self.failure_reason(op, key, &err);
        Error::storage(self.display.clone(), reason, err)
    }

    /// What users read of a failed `op` on `key`: the cause classified, with what to check.
    fn failure_reason(&self, op: &str, key: &str, err: &object_store::Error) -> String {
        tracing::debug!(location = %self.display, error = ?err, "storage {op} failed");
        let what = if key.is_empty() {
            format!("{op} failed")
        } else {
            format!("{op} '{key}' failed")
        };
        let reason = match (classify(err), self.provider()) {
            (Cause::Refused, _) => {
                format!(
                    "connection refused (is the endpoint right and the service running?); {what}"
                )
            }
            (Cause::Dns, _) => format!(
                "cannot resolve the storage host (check the endpoint, region and bucket \
                 name); {what}"
            ),
            (Cause::Timeout, _) => format!(
                "timed out (is the endpoint reachable from here? check network, proxy and \
                 firewall); {what}"
            ),
            (Cause::Connect, _) => format!(
                "cannot connect (is the endpoint right and reachable?); {what}: {}",
                root_cause(err)
            ),
            (Cause::Tls, _) => format!(
                "TLS failed (does the endpoint speak HTTPS with a trusted certificate?); \
                 {what}: {}",
                root_cause(err)
            ),
            (Cause::Denied(status), Some(provider)) => format!(
                "access denied (HTTP {status}): {}; {what}",
                provider.credential_hint()
            ),
            (Cause::Credentials, Some(provider)) => format!(
                "cannot get credentials: {}; {what}: {}",
                provider.credential_hint(),
                root_cause(err)
            ),
            (Cause::BucketMissing, Some(provider)) => format!(
                "the {} does not exist (create it first, or check its name{}); {what}",
                provider.bucket_word(),
                if provider == Provider::S3 {
                    " and the region"
                } else {
                    ""
                }
            ),
            (Cause::Throttled(status), _) => format!(
                "the storage service kept throttling the requests (HTTP {status}, SlowDown) \
                 through every retry ({} retries with exponential backoff, at most {} s); lower \
                 the request rate (fewer partitions at once) or ask the provider for more request \
                 capacity, then run again; {what}",
                super::backends::RETRIES,
                super::backends::RETRY_TIMEOUT.as_secs()
            ),
            (Cause::LocalDenied, _) | (Cause::Denied(_), None) => format!(
                "permission denied (check the directory's owner and mode); {what}: {}",
                root_cause(err)
            ),
            _ => format!("{what}: {}", summary(err)),
        };
        reason
    }
}

/// What went wrong, as far as the user can act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cause {
    Refused,
    Dns,
    Timeout,
    Connect,
    Tls,
    Denied(u16),
    /// The service asked to slow down (503 SlowDown, 429) and kept asking through the retries.
    Throttled(u16),
    LocalDenied,
    Credentials,
    BucketMissing,
    Other,
}

pub(super) fn classify(err: &object_store::Error) -> Cause {
    match err {
        object_store::Error::PermissionDenied { .. } => return Cause::Denied(403),
        object_store::Error::Unauthenticated { .. } => return Cause::Denied(401),
        _ if bucket_missing(err) => return Cause::BucketMissing,
        _ => {}
    }
    let text = chain(err)
        .map(|e| e.to_string().to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join(" | ");
    // Fetching credentials (instance metadata, token endpoints) failed: whatever the transport
    // error, the fix is to provide credentials.
    if CREDENTIAL_MARKERS.iter().any(|m| text.contains(m)) {
        return Cause::Credentials;
    }
    let mut http_kind = None;
    for e in chain(err) {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return Cause::Refused,
                std::io::ErrorKind::TimedOut => return Cause::Timeout,
                std::io::ErrorKind::PermissionDenied => return Cause::LocalDenied,
                _ => {}
            }
        }
        if let Some(h) = e.downcast_ref::<HttpError>() {
            http_kind.get_or_insert(h.kind());
        }
    }
    match http_status(err) {
        Some(s @ (401 | 403)) => return Cause::Denied(s),
        Some(429) => return Cause::Throttled(429),
        Some(503) if text.contains("slowdown") || text.contains("slow down") => {
            return Cause::Throttled(503)
        }
        _ => {}
    }
    if text.contains("connection refused") {
        Cause::Refused
    } else if text.contains("dns error")
        || text.contains("failed to lookup address")
        || text.contains("name or service not known")
    {
        Cause::Dns
    } else if http_kind == Some(HttpErrorKind::Timeout) || text.contains("timed out") {
        Cause::Timeout
    } else if text.contains("certificate") || text.contains("tls") || text.contains("ssl") {
        Cause::Tls
    } else if http_kind == Some(HttpErrorKind::Connect) {
        Cause::Connect
    } else {
        Cause::Other
    }
}

/// Lower-case text found in errors from fetching credentials rather than from the store.
pub(super) const CREDENTIAL_MARKERS: [&str; 6] = [
    "169.254.169.254",
    "169.254.170.2",
    "metadata.google.internal",
    "token request",
    "token response",
    "credential",
];

/// The error and its sources, outermost first.
pub(super) fn chain<'a>(
    err: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(err), |e| (*e).source())
}

/// Marks the text of an `object_store` HTTP status error (its retry error type is private).
pub(super) const STATUS_MARKER: &str = "Server returned non-2xx status code: ";

/// True when a response says the bucket or container itself is missing.
pub(super) fn bucket_missing(err: &object_store::Error) -> bool {
    chain(err).any(|e| {
        let text = e.to_string();
        [
            "NoSuchBucket",
            "ContainerNotFound",
            "The specified bucket does not exist",
        ]
        .iter()
        .any(|marker| text.contains(marker))
    })
}

/// The HTTP status of a failed response, if the error carries one.
pub(super) fn http_status(err: &object_store::Error) -> Option<u16> {
    chain(err).find_map(|e| {
        let text = e.to_string();
        let (_, rest) = text.split_once(STATUS_MARKER)?;
        rest.get(..3)?.parse().ok()
    })
}

/// The innermost error message (the actual cause, without URLs and retry counts).
pub(super) fn root_cause(err: &object_store::Error) -> String {
    chain(err).last().map(|e| e.to_string()).unwrap_or_default()
}

/// A one-line description: the HTTP status and body when there is one, else the root cause.
pub(super) fn summary(err: &object_store::Error) -> String {
    for e in chain(err) {
        if let Some((_, rest)) = e.to_string().split_once(STATUS_MARKER) {
            let rest: String = rest.chars().take(300).collect();
            return format!("HTTP {}", rest.trim());
        }
    }
    let root = root_cause(err);
    let top = err.to_string();
    if top.contains(&root) {
        top
    } else {
        format!("{top}: {root}")
    }
}

pub(super) fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::PermissionDenied => {
            format!("{e} (check the directory's owner and mode)")
        }
        _ => e.to_string(),
    }
}
