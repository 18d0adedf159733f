#!/usr/bin/env bash
# The project's test command: set up (venv + servers), lint, type-check, then every test
# (unit, integration against the real servers, end to end with the services as processes).
# Extra arguments go to pytest.
#   --fast: unit tests only (no servers, no slow ones), for the edit-test loop; CI runs everything.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ${1:-} == --fast ]]; then
  shift
  [[ -x .venv/bin/python ]] || bash scripts/setup.sh
  exec .venv/bin/python -m pytest tests/unit -q -m "not slow and not integration and not e2e and not faults" "$@"
fi
bash scripts/setup.sh
echo "== ruff"; .venv/bin/ruff check . && .venv/bin/ruff format --check .
echo "== mypy"; .venv/bin/mypy shared services wmsj bench
echo "== contract docs match the code"; .venv/bin/python -m wmsj.docs --check
echo "== contract docs are valid (AsyncAPI, OpenAPI)"; bash scripts/check_contracts.sh
echo "== pytest"; .venv/bin/python -m pytest "$@"
