#!/usr/bin/env bash
# Writes the secret files deploy/docker-compose.yml mounts (top-level `secrets:`), one value
# per file under deploy/secrets/, from deploy/.env:
#
#   cd deploy && bash make-secrets.sh            # or: bash make-secrets.sh ENV_FILE OUT_DIR
#
# The services read them as WMSJ_<NAME>_FILE=/run/secrets/<name> (shared/settings.py), so no
# secret is in a container's environment (`docker inspect` shows environments). The files can
# also be written by other means (a vault agent): same names, one value each, no newline.
# metrics_key is not written here: it is one of the office keys (README.md, "Observability").
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
env_file=$(realpath "${1:-$here/.env}")
out=${2:-$here/secrets}
set -a
# shellcheck disable=SC1090
. "$env_file"
set +a
# The directory keeps the host's other users out (mode 700); the files are mode 644 because
# a compose secret from a file is a bind mount with the host's owner and mode, and each
# container's own user (e.g. the services' uid 10001) must read its secrets.
mkdir -p "$out"
chmod 700 "$out"

put() {
    printf '%s' "$2" > "$out/$1"
    chmod 644 "$out/$1"
}

mongo_query='?replicaSet=rs0&authSource=admin'

# Every service: who may call the HTTP APIs.
put api_keys "${WMSJ_API_KEYS:?set WMSJ_API_KEYS in .env}"
# registry only: the key of volunteers' ID-card numbers and phones.
put registry_pii_key "${WMSJ_PII_KEY:?set WMSJ_PII_KEY in .env}"
# Each service its own broker and database user.
put registry_amqp_url "amqp://wmsj-registry:${RABBITMQ_REGISTRY_PASSWORD:?set RABBITMQ_REGISTRY_PASSWORD in .env}@rabbitmq:5672/"
put activities_amqp_url "amqp://wmsj-activities:${RABBITMQ_ACTIVITIES_PASSWORD:?set RABBITMQ_ACTIVITIES_PASSWORD in .env}@rabbitmq:5672/"
put evidence_amqp_url "amqp://wmsj-evidence:${RABBITMQ_EVIDENCE_PASSWORD:?set RABBITMQ_EVIDENCE_PASSWORD in .env}@rabbitmq:5672/"
put supervision_amqp_url "amqp://wmsj-supervision:${RABBITMQ_SUPERVISION_PASSWORD:?set RABBITMQ_SUPERVISION_PASSWORD in .env}@rabbitmq:5672/"
put registry_mongo_url "mongodb://wmsj-registry:${MONGO_REGISTRY_PASSWORD:?set MONGO_REGISTRY_PASSWORD in .env}@mongo:27017/$mongo_query"
put activities_mongo_url "mongodb://wmsj-activities:${MONGO_ACTIVITIES_PASSWORD:?set MONGO_ACTIVITIES_PASSWORD in .env}@mongo:27017/$mongo_query"
put evidence_mongo_url "mongodb://wmsj-evidence:${MONGO_EVIDENCE_PASSWORD:?set MONGO_EVIDENCE_PASSWORD in .env}@mongo:27017/$mongo_query"
put supervision_mongo_url "mongodb://wmsj-supervision:${MONGO_SUPERVISION_PASSWORD:?set MONGO_SUPERVISION_PASSWORD in .env}@mongo:27017/$mongo_query"
# evidence only: its S3 identity.
put evidence_s3_access_key "${S3_EVIDENCE_ACCESS_KEY:?set S3_EVIDENCE_ACCESS_KEY in .env}"
put evidence_s3_secret_key "${S3_EVIDENCE_SECRET_KEY:?set S3_EVIDENCE_SECRET_KEY in .env}"
# The mongo container: its root password and the replica set's key.
put mongo_root_password "${MONGO_ROOT_PASSWORD:?set MONGO_ROOT_PASSWORD in .env}"
put mongo_replica_set_key "${MONGO_REPLICA_SET_KEY:?set MONGO_REPLICA_SET_KEY in .env}"
# Grafana (observability profile): its admin's password.
put grafana_admin_password "${GRAFANA_ADMIN_PASSWORD:?set GRAFANA_ADMIN_PASSWORD in .env}"
