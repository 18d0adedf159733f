"""The township guide is the contract: its worked examples (docs/township-integration.md, the
code blocks marked ``<!-- example: NAME -->``) are extracted verbatim and run, in the guide's
order, as a township system would run them — separate Python processes, a real township
RabbitMQ user and HTTP API key, the services' HTTP APIs on real ports — against the services
running in this process. A guide that drifts from the platform fails here."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.routing import APIRoute

from shared.auth import DEV_OFFICE_KEY, caller_dependency, parse_keys
from shared.events import UnitKind, UnitRegistered
from shared.identity import township_user
from shared.onboarding import BrokerAdmin
from tests.conftest import Infra
from tests.integration.test_townships import as_user, eventually, office_registers
from tests.support import free_port, town_code
from wmsj.client import TownshipClient
from wmsj.demo import png
from wmsj.docs import ROOT
from wmsj.guide import GUIDE

EXAMPLE = re.compile(r"<!-- example: (\S+) -->\n```python\n(.*?)\n```", re.S)


def examples(text: str) -> dict[str, str]:
    """The guide's runnable examples, by file name, in the guide's order."""
    return {name: code + "\n" for name, code in EXAMPLE.findall(text)}


def with_keys(app: FastAPI, keys: dict[str, str]) -> FastAPI:
    """The app with these API keys: every API-key dependency of ``shared.auth`` in its
    routes is replaced (the services read theirs from the environment when imported)."""
    override = caller_dependency(parse_keys(json.dumps(keys)))

    def walk(dependant: Any) -> None:
        for dependency in dependant.dependencies:
            if getattr(dependency.call, "__module__", "") == "shared.auth":
                app.dependency_overrides[dependency.call] = override
            walk(dependency)

    def routes(found: list[Any]) -> Iterator[APIRoute]:
        for route in found:
            if isinstance(route, APIRoute):
                yield route
            elif (included := getattr(route, "original_router", None)) is not None:  # include_router
                yield from routes(included.routes)

    for route in routes(app.routes):
        walk(route.dependant)
    return app


@contextlib.asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "the HTTP server stopped"
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture
async def township_env(
    infra: Infra, apps: dict[str, ModuleType], township: TownshipClient, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[dict[str, str]]:
    """What the office hands a township (§ 1 of the guide), as environment variables."""
    town = town_code()
    await office_registers(township, apps, UnitRegistered(unit_id=town, name="禾青镇", kind=UnitKind.TOWN))
    async with BrokerAdmin(infra.amqp_url) as admin:  # as `wmsj township add` does
        password = (await admin.add(town)).password
    key = f"key-{secrets.token_hex(8)}"
    keys = {DEV_OFFICE_KEY: "office", key: f"township:{town}"}
    # Routes that read the keys when their signature is evaluated see these; the others are
    # overridden (with_keys).
    monkeypatch.setenv("WMSJ_API_KEYS", json.dumps(keys))
    try:
        async with contextlib.AsyncExitStack() as stack:
            urls = {
                name: await stack.enter_async_context(serving(with_keys(apps[name].create_app(), keys)))
                for name in ("registry", "activities", "evidence", "supervision")
            }
            yield {
                "WMSJ_TOWNSHIP_ID": town,
                "WMSJ_TOWNSHIP_AMQP_URL": as_user(infra.amqp_url, township_user(town), password),
                "WMSJ_TOWNSHIP_API_KEY": key,
                **{f"WMSJ_{name.upper()}_API": url for name, url in urls.items()},
            }
    finally:
        infra.rabbitmqctl(["delete_user", township_user(town)])


async def run(script: str, cwd: Path, env: dict[str, str]) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        script,
        cwd=cwd,
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(cwd), **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), timeout=180)
    except TimeoutError:
        process.kill()
        raise
    text = out.decode()
    assert process.returncode == 0, f"{script} failed:\n{text}"
    return text


def test_the_guide_has_one_example_per_flow() -> None:
    found = examples((ROOT / GUIDE).read_text(encoding="utf-8"))
    assert list(found) == [
        "township_bus.py",
        "register.py",
        "schedule.py",
        "upload.py",
        "submit.py",
        "complete.py",
        "refusals.py",
        "scores.py",
        "kit.py",
    ]


async def test_the_guides_worked_example_runs_verbatim_as_a_township(
    apps: dict[str, ModuleType], township_env: dict[str, str], tmp_path: Path
) -> None:
    found = examples((ROOT / GUIDE).read_text(encoding="utf-8"))
    for name, code in found.items():
        (tmp_path / name).write_text(code, encoding="utf-8")
    (tmp_path / "activity.png").write_bytes(png(secrets.randbits(32)))  # the township's photo
    town = township_env["WMSJ_TOWNSHIP_ID"]
    village, activity = f"{town}201", f"{town}-act-1"

    out = await run("register.py", tmp_path, township_env)
    unit = await apps["registry"].units.get(village)
    assert unit is not None and unit.township_id == town and f"{village} village township {town}" in out

    await run("schedule.py", tmp_path, township_env)
    assert await apps["activities"].activities.get(activity) is not None

    out = await run("upload.py", tmp_path, township_env)
    claims = json.loads((tmp_path / "claims.json").read_text())
    assert [c["object_key"].split("/")[0] for c in claims] == [town, town]

    out = await run("submit.py", tmp_path, township_env)
    for n in (1, 2):
        assert await apps["evidence"].evidence.get(f"{activity}-e{n}") is not None
    assert "evidence complete: True photos 1 reports 1" in out

    out = await run("complete.py", tmp_path, township_env)
    assert f"{activity} completed []" in out

    out = await run("refusals.py", tmp_path, township_env)
    assert "wmsj.activity.scheduled.v1 refused by activities:" in out
    assert "wmsj.unit.registered.v2 refused by registry:" in out
    assert await apps["activities"].activities.get(f"{town}-act-2") is None
    assert await apps["registry"].units.get("431381999201") is None

    out = await run("scores.py", tmp_path, township_env)
    assert "monthly_activity" in out and f"{village} " in out

    # The fast path (§ 3): the same day with the client kit.
    out = await run("kit.py", tmp_path, township_env)
    assert "4 published, 0 refused" in out
    await eventually(lambda: apps["registry"].units.get(f"{town}202"))
    await eventually(lambda: apps["evidence"].evidence.get(f"{town}-act-3-e1"))
