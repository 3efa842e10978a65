//! docs/security.md's RBAC table names every rule that config/rbac/ installs, and nothing else:
//! each Role and ClusterRole of the files config/rbac/kustomization.yaml lists, rule by rule
//! (role name, API group, resources, resource names, verbs). A rule added, removed or changed
//! in config/ fails this test until the table says so.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_yaml_ng::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("repository root")
}

/// One rule of one role, in a form both sides can be compared in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Rule {
    role: String,
    group: String,
    resources: BTreeSet<String>,
    names: BTreeSet<String>,
    verbs: BTreeSet<String>,
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let join = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(", ");
        write!(
            f,
            "{} | {} | {} | {} | {}",
            self.role,
            if self.group.is_empty() {
                "core"
            } else {
                &self.group
            },
            join(&self.resources),
            if self.names.is_empty() {
                "—".to_string()
            } else {
                join(&self.names)
            },
            join(&self.verbs)
        )
    }
}

#[derive(Deserialize)]
struct Kustomization {
    resources: Vec<String>,
}

/// Every rule of every Role and ClusterRole that config/rbac/ installs.
fn installed_rules() -> Vec<Rule> {
    let dir = repo().join("config/rbac");
    let k: Kustomization = serde_yaml_ng::from_str(
        &std::fs::read_to_string(dir.join("kustomization.yaml")).expect("kustomization.yaml"),
    )
    .expect("kustomization.yaml parses");
    let mut out = Vec::new();
    for file in &k.resources {
        let text = std::fs::read_to_string(dir.join(file)).expect("RBAC file");
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let doc = Value::deserialize(doc).expect("YAML document");
            let kind = doc["kind"].as_str().unwrap_or_default();
            if kind != "Role" && kind != "ClusterRole" {
                continue;
            }
            let role = doc["metadata"]["name"].as_str().expect("name").to_string();
            for rule in doc["rules"].as_sequence().expect("rules") {
                let set = |key: &str| -> BTreeSet<String> {
                    rule[key]
                        .as_sequence()
                        .map(|s| {
                            s.iter()
                                .map(|v| v.as_str().expect("string").to_string())
                                .collect()
                        })
                        .unwrap_or_default()
                };
                let groups = set("apiGroups");
                assert_eq!(groups.len(), 1, "{file}: one API group per rule");
                out.push(Rule {
                    role: role.clone(),
                    group: groups.into_iter().next().unwrap_or_default(),
                    resources: set("resources"),
                    names: set("resourceNames"),
                    verbs: set("verbs"),
                });
            }
        }
    }
    out.sort();
    out
}

/// The cells of a Markdown table row, trimmed.
fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    inner.split('|').map(|c| c.trim().to_string()).collect()
}

/// The backticked words of a cell.
fn ticked(cell: &str) -> BTreeSet<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// The rows of docs/security.md's rule table (the table whose header starts `| Role |`).
fn documented_rules(doc: &str) -> Vec<Rule> {
    let mut lines = doc
        .lines()
        .skip_while(|l| !l.starts_with("| Role | API group |"));
    assert!(
        lines.next().is_some(),
        "docs/security.md has the RBAC table"
    );
    let mut out = Vec::new();
    for line in lines.skip(1).take_while(|l| l.starts_with('|')) {
        let c = cells(line);
        assert_eq!(c.len(), 6, "six cells: {line}");
        let role = c[0]
            .split('`')
            .nth(1)
            .unwrap_or_else(|| panic!("a `role` name first: {line}"))
            .to_string();
        let group = ticked(&c[1]).into_iter().next().expect("API group");
        out.push(Rule {
            role,
            group: if group == "core" {
                String::new()
            } else {
                group
            },
            resources: ticked(&c[2]),
            names: ticked(&c[3]),
            verbs: c[4]
                .split(',')
                .map(|v| v.trim().trim_matches('`').to_string())
                .filter(|v| !v.is_empty())
                .collect(),
        });
        assert!(!c[5].is_empty(), "every rule says why: {line}");
    }
    out.sort();
    out
}

/// What is in `a` and not in `b`, as lines.
fn missing(a: &[Rule], b: &[Rule]) -> Vec<String> {
    let mut b = b.to_vec();
    let mut out = Vec::new();
    for r in a {
        match b.iter().position(|x| x == r) {
            Some(i) => {
                b.remove(i);
            }
            None => out.push(format!("  {r}")),
        }
    }
    out
}

#[test]
fn security_doc_names_every_installed_rbac_rule_and_no_other() {
    let installed = installed_rules();
    assert!(
        installed.len() > 5,
        "config/rbac/ yields its rules: {installed:?}"
    );
    let doc = std::fs::read_to_string(repo().join("docs/security.md")).expect("docs/security.md");
    let documented = documented_rules(&doc);
    let undocumented = missing(&installed, &documented);
    let stale = missing(&documented, &installed);
    assert!(
        undocumented.is_empty() && stale.is_empty(),
        "docs/security.md's RBAC table and config/rbac/ disagree.\n\
         Rules config/rbac/ grants that the table lacks (role | group | resources | names | verbs):\n{}\n\
         Rows of the table that config/rbac/ does not grant:\n{}",
        undocumented.join("\n"),
        stale.join("\n")
    );
}

#[test]
fn the_comparison_sees_a_changed_verb() {
    let doc = "| Role | API group | Resources | Names | Verbs | Why |\n|---|---|---|---|---|---|\n\
               | `r` (ClusterRole) | `core` | `pods` | — | get, list | reads |\n";
    let documented = documented_rules(doc);
    let installed = vec![Rule {
        role: "r".into(),
        group: String::new(),
        resources: ["pods".to_string()].into(),
        names: BTreeSet::new(),
        verbs: ["get".to_string(), "list".to_string()].into(),
    }];
    assert!(missing(&installed, &documented).is_empty());
    let mut changed = installed.clone();
    changed[0].verbs.insert("watch".into());
    assert_eq!(missing(&changed, &documented).len(), 1);
    assert_eq!(missing(&documented, &changed).len(), 1);
}
