#!/usr/bin/env bash
# Writes a CycloneDX SBOM (JSON, spec 1.5) for each shipped binary into OUT_DIR (default
# target/sbom): tidemark.cdx.json (the worker and CLI, package `tidemark`) and
# tidemark-operator.cdx.json (package `tidemark-operator`). Each lists every crate compiled into
# that binary for this machine's platform, with its version, license, purl and checksum, and
# build-time crates marked as excluded from the runtime. The generator is cargo-cyclonedx,
# installed by scripts/install-test-tools.sh; the timestamp is the HEAD commit's, so two runs on
# one commit give the same files.
#
#   bash scripts/sbom.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-target/sbom}"
TOOLS="${TIDEMARK_TOOLS:-$HOME/.cache/tidemark/tools}"
export PATH="$TOOLS/bin:$PATH"
if ! command -v cargo-cyclonedx >/dev/null; then
  echo "sbom.sh: cargo-cyclonedx not found in $TOOLS/bin or PATH; run bash scripts/install-test-tools.sh" >&2
  exit 1
fi
# cargo-cyclonedx reads `cargo metadata`, which would quietly update a stale Cargo.lock: the
# SBOM must describe the locked build, so refuse one first.
cargo metadata --locked --format-version 1 >/dev/null
if [ -z "${SOURCE_DATE_EPOCH:-}" ] && git rev-parse --verify -q HEAD >/dev/null 2>&1; then
  SOURCE_DATE_EPOCH="$(git log -1 --format=%ct)"
  export SOURCE_DATE_EPOCH
fi
# One SBOM per workspace package, written beside each Cargo.toml; the two shipped ones are moved
# to OUT_DIR, the test crate's is dropped.
cargo cyclonedx --format json --spec-version 1.5 --all --quiet
mkdir -p "$out"
mv worker/tidemark.cdx.json "$out/tidemark.cdx.json"
mv operator/tidemark-operator.cdx.json "$out/tidemark-operator.cdx.json"
rm -f tests/tidemark-tests.cdx.json
echo "SBOMs: $out/tidemark.cdx.json $out/tidemark-operator.cdx.json"
