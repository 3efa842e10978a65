//! What can be checked of the end-to-end suite (`e2e/`) without Docker or a cluster:
//!
//! - every Tidemark resource in `e2e/` is accepted by its generated CRD the way the API server
//!   checks it (the checker of `operator/tests/schema.rs`: OpenAPI structure with strict field
//!   validation, CEL rules, the Rust type) and by the operator's own validation, and the four
//!   kinds are all there;
//! - they point at the Kafka and MinIO Services of `e2e/manifests/`, at the bucket the MinIO
//!   Job creates, and at Secrets (and keys) `e2e/run.sh` creates;
//! - the other manifests are well-typed Kubernetes objects with pinned images;
//! - `e2e/run.sh` passes `bash -n` and `shellcheck`, applies and waits on every
//!   resource, substitutes the rollback's placeholder snapshot id, and installs the operator with
//!   keys the chart and `config/default` have.

#[path = "../../operator/tests/common/mod.rs"]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use tidemark_operator::crd::{KafkaBackup, KafkaOffsetReset, KafkaOffsetRollback, KafkaRestore};
use tidemark_operator::validate::{referenced_secrets, validate, SecretReference};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn e2e() -> PathBuf {
    repo().join("e2e")
}

/// Every YAML document under `e2e/`, with its file.
fn manifests() -> Vec<(PathBuf, Value)> {
    let mut files = Vec::new();
    let mut stack = vec![e2e()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read e2e/") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                files.push(path);
            }
        }
    }
    files.sort();
    assert!(!files.is_empty(), "no manifests in e2e/");
    files
        .into_iter()
        .flat_map(|path| {
            let text = std::fs::read_to_string(&path).expect("readable");
            common::documents(&text)
                .into_iter()
                .map(move |doc| (path.clone(), doc))
        })
        .collect()
}

fn run_sh() -> String {
    std::fs::read_to_string(e2e().join("run.sh")).expect("e2e/run.sh")
}

/// A resource as the API server holds it: with a uid.
fn with_uid(mut doc: Value) -> Value {
    doc["metadata"]["uid"] = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0".into();
    doc
}

/// The Tidemark resources of `e2e/`: kind, name, the Secrets they reference, the Kafka
/// bootstrap servers and the S3 storages.
struct Resource {
    kind: String,
    name: String,
    namespace: String,
    secrets: Vec<SecretReference>,
    doc: Value,
}

fn tidemark_resources() -> Vec<Resource> {
    let rollbacks = common::Checker::<KafkaOffsetRollback>::new();
    let resets = common::Checker::<KafkaOffsetReset>::new();
    let backups = common::Checker::<KafkaBackup>::new();
    let restores = common::Checker::<KafkaRestore>::new();
    let mut out = Vec::new();
    for (path, doc) in manifests() {
        if !doc["apiVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("tidemark.dev/"))
        {
            continue;
        }
        let file = path.display().to_string();
        let refused = |r: Vec<common::Rejection>| -> ! { panic!("{file} refused: {r:#?}") };
        let doc = with_uid(doc);
        let (problems, secrets) = match doc["kind"].as_str() {
            Some("KafkaBackup") => {
                let cr = backups.check(&doc).unwrap_or_else(|r| refused(r));
                (validate(&cr), referenced_secrets(&cr))
            }
            Some("KafkaRestore") => {
                let cr = restores.check(&doc).unwrap_or_else(|r| refused(r));
                (validate(&cr), referenced_secrets(&cr))
            }
            Some("KafkaOffsetReset") => {
                let cr = resets.check(&doc).unwrap_or_else(|r| refused(r));
                (validate(&cr), referenced_secrets(&cr))
            }
            Some("KafkaOffsetRollback") => {
                let cr = rollbacks.check(&doc).unwrap_or_else(|r| refused(r));
                (validate(&cr), referenced_secrets(&cr))
            }
            other => panic!("{file}: unknown kind {other:?}"),
        };
        let messages: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
        assert!(
            messages.is_empty(),
            "{file}: the operator would stall it: {messages:?}"
        );
        out.push(Resource {
            kind: doc["kind"].as_str().unwrap_or_default().to_string(),
            name: doc["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            namespace: doc["metadata"]["namespace"]
                .as_str()
                .expect("a namespace")
                .to_string(),
            secrets,
            doc,
        });
    }
    out
}

#[test]
fn every_tidemark_resource_is_accepted_by_its_crd_and_the_operator() {
    let resources = tidemark_resources();
    let kinds: BTreeSet<&str> = resources.iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            "KafkaBackup",
            "KafkaOffsetReset",
            "KafkaOffsetRollback",
            "KafkaRestore"
        ])
    );
    // The restore restores the suite's backup.
    let backup = resources
        .iter()
        .find(|r| r.kind == "KafkaBackup")
        .expect("a backup");
    let restore = resources
        .iter()
        .find(|r| r.kind == "KafkaRestore")
        .expect("a restore");
    assert_eq!(
        restore.doc["spec"]["backupRef"]["name"].as_str(),
        Some(backup.name.as_str())
    );
    // The rollback reads the snapshots where the reset stores them.
    let reset = resources
        .iter()
        .find(|r| r.kind == "KafkaOffsetReset")
        .expect("a reset");
    let rollback = resources
        .iter()
        .find(|r| r.kind == "KafkaOffsetRollback")
        .expect("a rollback");
    assert_eq!(
        reset.doc["spec"]["storage"],
        rollback.doc["spec"]["storage"]
    );
    assert_eq!(
        reset.doc["spec"]["consumerGroups"],
        rollback.doc["spec"]["consumerGroups"]
    );
    assert_eq!(reset.doc["spec"]["snapshotBeforeReset"], true);
}

