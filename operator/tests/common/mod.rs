//! What the schema tests of every kind share: the generated CRD schema of a kind checked the
//! way an API server checks a manifest (the OpenAPI structure with strict field validation, as
//! `kubectl apply` requests; the CEL rules; deserialization into the Rust type), YAML helpers,
//! and the table of malformed manifests with the reason each must be rejected for.

#![allow(dead_code)]

use std::marker::PhantomData;

use kube::core::cel::{compile_schema, estimate_rule_cost, Validator};
use kube::Resource;
use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};

/// Which check refused a manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    /// The OpenAPI schema: types, enums, patterns, bounds, required and unknown fields.
    Structure,
    /// The `x-kubernetes-validations` CEL rules.
    Cel,
    /// Deserializing into `KafkaOffsetRollback`.
    Serde,
}

/// One reason a manifest was refused.
#[derive(Debug)]
pub struct Rejection {
    pub layer: Layer,
    pub message: String,
}

/// The generated openAPIV3Schema of `kind`.
pub fn crd_schema(kind: &str) -> Value {
    let crd = tidemark_operator::crd::all()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .unwrap_or_else(|| panic!("no {kind} CRD"));
    let version = &crd.spec.versions[0];
    serde_json::to_value(
        version
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .expect("a schema"),
    )
    .expect("schema as JSON")
}

/// The Kubernetes structural schema as plain JSON Schema (draft 4): `nullable` becomes a `null`
/// type, `x-kubernetes-int-or-string` an integer-or-string, and objects with declared
/// properties refuse unknown fields (the API server's strict field validation, which
/// `kubectl apply` requests).
fn to_json_schema(node: &Value) -> Value {
    let Value::Object(obj) = node else {
        return node.clone();
    };
    let mut out = Map::new();
    for (key, value) in obj {
        match key.as_str() {
            "properties" => {
                let props = value
                    .as_object()
                    .expect("properties is a map")
                    .iter()
                    .map(|(k, v)| (k.clone(), to_json_schema(v)))
                    .collect();
                out.insert(key.clone(), Value::Object(props));
            }
            "items" | "additionalProperties" if value.is_object() => {
                out.insert(key.clone(), to_json_schema(value));
            }
            "nullable" | "x-kubernetes-validations" | "x-kubernetes-int-or-string" => {}
            _ => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    let nullable = obj.get("nullable") == Some(&json!(true));
    if obj.get("x-kubernetes-int-or-string") == Some(&json!(true)) {
        out.remove("type");
        let mut any = vec![json!({"type": "integer"}), json!({"type": "string"})];
        if nullable {
            any.push(json!({"type": "null"}));
        }
        out.insert("anyOf".into(), Value::Array(any));
    } else if nullable {
        if let Some(Value::String(t)) = out.get("type").cloned() {
            out.insert("type".into(), json!([t, "null"]));
        }
        if let Some(Value::Array(values)) = out.get_mut("enum") {
            values.push(Value::Null);
        }
    }
    let preserve = obj.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true));
    if out.contains_key("properties") && !out.contains_key("additionalProperties") && !preserve {
        out.insert("additionalProperties".into(), json!(false));
    }
    out.into()
}

/// The structural schema of a whole object: the CRD schema plus the envelope the API server
/// checks itself.
fn object_schema(crd_schema: &Value, kind: &str) -> Value {
    let mut schema = to_json_schema(crd_schema);
    let props = schema["properties"]
        .as_object_mut()
        .expect("root properties");
    props.insert(
        "apiVersion".into(),
        json!({"type": "string", "enum": ["tidemark.dev/v1alpha1"]}),
    );
    props.insert("kind".into(), json!({"type": "string", "enum": [kind]}));
    props.insert("metadata".into(), json!({"type": "object"}));
    schema
}

/// Checks manifests of the kind `K` against its generated CRD.
pub struct Checker<K> {
    crd_schema: Value,
    structure: jsonschema::Validator,
    cel: Validator,
    kind: PhantomData<K>,
}

impl<K: Resource<DynamicType = ()> + DeserializeOwned> Checker<K> {
    pub fn new() -> Self {
        let kind = K::kind(&());
        let crd_schema = crd_schema(&kind);
        let structure = jsonschema::draft4::new(&object_schema(&crd_schema, &kind))
            .expect("the structural schema compiles");
        Checker {
            crd_schema,
            structure,
            cel: Validator::new(),
            kind: PhantomData,
        }
    }

