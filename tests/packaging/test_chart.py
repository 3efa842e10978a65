"""The Helm chart on its own: it lints clean and renders (Helm's engine) with the default,
namespace-scoped and monitoring values; every object validates against Kubernetes' schemas;
the values schema refuses typos and wrong types; values reach the operator as the environment
operator/src/config.rs reads; the operator pod meets the restricted Pod Security Standard."""

from __future__ import annotations

import json

import helm_python as helm
import pytest
import yaml

from conftest import (
    CHART,
    CLUSTER_SCOPED,
    MONITOR_KINDS,
    MONITORS,
    NAMESPACE,
    NAMESPACED,
    SCENARIOS,
    RELEASE,
    Rendered,
    lint,
    render,
    render_error,
    schema_validate,
)


def env_of(rendered: Rendered) -> dict[str, object]:
    """name -> value (or valueFrom) of the operator container's environment."""
    container = rendered.one("Deployment")["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_chart_lints_clean(scenario):
    report = lint(SCENARIOS[scenario])
    assert report["errors"] == [], report["errors"]
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert problems == [], problems


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_rendered_object_validates_against_the_kubernetes_schemas(scenario):
    rendered = render(SCENARIOS[scenario])
    assert rendered.objects, "nothing rendered"
    for source, obj in rendered.objects:
        if (obj["apiVersion"], obj["kind"]) in MONITOR_KINDS:
            continue  # no schema in kubernetes-validate: test_monitors checks them
        assert schema_validate(obj), source
        if obj["kind"] not in CLUSTER_SCOPED:
            assert obj["metadata"].get("namespace"), f"{source}: {obj['kind']} without a namespace"


def test_the_default_render_holds_the_operator_and_its_cluster_wide_rbac():
    rendered = render()
    assert rendered.keys() == {
        ("ServiceAccount", "tidemark-operator", NAMESPACE),
        ("ClusterRole", "tidemark-operator", None),
        ("ClusterRoleBinding", "tidemark-operator", None),
        ("Role", "tidemark-operator-leader-election", NAMESPACE),
        ("RoleBinding", "tidemark-operator-leader-election", NAMESPACE),
        ("ClusterRole", "tidemark-edit", None),
        ("ClusterRole", "tidemark-view", None),
        ("ClusterRole", "tidemark-worker", None),
        ("Service", "tidemark-operator-metrics", NAMESPACE),
        ("Deployment", "tidemark-operator", NAMESPACE),
    }
    assert "TIDEMARK_WATCH_NAMESPACE" not in env_of(rendered)
    assert "watches every namespace" in rendered.notes
    assert f"kubectl -n {NAMESPACE} rollout status deploy/tidemark-operator" in rendered.notes


def test_namespace_scoped_values_give_a_role_in_the_watched_namespace():
    rendered = render(NAMESPACED)
    assert env_of(rendered)["TIDEMARK_WATCH_NAMESPACE"] == "kafka"
    role = rendered.one("Role", "tidemark-operator")
    assert role["metadata"]["namespace"] == "kafka"
    binding = rendered.one("RoleBinding", "tidemark-operator")
    assert binding["metadata"]["namespace"] == "kafka"
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "tidemark-operator"}
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "tidemark-operator", "namespace": NAMESPACE}]
    # Nothing cluster-wide but reading the operator's own CRDs (and the user roles).
    cluster_roles = {r["metadata"]["name"]: r for r in rendered.all("ClusterRole")}
    assert set(cluster_roles) == {"tidemark-operator-crds", "tidemark-edit", "tidemark-view",
                                  "tidemark-worker"}
    crd_rules = cluster_roles["tidemark-operator-crds"]["rules"]
    assert [(r["apiGroups"], r["resources"], r["verbs"]) for r in crd_rules] == [
        (["apiextensions.k8s.io"], ["customresourcedefinitions"], ["get"])]
    assert [b["metadata"]["name"] for b in rendered.all("ClusterRoleBinding")] == [
        "tidemark-operator-crds"]
    # The Lease stays in the operator's own namespace.
    lease_role = rendered.one("Role", "tidemark-operator-leader-election")
    assert lease_role["metadata"]["namespace"] == NAMESPACE
    assert "the namespace kafka only" in rendered.notes


