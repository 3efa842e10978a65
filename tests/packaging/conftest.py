"""Shared helpers of the packaging tests: the repository's paths, the chart rendered by Helm's
own engine (helm-python-sdk: Helm's Go SDK, `helm install --dry-run=client`, no cluster), the
kustomize manifests of config/, and validation against Kubernetes' OpenAPI schemas."""

from __future__ import annotations

import copy
import functools
import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "tidemark"
CONFIG = ROOT / "config"
CRDS = ROOT / "crds"

RELEASE = "tidemark"
NAMESPACE = "tidemark-system"

# Oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest schemas shipped.
KUBE_VERSIONS = ("1.29", kubernetes_validate.utils.latest_version())

# Kinds kubernetes-validate has no schema for; the tests check them structurally.
MONITOR_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor"), ("monitoring.coreos.com/v1", "PodMonitor")}

CLUSTER_SCOPED = {"ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "Namespace"}

# The values the tests render with, besides the defaults.
NAMESPACED = {"watchNamespace": "kafka"}
NAMESPACE_LIST = {"watchNamespaces": ["team-a", "team-b"]}
MONITORS = {"metrics": {"serviceMonitor": {"enabled": True}, "podMonitor": {"enabled": True}}}
SCENARIOS = {
    "defaults": None,
    "namespace-scoped": NAMESPACED,
    "namespace-list": NAMESPACE_LIST,
    "network-policy": {**NAMESPACE_LIST, "networkPolicy": {"enabled": True}},
    "monitors": MONITORS,
    "namespace-scoped-monitors": {**NAMESPACED, **MONITORS},
}


@dataclass(frozen=True)
class Rendered:
    """One rendered release: its objects (with the template each came from) and its NOTES."""

    objects: list[tuple[str, dict[str, Any]]]
    notes: str

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [o for _, o in self.objects if o["kind"] == kind]

    def one(self, kind: str, name: str | None = None) -> dict[str, Any]:
        found = [o for o in self.all(kind) if name is None or o["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
        return found[0]

    def keys(self) -> set[tuple[str, str, str | None]]:
        return {key(o) for _, o in self.objects}


def key(obj: dict[str, Any]) -> tuple[str, str, str | None]:
    """(kind, name, namespace) of an object."""
    return (obj["kind"], obj["metadata"]["name"], obj["metadata"].get("namespace"))


def split_manifest(manifest: str) -> list[tuple[str, dict[str, Any]]]:
    """The objects of a rendered manifest, each with its `# Source:` template."""
    out = []
    for chunk in re.split(r"^---\s*$", manifest, flags=re.M):
        source = re.search(r"^# Source: (.+)$", chunk, flags=re.M)
        obj = yaml.safe_load(chunk)
        if obj:
            out.append((source.group(1) if source else "?", obj))
    return out


@functools.lru_cache(maxsize=None)
def _render(values_json: str, release: str, namespace: str) -> Rendered:
    values = json.loads(values_json)
    with helm.Config(storage_driver="memory", namespace=namespace) as config:
        release_info = config.install(
            str(CHART), release, values, namespace=namespace, dry_run="client"
        )
    return Rendered(split_manifest(release_info["manifest"]), release_info.get("notes") or "")


def render(values: dict[str, Any] | None = None, *, release: str = RELEASE,
           namespace: str = NAMESPACE) -> Rendered:
    """The chart as `helm install <release> charts/tidemark -n <namespace> --dry-run=client`
    renders it: values merged with the defaults, checked against values.schema.json, templates
    rendered, CRDs left out (they are files, see test_consistency)."""
    return _render(json.dumps(values or {}, sort_keys=True), release, namespace)


def render_error(values: dict[str, Any], namespace: str = NAMESPACE) -> str:
    """The message with which Helm refuses `values`; fails the test if it renders."""
    try:
        with helm.Config(storage_driver="memory", namespace=namespace) as config:
            config.install(str(CHART), RELEASE, values, namespace=namespace, dry_run="client")
    except helm.HelmError as error:
        return str(error)
    raise AssertionError(f"the chart rendered with {values!r}; expected Helm to refuse them")


def lint(values: dict[str, Any] | None = None, namespace: str = NAMESPACE) -> dict[str, Any]:
    """`helm lint --strict` of the chart with `values`."""
    return helm.lint(str(CHART), copy.deepcopy(values), strict=True, namespace=namespace,
                     kube_version="v1.29.0")


def load_documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def config_objects(*subdirs: str) -> list[dict[str, Any]]:
    """Every object of config/<subdir>/*.yaml (kustomizations left out)."""
    out = []
    for sub in subdirs:
        for path in sorted((CONFIG / sub).glob("*.yaml")):
            if path.name != "kustomization.yaml":
                out.extend(load_documents(path))
    return out


def schema_validate(obj: dict[str, Any]) -> list[str]:
    """Validates `obj` against Kubernetes' strict OpenAPI schema of its kind for each of
    KUBE_VERSIONS. Returns the versions validated; raises on a violation, or on a kind
    without a schema."""
    validated = []
    for version in KUBE_VERSIONS:
        try:
            validated.append(kubernetes_validate.validate(obj, version, strict=True))
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(p) for p in error.path)
            raise AssertionError(
                f"{obj['kind']}/{obj['metadata'].get('name')} does not validate against "
                f"Kubernetes {error.version}: {path}: {error.message}"
            ) from None
    return validated


@functools.lru_cache(maxsize=None)
def _kustomize(path: str) -> str:
    done = subprocess.run(["kubectl", "kustomize", path], capture_output=True, text=True)
    assert done.returncode == 0, f"kubectl kustomize {path} failed: {done.stderr.strip()}"
    return done.stdout


def kustomize(sub: str) -> list[dict[str, Any]]:
    """The objects `kubectl kustomize config/<sub>` renders (what `kubectl apply -k` applies)."""
    return [d for d in yaml.safe_load_all(_kustomize(str(CONFIG / sub))) if d]
