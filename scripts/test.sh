#!/usr/bin/env bash
# Runs every check and test: the packaging tests (Helm chart and config/, with Helm's own
# engine), formatting, clippy, unit tests and the integration tests against real servers (tansu,
# an S3 server, Azurite, a GCS emulator), installing those first if needed.
set -euo pipefail
cd "$(dirname "$0")/.."

# A one-off build gains nothing from incremental state, which costs gigabytes of disk.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

bash scripts/install-test-tools.sh
echo "==> packaging tests (Helm chart, config/, README helm commands)"
bash tests/packaging/run.sh
echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "==> cargo test"
cargo test --workspace --locked -- --test-threads="${TIDEMARK_TEST_THREADS:-2}"
echo "==> all tests passed"
