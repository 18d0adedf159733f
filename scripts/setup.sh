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
# The dependencies exactly as locked (versions and hashes; the images use requirements.lock,
# the same without the dev tools), then the project itself without re-resolving them.
.venv/bin/python -m pip install -q --disable-pip-version-check --require-hashes -r requirements-dev.lock
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -e .
# Debian's chromium, headless, for the dashboard's browser test (tests/integration/test_dashboard.py).
# A Chinese font, so the browser shows Chinese (not boxes) and the bulletin's PDF can embed it.
if ! command -v chromium >/dev/null 2>&1 || [[ ! -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ]]; then
  SUDO=$([[ $(id -u) == 0 ]] && echo "" || echo sudo)
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends chromium fonts-wqy-microhei
fi
# The AsyncAPI validator the contract check runs (scripts/check_contracts.sh): project-local,
# pinned by package-lock.json.
if [[ ! -x node_modules/.bin/asyncapi ]]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
bash scripts/services.sh start
