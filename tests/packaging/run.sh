#!/usr/bin/env bash
# Runs the packaging tests (Helm chart, config/, README helm commands) with the tools that
# scripts/install-test-tools.sh put in $TIDEMARK_TOOLS/venv-packaging. Extra arguments go to
# pytest, e.g. `bash tests/packaging/run.sh -k rbac`.
set -euo pipefail
cd "$(dirname "$0")/../.."
TOOLS="${TIDEMARK_TOOLS:-$HOME/.cache/tidemark/tools}"
PYTHON="$TOOLS/venv-packaging/bin/python"
if [ ! -x "$PYTHON" ]; then
  echo "error: $PYTHON is missing; run scripts/install-test-tools.sh first" >&2
  exit 1
fi
# No __pycache__ or .pytest_cache left in the work tree.
export PYTHONDONTWRITEBYTECODE=1
exec "$PYTHON" -m pytest tests/packaging -p no:cacheprovider -q "$@"
