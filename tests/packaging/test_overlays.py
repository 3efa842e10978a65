"""The namespaced kustomize overlays (config/overlays/watch-namespace, watch-namespaces) render,
validate like the rest of config/, and install what the chart installs with the same options:
the same objects, the same rules role for role, the operator watching exactly the namespaces it
has a Role in, and the rules of config/rbac, only scoped to those namespaces."""

from __future__ import annotations

import pytest

from conftest import (
    CONFIG,
    NAMESPACE_LIST,
    NAMESPACED,
    config_objects,
    key,
    kustomize,
    render,
    schema_validate,
)
from test_consistency import BINDING_KINDS, RBAC_KINDS, assert_same_rules, normalised_rules

# Each overlay, the chart values that install the same, and the namespaces it watches.
OVERLAYS = {
    "overlays/watch-namespace": (NAMESPACED, ["kafka"]),
    "overlays/watch-namespaces": (NAMESPACE_LIST, ["team-a", "team-b"]),
}


def watch_env(objects: list[dict]) -> str | None:
    [deployment] = [o for o in objects if o["kind"] == "Deployment"]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    values = [e["value"] for e in container["env"] if e["name"] == "TIDEMARK_WATCH_NAMESPACE"]
    return values[0] if values else None


def operator_role(objects: list[dict], kind: str, namespace: str | None) -> list[dict]:
    return [o for o in objects if o["kind"] == kind
            and o["metadata"]["name"] == "tidemark-operator"
            and o["metadata"].get("namespace") == namespace]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_overlay_renders_and_every_object_validates(overlay):
    objects = kustomize(overlay)
    assert objects, overlay
    for obj in objects:
        schema_validate(obj)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_overlay_installs_what_the_chart_installs_with_the_same_options(overlay):
    values, _ = OVERLAYS[overlay]
    objects = kustomize(overlay)
    chart = render(values)
    # The same objects (CRDs are chart files, the Namespace is --create-namespace).
    config_keys = {key(o) for o in objects
                   if o["kind"] not in ("CustomResourceDefinition", "Namespace")}
    assert config_keys == chart.keys()
    # Rule for rule, role for role, and the same bindings.
    chart_by_key = {key(o): o for _, o in chart.objects}
    for obj in objects:
        if obj["kind"] in RBAC_KINDS:
            assert_same_rules(chart_by_key[key(obj)], obj)
        elif obj["kind"] in BINDING_KINDS:
            assert chart_by_key[key(obj)]["roleRef"] == obj["roleRef"], key(obj)
            assert chart_by_key[key(obj)]["subjects"] == obj["subjects"], key(obj)
    # The operator is told the same namespaces.
    chart_objects = [o for _, o in chart.objects]
    assert watch_env(objects) == watch_env(chart_objects)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_operator_watches_exactly_the_namespaces_it_has_rules_in(overlay):
    _, namespaces = OVERLAYS[overlay]
    objects = kustomize(overlay)
    assert watch_env(objects) == ",".join(namespaces)
    role_namespaces = sorted(o["metadata"]["namespace"] for o in objects
                             if o["kind"] == "Role" and o["metadata"]["name"] == "tidemark-operator")
    assert role_namespaces == sorted(namespaces)
    for ns in namespaces:
        [binding] = operator_role(objects, "RoleBinding", ns)
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                      "name": "tidemark-operator"}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "tidemark-operator",
                                        "namespace": "tidemark-system"}]
    # Nothing of the operator's rules is cluster-wide but the read of its own CRDs.
    assert operator_role(objects, "ClusterRole", None) == []
    assert operator_role(objects, "ClusterRoleBinding", None) == []
    [crds] = [o for o in objects if o["kind"] == "ClusterRole"
              and o["metadata"]["name"] == "tidemark-operator-crds"]
    assert {g for r in crds["rules"] for g in r["apiGroups"]} == {"apiextensions.k8s.io"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_namespaced_roles_are_config_rbac_scoped_to_each_namespace(overlay):
    """The Roles are built from config/rbac/role.yaml, not copied: its rules, split into the
    namespaced ones (each Role) and the cluster-scoped CRD read (tidemark-operator-crds)."""
    _, namespaces = OVERLAYS[overlay]
    objects = kustomize(overlay)
    [cluster_role] = [o for o in config_objects("rbac") if o["kind"] == "ClusterRole"
                      and o["metadata"]["name"] == "tidemark-operator"]
    [crds] = [o for o in objects if o["metadata"]["name"] == "tidemark-operator-crds"
              and o["kind"] == "ClusterRole"]
    for ns in namespaces:
        [role] = operator_role(objects, "Role", ns)
        assert normalised_rules({"rules": role["rules"] + crds["rules"]}) == normalised_rules(
            cluster_role), (
            f"the Role in {ns} and tidemark-operator-crds together must grant exactly the rules "
            "of config/rbac/role.yaml; if that file's CRD rule moved, fix its index in "
            f"{CONFIG / 'overlays/namespaced-rbac/kustomization.yaml'}")


def test_the_default_install_stays_cluster_wide():
    objects = kustomize("default")
    assert watch_env(objects) is None
    assert len(operator_role(objects, "ClusterRole", None)) == 1
    assert [o for o in objects if o["kind"] == "Role"
            and o["metadata"]["name"] == "tidemark-operator"] == []


@pytest.mark.parametrize("install", ["default", *OVERLAYS])
def test_the_namespace_is_labelled_restricted_and_the_operator_pod_satisfies_it(install):
    from test_chart import restricted_violations

    objects = kustomize(install)
    [namespace] = [o for o in objects if o["kind"] == "Namespace"]
    labels = namespace["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    [deployment] = [o for o in objects if o["kind"] == "Deployment"]
    assert restricted_violations(deployment["spec"]["template"]["spec"]) == []
