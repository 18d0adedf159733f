"""The adversarial suite's world: the four services in the test process (as in
tests/integration), in a RabbitMQ virtual host and databases of their own — so that what a
case compares before and after is disturbed by no other test — with two real township users
(made as ``wmsj township add`` makes them) and the office, and the services' log records.

Fixtures (named ``bus_*`` so that they never stand in for ``tests/conftest.py``'s ``apps``,
which the other security modules use): ``bus_apps`` (the service modules of this world),
``bus_world`` (its ``amqp_url``, ``vhost``, environment), ``bus_logs`` (the log records),
``attackers`` (``Attackers``: senders ``a``, ``b``, ``office``, ``village()``,
``snapshot()``, ``logs``).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import secrets
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from types import ModuleType
from urllib.parse import unquote, urlsplit

import aio_pika
import pytest

from shared.events import UnitKind, UnitRegistered, UnitRegisteredEvent, derived_id, new_event
from shared.identity import reply_queue, township_user
from tests.conftest import Infra
from tests.security.harness import LogRecords, Sender, as_user, snapshot
from tests.support import town_code

try:  # where the township permissions live (wmsj township add's rules) moves with the
    # onboarding rework (shared/onboarding.py); either way they are the same rules.
    from shared.onboarding import permissions  # type: ignore[import-not-found,unused-ignore]
except ImportError:  # pragma: no cover - before it
    from wmsj.townships import permissions  # type: ignore[attr-defined,no-redef,unused-ignore]

APPS = ("registry", "activities", "evidence", "supervision")
# Small, so that an oversized message is cheap to send; the default is 1 MiB.
MAX_MESSAGE_BYTES = 65_536


@dataclass(frozen=True)
class World:
    amqp_url: str
    vhost: str
    env: dict[str, str]


@pytest.fixture(scope="session")
def bus_world(infra: Infra, service_env: dict[str, str]) -> World:
    env = {
        **infra.env("security"),
        "WMSJ_MAX_MESSAGE_BYTES": str(MAX_MESSAGE_BYTES),
        # Timers (monthly warnings, escalations) and hold sweeps write on their own clock:
        # off here, so that whatever changes in a database was caused by a case.
        "WMSJ_TIMER_INTERVAL_S": "86400",
        "WMSJ_HOLD_SWEEP_INTERVAL_S": "86400",
    }
    amqp_url = env["WMSJ_AMQP_URL"]
    return World(amqp_url, unquote(urlsplit(amqp_url).path[1:]), env)


@pytest.fixture(scope="session")
def bus_logs() -> Iterator[LogRecords]:
    handler = LogRecords()
    root, wmsj = logging.getLogger(), logging.getLogger("wmsj")
    saved = wmsj.level
    wmsj.setLevel(logging.INFO)  # "duplicate ignored" is an INFO line: the cases wait on it
    root.addHandler(handler)
    yield handler
    root.removeHandler(handler)
    wmsj.setLevel(saved)


@pytest.fixture(scope="session")
async def bus_apps(bus_world: World, bus_logs: LogRecords) -> AsyncIterator[dict[str, ModuleType]]:
    """The services, configured for this world: a service reads its settings when its module
    is imported, so the modules are (re)loaded under the world's environment. Services some
    other fixture started keep running in their own world with the module objects they hold."""
    saved = dict(os.environ)
    os.environ.update(bus_world.env)
    try:
        modules = {
            name: importlib.reload(sys.modules[module])
            if (module := f"services.{name}.app") in sys.modules
            else importlib.import_module(module)
            for name in APPS
        }
    finally:
        os.environ.clear()
        os.environ.update(saved)
    async with contextlib.AsyncExitStack() as stack:
        for module in modules.values():
            await stack.enter_async_context(module.service.running())
        yield modules


@dataclass
class Attackers:
    a: Sender
    b: Sender
    office: Sender
    apps: dict[str, ModuleType]
    logs: LogRecords

    def village(self, sender: Sender) -> str:
        return f"{sender.township_id}201"

    async def snapshot(self) -> dict[str, str]:
        return await snapshot([m.service.db for m in self.apps.values()])


@pytest.fixture(scope="session")
async def attackers(
    infra: Infra, bus_world: World, bus_apps: dict[str, ModuleType], bus_logs: LogRecords
) -> AsyncIterator[Attackers]:
    """Townships A and B (each a town and a village, registered by the office and known to
    every service) and the office, connected; the users are deleted afterwards."""
    world, apps, logs = bus_world, bus_apps, bus_logs
    made: list[str] = []
    try:
        urls = []
        for township_id in (town_code(), town_code()):
            user, password = township_user(township_id), secrets.token_hex(12)
            configure, write, read, topic = permissions(township_id)
            infra.rabbitmqctl(["add_user", user, password])
            made.append(user)
            infra.rabbitmqctl(["set_permissions", "-p", world.vhost, user, configure, write, read])
            infra.rabbitmqctl(["set_topic_permissions", "-p", world.vhost, user, "wmsj.ingress", topic, "^$"])
            await _declare_reply_queue(world.amqp_url, user)
            urls.append(as_user(world.amqp_url, user, password))
        async with Sender(urls[0]) as a, Sender(urls[1]) as b, Sender(world.amqp_url) as office:
            found = Attackers(a, b, office, apps, logs)
            await _register(found)
            yield found
    finally:
        for user in made:
            infra.rabbitmqctl(["delete_user", user])


async def _declare_reply_queue(admin_url: str, user: str) -> None:
    """The township's durable reply queue, declared by the platform (it may configure nothing)."""
    connection = await aio_pika.connect_robust(admin_url)
    async with connection:
        channel = await connection.channel()
        await channel.declare_queue(reply_queue(user), durable=True, arguments={"x-max-length": 100_000})


async def _register(found: Attackers) -> None:
    units = []
    for town in (found.a, found.b):
        units += [
            UnitRegistered(unit_id=town.township_id, name=f"{town.township_id}镇", kind=UnitKind.TOWN),
            UnitRegistered(
                unit_id=found.village(town), name="第一村", kind=UnitKind.VILLAGE, parent_id=town.township_id
            ),
        ]
    accepted = set()
    for data in units:
        event = new_event(UnitRegisteredEvent, data, source="/office", time=datetime(2020, 6, 1, tzinfo=UTC))
        await found.office.send(event.model_dump(mode="json"), routing_key=event.type, message_id=event.id)
        accepted.add(derived_id(event.key, "accepted"))
    apps = found.apps

    async def known() -> bool:
        for unit in units:
            for lookup in (
                apps["registry"].units.get,
                apps["activities"].units.get,
                apps["evidence"].evidence.unit,
            ):
                if await lookup(unit.unit_id) is None:
                    return False
        return True

    def settled() -> bool:  # every service that consumes the accepted units has handled them
        handled = {
            (r.name, getattr(r, "event_id", None)) for r in found.logs.records if r.getMessage() == "handled"
        }
        return all(
            (f"wmsj.{s}", i) in handled for s in ("activities", "evidence", "supervision") for i in accepted
        )

    deadline = asyncio.get_running_loop().time() + 60
    while not (await known() and settled()):
        assert asyncio.get_running_loop().time() < deadline, "the units never became known"
        await asyncio.sleep(0.2)