def test_monitors():
    rendered = render({**NAMESPACED, **MONITORS})
    service = rendered.one("Service", "tidemark-operator-metrics")
    deployment = rendered.one("Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]

    monitor = rendered.one("ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["namespace"] == NAMESPACE
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items(), "selects the Service"
    assert service["spec"]["selector"].items() <= pod_labels.items(), "the Service selects the pods"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    assert endpoint["interval"] == "30s"
    assert set(monitor["spec"]) <= {"selector", "namespaceSelector", "endpoints"}

    pod_monitor = rendered.one("PodMonitor")
    assert pod_monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert pod_monitor["spec"]["selector"] == {
        "matchLabels": {"app.kubernetes.io/managed-by": "tidemark-operator"}}
    assert pod_monitor["spec"]["namespaceSelector"] == {"matchNames": ["kafka"]}
    [endpoint] = pod_monitor["spec"]["podMetricsEndpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("metrics", "/metrics")
    assert set(pod_monitor["spec"]) <= {"selector", "namespaceSelector", "podMetricsEndpoints"}

    cluster_wide = render({"metrics": {"podMonitor": {"enabled": True, "interval": "1m",
                                                      "labels": {"release": "prom"}}}})
    pod_monitor = cluster_wide.one("PodMonitor")
    assert pod_monitor["spec"]["namespaceSelector"] == {"any": True}
    assert pod_monitor["spec"]["podMetricsEndpoints"][0]["interval"] == "1m"
    assert pod_monitor["metadata"]["labels"]["release"] == "prom"
    assert cluster_wide.all("ServiceMonitor") == []


def test_monitors_are_off_by_default():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["metrics"]["serviceMonitor"]["enabled"] is False
    assert values["metrics"]["podMonitor"]["enabled"] is False
    assert render().all("PodMonitor") == render().all("ServiceMonitor") == []


@pytest.mark.parametrize("values, named", [
    ({"watchNamspace": "kafka"}, "watchNamspace"),
    ({"worker": {"job": {"backofLimit": 1}}}, "backofLimit"),
    ({"image": {"repository": "x", "tags": "1"}}, "tags"),
    ({"metrics": {"serviceMonitor": {"enable": True}}}, "enable"),
    ({"replicaCount": "two"}, "replicaCount"),
    ({"leaderElection": {"enabled": "yes"}}, "enabled"),
    ({"worker": {"job": {"ttlSecondsAfterFinished": -1}}}, "ttlSecondsAfterFinished"),
    ({"logFormat": "xml"}, "logFormat"),
    ({"image": {"pullPolicy": "Sometimes"}}, "pullPolicy"),
    ({"watchNamespace": "Kafka_Prod"}, "watchNamespace"),
    ({"imagePullSecrets": ["regcred"]}, "imagePullSecrets"),
    ({"worker": {"resources": {"request": {"cpu": "1"}}}}, "request"),
    ({"worker": {"resources": {"limits": {"memory": "lots"}}}}, "memory"),
])
def test_the_values_schema_refuses_typos_and_wrong_types(values, named):
    message = render_error(values)
    assert named in message, message
    report = lint(values)
    assert any(named in e for e in report["errors"]) or any(
        named in m["error"] for m in report["messages"] if m["severity"] >= 3), report


def test_disabling_leader_election_is_refused_with_the_reason():
    message = render_error({"leaderElection": {"enabled": False}})
    assert "leaderElection.enabled=false is not supported" in message, message
    assert "Lease" in message


def test_values_reach_the_operator_environment():
    env = env_of(render())
    assert env["TIDEMARK_WORKER_IMAGE"] == "ghcr.io/tidemark-dev/tidemark:0.1.0"
    assert env["TIDEMARK_WORKER_IMAGE_PULL_POLICY"] == "IfNotPresent"
    assert env["TIDEMARK_WORKER_SERVICE_ACCOUNT"] == "tidemark-worker"
    assert json.loads(env["TIDEMARK_WORKER_RESOURCES"]) == {
        "requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}}
    assert env["TIDEMARK_JOB_BACKOFF_LIMIT"] == "3"
    assert env["TIDEMARK_JOB_TTL_SECONDS_AFTER_FINISHED"] == "86400"
    assert env["TIDEMARK_WORKER_TMP_SIZE_LIMIT"] == "1Gi"
    assert "TIDEMARK_JOB_ACTIVE_DEADLINE_SECONDS" not in env  # no deadline by default
    assert "TIDEMARK_WORKER_IMAGE_PULL_SECRETS" not in env
    assert env["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert (env["RUST_LOG"], env["TIDEMARK_LOG_FORMAT"]) == ("info", "json")

    rendered = render({
        "image": {"repository": "registry.local/tidemark", "tag": "dev", "pullPolicy": "Always"},
        "imagePullSecrets": [{"name": "regcred"}, {"name": "mirror"}],
        "worker": {
            "serviceAccountName": "kafka-ops",
            "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
            "job": {"backoffLimit": 0, "activeDeadlineSeconds": 3600,
                    "ttlSecondsAfterFinished": 600},
            "tmpSizeLimit": "256Mi",
        },
        "logLevel": "debug,kube=info",
        "logFormat": "text",
    })
    env = env_of(rendered)
    container = rendered.one("Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.local/tidemark:dev"
    assert container["imagePullPolicy"] == "Always"
    # The worker image follows the operator's unless set.
    assert env["TIDEMARK_WORKER_IMAGE"] == "registry.local/tidemark:dev"
    assert env["TIDEMARK_WORKER_IMAGE_PULL_POLICY"] == "Always"
    assert env["TIDEMARK_WORKER_IMAGE_PULL_SECRETS"] == "regcred,mirror"
    assert env["TIDEMARK_WORKER_SERVICE_ACCOUNT"] == "kafka-ops"
    # Helm merges maps: the default requests.cpu is replaced, limits.memory too.
    assert json.loads(env["TIDEMARK_WORKER_RESOURCES"]) == {
        "requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "2Gi"}}
    assert env["TIDEMARK_JOB_BACKOFF_LIMIT"] == "0"
    assert env["TIDEMARK_WORKER_TMP_SIZE_LIMIT"] == "256Mi"
    assert env["TIDEMARK_JOB_ACTIVE_DEADLINE_SECONDS"] == "3600"
    assert env["TIDEMARK_JOB_TTL_SECONDS_AFTER_FINISHED"] == "600"
    assert (env["RUST_LOG"], env["TIDEMARK_LOG_FORMAT"]) == ("debug,kube=info", "text")
    pod = rendered.one("Deployment")["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}, {"name": "mirror"}]

    env = env_of(render({
        "worker": {"image": {"repository": "registry.local/worker", "tag": "w1",
                             "pullPolicy": "Never"},
                   "imagePullSecrets": [{"name": "worker-pull"}]},
        "imagePullSecrets": [{"name": "regcred"}],
    }))
    assert env["TIDEMARK_WORKER_IMAGE"] == "registry.local/worker:w1"
    assert env["TIDEMARK_WORKER_IMAGE_PULL_POLICY"] == "Never"
    assert env["TIDEMARK_WORKER_IMAGE_PULL_SECRETS"] == "worker-pull"


def test_pod_placement_and_metadata_values():
    rendered = render({
        "replicaCount": 2,
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "infra", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
            "weight": 100, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                                               "labelSelector": {"matchLabels": {
                                                   "app.kubernetes.io/component": "operator"}}}}]}},
        "podAnnotations": {"example.com/team": "data"},
        "podLabels": {"team": "data"},
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
        "serviceAccount": {"annotations": {"example.com/role": "ops"}},
    })
    for _, obj in rendered.objects:
        schema_validate(obj)
    deployment = rendered.one("Deployment")
    assert deployment["spec"]["replicas"] == 2
    template = deployment["spec"]["template"]
    assert template["metadata"]["annotations"] == {"example.com/team": "data"}
    assert template["metadata"]["labels"]["team"] == "data"
    pod = template["spec"]
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["tolerations"][0]["key"] == "infra"
    assert "podAntiAffinity" in pod["affinity"]
    assert pod["containers"][0]["resources"]["requests"] == {"cpu": "100m", "memory": "128Mi"}
    account = rendered.one("ServiceAccount")
    assert account["metadata"]["annotations"] == {"example.com/role": "ops"}
    # With two replicas the Lease is what keeps one controller active.
    assert rendered.one("Role", "tidemark-operator-leader-election")


def test_another_release_name_prefixes_every_name():
    rendered = render(release="kafka-ops")
    names = {name for _, name, _ in rendered.keys()}
    assert all(name.startswith("kafka-ops-tidemark-") for name in names), names
    binding = rendered.one("ClusterRoleBinding")
    assert binding["subjects"][0]["name"] == "kafka-ops-tidemark-operator"
    pod = rendered.one("Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "kafka-ops-tidemark-operator"
    # The Service selects only this release's operator pods.
    assert rendered.one("Service")["spec"]["selector"]["app.kubernetes.io/instance"] == "kafka-ops"


def test_rbac_and_service_account_can_be_left_to_the_user():
    rendered = render({"rbac": {"create": False},
                       "serviceAccount": {"create": False, "name": "platform-operator"}})
    assert {k for k, _, _ in rendered.keys()} == {"Service", "Deployment"}
    pod = rendered.one("Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "platform-operator"
    message = render_error({"serviceAccount": {"create": False}})
    assert "serviceAccount.name is required" in message, message
    rendered = render({"rbac": {"userRoles": False}})
    assert {r["metadata"]["name"] for r in rendered.all("ClusterRole")} == {
        "tidemark-operator", "tidemark-worker"}


def restricted_violations(pod: dict) -> list[str]:
    """What the restricted Pod Security Standard (latest) would refuse in `pod`."""
    problems = []
    pod_sc = pod.get("securityContext", {})
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(field):
            problems.append(field)
    for volume in pod.get("volumes", []):
        if "hostPath" in volume:
            problems.append(f"hostPath volume {volume['name']}")
    for c in pod.get("initContainers", []) + pod["containers"]:
        sc = c.get("securityContext", {})
        name = c["name"]
        if sc.get("privileged"):
            problems.append(f"{name}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation must be false")
        if "ALL" not in sc.get("capabilities", {}).get("drop", []):
            problems.append(f"{name}: capabilities.drop must hold ALL")
        if set(sc.get("capabilities", {}).get("add", [])) - {"NET_BIND_SERVICE"}:
            problems.append(f"{name}: capabilities.add")
        if not sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")):
            problems.append(f"{name}: runAsNonRoot")
        if sc.get("runAsUser", pod_sc.get("runAsUser")) == 0:
            problems.append(f"{name}: runAsUser 0")
        seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile", {})).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: seccompProfile")
        for port in c.get("ports", []):
            if port.get("hostPort"):
                problems.append(f"{name}: hostPort")
    return problems


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_operator_pod_is_restricted_and_probed(scenario):
    pod = render(SCENARIOS[scenario]).one("Deployment")["spec"]["template"]["spec"]
    assert restricted_violations(pod) == []
    assert pod["securityContext"] == {
        "runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532,
        "seccompProfile": {"type": "RuntimeDefault"}}
    [container] = pod["containers"]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
        "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}}
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["command"] == ["/usr/local/bin/tidemark-operator"]
    assert container["args"] == ["run"]


def test_chart_metadata():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == RELEASE
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["image"]["repository"] == "ghcr.io/tidemark-dev/tidemark"
    assert values["image"]["tag"] == "", "the tag defaults to appVersion"
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["additionalProperties"] is False
    # Every key of values.yaml is in the schema, and every leaf is documented in the README.
    readme = (CHART / "README.md").read_text()

    def walk(value, props, path):
        for k, v in value.items():
            assert k in props, f"{path}{k} is in values.yaml but not in values.schema.json"
            sub = props[k]
            if isinstance(v, dict) and v and k != "resources":
                assert sub.get("additionalProperties") is False, f"{path}{k} accepts any key"
                walk(v, sub["properties"], f"{path}{k}.")
            else:
                assert f"| `{path}{k}` |" in readme, f"{path}{k} is not in the README's table"

    walk(values, schema["properties"], "")


def test_a_numeric_image_tag_from_set_is_text():
    values = helm.parse_set_string("image.tag=2,worker.image.tag=3")
    assert values["image"]["tag"] == 2, "Helm's --set makes it an integer"
    env = env_of(render(values))
    container = render(values).one("Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "ghcr.io/tidemark-dev/tidemark:2"
    assert env["TIDEMARK_WORKER_IMAGE"] == "ghcr.io/tidemark-dev/tidemark:3"
