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
# The fault drills marked ``full`` (the 3-node cluster, replicas without a kill) take minutes
# more: WMSJ_FAULTS_FULL=1 runs them (with the full-size month); CI runs the rest of the suite.
FULL_DRILLS=(-m "not full")
[[ ${WMSJ_FAULTS_FULL:-} == 1 ]] && FULL_DRILLS=()
echo "== pytest"; .venv/bin/python -m pytest "${FULL_DRILLS[@]}" "$@"
