//! Worker RBAC for ConfigMap snapshot storage: a RoleBinding `<cr>-<tag>-snapshots`, owned by
//! the resource, that binds the worker ServiceAccount of its namespace to the ClusterRole
//! shipped with the install (`tidemark-worker` by default, [`OperatorConfig::worker_cluster_role`];
//! config/rbac/worker_role.yaml and the chart). Other storage types, and runs that do not touch
//! their storage, need no API access: no RoleBinding (`None`).
//!
//! The operator creates no Role: it may only create RoleBindings whose roleRef is that one
//! ClusterRole (its `bind` rule names it by resourceNames), so a stolen operator token cannot
//! grant anything else. The price: a RoleBinding to a ClusterRole cannot pin the snapshot
//! ConfigMap's name (it comes from each resource's spec), so while a resource with ConfigMap
//! storage exists in a namespace, the worker ServiceAccount there may `get` and `patch` every
//! ConfigMap of that namespace and `create` new ones ([`WORKER_CONFIG_MAP_VERBS`]; never `list`,
//! `watch`, `update` or `delete`). Its pods mount an API token only for such runs.

use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{kind_child_name, name, namespace, owner_labels, owner_reference};
use super::{ConfigMapAccess, Error, WorkerKind};
use crate::config::OperatorConfig;
use crate::crd::common::StorageType;

/// The verbs the worker ClusterRole grants on ConfigMaps: the worker's ConfigMap store reads
/// with `get`, changes entries with `patch`, and a snapshot creates its ConfigMap on first use.
pub const WORKER_CONFIG_MAP_VERBS: [&str; 3] = ["get", "patch", "create"];

/// Name of the worker RoleBinding of `cr_name`: `<cr>-<tag>-snapshots` (≤ 63 characters).
pub fn worker_rbac_name<K: WorkerKind>(cr_name: &str) -> String {
    kind_child_name::<K>(cr_name, "snapshots")
}

/// The snapshot ConfigMap the worker of `cr` reads or writes through the API, if its storage is
/// a ConfigMap that the run uses; such a worker mounts an API token.
pub fn worker_config_map<K: WorkerKind>(cr: &K) -> Result<Option<String>, Error> {
    let Some(storage) = cr.storage()? else {
        return Ok(None);
    };
    if storage.storage_type.normalized() != StorageType::ConfigMap
        || cr.config_map_access() == ConfigMapAccess::None
    {
        return Ok(None);
    }
    let cm = storage
        .config_map
        .as_ref()
        .ok_or(Error::MissingField("spec.storage.configMap"))?;
    Ok(Some(cm.name.clone()))
}

/// The RoleBinding of the worker ServiceAccount to the worker ClusterRole, or `None` when the
/// worker of `cr` uses no ConfigMap storage.
pub fn worker_role_binding<K: WorkerKind>(
    cr: &K,
    config: &OperatorConfig,
) -> Result<Option<RoleBinding>, Error> {
    if worker_config_map(cr)?.is_none() {
        return Ok(None);
    }
    Ok(Some(RoleBinding {
        metadata: ObjectMeta {
            name: Some(worker_rbac_name::<K>(&name(cr)?)),
            namespace: Some(namespace(cr)?),
            labels: Some(owner_labels(cr, K::COMPONENT)),
            owner_references: Some(vec![owner_reference(cr)?]),
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: config.worker_cluster_role.clone(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: config.worker_service_account.clone(),
            namespace: Some(namespace(cr)?),
            ..Subject::default()
        }]),
    }))
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;

    #[test]
    fn config_map_storage_binds_the_worker_cluster_role() {
        let cr = korb(QUICK_SNAPSHOT);
        let binding = worker_role_binding(&cr, &OperatorConfig::default())
            .expect("builds")
            .expect("a binding");
        assert_eq!(
            binding.metadata.name.as_deref(),
            Some("quick-snapshot-korb-snapshots")
        );
        assert_eq!(binding.metadata.namespace.as_deref(), Some("kafka-backup"));
        let owner = &binding.metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!(owner.name, "quick-snapshot");
        assert_eq!(owner.controller, Some(true));
        assert_eq!(binding.role_ref.kind, "ClusterRole");
        assert_eq!(binding.role_ref.name, "tidemark-worker");
        let subject = &binding.subjects.expect("subjects")[0];
        assert_eq!(subject.kind, "ServiceAccount");
        assert_eq!(subject.name, "tidemark-worker");
        assert_eq!(subject.namespace.as_deref(), Some("kafka-backup"));

        // Another install's ClusterRole (a Helm release name) is the one bound.
        let config = OperatorConfig {
            worker_cluster_role: "ops-tidemark-worker".into(),
            ..OperatorConfig::default()
        };
        let binding = worker_role_binding(&cr, &config)
            .expect("builds")
            .expect("a binding");
        assert_eq!(binding.role_ref.name, "ops-tidemark-worker");
    }

    #[test]
    fn every_config_map_operation_gets_the_binding() {
        let mut specs = vec![CLEANUP_OLD_SNAPSHOT.to_string()];
        for operation in ["snapshot", "rollback", "verify"] {
            specs.push(
                QUICK_SNAPSHOT.replace("operation: snapshot", &format!("operation: {operation}")),
            );
        }
        for yaml in specs {
            assert!(
                worker_role_binding(&korb(&yaml), &OperatorConfig::default())
                    .expect("builds")
                    .is_some(),
                "{yaml}"
            );
        }
    }

    #[test]
    fn object_storage_needs_no_rbac() {
        for yaml in [PRE_MIGRATION_SNAPSHOT, FULL_SPECIFICATION, MTLS_PVC] {
            let cr = korb(yaml);
            assert_eq!(
                worker_role_binding(&cr, &OperatorConfig::default()).expect("builds"),
                None
            );
        }
    }

    #[test]
    fn the_lower_case_alias_is_a_config_map_too() {
        let yaml = QUICK_SNAPSHOT.replace("storageType: configMap", "storageType: configmap");
        assert!(
            worker_role_binding(&korb(&yaml), &OperatorConfig::default())
                .expect("builds")
                .is_some()
        );
    }
}
