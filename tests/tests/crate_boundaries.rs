//! The crates depend on each other as docs/ARCHITECTURE.md says: the operator and the worker
//! share the task contract (`tidemark-task`), the operator does not link the worker, and neither
//! the operator nor the contract reaches Kafka or storage clients (rdkafka, object_store), in
//! its normal, build or dev dependencies. Read from `cargo metadata`'s resolved graph.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("repository root")
}

/// Package name → the names of the packages it depends on (every kind of dependency).
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(repo())
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let meta: Value = serde_json::from_slice(&output.stdout).expect("cargo metadata JSON");
    let name_of: BTreeMap<&str, &str> = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter_map(|p| Some((p["id"].as_str()?, p["name"].as_str()?)))
        .collect();
    let mut graph = BTreeMap::new();
    for node in meta["resolve"]["nodes"].as_array().expect("resolve nodes") {
        let id = node["id"].as_str().expect("node id");
        let deps = node["deps"]
            .as_array()
            .expect("node deps")
            .iter()
            .filter_map(|d| name_of.get(d["pkg"].as_str()?).map(|n| n.to_string()))
            .collect();
        graph.insert(name_of[id].to_string(), deps);
    }
    graph
}

/// Every package `root` reaches.
fn reachable(graph: &BTreeMap<String, BTreeSet<String>>, root: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![root.to_string()];
    while let Some(name) = stack.pop() {
        for dep in graph.get(&name).into_iter().flatten() {
            if seen.insert(dep.clone()) {
                stack.push(dep.clone());
            }
        }
    }
    seen
}

#[test]
fn the_operator_links_the_task_contract_and_no_kafka_or_storage_client() {
    let graph = graph();
    let operator = reachable(&graph, "tidemark-operator");
    assert!(operator.contains("tidemark-task"), "{operator:?}");
    for banned in ["tidemark", "rdkafka", "rdkafka-sys", "object_store"] {
        assert!(
            !operator.contains(banned),
            "tidemark-operator reaches {banned}"
        );
    }
}

#[test]
fn the_task_contract_talks_to_nothing() {
    let graph = graph();
    let contract = reachable(&graph, "tidemark-task");
    for banned in [
        "tidemark",
        "tidemark-operator",
        "rdkafka-sys",
        "object_store",
        "tokio",
        "kube",
        "hyper",
    ] {
        assert!(!contract.contains(banned), "tidemark-task reaches {banned}");
    }
    let worker = reachable(&graph, "tidemark");
    assert!(
        worker.contains("tidemark-task"),
        "the worker uses the contract"
    );
    assert!(
        !worker.contains("tidemark-operator"),
        "the worker does not link the operator"
    );
}
