"""The chart and config/ (kustomize) describe the same installation: the same CRDs byte for
byte, the same RBAC rules per role, the same objects under the same names (release `tidemark`
in tidemark-system), the same operator container; the chart's appVersion is the workspace
version; every environment variable set is one the operator reads."""

from __future__ import annotations

import json
import re
import tomllib

import helm_python as helm
import pytest
import yaml

from conftest import (
    CHART,
    CONFIG,
    CRDS,
    NAMESPACED,
    ROOT,
    SCENARIOS,
    config_objects,
    key,
    render,
    schema_validate,
)

RBAC_KINDS = {"ClusterRole", "Role"}
BINDING_KINDS = {"ClusterRoleBinding", "RoleBinding"}


def normalised_rules(role: dict) -> list[tuple]:
    """A role's rules as sorted (apiGroups, resources, verbs, resourceNames) tuples of sets."""
    return sorted(
        (
            tuple(sorted(rule.get("apiGroups", []))),
            tuple(sorted(rule.get("resources", []))),
            tuple(sorted(rule.get("verbs", []))),
            tuple(sorted(rule.get("resourceNames", []))),
            tuple(sorted(rule.get("nonResourceURLs", []))),
        )
        for rule in role.get("rules", [])
    )


def permissions(*roles: dict) -> set[tuple]:
    """Every (apiGroup, resource, verb, resourceName or "*") the roles grant."""
    out = set()
    for role in roles:
        for rule in role.get("rules", []):
            for group in rule.get("apiGroups", []):
                for resource in rule.get("resources", []):
                    for verb in rule.get("verbs", []):
                        for name in rule.get("resourceNames", ["*"]):
                            out.add((group, resource, verb, name))
    return out


def assert_same_rules(chart_role: dict, config_role: dict) -> None:
    what = f"{config_role['kind']} {config_role['metadata']['name']}"
    extra = permissions(chart_role) - permissions(config_role)
    missing = permissions(config_role) - permissions(chart_role)
    assert not extra and not missing, (
        f"{what}: the chart grants {sorted(extra)} more and {sorted(missing)} less than config/rbac")
    assert normalised_rules(chart_role) == normalised_rules(config_role), (
        f"{what}: the same permissions, but grouped into different rules")


# --- CRDs -------------------------------------------------------------------------------------


def test_the_chart_crds_are_the_generated_crds_byte_for_byte():
    generated = sorted(p.name for p in CRDS.glob("*.yaml"))
    in_chart = sorted(p.name for p in (CHART / "crds").iterdir())
    assert generated, "no CRDs in crds/"
    assert in_chart == generated, (
        "charts/tidemark/crds/ must hold exactly the files of crds/; after regenerating, "
        "copy them: cp crds/*.yaml charts/tidemark/crds/")
    for name in generated:
        assert (CHART / "crds" / name).read_bytes() == (CRDS / name).read_bytes(), (
            f"charts/tidemark/crds/{name} differs from crds/{name}: cp crds/*.yaml charts/tidemark/crds/")
    # The same files as config/crd (the kustomize copy) as well.
    for name in generated:
        assert (CONFIG / "crd" / name).read_bytes() == (CRDS / name).read_bytes(), name


def test_helm_loads_the_four_crds_from_the_chart():
    with helm.Chart.load(str(CHART)) as chart:
        crds = chart.crds
    by_file = {c["filename"].rsplit("/", 1)[-1]: c for c in crds}
    assert sorted(by_file) == sorted(p.name for p in CRDS.glob("*.yaml"))
    for name, crd in by_file.items():
        assert crd["data"] == (CRDS / name).read_text(), name
        [obj] = [d for d in yaml.safe_load_all(crd["data"]) if d]
        assert obj["kind"] == "CustomResourceDefinition"
        assert obj["metadata"]["name"] == name.removesuffix(".yaml")
        schema_validate(obj)


# --- RBAC -------------------------------------------------------------------------------------


