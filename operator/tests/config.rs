//! The hand-written manifests in `config/` parse as the kinds they claim; the operator's
//! ClusterRole covers what the builders produce and nothing on Secrets, creates no Roles and may
//! bind only the worker ClusterRole, which grants exactly what the worker's ConfigMap store
//! uses.

use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use serde_json::Value;
use tidemark_operator::build::rbac::WORKER_CONFIG_MAP_VERBS;
use tidemark_operator::config::{OperatorConfig, DEFAULT_WORKER_CLUSTER_ROLE};

fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config")
}

/// Every document of every `.yaml` file under `config/<sub>` except kustomizations.
fn manifests(sub: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let dir = config_dir().join(sub);
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "yaml")
                && p.file_name().is_some_and(|n| n != "kustomization.yaml")
        })
        .collect();
    paths.sort();
    for path in paths {
        let text = std::fs::read_to_string(&path).expect("readable");
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let value: serde_yaml_ng::Value = serde::Deserialize::deserialize(doc).expect("YAML");
            let json = serde_json::to_value(value).expect("JSON");
            if !json.is_null() {
                out.push((path.display().to_string(), json));
            }
        }
    }
    out
}

fn cluster_role(name: &str) -> ClusterRole {
    manifests("rbac")
        .into_iter()
        .find(|(_, d)| d["kind"] == "ClusterRole" && d["metadata"]["name"] == name)
        .map(|(_, d)| serde_json::from_value(d).expect("a ClusterRole"))
        .unwrap_or_else(|| panic!("config/rbac holds the {name} ClusterRole"))
}

fn operator_cluster_role() -> ClusterRole {
    cluster_role("tidemark-operator")
}

/// Whether `rules` allow `verb` on `group/resource` (optionally a named object).
fn allows(
    rules: &[PolicyRule],
    group: &str,
    resource: &str,
    verb: &str,
    name: Option<&str>,
) -> bool {
    rules.iter().any(|r| {
        r.api_groups
            .iter()
            .flatten()
            .any(|g| g == group || g == "*")
            && r.resources
                .iter()
                .flatten()
                .any(|x| x == resource || x == "*")
            && r.verbs.iter().any(|v| v == verb || v == "*")
            && match (&r.resource_names, name) {
                (None, _) => true,
                (Some(names), Some(name)) => names.iter().any(|n| n == name),
                (Some(_), None) => false,
            }
    })
}

#[test]
fn config_manifests_parse_as_their_kinds() {
    let mut kinds = Vec::new();
    for sub in ["rbac", "manager"] {
        for (path, doc) in manifests(sub) {
            let kind = doc["kind"].as_str().unwrap_or_default().to_string();
            let parsed = match kind.as_str() {
                "ServiceAccount" => {
                    serde_json::from_value::<k8s_openapi::api::core::v1::ServiceAccount>(doc)
                        .map(drop)
                }
                "ClusterRole" => serde_json::from_value::<ClusterRole>(doc).map(drop),
                "ClusterRoleBinding" => {
                    serde_json::from_value::<k8s_openapi::api::rbac::v1::ClusterRoleBinding>(doc)
                        .map(drop)
                }
                "Role" => serde_json::from_value::<k8s_openapi::api::rbac::v1::Role>(doc).map(drop),
                "RoleBinding" => {
                    serde_json::from_value::<k8s_openapi::api::rbac::v1::RoleBinding>(doc).map(drop)
                }
                "Namespace" => {
                    serde_json::from_value::<k8s_openapi::api::core::v1::Namespace>(doc).map(drop)
                }
                "Service" => {
                    serde_json::from_value::<k8s_openapi::api::core::v1::Service>(doc).map(drop)
                }
                "Deployment" => serde_json::from_value::<Deployment>(doc).map(drop),
                other => panic!("{path}: unexpected kind {other}"),
            };
            parsed.unwrap_or_else(|e| panic!("{path}: not a valid {kind}: {e}"));
            kinds.push(kind);
        }
    }
    for kind in [
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "ServiceAccount",
        "Role",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "no {kind} in config/");
    }
}

