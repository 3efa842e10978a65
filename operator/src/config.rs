//! Operator-wide settings, read once from the environment at start-up: which worker image runs,
//! under which ServiceAccount, with which default resources and Job options. Every setting has a
//! default, so an empty environment is a valid configuration; a malformed value is an error
//! naming the variable.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// Worker image (default `ghcr.io/tidemark-dev/tidemark:<operator version>`).
pub const ENV_WORKER_IMAGE: &str = "TIDEMARK_WORKER_IMAGE";
/// `Always`, `IfNotPresent` (default) or `Never`.
pub const ENV_IMAGE_PULL_POLICY: &str = "TIDEMARK_WORKER_IMAGE_PULL_POLICY";
/// Comma-separated Secret names used to pull the worker image (default none).
pub const ENV_IMAGE_PULL_SECRETS: &str = "TIDEMARK_WORKER_IMAGE_PULL_SECRETS";
/// ServiceAccount of the worker pods, in each resource's namespace (default `tidemark-worker`).
pub const ENV_WORKER_SERVICE_ACCOUNT: &str = "TIDEMARK_WORKER_SERVICE_ACCOUNT";
/// Default worker resources as JSON or YAML `ResourceRequirements`
/// (default requests cpu 100m / memory 128Mi, limits memory 512Mi).
pub const ENV_WORKER_RESOURCES: &str = "TIDEMARK_WORKER_RESOURCES";
/// ClusterRole shipped with the install that worker RoleBindings refer to, for ConfigMap
/// snapshot storage (default `tidemark-worker`); the operator may bind only this one.
pub const ENV_WORKER_CLUSTER_ROLE: &str = "TIDEMARK_WORKER_CLUSTER_ROLE";
/// Default `job.backoffLimit` (default 3).
pub const ENV_JOB_BACKOFF_LIMIT: &str = "TIDEMARK_JOB_BACKOFF_LIMIT";
/// Default `job.activeDeadlineSeconds` (default none).
pub const ENV_JOB_ACTIVE_DEADLINE_SECONDS: &str = "TIDEMARK_JOB_ACTIVE_DEADLINE_SECONDS";
/// Default `job.ttlSecondsAfterFinished` (default 86400).
pub const ENV_JOB_TTL_SECONDS_AFTER_FINISHED: &str = "TIDEMARK_JOB_TTL_SECONDS_AFTER_FINISHED";
/// Watch only these namespaces: one name, or a comma-separated list (default: all namespaces).
pub const ENV_WATCH_NAMESPACE: &str = "TIDEMARK_WATCH_NAMESPACE";
/// `sizeLimit` of the worker pods' `/tmp` emptyDir, a Kubernetes quantity (default `1Gi`).
pub const ENV_WORKER_TMP_SIZE_LIMIT: &str = "TIDEMARK_WORKER_TMP_SIZE_LIMIT";

/// Default worker image repository; the tag is the operator's version.
pub const DEFAULT_WORKER_IMAGE_REPOSITORY: &str = "ghcr.io/tidemark-dev/tidemark";
/// Default ServiceAccount of the worker pods.
pub const DEFAULT_WORKER_SERVICE_ACCOUNT: &str = "tidemark-worker";
/// Default ClusterRole of the worker RoleBindings.
pub const DEFAULT_WORKER_CLUSTER_ROLE: &str = "tidemark-worker";
/// Default `backoffLimit` of worker Jobs.
pub const DEFAULT_BACKOFF_LIMIT: i32 = 3;
/// Default `ttlSecondsAfterFinished` of worker Jobs (one day).
pub const DEFAULT_TTL_SECONDS_AFTER_FINISHED: i32 = 86_400;
/// Default `sizeLimit` of the worker pods' `/tmp` emptyDir.
pub const DEFAULT_WORKER_TMP_SIZE_LIMIT: &str = "1Gi";

