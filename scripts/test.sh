#!/usr/bin/env bash
# Runs every check and test: the dependency policy (cargo-deny with deny.toml), the packaging
# tests (Helm chart and config/, with Helm's own engine), formatting, clippy, unit tests and the
# integration tests against real servers (tansu, an S3 server, Azurite, a GCS emulator),
# installing those first if needed.
#
# `bash scripts/test.sh --fresh` proves the same on a machine as new as CI's: it clones the
# committed HEAD into a temporary directory and runs this script there with an empty cargo home
# (no registry, no git checkouts) and an empty tools cache, so nothing fetched by hand earlier
# can make it pass. It takes as long as a cold CI run; run it now and then, and after changing
# dependencies, tools or anything the tests download. TIDEMARK_FRESH_DIR picks where (default
# a new directory under /tmp), removed afterwards unless TIDEMARK_FRESH_KEEP=1.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--fresh" ]; then
  fresh="${TIDEMARK_FRESH_DIR:-$(mktemp -d /tmp/tidemark-fresh.XXXXXX)}"
  [ "${TIDEMARK_FRESH_KEEP:-0}" = 1 ] || trap 'rm -rf "$fresh"' EXIT
  echo "==> fresh run in $fresh: clone of $(git rev-parse --short HEAD), empty CARGO_HOME and tools cache"
  git clone -q . "$fresh/src"
  mkdir -p "$fresh/cargo-home" "$fresh/tools"
  # rustup's proxies live in the usual cargo home; the toolchain itself stays where rustup has it.
  PATH="$(dirname "$(command -v cargo)"):$PATH" CARGO_HOME="$fresh/cargo-home" \
    TIDEMARK_TOOLS="$fresh/tools" bash "$fresh/src/scripts/test.sh"
  exit $?
fi

# A one-off build gains nothing from incremental state, which costs gigabytes of disk.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

bash scripts/install-test-tools.sh
TOOLS="${TIDEMARK_TOOLS:-$HOME/.cache/tidemark/tools}"
echo "==> cargo deny: licenses, bans, sources (deny.toml; advisories need a database: docs/security.md)"
PATH="$TOOLS/bin:$PATH" cargo deny --locked check --hide-inclusion-graph licenses bans sources
echo "==> packaging tests (Helm chart, config/, README helm commands)"
bash tests/packaging/run.sh
echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "==> cargo test"
cargo test --workspace --locked -- --test-threads="${TIDEMARK_TEST_THREADS:-2}"
echo "==> all tests passed"
