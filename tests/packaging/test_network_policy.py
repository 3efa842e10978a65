"""The optional NetworkPolicies: off by default; on, the operator reaches only DNS and the API
server and is reached only from the metrics namespace, worker pods reach only DNS, Kafka,
storage and the API server; the chart's policies are config/network-policy's."""

from __future__ import annotations

from conftest import NAMESPACED, config_objects, key, render, schema_validate

ENABLED = {"networkPolicy": {"enabled": True}}


def policies(values: dict) -> dict:
    return {key(o): o for o in render(values).all("NetworkPolicy")}


def without_instance(spec: dict) -> dict:
    """A policy spec with the chart's release label left out of the pod selector (config/ has
    no release)."""
    labels = {k: v for k, v in spec["podSelector"]["matchLabels"].items()
              if k != "app.kubernetes.io/instance"}
    return {**spec, "podSelector": {"matchLabels": labels}}


def egress_ports(policy: dict) -> list[tuple]:
    return [(tuple(sorted(p["port"] for p in rule["ports"])),
             tuple(sorted(t["ipBlock"]["cidr"] for t in rule.get("to", []) if "ipBlock" in t)))
            for rule in policy["spec"]["egress"]]


def test_no_network_policy_by_default():
    assert policies({}) == {}
    assert policies(NAMESPACED) == {}


def test_the_chart_policies_are_config_network_policy():
    config = {key(o): o for o in config_objects("network-policy")}
    chart = policies({**NAMESPACED, **ENABLED})
    assert set(chart) == set(config) == {("NetworkPolicy", "tidemark-operator", "tidemark-system"),
                                         ("NetworkPolicy", "tidemark-worker", "kafka")}
    for k, obj in config.items():
        schema_validate(obj)
        assert without_instance(chart[k]["spec"]) == obj["spec"], k


def test_the_operator_reaches_dns_and_the_api_server_and_only_prometheus_reaches_it():
    values = {"networkPolicy": {"enabled": True, "metricsNamespace": "prometheus",
                                "apiServer": {"cidrs": ["10.0.0.1/32"], "ports": [6443]}}}
    [operator] = [p for k, p in policies(values).items() if k[1] == "tidemark-operator"]
    spec = operator["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["ingress"] == [{
        "from": [{"namespaceSelector": {"matchLabels": {
            "kubernetes.io/metadata.name": "prometheus"}}}],
        "ports": [{"protocol": "TCP", "port": 8080}]}]
    assert egress_ports(operator) == [((53, 53), ()), ((6443,), ("10.0.0.1/32",))]
    assert spec["egress"][0]["to"][0]["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}
    # Cluster-wide, with no worker namespaces listed, only the operator's policy exists.
    assert [k[1] for k in policies(values)] == ["tidemark-operator"]
    # No metrics namespace: nothing may connect.
    closed = policies({"networkPolicy": {"enabled": True, "metricsNamespace": ""}})
    assert closed[("NetworkPolicy", "tidemark-operator", "tidemark-system")]["spec"][
        "ingress"] == []


def test_workers_reach_only_dns_kafka_storage_and_the_api_server_in_each_watched_namespace():
    values = {"watchNamespace": "kafka", "watchNamespaces": ["team-a"],
              "networkPolicy": {"enabled": True,
                                "apiServer": {"cidrs": ["10.0.0.1/32"], "ports": [443]},
                                "worker": {"kafka": {"cidrs": ["10.1.0.0/16"],
                                                     "ports": [9092, 9093]},
                                           "storage": {"cidrs": ["52.0.0.0/8"],
                                                       "ports": [443]}}}}
    workers = {k[2]: p for k, p in policies(values).items() if k[1] == "tidemark-worker"}
    assert sorted(workers) == ["kafka", "team-a"]
    for policy in workers.values():
        assert policy["spec"]["podSelector"] == {
            "matchLabels": {"app.kubernetes.io/managed-by": "tidemark-operator"}}
        assert egress_ports(policy) == [((53, 53), ()), ((9092, 9093), ("10.1.0.0/16",)),
                                        ((443,), ("52.0.0.0/8",)), ((443,), ("10.0.0.1/32",))]
        assert policy["spec"]["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 9090}]
    # Listed worker namespaces win over the watched ones.
    listed = {**values, "networkPolicy": {**values["networkPolicy"],
                                          "worker": {"namespaces": ["apps"]}}}
    assert [k[2] for k in policies(listed) if k[1] == "tidemark-worker"] == ["apps"]
