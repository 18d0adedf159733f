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