/// Everything the builders need from the operator's own configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct OperatorConfig {
    /// Image of the worker container (it must contain the `tidemark` binary on `PATH`).
    pub worker_image: String,
    /// `imagePullPolicy` of the worker container.
    pub image_pull_policy: String,
    /// `imagePullSecrets` of the worker pods.
    pub image_pull_secrets: Vec<String>,
    /// ServiceAccount the worker pods run as, in the resource's namespace.
    pub worker_service_account: String,
    /// ClusterRole the worker RoleBindings refer to (ConfigMap snapshot storage).
    pub worker_cluster_role: String,
    /// Worker resources when a resource does not set `spec.resources`.
    pub default_resources: ResourceRequirements,
    /// Job options when a resource does not set them in `spec.job`.
    pub job_defaults: JobDefaults,
    /// Watch only these namespaces (each once, in the order given); empty watches all.
    pub watch_namespaces: Vec<String>,
    /// `sizeLimit` of the worker pods' `/tmp` emptyDir: past it the kubelet evicts the pod.
    pub worker_tmp_size_limit: Quantity,
}

/// Operator-wide defaults of the `spec.job` options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobDefaults {
    pub backoff_limit: i32,
    pub active_deadline_seconds: Option<i64>,
    pub ttl_seconds_after_finished: i32,
}

impl Default for JobDefaults {
    fn default() -> Self {
        JobDefaults {
            backoff_limit: DEFAULT_BACKOFF_LIMIT,
            active_deadline_seconds: None,
            ttl_seconds_after_finished: DEFAULT_TTL_SECONDS_AFTER_FINISHED,
        }
    }
}

impl Default for OperatorConfig {
    fn default() -> Self {
        OperatorConfig {
            worker_image: format!(
                "{DEFAULT_WORKER_IMAGE_REPOSITORY}:{}",
                env!("CARGO_PKG_VERSION")
            ),
            image_pull_policy: "IfNotPresent".into(),
            image_pull_secrets: Vec::new(),
            worker_service_account: DEFAULT_WORKER_SERVICE_ACCOUNT.into(),
            worker_cluster_role: DEFAULT_WORKER_CLUSTER_ROLE.into(),
            default_resources: default_resources(),
            job_defaults: JobDefaults::default(),
            watch_namespaces: Vec::new(),
            worker_tmp_size_limit: Quantity(DEFAULT_WORKER_TMP_SIZE_LIMIT.into()),
        }
    }
}

/// requests cpu 100m / memory 128Mi, limits memory 512Mi (no CPU limit: throttling only slows
/// a short Job down).
pub fn default_resources() -> ResourceRequirements {
    let q = |s: &str| Quantity(s.to_string());
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_string(), q("100m")),
            ("memory".to_string(), q("128Mi")),
        ])),
        limits: Some(BTreeMap::from([("memory".to_string(), q("512Mi"))])),
        ..ResourceRequirements::default()
    }
}

/// A malformed configuration variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The environment variable.
    pub variable: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {}: {}", self.variable, self.message)
    }
}

impl std::error::Error for ConfigError {}

