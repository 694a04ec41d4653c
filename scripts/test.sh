#!/usr/bin/env bash
# Run the whole test suite (installs serving, training and test dependencies into .venv first).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh serve,train,dev
.venv/bin/ruff check .
.venv/bin/ruff format --check .
# tests/test_webpage.py drives Debian's Chromium through Playwright (no browser downloads).
if ! command -v chromium >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) ||
      echo "could not install chromium: tests/test_webpage.py will fail" >&2
  else
    echo "chromium is missing and tests/test_webpage.py needs it: sudo apt-get install -y chromium" >&2
  fi
fi
exec .venv/bin/python -m pytest "$@"
