"""The HTTP door under test: the four services running in this process against the real
servers, in a world of their own (virtual host, databases), with three API keys — the
office's and two townships' — and a little of everything a township could want to read of
another: units, activities, evidence, with ID-card and phone numbers typed into free text.

``door`` (module scope; import ``door_fixture`` into a test module) starts it; ``Door.call`` asks a service's app over ASGI as one of
``anonymous``, ``unknown`` (a key nobody issued), ``office``, ``t1`` or ``t2``; ``Door.state``
is everything the office can see (and the township's uploads in S3), to compare before and
after a refused request; ``Door.errors`` are the log records at ERROR or with a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib
import json
import logging
import os
import secrets
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import Mount

from shared.events import ActivityScheduled, ActivityScheduledEvent, EvidenceSubmitted, new_event
from shared.events.evidence import EvidenceSubmittedEvent
from shared.events.units import UnitKind, UnitRegistered, UnitRegisteredEvent
from shared.pii import id_card_checksum
from tests.conftest import Infra
from tests.support import Tap, town_code
from wmsj.client import TownshipClient, object_store, upload
from wmsj.demo import png

SERVICES = ("registry", "activities", "evidence", "supervision")
KEYS = {
    "anonymous": None,
    "unknown": "k-nobody-issued-this",
    "office": "k-office-" + secrets.token_hex(8),
    "t1": "k-t1-" + secrets.token_hex(8),
    "t2": "k-t2-" + secrets.token_hex(8),
}


def id_card(seed: int) -> str:
    first = f"43138119900101{seed % 1000:03d}"
    return first + id_card_checksum(first)


PHONE = "13812345678"
CARD = id_card(123)
# Free text as people type it: the numbers alone, grouped, and with +86.
TYPED = f"联系人手机{PHONE}，身份证 {CARD}，备用 +86 139-8765-4321"


def app_routes(routes: list[Any], prefix: str = "") -> list[tuple[str, str]]:
    """Every (method, path) an app (``app.routes``) answers: its API routes, its mounts (static
    pages), and those of the routers it includes (FastAPI keeps those as routers of their own)."""
    found = []
    for route in routes:
        if hasattr(route, "original_router"):  # an included router
            context = getattr(route, "include_context", None)
            found += app_routes(route.original_router.routes, prefix + (getattr(context, "prefix", "") or ""))
        elif isinstance(route, Mount):
            found.append(("GET", prefix + route.path + "/"))
        elif isinstance(route, APIRoute) or hasattr(route, "methods"):
            found += [(m, prefix + route.path) for m in sorted(route.methods or ()) if m != "HEAD"]
    return found


def every_route() -> list[tuple[str, str, str]]:
    """(service, method, path) of every route of every service, as the code declares them."""
    out = []
    for name in SERVICES:
        module = importlib.import_module(f"services.{name}.app")
        out += [(name, m, p) for m, p in app_routes(module.create_app().routes)]
    return out


class Errors(logging.Handler):
    """Keeps every log record at ERROR or above, or with a traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or record.exc_info or "Traceback" in record.getMessage():
            self.records.append(record)


