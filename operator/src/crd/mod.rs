//! Custom resource types of `tidemark.dev/v1alpha1`, and CRD generation.

pub mod common;
pub mod rollback;
pub mod status;

pub use rollback::{KafkaOffsetRollback, KafkaOffsetRollbackSpec, KafkaOffsetRollbackStatus};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// Every CRD the operator serves, in a stable order.
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![KafkaOffsetRollback::crd()]
}

/// The CRDs as one multi-document YAML stream, as committed in `crds/`.
pub fn to_yaml() -> Result<String, serde_yaml_ng::Error> {
    let mut out = String::new();
    for crd in all() {
        out.push_str("---\n");
        out.push_str(&serde_yaml_ng::to_string(&crd)?);
    }
    Ok(out)
}
