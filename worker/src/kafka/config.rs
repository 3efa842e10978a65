//! One Kafka connection description shared by the admin, consumer and producer clients.
//!
//! Credentials never travel on the command line: SASL username and password come from
//! `KAFKA_USERNAME` / `KAFKA_PASSWORD`, and the password is redacted from `Debug` output.

use std::fmt;
use std::time::Duration;

use rdkafka::ClientConfig;

use super::properties::{refusal, refused_property};
use crate::error::{Error, Result};

/// Environment variable holding the SASL username.
pub const ENV_USERNAME: &str = "KAFKA_USERNAME";
/// Environment variable holding the SASL password.
pub const ENV_PASSWORD: &str = "KAFKA_PASSWORD";
/// Environment variable selecting the SASL mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512).
pub const ENV_SASL_MECHANISM: &str = "KAFKA_SASL_MECHANISM";
/// Environment variable naming the CA certificate file (PEM).
pub const ENV_SSL_CA: &str = "KAFKA_SSL_CA_CERT";
/// Environment variable naming the client certificate file (PEM).
pub const ENV_SSL_CERT: &str = "KAFKA_SSL_CLIENT_CERT";
/// Environment variable naming the client private key file (PEM).
pub const ENV_SSL_KEY: &str = "KAFKA_SSL_CLIENT_KEY";

/// The enums are part of the task contract; parsing them here gives the worker's error.
pub use tidemark_task::enums::{SaslMechanism, SecurityProtocol};

/// SASL credentials; the password is never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SaslCredentials {
    pub mechanism: SaslMechanism,
    pub username: String,
    pub password: String,
}

impl fmt::Debug for SaslCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaslCredentials")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// PEM files for TLS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca_location: Option<String>,
    pub cert_location: Option<String>,
    pub key_location: Option<String>,
}

/// Everything needed to connect to one Kafka cluster.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// Comma-separated `host:port` list.
    pub bootstrap_servers: String,
    pub security_protocol: SecurityProtocol,
    pub sasl: Option<SaslCredentials>,
    pub tls: TlsFiles,
    /// Extra librdkafka properties (`--kafka-property key=value`), applied before the
    /// connection and the guarantees; [`parse_properties`] refuses the unsafe ones.
    pub properties: Vec<(String, String)>,
    /// Connect over TLS without verifying the broker's certificate and host name (the
    /// explicit `--insecure-skip-tls-verify`; refused as a property).
    pub tls_insecure_skip_verify: bool,
    /// Upper bound for one admin request or metadata round trip.
    pub request_timeout: Duration,
}

/// Property keys that would carry a secret; refused in `properties` so secrets stay in the
/// environment or in mounted files.
const SECRET_PROPERTIES: &[&str] = &["sasl.password", "ssl.key.password", "ssl.keystore.password"];

impl KafkaConfig {
    /// A plaintext configuration for `bootstrap_servers`.
    pub fn new(bootstrap_servers: impl Into<String>) -> Self {
        KafkaConfig {
            bootstrap_servers: bootstrap_servers.into(),
            security_protocol: SecurityProtocol::Plaintext,
            sasl: None,
            tls: TlsFiles::default(),
            properties: Vec::new(),
            tls_insecure_skip_verify: false,
            request_timeout: Duration::from_secs(30),
        }
    }

    /// Builds a configuration from CLI-level inputs, reading credentials and PEM file locations
    /// from the environment where the flags leave them unset. Validates everything up front.
    pub fn resolve(
        bootstrap_servers: &str,
        security_protocol: SecurityProtocol,
        sasl_mechanism: Option<SaslMechanism>,
        tls: TlsFiles,
        properties: &[String],
    ) -> Result<Self> {
        Self::resolve_with_credentials(
            bootstrap_servers,
            security_protocol,
            sasl_mechanism,
            tls,
            properties,
            None,
        )
    }

