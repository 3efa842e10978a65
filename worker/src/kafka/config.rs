//! One Kafka connection description shared by the admin, consumer and producer clients.
//!
//! Credentials never travel on the command line: SASL username and password come from
//! `KAFKA_USERNAME` / `KAFKA_PASSWORD`, and the password is redacted from `Debug` output.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use rdkafka::ClientConfig;

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

/// Kafka's `security.protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SecurityProtocol {
    #[default]
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    /// The librdkafka / Kafka spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    /// Whether the protocol authenticates with SASL.
    pub fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }

    /// Whether the protocol encrypts with TLS.
    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }
}

impl FromStr for SecurityProtocol {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_uppercase().replace('-', "_").as_str() {
            "PLAINTEXT" => Ok(SecurityProtocol::Plaintext),
            "SSL" => Ok(SecurityProtocol::Ssl),
            "SASL_PLAINTEXT" => Ok(SecurityProtocol::SaslPlaintext),
            "SASL_SSL" => Ok(SecurityProtocol::SaslSsl),
            other => Err(Error::invalid(format!(
                "security protocol '{other}' is not one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"
            ))),
        }
    }
}

impl fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Kafka's `sasl.mechanism`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SaslMechanism {
    #[default]
    Plain,
    ScramSha256,
    ScramSha512,
}

impl SaslMechanism {
    /// The librdkafka / Kafka spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

impl FromStr for SaslMechanism {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_uppercase().replace('_', "-").as_str() {
            "PLAIN" => Ok(SaslMechanism::Plain),
            "SCRAM-SHA-256" => Ok(SaslMechanism::ScramSha256),
            "SCRAM-SHA-512" => Ok(SaslMechanism::ScramSha512),
            other => Err(Error::invalid(format!(
                "SASL mechanism '{other}' is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512"
            ))),
        }
    }
}

impl fmt::Display for SaslMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

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
    /// Extra librdkafka properties (`--kafka-property key=value`), applied last.
    pub properties: Vec<(String, String)>,
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

    /// The librdkafka configuration for any client role. Callers add role-specific keys.
    pub fn client_config(&self) -> ClientConfig {
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", &self.bootstrap_servers)
            .set("security.protocol", self.security_protocol.as_str())
            .set("client.id", "tidemark")
            .set("log_level", "3")
            .set(
                "socket.connection.setup.timeout.ms",
                self.request_timeout
                    .as_millis()
                    .min(i32::MAX as u128)
                    .to_string(),
            );
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
        }
        for (k, v) in &self.properties {
            cfg.set(k, v);
        }
        cfg
    }
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

/// Parses `key=value` librdkafka properties, refusing secret-bearing keys.
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
