"""The four services running inside the test process, against the real servers."""

from __future__ import annotations

import contextlib
import importlib
import sys
from collections.abc import AsyncIterator
from types import ModuleType

import pytest

from tests.conftest import Infra
from tests.support import Tap
from wmsj.client import TownshipClient, object_store

pytestmark = pytest.mark.integration

APPS = ("registry", "activities", "evidence", "supervision")


def _fresh(name: str) -> ModuleType:
    """Import a service's app now that the test environment is set. A unit test that ran
    first (test_topology) may have imported it with the default settings — the default
    virtual host and buckets — so it is then executed again to read this run's settings."""
    if name in sys.modules:
        return importlib.reload(sys.modules[name])
    return importlib.import_module(name)


@pytest.fixture(scope="session")
async def apps(service_env: dict[str, str]) -> AsyncIterator[dict[str, ModuleType]]:
    modules = {name: _fresh(f"services.{name}.app") for name in APPS}
    async with contextlib.AsyncExitStack() as stack:
        for module in modules.values():
            await stack.enter_async_context(module.service.running())
        yield modules


@pytest.fixture
async def tap(infra: Infra, apps: dict[str, ModuleType]) -> AsyncIterator[Tap]:
    async with Tap(infra.amqp_url) as watching:
        yield watching


@pytest.fixture
async def township(infra: Infra, apps: dict[str, ModuleType]) -> AsyncIterator[TownshipClient]:
    async with TownshipClient(infra.amqp_url) as client:
        yield client


@pytest.fixture(scope="session")
def s3(service_env: dict[str, str]):  # type: ignore[no-untyped-def]
    from shared.settings import S3Settings

    settings = S3Settings()
    return settings, object_store(settings)
