#!/usr/bin/env bash
# Run the whole test suite (installs serving, training and test dependencies into .venv first).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh serve,train,dev
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
