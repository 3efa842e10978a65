//! How a failed admin request becomes the error the user sees. Contract: [`Ctx`], the client
//! context, records the connection-level failures librdkafka reports (authentication, TLS,
//! connection, most specific first) and sends librdkafka's logs to `tracing` with the password
//! redacted; [`resolve_failure`] maps a failed request to [`Error::Connection`],
//! [`Error::Authentication`], [`Error::Tls`] or, for anything else Kafka rejects, the error
//! [`request_failed`] builds.

use std::borrow::Cow;
use std::ffi::c_int;
use std::sync::Mutex;
use std::time::Instant;

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::ClientContext;
use rdkafka_sys::types::RDKafkaErrorCode;

use super::lock;
use crate::error::Error;
use crate::kafka::KafkaConfig;

/// The error of an admin request that failed with `cause`: one place, so the error can carry
/// its cause as a typed source.
pub(super) fn request_failed(
    what: &str,
    cause: impl std::error::Error + Send + Sync + 'static,
) -> Error {
    Error::kafka_request(what, cause)
}

/// An error Kafka or librdkafka answered a request with: its code and its text.
#[derive(Debug)]
pub(super) struct BrokerError {
    /// Not shown (the message names it); kept for a typed error that carries the code.
    #[allow(dead_code)]
    pub code: RDKafkaErrorCode,
    pub message: String,
}

impl std::fmt::Display for BrokerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for BrokerError {}

/// The client context: records connection-level failures for error mapping and sends
/// librdkafka's logs to `tracing`.
pub(super) struct Ctx {
    /// Redacted from every log line and recorded error, just in case.
    password: Option<String>,
    recorded: Mutex<Recorded>,
}

/// The last failure librdkafka reported per class.
#[derive(Default)]
struct Recorded {
    authentication: Option<(Instant, String)>,
    tls: Option<(Instant, String)>,
    connection: Option<(Instant, String)>,
}

/// Connection-level failure classes, most specific first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FailureClass {
    Authentication,
    Tls,
    Connection,
}

impl Ctx {
    pub(super) fn new(config: &KafkaConfig) -> Ctx {
        Ctx {
            password: config
                .sasl
                .as_ref()
                .map(|s| s.password.clone())
                .filter(|p| !p.is_empty()),
            recorded: Mutex::new(Recorded::default()),
        }
    }

    fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        redact(text, self.password.as_deref())
    }

    pub(super) fn emit_log(&self, level: c_int, facility: &str, message: &str) {
        let message = self.redact(message);
        match level {
            0..=2 => tracing::error!(target: "librdkafka", facility, "{message}"),
            // librdkafka retries after its errors (and repeats them while it does); the failure
            // that matters reaches the caller as a typed error with the broker's reason, so its
            // own error and warning lines are only shown with -v.
            3..=5 => tracing::info!(target: "librdkafka", facility, "{message}"),
            6 => tracing::debug!(target: "librdkafka", facility, "{message}"),
            _ => tracing::trace!(target: "librdkafka", facility, "{message}"),
        }
    }

    fn record(&self, class: FailureClass, reason: String) {
        let mut recorded = lock(&self.recorded);
        let slot = match class {
            FailureClass::Authentication => &mut recorded.authentication,
            FailureClass::Tls => &mut recorded.tls,
            FailureClass::Connection => &mut recorded.connection,
        };
        *slot = Some((Instant::now(), reason));
    }

    /// The most specific failure recorded at or after `since`.
    pub(super) fn recorded_since(&self, since: Instant) -> Option<(FailureClass, String)> {
        let recorded = lock(&self.recorded);
        let fresh = |slot: &Option<(Instant, String)>| {
            slot.as_ref()
                .filter(|(at, _)| *at >= since)
                .map(|(_, reason)| reason.clone())
        };
        if let Some(reason) = fresh(&recorded.authentication) {
            return Some((FailureClass::Authentication, reason));
        }
        if let Some(reason) = fresh(&recorded.tls) {
            return Some((FailureClass::Tls, reason));
        }
        fresh(&recorded.connection).map(|reason| (FailureClass::Connection, reason))
    }

    /// Forgets recorded failures once the cluster has answered a request.
    pub(super) fn clear(&self) {
        *lock(&self.recorded) = Recorded::default();
    }
}

