//! Custom resource types of `tidemark.dev/v1alpha1`, and CRD generation: [`all`] is what the
//! operator serves and [`files`] is exactly what `crds/` and `config/crd/` hold.

pub mod approval;
pub mod backup;
pub mod common;
pub mod reset;
pub mod restore;
pub mod rollback;
pub mod status;

pub use backup::{KafkaBackup, KafkaBackupSpec, KafkaBackupStatus};
pub use reset::{KafkaOffsetReset, KafkaOffsetResetSpec, KafkaOffsetResetStatus};
pub use restore::{KafkaRestore, KafkaRestoreSpec, KafkaRestoreStatus};
pub use rollback::{KafkaOffsetRollback, KafkaOffsetRollbackSpec, KafkaOffsetRollbackStatus};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool, JSON,
};
use kube::CustomResourceExt;

/// The command that regenerates the committed CRD files.
pub const REGENERATE_COMMAND: &str =
    "cargo run -p tidemark-operator -- crd --out-dir crds --out-dir config/crd";

/// Every CRD the operator serves, in a stable order.
pub fn all() -> Vec<CustomResourceDefinition> {
    let mut crds = vec![
        KafkaBackup::crd(),
        KafkaOffsetReset::crd(),
        KafkaOffsetRollback::crd(),
        KafkaRestore::crd(),
    ];
    for crd in &mut crds {
        for version in &mut crd.spec.versions {
            if let Some(schema) = version
                .schema
                .as_mut()
                .and_then(|s| s.open_api_v3_schema.as_mut())
            {
                drop_null_enum_values(schema);
                if let Some(status) = schema.properties.as_mut().and_then(|p| p.get_mut("status")) {
                    status.default = Some(JSON(default_status()));
                }
            }
        }
    }
    crds
}

/// Reason of the `Ready` condition of a resource the operator has not reconciled yet (the
/// CRD's default status).
pub const REASON_WAITING_FOR_OPERATOR: &str = "WaitingForOperator";

/// The status the API server shows for a resource the operator has not written one for yet
/// (the CRD's `default` of `status`, applied when the object is read): generation 0 observed and
/// `Ready=Unknown`. kstatus (Flux) reads it as InProgress, where a resource without any status
/// would read as Current; Argo CD's health check as Progressing; `kubectl get` shows READY
/// `Unknown` and the reason. The operator's first status write replaces it.
pub fn default_status() -> serde_json::Value {
    serde_json::json!({
        "observedGeneration": 0,
        "conditions": [{
            "type": "Ready",
            "status": "Unknown",
            "reason": REASON_WAITING_FOR_OPERATOR,
            "message": "Waiting for the Tidemark operator to reconcile the resource",
            "lastTransitionTime": "1970-01-01T00:00:00Z"
        }]
    })
}

/// schemars lists `null` among the values of an optional enum (`enum: [A, B, null]`) next to
/// `nullable: true`. `nullable` already says it; the extra value only confuses readers and
/// schema tools, so it is dropped.
fn drop_null_enum_values(schema: &mut JSONSchemaProps) {
    if let Some(values) = schema.enum_.as_mut() {
        values.retain(|v| !v.0.is_null());
    }
    if let Some(props) = schema.properties.as_mut() {
        props.values_mut().for_each(drop_null_enum_values);
    }
    if let Some(JSONSchemaPropsOrArray::Schema(items)) = schema.items.as_mut() {
        drop_null_enum_values(items);
    }
    if let Some(JSONSchemaPropsOrBool::Schema(extra)) = schema.additional_properties.as_mut() {
        drop_null_enum_values(extra);
    }
}

/// The CRDs as one multi-document YAML stream (what `tidemark-operator crd` prints).
pub fn to_yaml() -> Result<String, serde_yaml_ng::Error> {
    let mut out = String::new();
    for (_, content) in files()? {
        out.push_str("---\n");
        out.push_str(&content);
    }
    Ok(out)
}

/// One `(file name, content)` per CRD, e.g. `kafkaoffsetrollbacks.tidemark.dev.yaml`: the files
/// committed in `crds/` and `config/crd/`.
pub fn files() -> Result<Vec<(String, String)>, serde_yaml_ng::Error> {
    all()
        .into_iter()
        .map(|crd| {
            let name = crd.metadata.name.clone().unwrap_or_default();
            let body = serde_yaml_ng::to_string(&crd)?;
            let content = format!(
                "# Generated from the Rust types in operator/src/crd by `tidemark-operator crd`; do not edit.\n\
                 # Regenerate with: {REGENERATE_COMMAND}\n{body}"
            );
            Ok((format!("{name}.yaml"), content))
        })
        .collect()
}