@dataclass
class Door:
    apps: dict[str, FastAPI]
    modules: dict[str, ModuleType]
    ids: dict[str, str]  # T1, T2, V1 (a village of T1), V2 (of T2), F1 (formula name), A1, A2, E1, period
    s3: Any
    errors: Errors
    clients: dict[str, httpx.AsyncClient] = field(default_factory=dict)

    async def call(self, service: str, method: str, path: str, who: str, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if KEYS[who]:
            headers["Authorization"] = f"Bearer {KEYS[who]}"
        return await self.clients[service].request(method, path, headers=headers, **kwargs)

    async def state(self) -> dict[str, Any]:
        """What the office sees through every service, and the townships' uploads."""
        views = {
            ("registry", "/units"): None,
            ("registry", "/volunteers"): None,
            ("registry", f"/units/{self.ids['V1']}/history"): None,
            ("activities", "/activities"): None,
            ("evidence", f"/evidence?activity_id={self.ids['A1']}"): None,
            ("evidence", f"/activities/{self.ids['A1']}/evidence"): None,
            ("supervision", f"/scores?period={self.ids['period']}"): None,
            ("supervision", f"/units/{self.ids['V1']}/history"): None,
        }
        out: dict[str, Any] = {}
        answers = await asyncio.gather(
            *(self.call(service, "GET", path, "office") for service, path in views)
        )
        for (service, path), response in zip(views, answers, strict=True):
            assert response.status_code == 200, (path, response.text)
            out[f"{service} {path}"] = response.json()
        settings, client = self.s3
        for township in ("T1", "T2"):
            listed = client.list_objects(
                settings.upload_bucket, prefix=self.ids[township] + "/", recursive=True
            )
            out[f"uploads of {township}"] = sorted((o.object_name, o.etag) for o in listed)
        return out


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Any:
    saved = dict(os.environ)
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


async def _eventually(check: Any, what: str, timeout: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, f"never: {what}"
        await asyncio.sleep(0.1)


async def _seed(modules: dict[str, ModuleType], amqp_url: str, s3: Any, t1: str, t2: str) -> dict[str, str]:
    ids = {"T1": t1, "T2": t2, "V1": f"{t1}201", "V2": f"{t2}201", "F1": f"{t1}202"}
    units = [
        UnitRegistered(unit_id=t1, name="甲镇", kind=UnitKind.TOWN),
        UnitRegistered(unit_id=t2, name="乙镇", kind=UnitKind.TOWN),
        UnitRegistered(unit_id=ids["V1"], name=f"甲村 {TYPED}"[:200], kind=UnitKind.VILLAGE, parent_id=t1),
        UnitRegistered(unit_id=ids["V2"], name="乙村", kind=UnitKind.VILLAGE, parent_id=t2),
        UnitRegistered(
            unit_id=ids["F1"],
            name='=HYPERLINK("http://evil.example/","点我")',
            kind=UnitKind.VILLAGE,
            parent_id=t1,
        ),
    ]
    start = datetime.now(UTC) - timedelta(hours=3)
    ids["period"] = start.astimezone(UTC).strftime("%Y-%m")
    activities = {}
    for name, unit in (("A1", ids["V1"]), ("A2", ids["V2"])):
        ids[name] = f"a-http-{secrets.token_hex(4)}"
        activities[name] = ActivityScheduled(
            activity_id=ids[name],
            unit_id=unit,
            title=f"理论宣讲 {TYPED}"[:200],
            place="文化礼堂",
            starts_at=start,
            ends_at=start + timedelta(hours=2),
        )
    async with TownshipClient(amqp_url) as office, Tap(amqp_url) as tap:
        for data in units:
            event = new_event(UnitRegisteredEvent, data, source="/office", time=datetime.now(UTC))
            await office.publish(event)

        async def units_known() -> bool:
            return all(
                [await modules["activities"].units.get(u.unit_id) is not None for u in units]
                + [await modules["evidence"].evidence.unit(u.unit_id) is not None for u in units]
            )

        await _eventually(units_known, "the units reach activities and evidence")
        for data in activities.values():
            await office.publish(
                new_event(ActivityScheduledEvent, data, source="/office", time=datetime.now(UTC))
            )
        for name in ("A1", "A2"):
            activity_id = ids[name]

            async def known(activity_id: str = activity_id) -> bool:
                return await modules["evidence"].evidence.known_activity(activity_id) is not None

            await _eventually(known, f"evidence learns {activity_id}")
        settings, client = s3
        content = png(secrets.randbits(32))
        key = f"office/http-{secrets.token_hex(6)}"
        upload(client, settings.upload_bucket, key, content, "image/png")
        ids["E1"] = "e-http-" + secrets.token_hex(4)
        evidence = EvidenceSubmitted(
            evidence_id=ids["E1"],
            activity_id=ids["A1"],
            unit_id=ids["V1"],
            object_key=key,
            sha256=hashlib.sha256(content).hexdigest(),
            size=len(content),
            content_type="image/png",
            caption=TYPED,
        )
        await office.publish(
            new_event(EvidenceSubmittedEvent, evidence, source="/office", time=datetime.now(UTC))
        )
        await tap.wait_for(
            lambda e: e.subject == ids["E1"] and e.type.startswith("wmsj.evidence."), timeout=60
        )

        async def kept() -> bool:
            return await modules["evidence"].evidence.get(ids["E1"]) is not None

        await _eventually(kept, "the evidence is kept")
    return ids


def fresh_services() -> tuple[dict[str, ModuleType], dict[str, ModuleType]]:
    """The services' app modules imported anew, into new module objects: a service reads its
    settings when its module is imported, and this world has its own. (``importlib.reload``
    would re-run them inside the module objects that tests/integration's services, still
    running, take their globals from.) Returns them, and what ``sys.modules`` had before."""
    previous = {}
    modules = {}
    for name in SERVICES:
        if (old := sys.modules.pop(f"services.{name}.app", None)) is not None:
            previous[f"services.{name}.app"] = old
        modules[name] = importlib.import_module(f"services.{name}.app")
    return modules, previous


@pytest.fixture(scope="module", name="door")
async def door_fixture(infra: Infra) -> AsyncIterator[Door]:
    t1, t2 = town_code(), town_code()
    keys = {KEYS["office"]: "office", KEYS["t1"]: f"township:{t1}", KEYS["t2"]: f"township:{t2}"}
    env = infra.env("http")
    errors = Errors()
    with environment({**env, "WMSJ_API_KEYS": json.dumps(keys)}):  # read per request (shared.auth)
        modules, previous = fresh_services()
        from shared.settings import S3Settings

        s3 = (S3Settings(), object_store(S3Settings()))
        async with contextlib.AsyncExitStack() as stack:
            for module in modules.values():
                await stack.enter_async_context(module.service.running())
            ids = await _seed(modules, env["WMSJ_AMQP_URL"], s3, t1, t2)
            apps = {name: module.create_app() for name, module in modules.items()}
            world = Door(apps, modules, ids, s3, errors)
            for name, app in apps.items():
                world.clients[name] = await stack.enter_async_context(
                    httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{name}")
                )
            await _settled(world)
            logging.getLogger().addHandler(errors)
            try:
                yield world
            finally:
                logging.getLogger().removeHandler(errors)
                # Put back the modules of the services other tests may run (tests/integration).
                sys.modules.update(previous)


async def _settled(world: Door, timeout: float = 60) -> None:
    """Wait until what the office sees stops changing (the seed's events have all been
    handled: scores recomputed, evidence assessed), so that a comparison sees only the case."""
    deadline = asyncio.get_running_loop().time() + timeout
    last = await world.state()
    while asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(1)
        now = await world.state()
        if now == last:
            return
        last = now
    raise AssertionError("the seeded world never settled")
