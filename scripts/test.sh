#!/usr/bin/env bash
# The project's test command: set up (venv + servers), lint, type-check, then every test
# (unit, integration against the real servers, end to end with the services as processes).
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "== ruff"; .venv/bin/ruff check . && .venv/bin/ruff format --check .
echo "== mypy"; .venv/bin/mypy shared services wmsj bench
echo "== contract docs match the code"; .venv/bin/python -m wmsj.docs --check
echo "== contract docs are valid (AsyncAPI, OpenAPI)"; bash scripts/check_contracts.sh
echo "== pytest"; .venv/bin/python -m pytest "$@"