    /// [`resolve`](Self::resolve) with SASL credentials given (e.g. from a configuration file
    /// that expands `${KAFKA_PASSWORD}`) instead of read from the environment.
    pub fn resolve_with_credentials(
        bootstrap_servers: &str,
        security_protocol: SecurityProtocol,
        sasl_mechanism: Option<SaslMechanism>,
        tls: TlsFiles,
        properties: &[String],
        credentials: Option<(String, String)>,
    ) -> Result<Self> {
        let servers = normalize_servers(bootstrap_servers)?;
        let mut config = KafkaConfig::new(servers);
        config.security_protocol = security_protocol;
        config.tls = TlsFiles {
            ca_location: tls.ca_location.or_else(|| env_nonempty(ENV_SSL_CA)),
            cert_location: tls.cert_location.or_else(|| env_nonempty(ENV_SSL_CERT)),
            key_location: tls.key_location.or_else(|| env_nonempty(ENV_SSL_KEY)),
        };
        if security_protocol.uses_sasl() {
            let mechanism = match sasl_mechanism {
                Some(m) => m,
                None => match env_nonempty(ENV_SASL_MECHANISM) {
                    Some(m) => m.parse()?,
                    None => SaslMechanism::Plain,
                },
            };
            let (username, password) = match credentials {
                Some(c) => c,
                None => {
                    let username = env_nonempty(ENV_USERNAME).ok_or_else(|| {
                        Error::invalid(format!(
                            "security protocol {security_protocol} needs SASL credentials: set {ENV_USERNAME} and {ENV_PASSWORD}"
                        ))
                    })?;
                    let password = std::env::var(ENV_PASSWORD).map_err(|_| {
                        Error::invalid(format!(
                            "security protocol {security_protocol} needs SASL credentials: {ENV_PASSWORD} is not set"
                        ))
                    })?;
                    (username, password)
                }
            };
            config.sasl = Some(SaslCredentials {
                mechanism,
                username,
                password,
            });
        }
        for file in [
            &config.tls.ca_location,
            &config.tls.cert_location,
            &config.tls.key_location,
        ]
        .into_iter()
        .flatten()
        {
            if !std::path::Path::new(file).is_file() {
                return Err(Error::invalid(format!(
                    "TLS file '{file}' does not exist or is not a file"
                )));
            }
        }
        if config.tls.cert_location.is_some() != config.tls.key_location.is_some() {
            return Err(Error::invalid(
                "a TLS client certificate and key must be given together",
            ));
        }
        config.properties = parse_properties(properties)?;
        Ok(config)
    }

    /// The admin client's librdkafka configuration ([`admin_config`](Self::admin_config)).
    pub fn client_config(&self) -> ClientConfig {
        self.admin_config()
    }

    /// The admin client's configuration: it never creates a topic by asking about it.
    pub fn admin_config(&self) -> ClientConfig {
        self.build(&[], &[("allow.auto.create.topics", "false")])
    }

    /// A reader's configuration: `tuning` (the worker's defaults for this reader), then the
    /// user's properties, then the connection and what the worker relies on ([`Reader`]).
    pub fn consumer_config(&self, reader: &Reader<'_>, tuning: &[(&str, String)]) -> ClientConfig {
        self.build(
            tuning,
            &[
                ("group.id", reader.group_id),
                ("enable.auto.commit", "false"),
                ("enable.auto.offset.store", "false"),
                ("isolation.level", reader.isolation.as_str()),
                ("auto.offset.reset", reader.offset_reset),
                (
                    "enable.partition.eof",
                    if reader.partition_eof {
                        "true"
                    } else {
                        "false"
                    },
                ),
                ("allow.auto.create.topics", "false"),
            ],
        )
    }

    /// A producer's configuration: `tuning`, then the user's properties, then the connection
    /// and the acknowledgements `acks` asks for (idempotent with every in-sync replica, or the
    /// leader alone with one request in flight and no retries).
    pub fn producer_config(&self, acks: ProducerAcks, tuning: &[(&str, String)]) -> ClientConfig {
        let guarantees: &[(&str, &str)] = match acks {
            ProducerAcks::All => &[("enable.idempotence", "true"), ("acks", "all")],
            ProducerAcks::Leader => &[
                ("enable.idempotence", "false"),
                ("acks", "1"),
                ("retries", "0"),
                ("max.in.flight.requests.per.connection", "1"),
            ],
        };
        self.build(tuning, guarantees)
    }

