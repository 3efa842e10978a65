//! The librdkafka properties a user may not set (`--kafka-property`, `kafka.properties` of a
//! task, `properties` of a configuration file's cluster section, `kafkaCluster.properties` of a
//! resource): each would switch off a guarantee Tidemark gives (idempotent, fully acknowledged
//! writes; committed-only reads; verified TLS), change what the worker's own clients rely on, or
//! load code into the worker. The CLI, the worker's task validation and the operator all refuse
//! them through [`refused_property`], naming the property and what to use instead; the worker's
//! client builder sets the guarantees after the user's properties anyway.
//!
//! Keys are compared trimmed and in lower case; a key is refused whatever its value.

/// What to use instead of a property that turns TLS verification off.
const TLS_INSTEAD: &str = "to connect to a broker whose certificate cannot be verified, use the explicit setting (--insecure-skip-tls-verify, `tlsInsecureSkipVerify` in a task or resource's kafkaCluster, `tls_insecure_skip_verify` in a configuration file's security section), which is reported as a warning";
/// What to use instead of a property the worker sets on its own clients.
const WORKER_SETS_IT: &str =
    "nothing: the worker sets it on each of its clients for what that client does";
/// What to use instead of a property that loads code.
const NO_CODE: &str =
    "nothing: the worker runs only the librdkafka and OpenSSL built into its image";

/// One refused property.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefusedProperty {
    /// The key, in lower case; with `contains`, a part of it.
    pub key: &'static str,
    /// Refuse every key that contains `key`.
    pub contains: bool,
    /// What setting it could do.
    pub risk: &'static str,
    /// What to use instead.
    pub instead: &'static str,
}

const fn exact(key: &'static str, risk: &'static str, instead: &'static str) -> RefusedProperty {
    RefusedProperty {
        key,
        contains: false,
        risk,
        instead,
    }
}

/// Every refused property; docs/cli.md ("Kafka client properties") lists the same table.
pub const REFUSED_PROPERTIES: &[RefusedProperty] = &[
    exact(
        "enable.idempotence",
        "would let a retried write store a record twice (a restore's producer is idempotent)",
        "a restore's acks setting (`restore.acks` in a restore configuration, `acks` in a KafkaRestore): all (the default, idempotent) or 1",
    ),
    exact(
        "acks",
        "would let the broker acknowledge records it can still lose",
        "a restore's acks setting (`restore.acks` in a restore configuration, `acks` in a KafkaRestore): all (the default, idempotent) or 1",
    ),
    exact(
        "request.required.acks",
        "would let the broker acknowledge records it can still lose",
        "a restore's acks setting (`restore.acks` in a restore configuration, `acks` in a KafkaRestore): all (the default, idempotent) or 1",
    ),
    exact(
        "transactional.id",
        "would make the producer transactional; a restore never commits a transaction, so read_committed consumers would never see its records",
        "nothing: a restore is exactly once through its idempotent producer and its offset mapping",
    ),
    exact(
        "queuing.strategy",
        "would reorder records before they are sent",
        "nothing: records are written in the order they were backed up",
    ),
    exact(
        "isolation.level",
        "would let a backup store records of aborted transactions (backups read committed records only)",
        WORKER_SETS_IT,
    ),
    exact(
        "enable.auto.commit",
        "would commit offsets for the worker's internal consumer groups",
        WORKER_SETS_IT,
    ),
    exact(
        "enable.auto.offset.store",
        "would commit offsets for the worker's internal consumer groups",
        WORKER_SETS_IT,
    ),
    exact(
        "auto.offset.reset",
        "would let a reader that falls off the log jump to another offset without reporting it",
        WORKER_SETS_IT,
    ),
    exact(
        "enable.partition.eof",
        "would hide the end of a partition that the worker's readers wait for",
        WORKER_SETS_IT,
    ),
    exact(
        "group.id",
        "would share the worker's internal consumer groups with other clients",
        WORKER_SETS_IT,
    ),
    exact(
        "allow.auto.create.topics",
        "would let a metadata request create a topic",
        "nothing: a restore creates topics only through its createTopics setting",
    ),
    exact(
        "security.protocol",
        "would override the security protocol, for example drop TLS",
        "--security-protocol, `securityProtocol` of a task or resource's kafkaCluster, `security.security_protocol` in a configuration file",
    ),
    exact(
        "enable.ssl.certificate.verification",
        "turns TLS certificate verification off",
        TLS_INSTEAD,
    ),
    exact(
        "ssl.endpoint.identification.algorithm",
        "turns verification of the broker's host name against its certificate off",
        TLS_INSTEAD,
    ),
    exact(
        "enable.sasl.oauthbearer.unsecure.jwt",
        "sends unsigned OAUTHBEARER tokens",
        "a token provider that signs its tokens (sasl.oauthbearer.method=oidc)",
    ),
    exact(
        "plugin.library.paths",
        "loads shared libraries into the worker",
        NO_CODE,
    ),
    exact(
        "ssl.engine.location",
        "loads an OpenSSL engine into the worker",
        NO_CODE,
    ),
    exact(
        "ssl.providers",
        "loads OpenSSL providers into the worker",
        NO_CODE,
    ),
    exact(
        "sasl.kerberos.kinit.cmd",
        "runs a shell command",
        NO_CODE,
    ),
    RefusedProperty {
        key: "library",
        contains: true,
        risk: "loads a library into the worker",
        instead: NO_CODE,
    },
    RefusedProperty {
        key: "interceptor",
        contains: true,
        risk: "loads interceptor code into the worker",
        instead: NO_CODE,
    },
];

/// The table entry that refuses `key`, if any.
pub fn refused_property(key: &str) -> Option<&'static RefusedProperty> {
    let key = key.trim().to_ascii_lowercase();
    REFUSED_PROPERTIES.iter().find(|p| {
        if p.contains {
            key.contains(p.key)
        } else {
            key == p.key
        }
    })
}

/// Why `key` is refused and what to use instead, as one sentence after the property's name:
/// "acks would let …; use … instead".
pub fn refusal(key: &str) -> Option<String> {
    refused_property(key).map(|p| format!("{}; use {} instead", p.risk, p.instead))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_is_found_by_its_key_in_any_case() {
        for p in REFUSED_PROPERTIES {
            let key = format!(" {} ", p.key.to_ascii_uppercase());
            assert_eq!(refused_property(&key), Some(p), "{}", p.key);
            assert!(!p.risk.is_empty() && !p.instead.is_empty(), "{}", p.key);
        }
    }

    #[test]
    fn code_loading_keys_are_refused_by_pattern() {
        for key in [
            "plugin.library.paths",
            "my.library.path",
            "interceptor.classes",
        ] {
            assert!(refused_property(key).is_some(), "{key}");
        }
    }

    #[test]
    fn tuning_keys_pass() {
        for key in [
            "client.id",
            "fetch.wait.max.ms",
            "linger.ms",
            "compression.type",
            "socket.keepalive.enable",
            "ssl.ca.location",
            "debug",
        ] {
            assert_eq!(refused_property(key), None, "{key}");
        }
    }
}
