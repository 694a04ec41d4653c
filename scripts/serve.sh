#!/usr/bin/env bash
# Start the service on the bundled model at http://127.0.0.1:8000 (settings: PERCEPTION_* variables).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh serve
exec .venv/bin/perception serve "$@"