    /// Every client's configuration, in this order: the worker's defaults and `tuning` (which
    /// the user may override), the user's properties (refused ones skipped: they are refused
    /// before a client is built, this is the second line), the connection from the
    /// configuration's own fields with TLS verification, then the role's `guarantees`.
    fn build(&self, tuning: &[(&str, String)], guarantees: &[(&str, &str)]) -> ClientConfig {
        let mut cfg = ClientConfig::new();
        cfg.set("client.id", "tidemark").set("log_level", "3").set(
            "socket.connection.setup.timeout.ms",
            self.request_timeout
                .as_millis()
                .min(i32::MAX as u128)
                .to_string(),
        );
        for (k, v) in tuning {
            cfg.set(*k, v);
        }
        for (k, v) in &self.properties {
            if refused_property(k).is_none() {
                cfg.set(k, v);
            }
        }
        self.set_connection(&mut cfg);
        for (k, v) in guarantees {
            cfg.set(*k, *v);
        }
        cfg
    }

    /// Brokers, security protocol, SASL, TLS files and TLS verification, from the fields;
    /// librdkafka's other spellings of the same keys are removed so these win.
    fn set_connection(&self, cfg: &mut ClientConfig) {
        for alias in [
            "metadata.broker.list",
            "sasl.mechanisms",
            "request.required.acks",
        ] {
            cfg.remove(alias);
        }
        cfg.set("bootstrap.servers", &self.bootstrap_servers)
            .set("security.protocol", self.security_protocol.as_str());
        if let Some(sasl) = &self.sasl {
            cfg.set("sasl.mechanism", sasl.mechanism.as_str())
                .set("sasl.username", &sasl.username)
                .set("sasl.password", &sasl.password);
        }
        if self.security_protocol.uses_tls() {
            if let Some(ca) = &self.tls.ca_location {
                cfg.set("ssl.ca.location", ca);
            }
            if let Some(cert) = &self.tls.cert_location {
                cfg.set("ssl.certificate.location", cert);
            }
            if let Some(key) = &self.tls.key_location {
                cfg.set("ssl.key.location", key);
            }
            let verify = !self.tls_insecure_skip_verify;
            cfg.set("enable.ssl.certificate.verification", verify.to_string())
                .set(
                    "ssl.endpoint.identification.algorithm",
                    if verify { "https" } else { "none" },
                );
        }
    }
}

/// What a reader relies on, set after the user's properties.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reader<'a> {
    /// The worker's internal group id (never committed to).
    pub group_id: &'a str,
    pub isolation: Isolation,
    /// `earliest` or `error` (a reader that must not move on its own).
    pub offset_reset: &'a str,
    /// Whether the reader waits for end-of-partition events.
    pub partition_eof: bool,
}

/// Which records a reader sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// Committed records only: every reader of user data (backups).
    ReadCommitted,
    /// Everything up to the high watermark: readers of the worker's own non-transactional
    /// writes and record lookups by offset.
    ReadUncommitted,
}

impl Isolation {
    /// The librdkafka spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Isolation::ReadCommitted => "read_committed",
            Isolation::ReadUncommitted => "read_uncommitted",
        }
    }
}

/// A producer's acknowledgements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProducerAcks {
    /// Every in-sync replica, idempotent (the default).
    All,
    /// The leader alone, not idempotent: one request in flight, no retries.
    Leader,
}

/// Trims and validates a comma-separated `host:port` list.
pub fn normalize_servers(raw: &str) -> Result<String> {
    let servers: Vec<&str> = raw
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if servers.is_empty() {
        return Err(Error::invalid("--bootstrap-servers is empty"));
    }
    for s in &servers {
        let hostport = s.rsplit_once("://").map(|(_, rest)| rest).unwrap_or(s);
        let Some((host, port)) = hostport.rsplit_once(':') else {
            return Err(Error::invalid(format!(
                "bootstrap server '{s}' must be host:port"
            )));
        };
        if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(Error::invalid(format!(
                "bootstrap server '{s}' must be host:port with a port between 1 and 65535"
            )));
        }
    }
    Ok(servers.join(","))
}