impl OperatorConfig {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup` (for tests); empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let mut config = OperatorConfig::default();
        if let Some(image) = get(ENV_WORKER_IMAGE) {
            config.worker_image = image;
        }
        if let Some(policy) = get(ENV_IMAGE_PULL_POLICY) {
            if !["Always", "IfNotPresent", "Never"].contains(&policy.as_str()) {
                return Err(ConfigError {
                    variable: ENV_IMAGE_PULL_POLICY,
                    message: format!("'{policy}' is not one of Always, IfNotPresent, Never"),
                });
            }
            config.image_pull_policy = policy;
        }
        if let Some(secrets) = get(ENV_IMAGE_PULL_SECRETS) {
            config.image_pull_secrets = secrets
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
        }
        if let Some(sa) = get(ENV_WORKER_SERVICE_ACCOUNT) {
            config.worker_service_account = sa;
        }
        if let Some(role) = get(ENV_WORKER_CLUSTER_ROLE) {
            config.worker_cluster_role = role;
        }
        if let Some(text) = get(ENV_WORKER_RESOURCES) {
            config.default_resources = serde_yaml_ng::from_str(&text).map_err(|e| ConfigError {
                variable: ENV_WORKER_RESOURCES,
                message: format!("not a ResourceRequirements document (JSON or YAML): {e}"),
            })?;
        }
        if let Some(v) = get(ENV_JOB_BACKOFF_LIMIT) {
            config.job_defaults.backoff_limit = parse_number(ENV_JOB_BACKOFF_LIMIT, &v, 0)?;
        }
        if let Some(v) = get(ENV_JOB_ACTIVE_DEADLINE_SECONDS) {
            config.job_defaults.active_deadline_seconds =
                Some(parse_number(ENV_JOB_ACTIVE_DEADLINE_SECONDS, &v, 1)?);
        }
        if let Some(v) = get(ENV_JOB_TTL_SECONDS_AFTER_FINISHED) {
            config.job_defaults.ttl_seconds_after_finished =
                parse_number(ENV_JOB_TTL_SECONDS_AFTER_FINISHED, &v, 0)?;
        }
        if let Some(limit) = get(ENV_WORKER_TMP_SIZE_LIMIT) {
            config.worker_tmp_size_limit = parse_quantity(ENV_WORKER_TMP_SIZE_LIMIT, &limit)?;
        }
        if let Some(list) = get(ENV_WATCH_NAMESPACE) {
            config.watch_namespaces = parse_namespaces(&list)?;
        }
        Ok(config)
    }

    /// The namespaces the controllers watch, one watch scope each: `[None]` (all namespaces)
    /// when no namespace is configured.
    pub fn watch_scopes(&self) -> Vec<Option<String>> {
        if self.watch_namespaces.is_empty() {
            vec![None]
        } else {
            self.watch_namespaces.iter().cloned().map(Some).collect()
        }
    }
}

/// A comma-separated list of namespace names (RFC 1123 labels), each kept once.
fn parse_namespaces(list: &str) -> Result<Vec<String>, ConfigError> {
    let mut out: Vec<String> = Vec::new();
    for name in list.split(',').map(str::trim) {
        if !is_dns_label(name) {
            return Err(ConfigError {
                variable: ENV_WATCH_NAMESPACE,
                message: format!(
                    "'{name}' is not a namespace name (lowercase letters, digits and '-', \
                     at most 63, starting and ending with a letter or digit); \
                     separate several with commas"
                ),
            });
        }
        if !out.iter().any(|n| n == name) {
            out.push(name.to_string());
        }
    }
    Ok(out)
}

/// An RFC 1123 label, as Kubernetes requires of a namespace name.
fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

/// A positive storage quantity with a binary or decimal suffix (`512Mi`, `2Gi`, `1G`) or none.
fn parse_quantity(variable: &'static str, value: &str) -> Result<Quantity, ConfigError> {
    let digits = value.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let suffix = &value[digits.len()..];
    let known = ["", "k", "M", "G", "T", "Ki", "Mi", "Gi", "Ti"];
    match digits.parse::<u64>() {
        Ok(n) if n > 0 && known.contains(&suffix) => Ok(Quantity(value.to_string())),
        _ => Err(ConfigError {
            variable,
            message: format!(
                "'{value}' is not a positive size such as 512Mi or 2Gi \
                 (a whole number with k, M, G, T, Ki, Mi, Gi or Ti)"
            ),
        }),
    }
}

/// An integer of at least `min`.
fn parse_number<T>(variable: &'static str, value: &str, min: T) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
{
    match value.parse::<T>() {
        Ok(n) if n >= min => Ok(n),
        _ => Err(ConfigError {
            variable,
            message: format!("'{value}' is not a whole number of at least {min}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(vars: &[(&str, &str)]) -> Result<OperatorConfig, ConfigError> {
        let vars: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        OperatorConfig::from_lookup(|k| vars.get(k).cloned())
    }

    #[test]
    fn an_empty_environment_gives_the_defaults() {
        let config = from(&[]).expect("valid");
        assert_eq!(config, OperatorConfig::default());
        assert_eq!(
            config.worker_image,
            format!(
                "ghcr.io/tidemark-dev/tidemark:{}",
                env!("CARGO_PKG_VERSION")
            )
        );
        assert_eq!(config.image_pull_policy, "IfNotPresent");
        assert_eq!(config.worker_service_account, "tidemark-worker");
        assert_eq!(config.job_defaults.backoff_limit, 3);
        assert_eq!(config.job_defaults.ttl_seconds_after_finished, 86_400);
        assert_eq!(config.job_defaults.active_deadline_seconds, None);
        let requests = config.default_resources.requests.expect("requests");
        assert_eq!(requests["cpu"].0, "100m");
        assert_eq!(requests["memory"].0, "128Mi");
    }

    #[test]
    fn every_variable_is_read() {
        let config = from(&[
            (ENV_WORKER_IMAGE, "registry.local/tidemark:dev"),
            (ENV_IMAGE_PULL_POLICY, "Always"),
            (ENV_IMAGE_PULL_SECRETS, "regcred, other ,"),
            (ENV_WORKER_SERVICE_ACCOUNT, "kafka-ops"),
            (ENV_WORKER_CLUSTER_ROLE, "kafka-ops-tidemark-worker"),
            (
                ENV_WORKER_RESOURCES,
                r#"{"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "2Gi"}}"#,
            ),
            (ENV_JOB_BACKOFF_LIMIT, "0"),
            (ENV_JOB_ACTIVE_DEADLINE_SECONDS, "600"),
            (ENV_JOB_TTL_SECONDS_AFTER_FINISHED, "60"),
            (ENV_WATCH_NAMESPACE, "kafka"),
            (ENV_WORKER_TMP_SIZE_LIMIT, "256Mi"),
        ])
        .expect("valid");
        assert_eq!(config.worker_image, "registry.local/tidemark:dev");
        assert_eq!(config.image_pull_policy, "Always");
        assert_eq!(config.image_pull_secrets, ["regcred", "other"]);
        assert_eq!(config.worker_service_account, "kafka-ops");
        assert_eq!(config.worker_cluster_role, "kafka-ops-tidemark-worker");
        assert_eq!(
            config.default_resources.limits.as_ref().expect("limits")["memory"].0,
            "2Gi"
        );
        assert_eq!(
            config.job_defaults,
            JobDefaults {
                backoff_limit: 0,
                active_deadline_seconds: Some(600),
                ttl_seconds_after_finished: 60
            }
        );
        assert_eq!(config.watch_namespaces, ["kafka"]);
        assert_eq!(config.watch_scopes(), [Some("kafka".to_string())]);
        assert_eq!(config.worker_tmp_size_limit.0, "256Mi");
    }

    #[test]
    fn no_watch_namespace_watches_every_namespace_and_tmp_is_limited_to_1gi() {
        let config = from(&[]).expect("valid");
        assert!(config.watch_namespaces.is_empty());
        assert_eq!(config.watch_scopes(), [None]);
        assert_eq!(config.worker_tmp_size_limit.0, "1Gi");
    }

    #[test]
    fn a_list_of_watch_namespaces_gives_one_scope_each_in_order_without_repeats() {
        let config = from(&[(ENV_WATCH_NAMESPACE, " team-a, kafka ,team-a,b2 ")]).expect("valid");
        assert_eq!(config.watch_namespaces, ["team-a", "kafka", "b2"]);
        assert_eq!(
            config.watch_scopes(),
            [
                Some("team-a".to_string()),
                Some("kafka".to_string()),
                Some("b2".to_string())
            ]
        );
    }

    #[test]
    fn malformed_watch_namespaces_and_tmp_limits_are_refused_naming_the_value() {
        for list in [
            "a,,b",
            "Kafka",
            "team_a",
            "-a",
            "a-",
            "a b",
            &"x".repeat(64),
        ] {
            let err = from(&[(ENV_WATCH_NAMESPACE, list)]).expect_err(list);
            assert_eq!(err.variable, ENV_WATCH_NAMESPACE, "{list}");
            assert!(err.message.contains("is not a namespace name"), "{err}");
        }
        for limit in ["0", "-1Gi", "1.5Gi", "Gi", "1GB", "lots"] {
            let err = from(&[(ENV_WORKER_TMP_SIZE_LIMIT, limit)]).expect_err(limit);
            assert_eq!(err.variable, ENV_WORKER_TMP_SIZE_LIMIT);
            assert!(err.message.contains(&format!("'{limit}'")), "{err}");
        }
    }

    #[test]
    fn malformed_values_name_the_variable() {
        for (var, value) in [
            (ENV_IMAGE_PULL_POLICY, "Sometimes"),
            (ENV_WORKER_RESOURCES, "requests: [1, 2"),
            (ENV_JOB_BACKOFF_LIMIT, "-1"),
            (ENV_JOB_ACTIVE_DEADLINE_SECONDS, "0"),
            (ENV_JOB_TTL_SECONDS_AFTER_FINISHED, "a day"),
        ] {
            let err = from(&[(var, value)]).expect_err(var);
            assert_eq!(err.variable, var);
            assert!(
                err.to_string().starts_with(&format!("invalid {var}: ")),
                "{err}"
            );
        }
    }
}
