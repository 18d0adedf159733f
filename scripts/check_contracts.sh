#!/usr/bin/env bash
# The generated contracts are valid documents: each service's AsyncAPI document (by
# @asyncapi/cli, installed into node_modules by scripts/setup.sh from package.json) and
# OpenAPI document (by openapi-spec-validator). Errors and warnings fail.
set -euo pipefail
cd "$(dirname "$0")/.."
# The CLI would send usage metrics; a project-local settings file turns them off.
export ASYNCAPI_METRICS_CONFIG_PATH=node_modules/.asyncapi-analytics SUPPRESS_NO_CONFIG_WARNING=1
[[ -f $ASYNCAPI_METRICS_CONFIG_PATH ]] ||
  echo '{"analyticsEnabled": "false", "infoMessageShown": "true", "userID": "wmsj"}' > "$ASYNCAPI_METRICS_CONFIG_PATH"
for spec in docs/asyncapi/*.json; do
  node_modules/.bin/asyncapi validate "$spec" --fail-severity warn
done
.venv/bin/openapi-spec-validator docs/openapi/*.json
