//! Per-resource RBAC for ConfigMap snapshot storage: a Role `<cr>-worker` granting the worker
//! ServiceAccount access to exactly the snapshot ConfigMap the resource names, with the verbs
//! its run needs ([`ConfigMapAccess`]), and the RoleBinding to it; both owned by the resource.
//! Other storage types, and runs that do not touch their storage, need no API access, so no
//! Role (`None`).
//!
//! Why per resource: the snapshot ConfigMap's name comes from the spec, and RBAC can only pin a
//! name in a Role. The operator may create these Roles without the `escalate` and `bind` verbs
//! because it holds every permission they grant (get/create/patch on ConfigMaps), which is what
//! the API server's escalation check requires. The worker ServiceAccount is shared by every
//! worker in the namespace, so a worker can use any Role bound there — all of them grant only
//! access to tidemark snapshot ConfigMaps named by resources in that namespace.

use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{kind_child_name, name, namespace, owner_labels, owner_reference};
use super::{ConfigMapAccess, Error, WorkerKind};
use crate::config::OperatorConfig;
use crate::crd::common::StorageType;

/// Name of the worker Role and RoleBinding of `cr_name`: `<cr>-<tag>-worker` (≤ 63
/// characters).
pub fn worker_rbac_name<K: WorkerKind>(cr_name: &str) -> String {
    kind_child_name::<K>(cr_name, "worker")
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

/// The rules the worker needs for `access` to the ConfigMap `config_map` (the worker's
/// ConfigMap store reads with `get` and changes entries with `patch`; it never uses `update`,
/// `list` or `watch`).
pub fn worker_rules(access: ConfigMapAccess, config_map: &str) -> Vec<PolicyRule> {
    let on_the_config_map = |verbs: &[&str]| PolicyRule {
        api_groups: Some(vec![String::new()]),
        resources: Some(vec!["configmaps".into()]),
        resource_names: Some(vec![config_map.to_string()]),
        verbs: verbs.iter().map(|v| v.to_string()).collect(),
        ..PolicyRule::default()
    };
    match access {
        ConfigMapAccess::None => Vec::new(),
        // A snapshot creates the ConfigMap on first use. `create` cannot be limited with
        // resourceNames (the API server authorizes a create before the object's name is
        // known), so it is granted on ConfigMaps in the namespace; the worker cannot read or
        // change any ConfigMap other than this one, and a create never overwrites.
        ConfigMapAccess::Create => vec![
            on_the_config_map(&["get", "patch"]),
            PolicyRule {
                api_groups: Some(vec![String::new()]),
                resources: Some(vec!["configmaps".into()]),
                verbs: vec!["create".into()],
                ..PolicyRule::default()
            },
        ],
        ConfigMapAccess::Write => vec![on_the_config_map(&["get", "patch"])],
        ConfigMapAccess::Read => vec![on_the_config_map(&["get"])],
    }
}

/// The worker Role of `cr`, or `None` when its worker uses no ConfigMap storage.
pub fn worker_role<K: WorkerKind>(cr: &K) -> Result<Option<Role>, Error> {
    let Some(config_map) = worker_config_map(cr)? else {
        return Ok(None);
    };
    Ok(Some(Role {
        metadata: metadata(cr)?,
        rules: Some(worker_rules(cr.config_map_access(), &config_map)),
    }))
}

/// The RoleBinding of [`worker_role`] to the worker ServiceAccount, or `None` when there is no
/// Role.
pub fn worker_role_binding<K: WorkerKind>(
    cr: &K,
    config: &OperatorConfig,
) -> Result<Option<RoleBinding>, Error> {
    if worker_config_map(cr)?.is_none() {
        return Ok(None);
    }
    Ok(Some(RoleBinding {
        metadata: metadata(cr)?,
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: worker_rbac_name::<K>(&name(cr)?),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: config.worker_service_account.clone(),
            namespace: Some(namespace(cr)?),
            ..Subject::default()
        }]),
    }))
}