impl ClientContext for Ctx {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.emit_log(level as c_int, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let reason = self.redact(reason).into_owned();
        tracing::debug!(target: "librdkafka", error = %error, "{reason}");
        if let Some(class) = error.rdkafka_error_code().and_then(failure_class) {
            self.record(class, reason);
        }
    }
}

/// The connection-level class of a librdkafka or broker error code, if it has one.
fn failure_class(code: RDKafkaErrorCode) -> Option<FailureClass> {
    use RDKafkaErrorCode as C;
    match code {
        C::Authentication
        | C::SaslAuthenticationFailed
        | C::IllegalSASLState
        | C::UnsupportedSASLMechanism => Some(FailureClass::Authentication),
        C::SSL => Some(FailureClass::Tls),
        C::AllBrokersDown
        | C::BrokerTransportFailure
        | C::Resolve
        | C::OperationTimedOut
        | C::TimedOutQueue
        | C::RequestTimedOut
        | C::MessageTimedOut => Some(FailureClass::Connection),
        _ => None,
    }
}

/// Maps a failed request to the error class the user sees. A connection-class failure (most
/// often a timeout) is explained by the most specific failure librdkafka recorded meanwhile, so
/// rejected credentials surface as [`Error::Authentication`] rather than as a timeout.
pub(super) fn resolve_failure(
    code: RDKafkaErrorCode,
    message: &str,
    recorded: Option<(FailureClass, String)>,
    servers: &str,
    what: &str,
) -> Error {
    match failure_class(code) {
        Some(FailureClass::Authentication) => Error::Authentication(message.to_string()),
        Some(FailureClass::Tls) => Error::Tls(message.to_string()),
        Some(FailureClass::Connection) => match recorded {
            Some((FailureClass::Authentication, reason)) => Error::Authentication(reason),
            Some((FailureClass::Tls, reason)) => Error::Tls(reason),
            Some((FailureClass::Connection, reason)) => Error::Connection {
                servers: servers.to_string(),
                reason: format!("{what}: {message} (last broker error: {reason})"),
            },
            None => Error::Connection {
                servers: servers.to_string(),
                reason: format!("{what}: {message}"),
            },
        },
        None => request_failed(
            what,
            BrokerError {
                code,
                message: message.to_string(),
            },
        ),
    }
}

/// Maps a failure to create the client. Property values are never echoed (one may be a secret).
pub(super) fn creation_error(error: KafkaError) -> Error {
    match error {
        KafkaError::ClientConfig(_, description, key, _value) => {
            if key.starts_with("ssl") {
                Error::Tls(format!("invalid TLS property '{key}': {description}"))
            } else {
                Error::invalid(format!("invalid Kafka property '{key}': {description}"))
            }
        }
        KafkaError::ClientCreation(message) if message.to_ascii_lowercase().contains("ssl") => {
            Error::Tls(message)
        }
        KafkaError::ClientCreation(message) => {
            Error::invalid(format!("cannot create the Kafka client: {message}"))
        }
        other => request_failed("cannot create the Kafka client", other),
    }
}