def test_chart_rbac_is_config_rbac():
    chart = render()
    chart_roles = {key(o): o for _, o in chart.objects if o["kind"] in RBAC_KINDS}
    config_roles = {key(o): o for o in config_objects("rbac") if o["kind"] in RBAC_KINDS}
    assert set(chart_roles) == set(config_roles), "the same roles, under the same names"
    for k, config_role in config_roles.items():
        assert_same_rules(chart_roles[k], config_role)
        # Aggregation labels (the user roles) too.
        aggregate = {l: v for l, v in config_role["metadata"].get("labels", {}).items()
                     if l.startswith("rbac.authorization.k8s.io/")}
        assert aggregate.items() <= chart_roles[k]["metadata"]["labels"].items(), k

    chart_bindings = {key(o): o for _, o in chart.objects if o["kind"] in BINDING_KINDS}
    config_bindings = {key(o): o for o in config_objects("rbac") if o["kind"] in BINDING_KINDS}
    assert set(chart_bindings) == set(config_bindings)
    for k, binding in config_bindings.items():
        assert chart_bindings[k]["roleRef"] == binding["roleRef"], k
        assert chart_bindings[k]["subjects"] == binding["subjects"], k


def test_namespace_scoped_rbac_is_config_rbac_split_by_scope():
    chart = render(NAMESPACED)
    [config_role] = [o for o in config_objects("rbac")
                     if o["kind"] == "ClusterRole" and o["metadata"]["name"] == "tidemark-operator"]
    role = chart.one("Role", "tidemark-operator")
    crd_role = chart.one("ClusterRole", "tidemark-operator-crds")
    # Together, the same rules; the Role holds every namespaced one, the ClusterRole the rest.
    assert normalised_rules({"rules": role["rules"] + crd_role["rules"]}) == normalised_rules(
        config_role)
    assert {g for g, *_ in permissions(crd_role)} == {"apiextensions.k8s.io"}
    assert "apiextensions.k8s.io" not in {g for g, *_ in permissions(role)}
    # And the same Lease role, worker role and user roles as cluster-wide.
    for kind, name in [("Role", "tidemark-operator-leader-election"),
                       ("ClusterRole", "tidemark-edit"), ("ClusterRole", "tidemark-view"),
                       ("ClusterRole", "tidemark-worker")]:
        [config] = [o for o in config_objects("rbac")
                    if (o["kind"], o["metadata"]["name"]) == (kind, name)]
        assert_same_rules(chart.one(kind, name), config)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_no_rule_grants_anything_on_secrets_or_escalation(scenario):
    roles = [o for _, o in render(SCENARIOS[scenario]).objects if o["kind"] in RBAC_KINDS]
    roles += [o for o in config_objects("rbac") if o["kind"] in RBAC_KINDS]
    assert roles
    for role in roles:
        what = f"{role['kind']} {role['metadata']['name']}"
        for rule in role.get("rules", []):
            resources = rule.get("resources", [])
            verbs = rule.get("verbs", [])
            assert "secrets" not in resources, f"{what} grants {verbs} on secrets"
            assert "*" not in resources and "*" not in verbs, f"{what}: wildcard in {rule}"
            assert "*" not in rule.get("apiGroups", []), f"{what}: wildcard in {rule}"
            assert "escalate" not in verbs and "impersonate" not in verbs, f"{what}: {rule}"
            assert not any(r in resources for r in ("roles", "clusterrolebindings")) or (
                set(verbs) <= {"get", "list", "watch"}), f"{what} may create roles: {rule}"
            if "bind" in verbs:
                # Only the worker ClusterRole, by name.
                assert resources == ["clusterroles"], f"{what}: {rule}"
                assert [n.endswith("-worker") for n in rule.get("resourceNames", [])] == [True], (
                    f"{what}: bind must name the worker ClusterRole only: {rule}")


# --- Objects and the operator Deployment ------------------------------------------------------


def test_the_chart_renders_the_objects_of_config_rbac_and_manager():
    config = {key(o) for o in config_objects("rbac", "manager") if o["kind"] != "Namespace"}
    assert render().keys() == config, (
        "helm install tidemark -n tidemark-system must create what kubectl apply -k config/default "
        "creates (but the Namespace: --create-namespace)")


def operator_pod(objects: list[dict]) -> dict:
    [deployment] = [o for o in objects if o["kind"] == "Deployment"]
    return deployment


