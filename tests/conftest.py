"""Where the tests find real servers.

With a reachable Docker engine, testcontainers starts RabbitMQ 4, MongoDB 8 (single-node
replica set, for transactions) and SeaweedFS (S3). Without one — as on the project's
machines and CI — the tests use the local servers that ``scripts/services.sh`` starts, at
the URLs in the usual ``WMSJ_*`` environment variables, and isolate themselves: a RabbitMQ
virtual host, database names and buckets of their own, all named after this test run.

Unit tests (tests/unit) use none of this.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit, urlunsplit

import pytest

if TYPE_CHECKING:
    from tests.support import Tap
    from wmsj.client import TownshipClient


@dataclass(frozen=True)
class Infra:
    amqp_url: str
    mongo_url: str
    s3_endpoint: str
    s3_access_key: str
    s3_secret_key: str
    run_id: str  # names every queue host, database and bucket this run makes
    rabbitmqctl: Callable[[list[str]], str]  # runs it; returns its output

    def env(self, name: str = "") -> dict[str, str]:
        """The environment a service process (or an in-process service) is configured by.
        A ``name`` gives a separate world: its own virtual host and databases."""
        amqp_url = self.amqp_url
        if name:
            vhost = f"wmsj-{self.run_id}-{name}"
            self.rabbitmqctl(["add_vhost", vhost])
            self.rabbitmqctl(
                [
                    "set_permissions",
                    "-p",
                    vhost,
                    urlsplit(self.amqp_url).username or "guest",
                    ".*",
                    ".*",
                    ".*",
                ]
            )
            amqp_url = _with_vhost(self.amqp_url, vhost)
        return {
            "WMSJ_AMQP_URL": amqp_url,
            "WMSJ_MONGO_URL": self.mongo_url,
            "WMSJ_DB_PREFIX": f"{self.run_id}{name}_",
            "WMSJ_S3_ENDPOINT": self.s3_endpoint,
            "WMSJ_S3_ACCESS_KEY": self.s3_access_key,
            "WMSJ_S3_SECRET_KEY": self.s3_secret_key,
            # Fixed names, not one pair per run: every bucket is a SeaweedFS collection with
            # volumes of its own, and a pair per run soon exhausts the server's volumes.
            # Keys are content-addressed or random, so runs do not collide.
            "WMSJ_S3_UPLOAD_BUCKET": "wmsj-test-uploads",
            "WMSJ_S3_EVIDENCE_BUCKET": "wmsj-test-evidence",
            "WMSJ_RETENTION_DAYS": "1",
            "WMSJ_RETRY_MAX_DELAY_S": "1",
            "WMSJ_LOG_LEVEL": "INFO",
        }


def docker_available() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
    except Exception:
        return False
    return True


def _with_vhost(url: str, vhost: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + quote(vhost, safe="")))


# The tier of a test is where it lives: a ``pytestmark`` in a directory's conftest.py marks
# nothing (pytest reads it only from test modules), so the markers are set here, by path.
TIERS = {"integration": "integration", "security": "integration", "e2e": "e2e", "faults": "faults"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = item.path.parts
        tier = next((TIERS[part] for part in parts[parts.index("tests") + 1 :][:1] if part in TIERS), None)
        if tier:
            item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    run_id = "t" + secrets.token_hex(4)
    if docker_available():
        yield from _containers(run_id)
    else:
        yield from _local_servers(run_id)


def _local_servers(run_id: str) -> Iterator[Infra]:
    amqp = os.environ.get("WMSJ_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    user = urlsplit(amqp).username or "guest"
    vhost = f"wmsj-{run_id}"
    if not shutil.which("rabbitmqctl"):
        pytest.exit("no Docker engine and no rabbitmqctl: run scripts/services.sh start first", 2)

    def rabbitmqctl(args: list[str]) -> str:
        return subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, text=True).stdout

    # A virtual host of our own: services someone runs with ``wmsj up`` on this broker
    # never see the tests' messages, nor the tests theirs.
    rabbitmqctl(["add_vhost", vhost])
    rabbitmqctl(["set_permissions", "-p", vhost, user, ".*", ".*", ".*"])
    try:
        yield Infra(
            amqp_url=_with_vhost(amqp, vhost),
            mongo_url=os.environ.get("WMSJ_MONGO_URL", "mongodb://127.0.0.1:27017/?retryWrites=false"),
            s3_endpoint=os.environ.get("WMSJ_S3_ENDPOINT", "127.0.0.1:9000"),
            s3_access_key=os.environ.get("WMSJ_S3_ACCESS_KEY", "minioadmin"),
            s3_secret_key=os.environ.get("WMSJ_S3_SECRET_KEY", "minioadmin"),
            run_id=run_id,
            rabbitmqctl=rabbitmqctl,
        )
    finally:
        listed = subprocess.run(["rabbitmqctl", "-q", "list_vhosts"], capture_output=True, text=True).stdout
        for name in listed.split():
            if name.startswith(f"wmsj-{run_id}"):
                subprocess.run(["rabbitmqctl", "-q", "delete_vhost", name], check=False, capture_output=True)
        _drop_databases(os.environ.get("WMSJ_MONGO_URL", "mongodb://127.0.0.1:27017/"), run_id)
        _drop_buckets(run_id)


def _containers(run_id: str) -> Iterator[Infra]:
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs
    from testcontainers.rabbitmq import RabbitMqContainer

    rabbit = RabbitMqContainer("rabbitmq:4.1.0-management")
    # Transactions need a replica set; a single member initiated at start is enough.
    mongo = (
        DockerContainer("mongo:8.0.4").with_command("--replSet rs0 --bind_ip_all").with_exposed_ports(27017)
    )
    s3 = (
        DockerContainer("chrislusf/seaweedfs:4.48")
        .with_command("mini -dir=/data -s3.port=9000")
        .with_env("AWS_ACCESS_KEY_ID", "minioadmin")
        .with_env("AWS_SECRET_ACCESS_KEY", "minioadmin")
        .with_exposed_ports(9000)
    )
    with rabbit, mongo, s3:
        wait_for_logs(mongo, "Waiting for connections", timeout=60)
        mongo.exec(
            [
                "mongosh",
                "--quiet",
                "--eval",
                "rs.initiate({_id:'rs0',members:[{_id:0,host:'localhost:27017'}]})",
            ]
        )
        params = rabbit.get_connection_params()
        mongo_host = f"{mongo.get_container_host_ip()}:{mongo.get_exposed_port(27017)}"
        yield Infra(
            amqp_url=f"amqp://guest:guest@{params.host}:{params.port}/",
            mongo_url=f"mongodb://{mongo_host}/?directConnection=true",
            s3_endpoint=f"{s3.get_container_host_ip()}:{s3.get_exposed_port(9000)}",
            s3_access_key="minioadmin",
            s3_secret_key="minioadmin",
            run_id=run_id,
            rabbitmqctl=lambda args: rabbit.exec(["rabbitmqctl", "-q", *args]).output.decode(),
        )


def _drop_buckets(run_id: str) -> None:
    """Remove this run's buckets. On SeaweedFS each bucket is a collection with volumes of
    its own, and a server has only so many volumes: runs that left their buckets behind
    would, in the end, leave none for the next run (uploads then fail with 500s). Kept
    evidence is under GOVERNANCE retention, which the owner may bypass to delete test data."""
    from minio import Minio
    from minio.deleteobjects import DeleteObject

    client = Minio(
        os.environ.get("WMSJ_S3_ENDPOINT", "127.0.0.1:9000"),
        os.environ.get("WMSJ_S3_ACCESS_KEY", "minioadmin"),
        os.environ.get("WMSJ_S3_SECRET_KEY", "minioadmin"),
        secure=False,
    )
    try:
        for bucket in client.list_buckets():
            if not bucket.name.startswith(f"{run_id}-"):
                continue
            listed = client.list_objects(bucket.name, recursive=True, include_version=True)
            doomed = [DeleteObject(o.object_name or "", o.version_id) for o in listed]
            for _ in client.remove_objects(bucket.name, doomed, bypass_governance_mode=True):
                pass  # errors are reported lazily; the bucket removal below says if any stayed
            client.remove_bucket(bucket.name)
    except Exception as error:  # cleaning up must not fail the run
        print(f"could not remove the test buckets of {run_id}: {error}", file=sys.stderr)


def _drop_databases(mongo_url: str, run_id: str) -> None:
    from pymongo import MongoClient

    client: MongoClient[dict[str, object]] = MongoClient(mongo_url, serverSelectionTimeoutMS=3000)
    try:
        for name in client.list_database_names():
            if name.startswith(run_id):  # also the e2e worlds: f"{run_id}{name}_…"
                client.drop_database(name)
    finally:
        client.close()


@pytest.fixture(scope="session")
def service_env(infra: Infra) -> Iterator[dict[str, str]]:
    """Configure this process as the services would be: in-process services read their
    settings at import, so integration tests import them only after this fixture."""
    saved = dict(os.environ)
    os.environ.update(infra.env())
    yield infra.env()
    os.environ.clear()
    os.environ.update(saved)


# ----------------------------------------------------------------------------- in-process services
# The four services running inside the test process, against the real servers: for
# tests/integration and tests/security alike (one session, one set of services).

APPS = ("registry", "activities", "evidence", "supervision")


@pytest.fixture(scope="session")
async def apps(service_env: dict[str, str]) -> AsyncIterator[dict[str, ModuleType]]:
    # A service reads its settings when its module is imported. A unit test (test_topology)
    # imports the apps at collection, before this run's environment is set: reload them so
    # they connect to the test run's virtual host and databases.
    modules = {
        name: importlib.reload(sys.modules[module])
        if (module := f"services.{name}.app") in sys.modules
        else importlib.import_module(module)
        for name in APPS
    }
    async with contextlib.AsyncExitStack() as stack:
        for module in modules.values():
            await stack.enter_async_context(module.service.running())
        yield modules


@pytest.fixture
async def tap(infra: Infra, apps: dict[str, ModuleType]) -> AsyncIterator[Tap]:
    from tests.support import Tap

    async with Tap(infra.amqp_url) as watching:
        yield watching


@pytest.fixture
async def township(infra: Infra, apps: dict[str, ModuleType]) -> AsyncIterator[TownshipClient]:
    from wmsj.client import TownshipClient

    async with TownshipClient(infra.amqp_url) as client:
        yield client


@pytest.fixture(scope="session")
def s3(service_env: dict[str, str]):  # type: ignore[no-untyped-def]
    from shared.settings import S3Settings
    from wmsj.client import object_store

    settings = S3Settings()
    return settings, object_store(settings)