fn metadata<K: WorkerKind>(cr: &K) -> Result<ObjectMeta, Error> {
    Ok(ObjectMeta {
        name: Some(worker_rbac_name::<K>(&name(cr)?)),
        namespace: Some(namespace(cr)?),
        labels: Some(owner_labels(cr, K::COMPONENT)),
        owner_references: Some(vec![owner_reference(cr)?]),
        ..ObjectMeta::default()
    })
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;

    fn verbs(rule: &PolicyRule) -> Vec<&str> {
        rule.verbs.iter().map(String::as_str).collect()
    }

    #[test]
    fn snapshot_to_a_config_map_may_create_it_and_patch_only_it() {
        let cr = korb(QUICK_SNAPSHOT);
        let role = worker_role(&cr).expect("builds").expect("a role");
        assert_eq!(
            role.metadata.name.as_deref(),
            Some("quick-snapshot-korb-worker")
        );
        assert_eq!(role.metadata.namespace.as_deref(), Some("kafka-backup"));
        let owner = &role.metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!(owner.name, "quick-snapshot");
        assert_eq!(owner.controller, Some(true));
        let rules = role.rules.expect("rules");
        assert_eq!(rules.len(), 2);
        assert_eq!(
            rules[0].resource_names.as_deref(),
            Some(&["offset-snapshots".to_string()][..])
        );
        assert_eq!(verbs(&rules[0]), ["get", "patch"]);
        assert_eq!(rules[1].resource_names, None);
        assert_eq!(verbs(&rules[1]), ["create"]);
        for rule in &rules {
            assert_eq!(rule.api_groups.as_deref(), Some(&[String::new()][..]));
            assert_eq!(
                rule.resources.as_deref(),
                Some(&["configmaps".to_string()][..])
            );
        }

        let binding = worker_role_binding(&cr, &OperatorConfig::default())
            .expect("builds")
            .expect("a binding");
        assert_eq!(binding.metadata.name, role.metadata.name);
        assert_eq!(binding.role_ref.kind, "Role");
        assert_eq!(binding.role_ref.name, "quick-snapshot-korb-worker");
        let subject = &binding.subjects.expect("subjects")[0];
        assert_eq!(subject.kind, "ServiceAccount");
        assert_eq!(subject.name, "tidemark-worker");
        assert_eq!(subject.namespace.as_deref(), Some("kafka-backup"));
    }

    #[test]
    fn other_operations_get_less() {
        let delete = worker_role(&korb(CLEANUP_OLD_SNAPSHOT))
            .expect("builds")
            .expect("role");
        let rules = delete.rules.expect("rules");
        assert_eq!(rules.len(), 1);
        assert_eq!(verbs(&rules[0]), ["get", "patch"]);

        let rollback = QUICK_SNAPSHOT.replace("operation: snapshot", "operation: rollback");
        let rules = worker_role(&korb(&rollback))
            .expect("builds")
            .expect("role")
            .rules
            .expect("rules");
        assert_eq!(rules.len(), 1);
        // rollback adds its safety snapshot to the ConfigMap.
        assert_eq!(verbs(&rules[0]), ["get", "patch"]);
        let verify = QUICK_SNAPSHOT.replace("operation: snapshot", "operation: verify");
        let rules = worker_role(&korb(&verify))
            .expect("builds")
            .expect("role")
            .rules
            .expect("rules");
        assert_eq!(verbs(&rules[0]), ["get"]);
    }

    #[test]
    fn object_storage_needs_no_rbac() {
        for yaml in [PRE_MIGRATION_SNAPSHOT, FULL_SPECIFICATION, MTLS_PVC] {
            let cr = korb(yaml);
            assert_eq!(worker_role(&cr).expect("builds"), None);
            assert_eq!(
                worker_role_binding(&cr, &OperatorConfig::default()).expect("builds"),
                None
            );
        }
    }

    #[test]
    fn the_lower_case_alias_is_a_config_map_too() {
        let yaml = QUICK_SNAPSHOT.replace("storageType: configMap", "storageType: configmap");
        assert!(worker_role(&korb(&yaml)).expect("builds").is_some());
    }
}