#[test]
fn the_worker_cluster_role_grants_only_what_the_configmap_store_uses() {
    let role = cluster_role(DEFAULT_WORKER_CLUSTER_ROLE);
    assert_eq!(
        OperatorConfig::default().worker_cluster_role,
        DEFAULT_WORKER_CLUSTER_ROLE
    );
    let rules = role.rules.expect("rules");
    assert_eq!(rules.len(), 1, "{rules:?}");
    let rule = &rules[0];
    assert_eq!(rule.api_groups.as_deref(), Some(&[String::new()][..]));
    assert_eq!(
        rule.resources.as_deref(),
        Some(&["configmaps".to_string()][..])
    );
    assert_eq!(rule.verbs, WORKER_CONFIG_MAP_VERBS);
    // The operator may bind it, and nothing else: `bind` on that ClusterRole by name.
    let operator = operator_cluster_role().rules.expect("rules");
    let binds: Vec<&PolicyRule> = operator
        .iter()
        .filter(|r| r.verbs.iter().any(|v| v == "bind"))
        .collect();
    assert_eq!(binds.len(), 1, "{binds:?}");
    assert_eq!(binds[0].verbs, ["bind"]);
    assert_eq!(
        binds[0].resources.as_deref(),
        Some(&["clusterroles".to_string()][..])
    );
    assert_eq!(
        binds[0].resource_names.as_deref(),
        Some(&[DEFAULT_WORKER_CLUSTER_ROLE.to_string()][..])
    );
}

/// Every Role and ClusterRole in config/rbac.
fn all_roles() -> Vec<(String, Vec<PolicyRule>)> {
    manifests("rbac")
        .into_iter()
        .filter(|(_, d)| d["kind"] == "ClusterRole" || d["kind"] == "Role")
        .map(|(_, d)| {
            let name = format!("{} {}", d["kind"], d["metadata"]["name"]);
            let rules = serde_json::from_value(d["rules"].clone()).expect("rules");
            (name, rules)
        })
        .collect()
}

#[test]
fn no_rule_grants_a_verb_on_secrets_or_a_way_to_escalate() {
    let roles = all_roles();
    assert!(roles.len() >= 4, "{roles:?}");
    for (name, rules) in &roles {
        for verb in [
            "get", "list", "watch", "create", "update", "patch", "delete", "*",
        ] {
            assert!(
                !allows(rules, "", "secrets", verb, None)
                    && !allows(rules, "", "secrets", verb, Some("any")),
                "{name} grants {verb} on secrets"
            );
        }
        for rule in rules {
            assert!(
                !rule.resources.iter().flatten().any(|r| r == "secrets"),
                "{name}: a rule on secrets: {rule:?}"
            );
            assert!(
                !rule
                    .verbs
                    .iter()
                    .any(|v| v == "*" || v == "escalate" || v == "impersonate"),
                "{name}: {rule:?}"
            );
            assert!(
                !rule.resources.iter().flatten().any(|r| r == "*")
                    && !rule.api_groups.iter().flatten().any(|g| g == "*"),
                "{name}: {rule:?}"
            );
            // Nobody gets to create Roles or ClusterRoles (or bind anything unnamed).
            for resource in ["roles", "clusterroles"] {
                for verb in ["create", "update", "patch"] {
                    assert!(
                        !allows(
                            std::slice::from_ref(rule),
                            "rbac.authorization.k8s.io",
                            resource,
                            verb,
                            None
                        ),
                        "{name} may {verb} {resource}: {rule:?}"
                    );
                }
            }
            if rule.verbs.iter().any(|v| v == "bind") {
                assert!(
                    rule.resource_names.as_ref().is_some_and(|n| !n.is_empty()),
                    "{name}: bind without resourceNames: {rule:?}"
                );
            }
        }
    }
}