    /// The generated openAPIV3Schema.
    pub fn schema(&self) -> &Value {
        &self.crd_schema
    }

    /// The resource, or every reason `doc` is refused, by layer.
    pub fn check(&self, doc: &Value) -> Result<K, Vec<Rejection>> {
        let mut rejections: Vec<Rejection> = self
            .structure
            .iter_errors(doc)
            .map(|e| Rejection {
                layer: Layer::Structure,
                message: format!("{}: {e}", e.instance_path()),
            })
            .collect();
        if let Err(errors) = self.cel.validate(&self.crd_schema, doc, None) {
            rejections.extend(errors.into_vec().into_iter().map(|e| Rejection {
                layer: Layer::Cel,
                message: e.to_string(),
            }));
        }
        match serde_json::from_value::<K>(doc.clone()) {
            Ok(cr) if rejections.is_empty() => Ok(cr),
            Ok(_) => Err(rejections),
            Err(e) => {
                rejections.push(Rejection {
                    layer: Layer::Serde,
                    message: e.to_string(),
                });
                Err(rejections)
            }
        }
    }
}

/// The documents of a YAML stream, as JSON (empty documents skipped).
pub fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|doc| {
            let value: serde_yaml_ng::Value =
                serde::Deserialize::deserialize(doc).expect("valid YAML");
            serde_json::to_value(value).expect("YAML as JSON")
        })
        .filter(|v| !v.is_null())
        .collect()
}

/// The single document of `yaml`.
pub fn document(yaml: &str) -> Value {
    let mut docs = documents(yaml);
    assert_eq!(docs.len(), 1, "one document expected");
    docs.remove(0)
}

/// `base` with `from` replaced by `to`; `from` must occur (so a case never silently tests the
/// unchanged base).
pub fn edit(base: &str, from: &str, to: &str) -> String {
    assert!(
        base.contains(from),
        "'{from}' not found in the base manifest"
    );
    base.replacen(from, to, 1)
}

/// A malformed manifest and why it must be rejected.
pub struct Case {
    pub name: &'static str,
    pub manifest: String,
    pub layer: Layer,
    /// Text the rejection message must contain.
    pub reason: &'static str,
}

/// A [`Case`].
pub fn case(name: &'static str, manifest: String, layer: Layer, reason: &'static str) -> Case {
    Case {
        name,
        manifest,
        layer,
        reason,
    }
}

/// Asserts that each case is rejected by its layer with its reason; lists every miss.
pub fn assert_rejected<K: Resource<DynamicType = ()> + DeserializeOwned>(
    checker: &Checker<K>,
    cases: &[Case],
) {
    let mut failures = Vec::new();
    for case in cases {
        match checker.check(&document(&case.manifest)) {
            Ok(_) => failures.push(format!("'{}' was accepted", case.name)),
            Err(rejections) => {
                let hit = rejections
                    .iter()
                    .any(|r| r.layer == case.layer && r.message.contains(case.reason));
                if !hit {
                    failures.push(format!(
                        "'{}' was not rejected by {:?} with '{}'; got {rejections:#?}",
                        case.name, case.layer, case.reason
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Compiles every CEL rule of `schema`, checks each fits the API server's cost budget, and
/// returns how many there are.
pub fn check_cel_rules(schema: &Value) -> usize {
    fn walk(node: &Value, path: &str, count: &mut usize) {
        let Value::Object(obj) = node else { return };
        if let Some(Value::Array(rules)) = obj.get("x-kubernetes-validations") {
            let compiled = compile_schema(node);
            assert!(
                !compiled.has_errors(),
                "{path}: {:?}",
                compiled.compilation_errors()
            );
            for rule in rules {
                let rule = rule["rule"].as_str().expect("rule text");
                let warnings = estimate_rule_cost(rule, &compiled);
                assert!(warnings.is_empty(), "{path}: {rule}: {warnings:?}");
                *count += 1;
            }
        }
        if let Some(Value::Object(props)) = obj.get("properties") {
            for (k, v) in props {
                walk(v, &format!("{path}.{k}"), count);
            }
        }
        for key in ["items", "additionalProperties"] {
            if let Some(v) = obj.get(key) {
                walk(v, &format!("{path}[]"), count);
            }
        }
    }
    let mut count = 0;
    walk(schema, "", &mut count);
    count
}
