//! The Kafka connection a task document describes.

use super::{KafkaConfig, TlsFiles};
use crate::error::Result;
use crate::task::KafkaTarget;

/// The connection a task describes; SASL credentials come from `KAFKA_USERNAME` and
/// `KAFKA_PASSWORD`, TLS files and the mechanism fall back to their environment variables.
pub fn kafka_config(k: &KafkaTarget) -> Result<KafkaConfig> {
    kafka_config_with(k, None)
}

/// [`kafka_config`] with SASL credentials given instead of read from the environment.
pub fn kafka_config_with(
    k: &KafkaTarget,
    credentials: Option<(String, String)>,
) -> Result<KafkaConfig> {
    let protocol = k.security_protocol.parse()?;
    let mechanism = k.sasl_mechanism.as_deref().map(str::parse).transpose()?;
    let properties: Vec<String> = k
        .properties
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    let mut config = KafkaConfig::resolve_with_credentials(
        &k.bootstrap_servers.join(","),
        protocol,
        mechanism,
        TlsFiles {
            ca_location: k.ssl_ca_location.clone(),
            cert_location: k.ssl_certificate_location.clone(),
            key_location: k.ssl_key_location.clone(),
        },
        &properties,
        credentials,
    )?;
    config.tls_insecure_skip_verify = k.tls_insecure_skip_verify;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_kafka_settings_become_a_client_config() {
        let k = KafkaTarget {
            bootstrap_servers: vec!["k1:9092".into(), "k2:9092".into()],
            security_protocol: "PLAINTEXT".into(),
            sasl_mechanism: None,
            ssl_ca_location: None,
            ssl_certificate_location: None,
            ssl_key_location: None,
            properties: [("client.id".to_string(), "tidemark".to_string())].into(),
            tls_insecure_skip_verify: false,
        };
        let cfg = kafka_config(&k).expect("config");
        assert_eq!(cfg.bootstrap_servers, "k1:9092,k2:9092");
        assert_eq!(
            cfg.properties,
            vec![("client.id".to_string(), "tidemark".to_string())]
        );
        let secret = KafkaTarget {
            properties: [("sasl.password".to_string(), "x".to_string())].into(),
            ..k
        };
        assert_eq!(
            kafka_config(&secret).map(|_| ()).map_err(|e| e.exit_code()),
            Err(2)
        );
    }
}
