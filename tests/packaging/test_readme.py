"""The README's Helm commands are copy-pasteable: every `helm install` / `helm upgrade` line in
its fenced code blocks is parsed like Helm parses it (--set through Helm's own strvals parser),
and the chart it names renders with those values and that namespace, every object validating
against Kubernetes' schemas. The chart's own README is checked the same way."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import helm_python as helm
import pytest
import yaml

from conftest import CHART, MONITOR_KINDS, ROOT, render, schema_validate

# Flags of `helm install` / `helm upgrade` that take a value (the rest are switches).
VALUE_FLAGS = {
    "-n", "--namespace", "--set", "--set-string", "--set-json", "--set-literal", "--set-file",
    "-f", "--values", "--version", "--timeout", "--kube-context", "--kubeconfig",
    "--description", "--post-renderer", "--repo", "--username", "--password", "--labels",
    "--history-max", "--kube-version", "--name-template", "--output", "-o",
}


def helm_commands(markdown: Path) -> list[str]:
    """Every `helm install` / `helm upgrade` command in the fenced code blocks of `markdown`,
    continuation lines joined."""
    commands = []
    in_block = False
    pending = ""
    for line in markdown.read_text().splitlines():
        if line.lstrip().startswith("```"):
            in_block = not in_block
            pending = ""
            continue
        if not in_block:
            continue
        text = pending + line.strip()
        if text.endswith("\\"):
            pending = text[:-1] + " "
            continue
        pending = ""
        text = re.sub(r"^\$\s+", "", text)
        if re.match(r"helm\s+(install|upgrade)\b", text):
            commands.append(text)
    return commands


def deep_merge(base: dict, extra: dict) -> dict:
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            deep_merge(base[k], v)
        else:
            base[k] = v
    return base


def parse(command: str) -> dict:
    """Release, chart, namespace and values of a `helm install|upgrade` command."""
    words = shlex.split(command, comments=True)
    words = words[: words.index("|")] if "|" in words else words
    assert words[:1] == ["helm"] and words[1] in ("install", "upgrade"), command
    positional, flags = [], []
    rest = iter(words[2:])
    for word in rest:
        if word.startswith("-"):
            name, eq, value = word.partition("=")
            if not eq and name in VALUE_FLAGS:
                value = next(rest, None)
                assert value is not None, f"{name} without a value in: {command}"
            flags.append((name, value if (eq or name in VALUE_FLAGS) else None))
        else:
            positional.append(word)
    assert len(positional) == 2, f"expected RELEASE CHART in: {command}"
    release, chart = positional
    namespace = "default"
    values: dict = {}
    sets: list[str] = []
    for name, value in flags:
        if name in ("-n", "--namespace"):
            namespace = value
        elif name == "--set":
            sets.append(value)
        elif name == "--set-string":
            deep_merge(values, helm.parse_set_string_values(value))
        elif name == "--set-json":
            deep_merge(values, helm.parse_set_json(value))
        elif name == "--set-literal":
            deep_merge(values, helm.parse_set_literal(value))
        elif name in ("-f", "--values"):
            path = (ROOT / value)
            assert path.is_file(), f"{value} (from {command}) is not a file of the repository"
            deep_merge(values, yaml.safe_load(path.read_text()) or {})
    if sets:  # repeated --set flags are parsed into one map, as Helm does
        values = deep_merge(values, helm.parse_set_string(",".join(sets)))
    versions = [value for name, value in flags if name == "--version"]
    return {"release": release, "chart": chart, "namespace": namespace, "values": values,
            "subcommand": words[1], "version": versions[-1] if versions else None}


def chart_of(reference: str) -> Path:
    """The chart a command installs: a path in the repository; a repository or OCI reference
    to a chart named tidemark stands for this chart."""
    if reference.startswith("oci://") or re.fullmatch(r"[\w.-]+/tidemark", reference):
        assert reference.rstrip("/").endswith("/tidemark"), reference
        return CHART
    path = (ROOT / reference).resolve()
    assert path == CHART, f"{reference} is not charts/tidemark"
    return path


def check(command: str) -> None:
    parsed = parse(command)
    chart_of(parsed["chart"])
    if parsed["version"] is not None:
        chart_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["version"]
        assert parsed["version"] == chart_version, (
            f"{command}: --version {parsed['version']}, but the chart is {chart_version}")
    helm.validate_release_name(parsed["release"])
    rendered = render(parsed["values"], release=parsed["release"],
                      namespace=parsed["namespace"])
    assert rendered.one("Deployment")
    for _, obj in rendered.objects:
        if (obj["apiVersion"], obj["kind"]) not in MONITOR_KINDS:
            schema_validate(obj)
    watch = parsed["values"].get("watchNamespace")
    if watch:
        assert rendered.one("Role", f"{rendered.one('Deployment')['metadata']['name']}")[
            "metadata"]["namespace"] == watch


README = ROOT / "README.md"
COMMANDS = helm_commands(README)


def test_the_readme_has_a_helm_install_command():
    installs = [c for c in COMMANDS if c.startswith("helm install")
                or re.search(r"helm upgrade .*--install", c)]
    assert installs, (
        "README.md has no `helm install` (or `helm upgrade --install`) command in a fenced code "
        "block: its Helm quick start should show one, e.g. `helm install tidemark "
        "./charts/tidemark --namespace tidemark-system --create-namespace`")


@pytest.mark.parametrize("command", COMMANDS or ["(none)"])
def test_each_readme_helm_command_renders(command):
    if command == "(none)":
        pytest.skip("README.md has no helm command yet (see test_the_readme_has_a_helm_install_command)")
    check(command)


CHART_COMMANDS = helm_commands(CHART / "README.md")


@pytest.mark.parametrize("command", CHART_COMMANDS)
def test_each_chart_readme_helm_command_renders(command):
    check(command)


def test_the_chart_readme_shows_both_installs():
    parsed = [parse(c) for c in CHART_COMMANDS]
    assert {"release": "tidemark", "chart": "./charts/tidemark", "namespace": "tidemark-system",
            "values": {}, "subcommand": "install", "version": None} in parsed
    assert any(p["values"] == {"watchNamespace": "kafka"} for p in parsed)


def test_the_command_parser_follows_helm():
    parsed = parse("helm upgrade --install ops ./charts/tidemark -n tidemark-system "
                   "--create-namespace --set watchNamespace=kafka,replicaCount=2 "
                   "--set worker.job.backoffLimit=0 --set-string logLevel=debug --wait")
    assert parsed["release"] == "ops"
    assert parsed["namespace"] == "tidemark-system"
    assert parsed["values"] == {"watchNamespace": "kafka", "replicaCount": 2,
                                "worker": {"job": {"backoffLimit": 0}}, "logLevel": "debug"}
    assert helm_commands(CHART / "README.md"), "the chart's README shows helm commands"
