#!/usr/bin/env bash
# Create .venv (once) and install the project with the given extras (again only when
# pyproject.toml or the extras change). Usage: scripts/bootstrap.sh serve[,train,dev]
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-serve}"
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
stamp=".venv/.installed-$(echo "$extras" | tr ',' '-')"
want="$(cat pyproject.toml scripts/bootstrap.sh | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "installing .[${extras}] into .venv (first run takes a few minutes)..." >&2
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".[${extras}]"
  echo "$want" > "$stamp"
fi