fn redact<'a>(text: &'a str, secret: Option<&str>) -> Cow<'a, str> {
    match secret {
        Some(secret) if !secret.is_empty() && text.contains(secret) => {
            Cow::Owned(text.replace(secret, "[redacted]"))
        }
        _ => Cow::Borrowed(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn error_codes_fall_into_classes() {
        use RDKafkaErrorCode as C;
        assert_eq!(
            failure_class(C::Authentication),
            Some(FailureClass::Authentication)
        );
        assert_eq!(
            failure_class(C::SaslAuthenticationFailed),
            Some(FailureClass::Authentication)
        );
        assert_eq!(failure_class(C::SSL), Some(FailureClass::Tls));
        for code in [
            C::AllBrokersDown,
            C::BrokerTransportFailure,
            C::Resolve,
            C::OperationTimedOut,
        ] {
            assert_eq!(
                failure_class(code),
                Some(FailureClass::Connection),
                "{code:?}"
            );
        }
        assert_eq!(failure_class(C::GroupAuthorizationFailed), None);
        assert_eq!(failure_class(C::UnknownTopicOrPartition), None);
    }

    #[test]
    fn timeouts_are_explained_by_recorded_failures() {
        let timeout = RDKafkaErrorCode::OperationTimedOut;
        let auth = Some((
            FailureClass::Authentication,
            "SASL authentication error".to_string(),
        ));
        assert!(matches!(
            resolve_failure(timeout, "Local: Timed out", auth, "k:9092", "x"),
            Error::Authentication(m) if m.contains("SASL")
        ));
        let tls = Some((FailureClass::Tls, "SSL handshake failed".to_string()));
        assert!(matches!(
            resolve_failure(timeout, "Local: Timed out", tls, "k:9092", "x"),
            Error::Tls(m) if m.contains("handshake")
        ));
        let refused = Some((FailureClass::Connection, "Connection refused".to_string()));
        match resolve_failure(timeout, "Local: Timed out", refused, "k:9092", "listing") {
            Error::Connection { servers, reason } => {
                assert_eq!(servers, "k:9092");
                assert!(reason.contains("listing") && reason.contains("Connection refused"));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            resolve_failure(timeout, "Local: Timed out", None, "k:9092", "x"),
            Error::Connection { .. }
        ));
    }

    #[test]
    fn direct_and_other_errors_keep_their_class() {
        use RDKafkaErrorCode as C;
        let auth = Some((FailureClass::Authentication, "old".to_string()));
        assert!(matches!(
            resolve_failure(C::SSL, "bad cert", None, "k", "x"),
            Error::Tls(m) if m == "bad cert"
        ));
        assert!(matches!(
            resolve_failure(C::Authentication, "bad password", None, "k", "x"),
            Error::Authentication(m) if m == "bad password"
        ));
        // A non-connection error is Kafka's answer, whatever was recorded before.
        let answer = resolve_failure(
            C::GroupAuthorizationFailed,
            "denied",
            auth,
            "k",
            "committing",
        );
        assert_eq!(answer.label(), "kafka_error");
        assert_eq!(
            answer.to_string(),
            "Kafka request failed: committing: denied"
        );
        assert!(
            std::error::Error::source(&answer).is_some(),
            "the broker's answer is kept"
        );
    }

    #[test]
    fn creation_errors_never_echo_values() {
        let err = creation_error(KafkaError::ClientConfig(
            rdkafka_sys::types::RDKafkaConfRes::RD_KAFKA_CONF_INVALID,
            "Invalid value".into(),
            "sasl.password".into(),
            "hunter2".into(),
        ));
        assert!(matches!(&err, Error::InvalidInput(_)));
        assert!(!err.to_string().contains("hunter2"));
        assert!(matches!(
            creation_error(KafkaError::ClientCreation(
                "ssl.ca.location failed: no such file".into()
            )),
            Error::Tls(_)
        ));
    }

    #[test]
    fn recorded_failures_prefer_the_most_specific_and_expire() {
        let ctx = Ctx::new(&KafkaConfig::new("k:9092"));
        let before = Instant::now();
        ctx.record(FailureClass::Connection, "all brokers down".into());
        ctx.record(FailureClass::Authentication, "bad credentials".into());
        assert_eq!(
            ctx.recorded_since(before),
            Some((FailureClass::Authentication, "bad credentials".into()))
        );
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(ctx.recorded_since(Instant::now()), None);
        ctx.clear();
        assert_eq!(ctx.recorded_since(before), None);
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("auth with hunter2 failed", Some("hunter2")),
            "auth with [redacted] failed"
        );
        assert_eq!(redact("nothing here", Some("hunter2")), "nothing here");
        assert_eq!(redact("anything", Some("")), "anything");
        assert_eq!(redact("anything", None), "anything");
    }
}
