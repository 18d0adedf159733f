"""The fault suite's own servers (a RabbitMQ node, a MongoDB-wire server, an S3 server),
started once for the suite and stopped by their PIDs; and the table it prints at the end.

``WMSJ_FAULTS_FULL=1`` runs the full city month (≥ 2,000 events); by default a small month
keeps the suite within CI's budget.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.harness import Row, Servers, table
from tests.faults.month import CityMonth, city_month
from tests.faults.servers import RabbitNode, rabbitmq_available
from tests.support import PrivateMongo, PrivateS3, free_port

ROWS: list[Row] = []
FULL = os.environ.get("WMSJ_FAULTS_FULL") == "1"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/faults/" in str(item.fspath):
            item.add_marker(pytest.mark.faults)


@pytest.fixture(scope="session")
def suite_folder() -> Iterator[Path]:
    # Short: RabbitMQ's data paths and Unix socket paths must stay short.
    folder = Path(f"/var/tmp/wmsj-faults-{secrets.token_hex(3)}")
    folder.mkdir(parents=True)
    yield folder
    if os.environ.get("WMSJ_FAULTS_KEEP") != "1":  # kept on request, to read the logs
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def rabbit(suite_folder: Path) -> Iterator[RabbitNode]:
    if not rabbitmq_available():
        pytest.fail("no rabbitmq-server on this machine: scripts/setup.sh installs it")
    node = RabbitNode(suite_folder / "rabbit", f"faults{secrets.token_hex(2)}", free_port(), free_port())
    node.start()
    yield node
    node.stop()


@pytest.fixture(scope="session")
def servers(rabbit: RabbitNode, suite_folder: Path) -> Iterator[tuple[Servers, PrivateMongo, PrivateS3]]:
    mongo = PrivateMongo(suite_folder / "mongo" / "data", use_docker=False)
    mongo.start()
    s3 = PrivateS3(suite_folder / "s3", "minioadmin", "minioadmin")
    s3.start()
    try:
        yield (
            Servers([rabbit.url], mongo.url, s3.endpoint, rabbit.ctl, suite_folder / "worlds"),
            mongo,
            s3,
        )
    finally:
        s3.close()
        mongo.close()


@pytest.fixture(scope="session")
def month() -> CityMonth:
    return city_month(12, 11, "fm") if FULL else city_month(3, 2, "fm")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if ROWS:
        terminalreporter.write_line("\nfault suite (0 lost, 0 double-counted, 0 refusals missing expected):")
        terminalreporter.write_line(table(ROWS))
