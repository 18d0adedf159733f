"""``wmsj backup`` / ``wmsj restore`` on the local servers: back up online, wipe the service
databases and a township's broker user, restore — the API answers and score tables are the
same as before, the township logs in again, and the evidence objects' retention is kept."""

from __future__ import annotations

import asyncio
import io
import json
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import aio_pika
import httpx
from minio.commonconfig import GOVERNANCE
from minio.retention import Retention
from pymongo import AsyncMongoClient

from shared.auth import DEV_OFFICE_KEY
from shared.events import UnitKind, UnitRegistered, UnitRegisteredEvent, new_event
from shared.onboarding import BrokerAdmin
from tests.conftest import Infra
from tests.support import Tap, town_code
from wmsj import backup
from wmsj.client import TownshipClient

T0 = datetime(2020, 6, 1, tzinfo=UTC)
OFFICE = {"Authorization": f"Bearer {DEV_OFFICE_KEY}"}


async def answers(apps: dict[str, ModuleType], units: list[str]) -> dict[str, Any]:
    """What the office sees: the registry's units and the supervision's score tables."""
    out: dict[str, Any] = {}
    for name, paths in (
        ("registry", ["/units", *(f"/units/{u}" for u in units)]),
        (
            "supervision",
            ["/scores?period=2020-06", "/scores?period=2020", *(f"/scores/{u}?period=2020" for u in units)],
        ),
    ):
        app = apps[name].create_app()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as client:
            for path in paths:
                response = await client.get(path, headers=OFFICE)
                body = response.json()
                if isinstance(body, list):
                    # Only this test's units (other tests share the databases and go on working);
                    # equal ranks come in storage order, which a restore may change.
                    # Their ranks are among every unit of the period, which other tests' units
                    # change meanwhile: compared without them.
                    body = sorted(
                        (
                            {k: v for k, v in row.items() if not k.startswith("rank")}
                            for row in body
                            if row.get("unit_id") in units
                        ),
                        key=lambda row: json.dumps(row, sort_keys=True, ensure_ascii=False),
                    )
                out[f"{name}{path}"] = (response.status_code, body)
    return out


async def test_backup_wipe_restore_gives_the_same_answers(
    infra: Infra, apps: dict[str, ModuleType], township: TownshipClient, tap: Tap, s3: Any, tmp_path: Path
) -> None:
    town = town_code()
    units = [town, f"{town}201", f"{town}202"]
    for unit, kind, parent in (
        (town, UnitKind.TOWN, None),
        (units[1], UnitKind.VILLAGE, town),
        (units[2], UnitKind.VILLAGE, town),
    ):
        event = new_event(
            UnitRegisteredEvent,
            UnitRegistered(unit_id=unit, name=f"单位{unit}", kind=kind, parent_id=parent),
            source="/office",
            time=T0,
        )
        await township.publish(event)
    await tap.wait_for(
        lambda e: e.type == UnitRegisteredEvent.TYPE and e.subject in units, count=3, timeout=30
    )
    # Scores are made by the rescorer after the facts: wait until it has none of ours left
    # (other tests go on marking their own units meanwhile).
    supervision = apps["supervision"]

    async def rescored() -> None:
        for _ in range(600):
            if not await supervision.service.db.to_rescore.count_documents({"unit_id": {"$in": units}}):
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"the rescorer left marks of {units}")

    # ... and until supervision has learned every one of them (its queue is another than the
    # registry's: the accepted events above may not have reached it yet).
    def complete(seen: dict[str, Any]) -> bool:
        return all(
            {row["unit_id"] for row in seen[f"supervision/scores?period={p}"][1]} == set(units)
            for p in ("2020-06", "2020")
        )

    for _ in range(600):
        await rescored()
        before = await answers(apps, units)
        if complete(before):
            break
        await asyncio.sleep(0.1)
    assert complete(before), before
    assert [row["unit_id"] for row in before["supervision/scores?period=2020-06"][1]] != []
    assert before[f"registry/units/{units[1]}"][0] == 200

    # A township's broker user and a kept evidence object (object-locked, as evidence keeps them).
    async with BrokerAdmin(infra.amqp_url) as admin:
        access = await admin.add(town)
    settings, client = s3
    key = f"backup-test/{infra.run_id}/{secrets.token_hex(4)}.jpg"
    until = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    client.put_object(
        settings.evidence_bucket,
        key,
        io.BytesIO(b"jpeg bytes"),
        10,
        content_type="image/jpeg",
        retention=Retention(GOVERNANCE, until),
    )
    prefix = apps["registry"].settings.db_prefix
    plan = backup.Plan(
        mongo_url=infra.mongo_url,
        db_prefix=prefix,
        amqp_url=infra.amqp_url,
        s3=client,
        buckets=[settings.evidence_bucket],
        object_prefix=f"backup-test/{infra.run_id}/",
    )
    try:
        manifest = await backup.backup(tmp_path / "b", plan)
        assert manifest["mongo"][f"{prefix}registry"]["units"] >= 3
        assert manifest["s3"][settings.evidence_bucket] == 1
        meta = json.loads((tmp_path / "b" / "s3" / settings.evidence_bucket / f"{key}.meta.json").read_text())
        assert (
            meta["content_type"] == "image/jpeg"
            and datetime.fromisoformat(meta["retention"]["until"]) == until
        )
        assert (tmp_path / "b" / "s3" / settings.evidence_bucket / key).read_bytes() == b"jpeg bytes"
        assert any(
            u["name"] == access.user
            for u in json.loads((tmp_path / "b" / "broker.json").read_text())["users"]
        )

        # Wipe: the service databases and the township's user.
        mongo: AsyncMongoClient[Any] = AsyncMongoClient(infra.mongo_url)
        try:
            for database in plan.databases:
                await mongo.drop_database(database)
        finally:
            await mongo.close()
        async with BrokerAdmin(infra.amqp_url) as admin:
            assert await admin.revoke(town)
        wiped = await answers(apps, units)
        assert wiped[f"registry/units/{units[1]}"][0] == 404

        restored = await backup.restore(tmp_path / "b", plan)
        assert (
            restored["mongo"][f"{prefix}registry"]["units"] == manifest["mongo"][f"{prefix}registry"]["units"]
        )
        assert restored["s3"][settings.evidence_bucket] == 0, "the locked object is still there and kept"
        await rescored()  # nothing of ours was pending when backed up; nothing may be now
        assert await answers(apps, units) == before
        # The township logs in with the password it was given before the wipe.
        parts = urlsplit(infra.amqp_url)
        url = urlunsplit(
            parts._replace(
                netloc=f"{access.user}:{quote(access.password, safe='')}@{parts.hostname}:{parts.port}"
            )
        )
        connection = await aio_pika.connect(url)
        await connection.close()
    finally:
        async with BrokerAdmin(infra.amqp_url) as admin:
            await admin.revoke(town)


def test_a_damaged_backup_is_refused(tmp_path: Path) -> None:
    import asyncio

    import pytest

    (tmp_path / "mongo").mkdir()
    (tmp_path / "mongo" / "x.bson").write_bytes(b"changed")
    (tmp_path / "manifest.json").write_text(
        json.dumps({"files": {"mongo/x.bson": "0" * 64}, "mongo": {}, "s3": {}})
    )
    plan = backup.Plan(
        mongo_url="mongodb://127.0.0.1:1/",
        db_prefix="x_",
        amqp_url="amqp://g:g@127.0.0.1/",
        s3=None,
        buckets=[],
    )
    with pytest.raises(RuntimeError, match="damaged"):
        asyncio.run(backup.restore(tmp_path, plan))