/// Parses `key=value` librdkafka properties, refusing secret-bearing keys and those that would
/// switch a guarantee off or load code ([`super::properties::REFUSED_PROPERTIES`]).
pub fn parse_properties(raw: &[String]) -> Result<Vec<(String, String)>> {
    raw.iter()
        .map(|p| {
            let (k, v) = p.split_once('=').ok_or_else(|| {
                Error::invalid(format!("Kafka property '{p}' must be key=value"))
            })?;
            let k = k.trim();
            if k.is_empty() {
                return Err(Error::invalid(format!("Kafka property '{p}' has an empty key")));
            }
            if SECRET_PROPERTIES.contains(&k) || k.starts_with("sasl.jaas") {
                return Err(Error::invalid(format!(
                    "Kafka property '{k}' carries a secret; pass it through the environment ({ENV_PASSWORD}) or a mounted file instead"
                )));
            }
            if let Some(why) = refusal(k) {
                return Err(Error::invalid(format!("Kafka property '{k}' {why}")));
            }
            Ok((k.to_string(), v.trim().to_string()))
        })
        .collect()
}

fn env_nonempty(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_parse_in_any_case() {
        assert_eq!(
            "sasl_ssl".parse::<SecurityProtocol>().ok(),
            Some(SecurityProtocol::SaslSsl)
        );
        assert_eq!(
            "SSL".parse::<SecurityProtocol>().ok(),
            Some(SecurityProtocol::Ssl)
        );
        assert!("TLS".parse::<SecurityProtocol>().is_err());
        assert_eq!(
            "scram-sha-512".parse::<SaslMechanism>().ok(),
            Some(SaslMechanism::ScramSha512)
        );
        assert!("GSSAPI".parse::<SaslMechanism>().is_err());
    }

    #[test]
    fn servers_are_validated() {
        assert_eq!(
            normalize_servers(" kafka1:9092, kafka2:9092 ,")
                .ok()
                .as_deref(),
            Some("kafka1:9092,kafka2:9092")
        );
        assert!(normalize_servers("").is_err());
        assert!(normalize_servers("kafka").is_err());
        assert!(normalize_servers("kafka:0").is_err());
        assert!(normalize_servers("kafka:99999").is_err());
    }

    #[test]
    fn secret_properties_are_refused() {
        assert!(parse_properties(&["sasl.password=x".into()]).is_err());
        assert!(parse_properties(&["noequals".into()]).is_err());
        let ok = parse_properties(&["fetch.wait.max.ms = 5".into()]).ok();
        assert_eq!(ok, Some(vec![("fetch.wait.max.ms".into(), "5".into())]));
    }

    #[test]
    fn every_refused_property_is_refused_by_name() {
        for p in crate::kafka::properties::REFUSED_PROPERTIES {
            let key = if p.contains {
                format!("x.{}.y", p.key)
            } else {
                p.key.to_string()
            };
            let err = parse_properties(&[format!("{key}=v")]).expect_err(&key);
            assert_eq!(err.exit_code(), 2, "{key}");
            let text = err.to_string();
            assert!(text.contains(&format!("'{key}'")), "{text}");
            assert!(text.contains(p.instead), "{text}");
        }
    }

    /// A configuration whose properties try to switch every guarantee off, as if they had got
    /// past the checks.
    fn hostile(protocol: SecurityProtocol) -> KafkaConfig {
        let mut c = KafkaConfig::new("k:9093");
        c.security_protocol = protocol;
        c.properties = [
            ("enable.idempotence", "false"),
            ("acks", "0"),
            ("request.required.acks", "0"),
            ("isolation.level", "read_uncommitted"),
            ("enable.auto.commit", "true"),
            ("enable.auto.offset.store", "true"),
            ("auto.offset.reset", "latest"),
            ("enable.partition.eof", "false"),
            ("group.id", "theirs"),
            ("allow.auto.create.topics", "true"),
            ("enable.ssl.certificate.verification", "false"),
            ("ssl.endpoint.identification.algorithm", "none"),
            ("security.protocol", "PLAINTEXT"),
            ("metadata.broker.list", "evil:9092"),
            ("plugin.library.paths", "/tmp/x.so"),
            ("fetch.wait.max.ms", "7"),
            ("linger.ms", "3"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        c
    }

    #[test]
    fn the_guarantees_win_over_properties() {
        let c = hostile(SecurityProtocol::Ssl);
        let p = c.producer_config(ProducerAcks::All, &[("linger.ms", "5".into())]);
        assert_eq!(p.get("enable.idempotence"), Some("true"));
        assert_eq!(p.get("acks"), Some("all"));
        assert_eq!(p.get("request.required.acks"), None);
        assert_eq!(p.get("security.protocol"), Some("SSL"));
        assert_eq!(p.get("enable.ssl.certificate.verification"), Some("true"));
        assert_eq!(
            p.get("ssl.endpoint.identification.algorithm"),
            Some("https")
        );
        assert_eq!(p.get("bootstrap.servers"), Some("k:9093"));
        assert_eq!(p.get("metadata.broker.list"), None);
        assert_eq!(p.get("plugin.library.paths"), None);
        // Tuning: the user's value wins over the worker's default.
        assert_eq!(p.get("linger.ms"), Some("3"));

        let leader = c.producer_config(ProducerAcks::Leader, &[]);
        assert_eq!(leader.get("enable.idempotence"), Some("false"));
        assert_eq!(leader.get("acks"), Some("1"));
        assert_eq!(leader.get("retries"), Some("0"));

        let reader = Reader {
            group_id: "tidemark-backup",
            isolation: Isolation::ReadCommitted,
            offset_reset: "earliest",
            partition_eof: false,
        };
        let r = c.consumer_config(&reader, &[("fetch.wait.max.ms", "100".into())]);
        assert_eq!(r.get("isolation.level"), Some("read_committed"));
        assert_eq!(r.get("enable.auto.commit"), Some("false"));
        assert_eq!(r.get("enable.auto.offset.store"), Some("false"));
        assert_eq!(r.get("auto.offset.reset"), Some("earliest"));
        assert_eq!(r.get("enable.partition.eof"), Some("false"));
        assert_eq!(r.get("group.id"), Some("tidemark-backup"));
        assert_eq!(r.get("allow.auto.create.topics"), Some("false"));
        assert_eq!(r.get("enable.ssl.certificate.verification"), Some("true"));
        assert_eq!(r.get("fetch.wait.max.ms"), Some("7"));

        let a = c.admin_config();
        assert_eq!(a.get("allow.auto.create.topics"), Some("false"));
        assert_eq!(
            a.get("ssl.endpoint.identification.algorithm"),
            Some("https")
        );
    }

    #[test]
    fn tls_verification_is_off_only_through_the_explicit_setting() {
        let mut c = hostile(SecurityProtocol::SaslSsl);
        c.sasl = Some(SaslCredentials {
            mechanism: SaslMechanism::ScramSha512,
            username: "u".into(),
            password: "p".into(),
        });
        let on = c.admin_config();
        assert_eq!(on.get("enable.ssl.certificate.verification"), Some("true"));
        c.tls_insecure_skip_verify = true;
        for cfg in [c.admin_config(), c.producer_config(ProducerAcks::All, &[])] {
            assert_eq!(
                cfg.get("enable.ssl.certificate.verification"),
                Some("false")
            );
            assert_eq!(
                cfg.get("ssl.endpoint.identification.algorithm"),
                Some("none")
            );
            assert_eq!(cfg.get("security.protocol"), Some("SASL_SSL"));
        }
        // Without TLS there is nothing to verify; the keys stay unset.
        let plain = hostile(SecurityProtocol::Plaintext).admin_config();
        assert_eq!(plain.get("enable.ssl.certificate.verification"), None);
        assert_eq!(plain.get("security.protocol"), Some("PLAINTEXT"));
    }

    #[test]
    fn password_is_redacted_in_debug() {
        let creds = SaslCredentials {
            mechanism: SaslMechanism::ScramSha512,
            username: "alice".into(),
            password: "hunter2".into(),
        };
        let shown = format!("{creds:?}");
        assert!(shown.contains("alice") && !shown.contains("hunter2"));
    }
}