#[test]
fn the_operator_may_manage_every_child_it_builds() {
    let rules = operator_cluster_role().rules.expect("rules");
    for (group, resource, verbs) in [
        (
            "batch",
            "jobs",
            &["get", "list", "watch", "create", "patch", "delete"][..],
        ),
        (
            "",
            "configmaps",
            &["get", "list", "watch", "create", "patch", "delete"],
        ),
        (
            "rbac.authorization.k8s.io",
            "rolebindings",
            &["get", "create", "patch"],
        ),
        ("", "serviceaccounts", &["get", "create", "patch"]),
        ("", "pods", &["get", "list", "watch", "patch"]),
        ("events.k8s.io", "events", &["create", "patch"]),
        (
            "tidemark.dev",
            "kafkaoffsetrollbacks",
            &["get", "list", "watch", "patch"],
        ),
        (
            "tidemark.dev",
            "kafkaoffsetrollbacks/status",
            &["get", "patch"],
        ),
        (
            "tidemark.dev",
            "kafkaoffsetresets",
            &["get", "list", "watch", "patch"],
        ),
        (
            "tidemark.dev",
            "kafkaoffsetresets/status",
            &["get", "patch"],
        ),
        (
            "tidemark.dev",
            "kafkabackups",
            &["get", "list", "watch", "patch"],
        ),
        ("tidemark.dev", "kafkabackups/status", &["get", "patch"]),
        (
            "batch",
            "cronjobs",
            &["get", "list", "watch", "create", "patch", "delete"],
        ),
    ] {
        for verb in verbs {
            assert!(
                allows(&rules, group, resource, verb, None),
                "missing {verb} on {group}/{resource}"
            );
        }
    }
    // Each served CRD can be read at start-up (the wait for its Established condition).
    for crd in tidemark_operator::crd::all() {
        let name = crd.metadata.name.expect("named");
        assert!(
            allows(
                &rules,
                "apiextensions.k8s.io",
                "customresourcedefinitions",
                "get",
                Some(&name)
            ),
            "missing get on the CRD {name}"
        );
    }
    // No wildcards, no privilege escalation verbs.
    for rule in &rules {
        assert!(
            !rule
                .verbs
                .iter()
                .any(|v| v == "*" || v == "escalate" || v == "impersonate"),
            "{rule:?}"
        );
        assert!(
            !rule.resources.iter().flatten().any(|r| r == "*"),
            "{rule:?}"
        );
    }
}

#[test]
fn the_manager_runs_the_operator_locked_down() {
    let (_, doc) = manifests("manager")
        .into_iter()
        .find(|(_, d)| d["kind"] == "Deployment")
        .expect("a Deployment");
    let deployment: Deployment = serde_json::from_value(doc).expect("Deployment");
    let pod = deployment
        .spec
        .and_then(|s| s.template.spec)
        .expect("pod spec");
    assert_eq!(
        pod.service_account_name.as_deref(),
        Some("tidemark-operator")
    );
    let psc = pod.security_context.expect("pod securityContext");
    assert_eq!(psc.run_as_non_root, Some(true));
    assert_eq!(
        psc.seccomp_profile.map(|s| s.type_).as_deref(),
        Some("RuntimeDefault")
    );
    let c = &pod.containers[0];
    assert_eq!(c.args.as_deref(), Some(&["run".to_string()][..]));
    let sc = c
        .security_context
        .as_ref()
        .expect("container securityContext");
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    let probe_path = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
        p.as_ref()
            .and_then(|p| p.http_get.as_ref())
            .and_then(|h| h.path.clone())
    };
    assert_eq!(probe_path(&c.liveness_probe).as_deref(), Some("/healthz"));
    assert_eq!(probe_path(&c.readiness_probe).as_deref(), Some("/readyz"));
    assert!(c.ports.iter().flatten().any(|p| p.container_port == 8080));
    assert!(c
        .env
        .iter()
        .flatten()
        .any(|e| e.name == "TIDEMARK_WORKER_IMAGE"));
    // The env the operator reads is well-formed.
    let vars: std::collections::BTreeMap<String, String> = c
        .env
        .iter()
        .flatten()
        .filter_map(|e| e.value.clone().map(|v| (e.name.clone(), v)))
        .collect();
    let config = OperatorConfig::from_lookup(|k| vars.get(k).cloned())
        .expect("the manager's env is a valid operator configuration");
    // The worker RoleBindings refer to the ClusterRole config/rbac ships.
    cluster_role(&config.worker_cluster_role);
}
