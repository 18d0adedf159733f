#!/usr/bin/env bash
# Prepare this machine: a Python venv with the project in .venv, and RabbitMQ, the
# MongoDB-wire server and the S3 server running on 127.0.0.1 (installed when missing).
# Idempotent: safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[dev]"
# Debian's chromium, headless, for the dashboard's browser test (tests/integration/test_dashboard.py).
if ! command -v chromium >/dev/null 2>&1; then
  SUDO=$([[ $(id -u) == 0 ]] && echo "" || echo sudo)
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends chromium
fi
# The AsyncAPI validator the contract check runs (scripts/check_contracts.sh): project-local,
# pinned by package-lock.json.
if [[ ! -x node_modules/.bin/asyncapi ]]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
bash scripts/services.sh start
