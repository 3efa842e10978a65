"""scripts/pin-base-images.sh pins the Dockerfile's base images by digest and checks them. The
registry is replaced by a resolver command (the script's TIDEMARK_DIGEST_COMMAND), so what is
tested is the rewrite: ARG expansion, stage names kept, pins moved forward, bad answers refused,
and the repository's Dockerfile itself left untouched."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from pathlib import Path

from conftest import ROOT

SCRIPT = ROOT / "scripts" / "pin-base-images.sh"
PINNED = re.compile(r"^FROM (\S+)@sha256:([0-9a-f]{64})(.*)$")


def resolver(tmp_path: Path, answer: str | None = None) -> Path:
    """A resolver that answers sha256(image reference) (or `answer`) and logs what it was asked."""
    path = tmp_path / "resolve.sh"
    log = tmp_path / "asked.log"
    body = (
        f'echo "$1" >> {log}\n'
        + (f"echo '{answer}'\n" if answer is not None
           else 'printf "sha256:%s\\n" "$(printf %s "$1" | sha256sum | cut -d" " -f1)"\n')
    )
    path.write_text("#!/usr/bin/env bash\nset -eu\n" + body)
    path.chmod(0o755)
    return path


def run(dockerfile: Path, *args: str, resolve: Path | None = None):
    env = dict(os.environ, DOCKERFILE=str(dockerfile))
    if resolve is not None:
        env["TIDEMARK_DIGEST_COMMAND"] = str(resolve)
    return subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True)


def test_the_dockerfiles_images_are_pinned_with_args_expanded_and_stage_names_kept(tmp_path):
    original = (ROOT / "Dockerfile").read_text()
    copy = tmp_path / "Dockerfile"
    copy.write_text(original)

    before = run(copy, "--check")
    assert before.returncode == 1
    froms = [line for line in original.splitlines() if line.startswith("FROM ")]
    unpinned = [line for line in froms if "@sha256:" not in line]
    for line in unpinned:
        assert f"FROM {line.split()[1]} is not pinned by digest" in before.stderr

    resolve = resolver(tmp_path)
    done = run(copy, resolve=resolve)
    assert done.returncode == 0, done.stderr
    pinned = copy.read_text()
    asked = (tmp_path / "asked.log").read_text().split()
    # Every FROM asked for once, with its ARG defaults expanded.
    assert len(asked) == len(froms)
    assert all("$" not in image for image in asked), asked
    new_froms = [line for line in pinned.splitlines() if line.startswith("FROM ")]
    for old, new, image in zip(froms, new_froms, asked):
        m = PINNED.match(new)
        assert m, new
        assert m.group(1) == old.split()[1].split("@")[0]
        assert m.group(2) == hashlib.sha256(image.encode()).hexdigest()
        assert m.group(3) == old[len("FROM ") + len(old.split()[1]):], "stage name kept"
    # Nothing but the FROM lines changed.
    rest = lambda text: [line for line in text.splitlines() if not line.startswith("FROM ")]
    assert rest(pinned) == rest(original)
    assert run(copy, "--check").returncode == 0

    # Pinned again: the pins move forward to what the registry answers now.
    again = run(copy, resolve=resolver(tmp_path / ".." / tmp_path.name, "sha256:" + "a" * 64))
    assert again.returncode == 0, again.stderr
    for line in copy.read_text().splitlines():
        if line.startswith("FROM "):
            assert line.count("@sha256:") == 1, line
            assert "@sha256:" + "a" * 64 in line, line
    assert (ROOT / "Dockerfile").read_text() == original


def test_an_answer_that_is_not_a_digest_changes_nothing(tmp_path):
    copy = tmp_path / "Dockerfile"
    copy.write_text("ARG V=1\nFROM rust:${V}-bookworm AS build\nFROM debian:bookworm-slim\n")
    bad = run(copy, resolve=resolver(tmp_path, "unauthorized"))
    assert bad.returncode != 0
    assert "not a sha256 digest" in bad.stderr
    assert copy.read_text() == "ARG V=1\nFROM rust:${V}-bookworm AS build\nFROM debian:bookworm-slim\n"


def test_a_from_with_an_arg_without_default_is_refused(tmp_path):
    copy = tmp_path / "Dockerfile"
    copy.write_text("ARG V\nFROM rust:${V}-bookworm\n")
    out = run(copy, resolve=resolver(tmp_path))
    assert out.returncode != 0
    assert "ARG without a default" in out.stderr
