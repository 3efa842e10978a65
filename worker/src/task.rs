//! The task contract ([`tidemark_task`]), under its old path: `crate::task::Task`,
//! `crate::task::TaskResult`, ... Task errors become [`Error::InvalidInput`] (exit 2) with the
//! same message.

pub use tidemark_task::*;

use crate::error::Error;

impl From<TaskError> for Error {
    fn from(e: TaskError) -> Self {
        Error::invalid(e.message())
    }
}

impl From<FieldError> for Error {
    fn from(e: FieldError) -> Self {
        Error::invalid(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SNAPSHOT_TASK: &str = r#"
apiVersion: tidemark.dev/task-v1
kind: offsetRollback
source: payments/pre-migration
operation: snapshot
kafka:
  bootstrapServers: ["kafka-0:9092", "kafka-1:9092"]
  securityProtocol: SASL_SSL
  saslMechanism: SCRAM-SHA-512
  sslCaLocation: /etc/tidemark/kafka-tls/ca.crt
  properties:
    client.id: tidemark
storage:
  type: configMap
  namespace: payments
  name: offset-snapshots
consumerGroups: [order-processor, payment-handler]
snapshotId: pre-migration-20241201
description: Before the migration
"#;

    fn parse(text: &str) -> Result<Task> {
        Task::parse(text.as_bytes(), "task.yaml")
    }

    #[test]
    fn tls_verification_is_skipped_only_by_its_own_field_and_only_with_tls() {
        let insecure = SNAPSHOT_TASK.replace(
            "  sslCaLocation: /etc/tidemark/kafka-tls/ca.crt\n",
            "  tlsInsecureSkipVerify: true\n",
        );
        let task = parse(&insecure).expect("parses");
        task.validate().expect("valid with SASL_SSL");
        let TaskWork::OffsetRollback(t) = &task.work else {
            panic!("an offset-rollback task: {task:?}");
        };
        let kafka = t.kafka.as_ref().expect("kafka");
        assert!(kafka.tls_insecure_skip_verify);
        let config = crate::run::kafka_config_with(kafka, Some(("u".into(), "p".into())))
            .expect("config")
            .admin_config();
        assert_eq!(
            config.get("enable.ssl.certificate.verification"),
            Some("false")
        );
        assert_eq!(
            config.get("ssl.endpoint.identification.algorithm"),
            Some("none")
        );

        let plain = insecure.replace(
            "securityProtocol: SASL_SSL",
            "securityProtocol: SASL_PLAINTEXT",
        );
        let err = parse(&plain)
            .and_then(|t| t.validate())
            .expect_err("no TLS");
        assert!(
            err.to_string().contains("kafka.tlsInsecureSkipVerify"),
            "{err}"
        );
    }
}