def comparable_container(container: dict) -> dict:
    container = json.loads(json.dumps(container))
    for env in container.get("env", []):
        if env["name"] == "TIDEMARK_WORKER_RESOURCES":
            env["value"] = yaml.safe_load(env["value"])  # JSON or YAML, as the operator reads it
        elif "value" in env:
            env["value"] = str(env["value"])
    return container


def test_config_manager_runs_the_container_the_chart_renders():
    chart = operator_pod([o for _, o in render().objects])
    config = operator_pod(config_objects("manager"))
    assert chart["spec"]["replicas"] == config["spec"]["replicas"]
    chart_pod, config_pod = chart["spec"]["template"]["spec"], config["spec"]["template"]["spec"]
    for field in ("serviceAccountName", "enableServiceLinks", "securityContext"):
        assert chart_pod.get(field) == config_pod.get(field), field
    [chart_container] = chart_pod["containers"]
    [config_container] = config_pod["containers"]
    chart_env = [e["name"] for e in chart_container["env"]]
    config_env = [e["name"] for e in config_container["env"]]
    assert chart_env == config_env, "the same environment variables, in the same order"
    for field in ("name", "image", "imagePullPolicy", "command", "args", "ports",
                  "livenessProbe", "readinessProbe", "resources", "securityContext"):
        assert chart_container.get(field) == config_container.get(field), field
    assert comparable_container(chart_container)["env"] == comparable_container(
        config_container)["env"], "the same values: the chart's defaults are config/'s"
    # config/'s Deployment selector picks the pods of its own template, as the chart's does.
    config_selector = config["spec"]["selector"]["matchLabels"]
    assert config_selector.items() <= config["spec"]["template"]["metadata"]["labels"].items()


def test_the_metrics_services_match():
    [config] = [o for o in config_objects("manager") if o["kind"] == "Service"]
    chart = render().one("Service", config["metadata"]["name"])
    assert chart["spec"]["ports"] == config["spec"]["ports"]
    pod_labels = render().one("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert chart["spec"]["selector"].items() <= pod_labels.items()


def test_config_manifests_validate_against_the_kubernetes_schemas():
    for obj in config_objects("rbac", "manager"):
        schema_validate(obj)


# --- Versions and names the operator reads ----------------------------------------------------


def workspace_version() -> str:
    cargo = tomllib.loads((ROOT / "Cargo.toml").read_text())
    return cargo["workspace"]["package"]["version"]


def test_app_version_is_the_workspace_version():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == workspace_version(), (
        "Chart.yaml appVersion must be the version in Cargo.toml [workspace.package]")
    config_image = operator_pod(config_objects("manager"))["spec"]["template"]["spec"][
        "containers"][0]["image"]
    assert config_image == f"ghcr.io/tidemark-dev/tidemark:{workspace_version()}"


def operator_string_literals() -> set[str]:
    text = "\n".join(p.read_text() for p in (ROOT / "operator" / "src").rglob("*.rs"))
    return set(re.findall(r'"([A-Z][A-Z0-9_]+)"', text))


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_environment_variable_is_one_the_operator_reads(scenario):
    values = {**(SCENARIOS[scenario] or {}),
              "imagePullSecrets": [{"name": "regcred"}],
              "worker": {"job": {"activeDeadlineSeconds": 60}}}
    container = render(values).one("Deployment")["spec"]["template"]["spec"]["containers"][0]
    known = operator_string_literals() | {"RUST_LOG"}  # RUST_LOG: tracing's EnvFilter
    unknown = [e["name"] for e in container["env"] if e["name"] not in known]
    assert unknown == [], f"not read anywhere in operator/src: {unknown}"
    # And every TIDEMARK_ variable of operator/src/config.rs can be set through the chart.
    config_rs = (ROOT / "operator" / "src" / "config.rs").read_text()
    settable = set(re.findall(r'pub const ENV_\w+: &str = "(\w+)"', config_rs))
    names = {e["name"] for e in container["env"]}
    if scenario.startswith("namespace-scoped"):
        assert settable <= names, settable - names