/// `name.namespace.svc.cluster.local:port` of every Service port in `e2e/`.
fn service_addresses() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (_, doc) in manifests() {
        if doc["kind"] != "Service" {
            continue;
        }
        let service: k8s_openapi::api::core::v1::Service =
            serde_json::from_value(doc).expect("a Service");
        let name = service.metadata.name.clone().expect("name");
        let ns = service.metadata.namespace.clone().expect("namespace");
        for port in service
            .spec
            .as_ref()
            .and_then(|s| s.ports.clone())
            .unwrap_or_default()
        {
            out.insert(
                format!("{name}.{ns}.svc.cluster.local:{}", port.port),
                name.clone(),
            );
        }
    }
    out
}

#[test]
fn resources_point_at_the_suites_kafka_minio_bucket_and_secrets() {
    let services = service_addresses();
    let script = run_sh();
    let ns = script
        .lines()
        .find_map(|l| l.strip_prefix("NS="))
        .expect("run.sh sets NS");
    let bootstrap = script
        .lines()
        .find_map(|l| l.strip_prefix("BOOTSTRAP="))
        .expect("run.sh sets BOOTSTRAP");
    assert_eq!(
        services.get(bootstrap).map(String::as_str),
        Some("kafka"),
        "run.sh's BOOTSTRAP is the kafka Service"
    );
    let manifests = manifests();
    let kafka_env: BTreeMap<String, String> = manifests
        .iter()
        .find(|(_, d)| d["kind"] == "StatefulSet" && d["metadata"]["name"] == "kafka")
        .map(|(_, d)| {
            d["spec"]["template"]["spec"]["containers"][0]["env"]
                .as_array()
                .expect("env")
                .iter()
                .map(|e| {
                    (
                        e["name"].as_str().expect("name").to_string(),
                        e["value"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .expect("the kafka StatefulSet");
    assert_eq!(
        kafka_env["KAFKA_ADVERTISED_LISTENERS"],
        format!("PLAINTEXT://{bootstrap}"),
        "the broker advertises the Service's name"
    );
    let bucket_job = manifests
        .iter()
        .find(|(_, d)| d["kind"] == "Job" && d["metadata"]["name"] == "minio-bucket")
        .map(|(_, d)| d.to_string())
        .expect("the minio-bucket Job");

    let created_secrets: BTreeSet<String> = script
        .split("create secret generic ")
        .skip(1)
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_string)
        .collect();
    assert!(created_secrets.contains("minio-root"));
    for r in tidemark_resources() {
        assert_eq!(r.namespace, ns, "{} {}", r.kind, r.name);
        let spec = &r.doc["spec"];
        let mut storages = vec![&spec["storage"]];
        storages.push(&spec["backupRef"]["storage"]);
        for server in spec["kafkaCluster"]["bootstrapServers"]
            .as_array()
            .expect("bootstrapServers")
        {
            let server = server.as_str().expect("server");
            assert_eq!(server, bootstrap, "{} {}", r.kind, r.name);
        }
        for storage in storages.into_iter().filter(|s| !s.is_null()) {
            let s3 = &storage["s3"];
            assert_eq!(storage["storageType"], "s3");
            let endpoint = s3["endpoint"].as_str().expect("endpoint");
            let address = endpoint.strip_prefix("http://").expect("http endpoint");
            assert_eq!(
                services.get(address).map(String::as_str),
                Some("minio"),
                "{} {}: {endpoint} is the minio Service",
                r.kind,
                r.name
            );
            let bucket = s3["bucket"].as_str().expect("bucket");
            assert!(
                bucket_job.contains(&format!("mc mb --ignore-existing e2e/{bucket}")),
                "the minio-bucket Job creates {bucket}"
            );
        }
        for secret in &r.secrets {
            assert!(
                created_secrets.contains(&secret.name),
                "{} {} references Secret {}, which run.sh does not create",
                r.kind,
                r.name,
                secret.name
            );
            for key in &secret.keys {
                assert!(
                    script.contains(&format!("--from-literal={key}=")),
                    "run.sh does not set {key} in {}",
                    secret.name
                );
            }
        }
        // The S3 credentials reach the worker as env (envFrom): the names it reads.
        if r.doc.to_string().contains("s3-credentials") {
            for key in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
                assert!(script.contains(&format!("--from-literal={key}=")), "{key}");
            }
        }
    }
}

#[test]
fn the_other_manifests_are_typed_objects_with_pinned_images() {
    use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
    use k8s_openapi::api::batch::v1::Job;
    use k8s_openapi::api::core::v1::{Namespace, PodSpec, Service};
    let mut kinds = BTreeSet::new();
    for (path, doc) in manifests() {
        let file = path.display().to_string();
        let kind = doc["kind"].as_str().unwrap_or_default().to_string();
        let pod: Option<PodSpec> = match kind.as_str() {
            "Namespace" => {
                serde_json::from_value::<Namespace>(doc).expect(&file);
                None
            }
            "Service" => {
                serde_json::from_value::<Service>(doc).expect(&file);
                None
            }
            "StatefulSet" => serde_json::from_value::<StatefulSet>(doc)
                .expect(&file)
                .spec
                .and_then(|s| s.template.spec),
            "Deployment" => serde_json::from_value::<Deployment>(doc)
                .expect(&file)
                .spec
                .and_then(|s| s.template.spec),
            "Job" => serde_json::from_value::<Job>(doc)
                .expect(&file)
                .spec
                .and_then(|s| s.template.spec),
            "Cluster" => {
                assert_eq!(doc["apiVersion"], "kind.x-k8s.io/v1alpha4", "{file}");
                None
            }
            k if doc["apiVersion"]
                .as_str()
                .is_some_and(|v| v.starts_with("tidemark.dev/")) =>
            {
                let _ = k;
                None
            }
            other => panic!("{file}: unexpected kind {other}"),
        };
        kinds.insert(kind.clone());
        if let Some(pod) = pod {
            for c in pod.containers {
                let image = c.image.expect("an image");
                let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or("");
                assert!(
                    !tag.is_empty() && tag != "latest" && !tag.contains('/'),
                    "{file}: {image} is not pinned"
                );
            }
            if kind == "StatefulSet" {
                // apache/kafka turns KAFKA_* variables into settings: no Service links.
                assert_eq!(pod.enable_service_links, Some(false), "{file}");
            }
        }
    }
    for kind in [
        "Namespace",
        "Service",
        "StatefulSet",
        "Deployment",
        "Job",
        "Cluster",
    ] {
        assert!(kinds.contains(kind), "no {kind} in e2e/");
    }
}

#[test]
fn run_sh_applies_and_waits_on_every_resource() {
    let script = run_sh();
    for (path, doc) in manifests() {
        let relative = path
            .strip_prefix(e2e())
            .expect("inside e2e/")
            .to_string_lossy()
            .into_owned();
        if relative == "kind-config.yaml" {
            assert!(script.contains("--config e2e/kind-config.yaml"));
            continue;
        }
        let file = relative
            .strip_prefix("manifests/")
            .expect("manifests live in e2e/manifests");
        assert!(
            script.contains(&format!("\"$MANIFESTS/{file}\"")),
            "run.sh does not apply {relative}"
        );
        if doc["apiVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("tidemark.dev/"))
        {
            let kind = doc["kind"].as_str().expect("kind").to_ascii_lowercase();
            let name = doc["metadata"]["name"].as_str().expect("name");
            assert!(
                script.contains(&format!("wait_phase {kind} {name} Completed")),
                "run.sh does not wait for {kind}/{name}"
            );
        }
    }
    // The rollback's placeholder is what run.sh replaces.
    let rollback = std::fs::read_to_string(e2e().join("manifests/kafkaoffsetrollback.yaml"))
        .expect("rollback manifest");
    assert!(rollback.contains("snapshotId: set-by-run-sh"));
    assert!(script.contains("s/snapshotId: set-by-run-sh/snapshotId: $snapshot_id/"));
    // Each wait is kubectl's own.
    assert!(script.contains("--for=jsonpath='{.status.phase}'=\"$phase\""));
    assert!(script.contains("--for=condition=Ready"));
}

#[test]
fn run_sh_installs_the_operator_with_keys_the_chart_and_config_have() {
    let script = run_sh();
    let values_path = repo().join("charts/tidemark/values.yaml");
    if let Ok(values) = std::fs::read_to_string(&values_path) {
        let values: Value = serde_yaml_ng::from_str(&values).expect("values.yaml is YAML");
        for key in script
            .split("--set ")
            .skip(1)
            .filter_map(|rest| rest.split('=').next())
        {
            let mut node = &values;
            for part in key.split('.') {
                node = &node[part];
            }
            assert!(!node.is_null(), "charts/tidemark/values.yaml has no {key}");
        }
    }
    // The fallback: config/default's Deployment and container are the ones run.sh patches.
    let manager = std::fs::read_to_string(repo().join("config/manager/manager.yaml"))
        .expect("config/manager/manager.yaml");
    let docs = common::documents(&manager);
    let deployment = docs
        .iter()
        .find(|d| d["kind"] == "Deployment")
        .expect("a Deployment");
    let name = deployment["metadata"]["name"].as_str().expect("name");
    let container = deployment["spec"]["template"]["spec"]["containers"][0]["name"]
        .as_str()
        .expect("container");
    assert!(
        script.contains(&format!("deployment/{name} {container}=\"$IMAGE\"")),
        "run.sh sets the image of deployment/{name} container {container}"
    );
    assert_eq!(
        deployment["metadata"]["namespace"].as_str(),
        script.lines().find_map(|l| l.strip_prefix("SYSTEM_NS="))
    );
    assert_eq!(
        deployment["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"],
        "operator",
        "run.sh finds the operator by its component label"
    );
}

#[test]
fn run_sh_passes_bash_n_and_shellcheck() {
    let script = e2e().join("run.sh");
    let status = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .status()
        .expect("bash runs");
    assert!(status.success(), "bash -n e2e/run.sh");
    // shellcheck is one of the test tools (scripts/install-test-tools.sh): missing, it fails.
    let output = Command::new(tidemark_tests::find_tool("shellcheck"))
        .arg("-x")
        .arg(&script)
        .current_dir(repo())
        .output()
        .expect("shellcheck runs");
    assert!(
        output.status.success(),
        "shellcheck e2e/run.sh:\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&script)
            .expect("run.sh")
            .permissions()
            .mode();
        assert!(mode & 0o111 != 0, "e2e/run.sh is executable");
    }
}
