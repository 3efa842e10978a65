//! The worker ServiceAccount of a namespace (`tidemark-worker` by default), shared by every
//! worker Job there. It has no owner (it outlives any one resource) and no token of its own:
//! pods mount one only when they need the API. Applied with server-side apply, it keeps fields
//! other managers set, e.g. the workload-identity annotations of IRSA
//! (`eks.amazonaws.com/role-arn`), GKE or Azure that give workers cloud storage access.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::FIELD_MANAGER;
use crate::config::OperatorConfig;

/// The worker ServiceAccount in `namespace`.
pub fn worker_service_account(namespace: &str, config: &OperatorConfig) -> ServiceAccount {
    ServiceAccount {
        metadata: ObjectMeta {
            name: Some(config.worker_service_account.clone()),
            namespace: Some(namespace.to_string()),
            labels: Some(BTreeMap::from([
                ("app.kubernetes.io/name".to_string(), "tidemark".to_string()),
                (
                    "app.kubernetes.io/component".to_string(),
                    "worker".to_string(),
                ),
                (
                    "app.kubernetes.io/part-of".to_string(),
                    "tidemark".to_string(),
                ),
                (
                    "app.kubernetes.io/managed-by".to_string(),
                    FIELD_MANAGER.to_string(),
                ),
            ])),
            ..ObjectMeta::default()
        },
        automount_service_account_token: Some(false),
        ..ServiceAccount::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worker_service_account_has_no_owner_and_no_token() {
        let sa = worker_service_account("kafka-backup", &OperatorConfig::default());
        assert_eq!(sa.metadata.name.as_deref(), Some("tidemark-worker"));
        assert_eq!(sa.metadata.namespace.as_deref(), Some("kafka-backup"));
        assert_eq!(sa.metadata.owner_references, None);
        assert_eq!(sa.automount_service_account_token, Some(false));
    }
}
