"""deploy/compose.cluster.yml, checked without Docker like docker-compose.yml
(tests/unit/test_compose.py): valid against the Compose Specification, every variable from
the documented .env, and agreeing with the code — the four services, their settings, their
health checks — and with what a cluster must be: three RabbitMQ nodes that form one cluster
with quorum queues, a 3-member replica set the services reach as such, S3 with replicated
volumes, and every service in replicas that reach the broker through every node."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.failover import amqp_urls
from tests.unit.test_compose import (
    APP_SERVICES,
    ENV_EXAMPLE,
    _env_names,
    _settings_classes,
    environment,
    interpolate_tree,
    read_env_file,
    referenced_variables,
    schema_validator,
)

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_FILE = ROOT / "deploy" / "compose.cluster.yml"
CLUSTER_ENV = ROOT / "deploy" / "cluster.env.example"
NODES = ("rabbitmq-1", "rabbitmq-2", "rabbitmq-3")
MEMBERS = ("mongo-1", "mongo-2", "mongo-3")
VOLUME_SERVERS = ("seaweed-volume-1", "seaweed-volume-2", "seaweed-volume-3")


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(CLUSTER_FILE.read_text(encoding="utf-8"))
    return loaded


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    return {**read_env_file(ENV_EXAMPLE), **read_env_file(CLUSTER_ENV)}


@pytest.fixture(scope="module")
def cluster(raw: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    tree: dict[str, Any] = interpolate_tree(raw, env)
    return tree


def test_valid_against_the_compose_specification(cluster: dict[str, Any]) -> None:
    import json

    schema = json.loads((ROOT / "deploy" / "compose-spec.json").read_text(encoding="utf-8"))
    validator = schema_validator(schema)(schema)
    errors = sorted(validator.iter_errors(cluster), key=lambda e: list(map(str, e.absolute_path)))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def test_every_variable_is_documented(raw: dict[str, Any], env: dict[str, str]) -> None:
    referenced = referenced_variables(raw)
    assert not referenced - env.keys(), "missing from deploy/.env.example or deploy/cluster.env.example"
    assert not read_env_file(CLUSTER_ENV).keys() - referenced, "in cluster.env.example but unused"


def test_three_rabbitmq_nodes_form_one_cluster_of_quorum_queues(cluster: dict[str, Any]) -> None:
    conf = cluster["configs"]["rabbitmq-conf"]["content"]
    assert "peer_discovery_backend = classic_config" in conf
    assert set(re.findall(r"classic_config\.nodes\.\d+ = rabbit@(\S+)", conf)) == set(NODES)
    assert "default_queue_type = quorum" in conf
    for node in NODES:
        service = cluster["services"][node]
        assert service["hostname"] == node  # the node name rabbit@<hostname> the others look for
        targets = {c["target"] for c in service["configs"]}
        assert "/var/lib/rabbitmq/.erlang.cookie" in targets
        assert any(str(v).endswith(":/var/lib/rabbitmq") for v in service["volumes"])


def test_a_three_member_replica_set(cluster: dict[str, Any]) -> None:
    init = " ".join(cluster["services"]["mongo-1"]["healthcheck"]["test"])
    assert set(re.findall(r"host: '([\w-]+):27017'", init)) == set(MEMBERS)
    for member in MEMBERS:
        assert "--replSet" in cluster["services"][member]["command"]


def test_s3_on_replicated_volume_servers(cluster: dict[str, Any]) -> None:
    master = cluster["services"]["seaweed-master"]["command"]
    assert "-defaultReplication=001" in master
    for name in VOLUME_SERVERS:
        assert "-mserver=seaweed-master:9333" in cluster["services"][name]["command"]
    assert "-s3" in cluster["services"]["s3"]["command"]


@pytest.mark.parametrize("name", APP_SERVICES)
def test_services_run_as_replicas_on_every_node_and_member(
    cluster: dict[str, Any], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = cluster["services"][name]
    assert service["deploy"]["replicas"] >= 2
    env = environment(service)
    hosts = {re.search(r"@([\w-]+):", url).group(1) for url in amqp_urls(env["WMSJ_AMQP_URL"])}  # type: ignore[union-attr]
    assert hosts == set(NODES)
    assert all(f"{m}:27017" in env["WMSJ_MONGO_URL"] for m in MEMBERS)
    assert "replicaSet=rs0" in env["WMSJ_MONGO_URL"]
    for server in (*NODES, *MEMBERS):
        assert service["depends_on"][server]["condition"] == "service_healthy"
    # Scaled replicas cannot share one host port: a range, one port each.
    for port in service["ports"]:
        assert re.fullmatch(r"[\d.]+:\d+-\d+:" + env["WMSJ_HTTP_PORT"], str(port)), port
    assert f"127.0.0.1:{env['WMSJ_HTTP_PORT']}/health/ready" in " ".join(service["healthcheck"]["test"])
    # Every variable is a setting the service reads.
    classes = _settings_classes(name)
    from shared.archive import ArchiveSettings
    from shared.topology import TopologySettings

    classes = [*classes, ArchiveSettings, TopologySettings]
    known = set().union(*(_env_names(cls) for cls in classes))
    assert not {k for k in env if k.startswith("WMSJ_")} - known
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for cls in classes:
        cls()
    assert env["WMSJ_OFFICE_QUEUE_TYPE"] == "quorum"
