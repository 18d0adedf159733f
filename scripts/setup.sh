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
bash scripts/services.sh start
