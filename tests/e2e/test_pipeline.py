"""The four services as separate OS processes, on the real servers, end to end."""

from __future__ import annotations

import hashlib
import json
import os
import time
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from minio import Minio

from shared.auth import DEV_OFFICE_KEY
from shared.events import (
    ActivityScheduled,
    ActivityScheduledEvent,
    EvidenceSubmitted,
    EvidenceSubmittedEvent,
    ScoreUpdatedEvent,
    UnitKind,
    UnitRegistered,
    UnitRegisteredEvent,
    new_event,
)
from tests.conftest import Infra, docker_available
from tests.support import PrivateMongo, PrivateS3, Tap, free_port, publish_as_platform
from wmsj import processes
from wmsj.client import TownshipClient, upload
from wmsj.demo import demo_month, png

pytestmark = pytest.mark.e2e


def _request(url: str) -> urllib.request.Request:
    # The registry's API is scoped by the caller: these checks read as the office.
    return urllib.request.Request(url, headers={"Authorization": f"Bearer {DEV_OFFICE_KEY}"})


def get_json(url: str) -> Any:
    with urllib.request.urlopen(_request(url), timeout=10) as response:
        return json.load(response)


def status_of(url: str) -> int:
    try:
        with urllib.request.urlopen(_request(url), timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


class Pipeline:
    def __init__(self, env: dict[str, str], layout: processes.Layout, names: list[str]) -> None:
        self.env, self.layout, self.names = env, layout, names

    def url(self, name: str, path: str) -> str:
        return f"http://127.0.0.1:{self.layout.ports[name]}{path}"

    def __enter__(self) -> Pipeline:
        for name in self.names:
            processes.start(self.layout, name, self.env)
        states = processes.wait_ready(self.layout, self.names, timeout=60)
        if any(status != 200 for status, _ in states.values()):
            self.__exit__()
            raise AssertionError(f"services not ready: {states}\n{self.logs()}")
        return self

    def __exit__(self, *_: object) -> None:
        for name in self.names:
            processes.stop(self.layout, name)

    def logs(self) -> str:
        return "\n".join(
            f"--- {n}\n" + self.layout.log_file(n).read_text()[-3000:]
            for n in self.names
            if self.layout.log_file(n).exists()
        )


def layout_for(tmp: Path, names: list[str]) -> processes.Layout:
    """Ports of their own, so the suite runs beside ``wmsj up`` (or another test run)."""
    return processes.Layout(tmp, {name: free_port() for name in names})


@pytest.fixture
def pipeline(infra: Infra, tmp_path: Path) -> Iterator[Pipeline]:
    names = list(processes.SERVICES)
    with Pipeline(infra.env("e2e"), layout_for(tmp_path, names), names) as running:
        yield running


async def test_a_month_from_three_townships_becomes_a_score_table(pipeline: Pipeline) -> None:
    env = pipeline.env
    pids = {name: int(pipeline.layout.pid_file(name).read_text()) for name in pipeline.names}
    assert len(set(pids.values())) == 4 and os.getpid() not in pids.values()

    demo = demo_month()
    s3 = Minio(env["WMSJ_S3_ENDPOINT"], env["WMSJ_S3_ACCESS_KEY"], env["WMSJ_S3_SECRET_KEY"], secure=False)
    for item in demo.uploads:
        upload(s3, env["WMSJ_S3_UPLOAD_BUCKET"], item.key, item.content, item.content_type)

    async with Tap(env["WMSJ_AMQP_URL"]) as tap, TownshipClient(env["WMSJ_AMQP_URL"]) as township:
        for event in demo.events:
            await township.publish(event)
        deadline, rows, previous = time.monotonic() + 90, [], None
        while time.monotonic() < deadline:
            rows = get_json(pipeline.url("supervision", "/scores?period=2020-06"))
            # Every active unit scored, the evidence points in (they follow the activity points
            # once the evidence service has learned each schedule), and the table settled.
            evidence = {
                r["unit_id"]
                for r in rows
                for i in r["breakdown"]
                if i["rule"] == "evidence" and i["points"] > 0
            }
            if (
                {r["unit_id"] for r in rows if r["score"] > 0} >= demo.active_units
                and evidence >= demo.active_units - {"431381101201"}
                and rows == previous
            ):
                break
            previous = rows
            await _sleep(2)
        scored_on_the_bus = {e.subject for e in tap.matching(lambda e: e.type == ScoreUpdatedEvent.TYPE)}
        assert township.rejections == []
    by_unit = {r["unit_id"]: r for r in rows}
    points = {u: {i["rule"]: i["points"] for i in r["breakdown"]} for u, r in by_unit.items()}
    full = {i["rule"]: i["max_points"] for i in rows[0]["breakdown"]}

    assert set(by_unit) == {u.unit_id for u in demo.units}  # every unit is in the table
    assert by_unit["431381103201-Z"]["score"] == 0  # the station that did nothing
    assert points["431381101201"]["evidence"] == 0  # activity reported without photos
    for unit_id in demo.active_units - {"431381101201"}:
        assert points[unit_id]["monthly_activity"] == full["monthly_activity"], unit_id
        assert points[unit_id]["evidence"] == full["evidence"], unit_id
    assert scored_on_the_bus == demo.active_units
    assert [r["rank"] for r in rows] == list(range(1, len(rows) + 1))
    # What the services stored is readable over their own HTTP APIs.
    first = demo.events[0].data.unit_id
    assert get_json(pipeline.url("registry", f"/units/{first}"))["name"] == demo.units[0].name


@pytest.fixture
def mongo(tmp_path: Path) -> Iterator[PrivateMongo]:
    server = PrivateMongo(tmp_path / "mongo-data", use_docker=docker_available())
    server.start()
    yield server
    server.close()


async def test_an_event_handled_while_the_database_is_down_takes_effect_when_it_returns(
    infra: Infra, tmp_path: Path, mongo: PrivateMongo
) -> None:
    env = {**infra.env("dbdown"), "WMSJ_MONGO_URL": mongo.url}
    with Pipeline(env, layout_for(tmp_path / "svc", ["registry"]), ["registry"]) as registry:
        unit = UnitRegistered(unit_id="431381199", name="锡矿山街道", kind=UnitKind.STREET)
        event = new_event(UnitRegisteredEvent, unit, source="/townships/431381199", time=time_now())

        mongo.stop()
        try:
            async with Tap(env["WMSJ_AMQP_URL"]) as tap, TownshipClient(env["WMSJ_AMQP_URL"]) as township:
                await township.publish(event)
                await _sleep(4)
                assert status_of(registry.url("registry", "/health/ready")) == 503
                assert tap.matching(lambda e: e.subject == "431381199") == []
        finally:
            mongo.start()  # the test leaves the server it stopped running again

        async with Tap(env["WMSJ_AMQP_URL"]) as tap:
            deadline = time.monotonic() + 60
            while status_of(registry.url("registry", "/units/431381199")) != 200:
                assert time.monotonic() < deadline, registry.logs()
                await _sleep(0.5)
            assert get_json(registry.url("registry", "/units/431381199"))["name"] == "锡矿山街道"
            # Not handled twice, and the accepted fact still went out (from the outbox).
            assert status_of(registry.url("registry", "/health/ready")) == 200


def time_now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


@pytest.fixture
def s3_server(infra: Infra, tmp_path: Path) -> Iterator[PrivateS3]:
    server = PrivateS3(tmp_path / "s3", infra.s3_access_key, infra.s3_secret_key)
    server.start()
    yield server
    server.close()


async def test_evidence_handled_while_the_object_store_is_down_is_kept_when_it_returns(
    infra: Infra, tmp_path: Path, s3_server: PrivateS3
) -> None:
    env = {**infra.env("s3down"), "WMSJ_S3_ENDPOINT": s3_server.endpoint}
    with Pipeline(env, layout_for(tmp_path / "svc", ["evidence"]), ["evidence"]) as evidence:
        photo = png(20200612)
        s3 = Minio(s3_server.endpoint, infra.s3_access_key, infra.s3_secret_key, secure=False)
        upload(s3, env["WMSJ_S3_UPLOAD_BUCKET"], "431381101/a-1/p.png", photo, "image/png")
        claim = EvidenceSubmitted(
            evidence_id="e-s3down",
            activity_id="a-1",
            unit_id="431381101",
            object_key="431381101/a-1/p.png",
            sha256=hashlib.sha256(photo).hexdigest(),
            size=len(photo),
            content_type="image/png",
        )
        event = new_event(EvidenceSubmittedEvent, claim, source="/townships/431381101", time=time_now())
        # Evidence belongs to a scheduled activity: tell the evidence service about it, as the
        # activities service would once it accepted the schedule.
        starts = time_now() - timedelta(days=1)
        schedule = ActivityScheduled(
            activity_id="a-1",
            unit_id="431381101",
            title="环境整治",
            starts_at=starts,
            ends_at=starts + timedelta(hours=2),
        )
        await publish_as_platform(
            env["WMSJ_AMQP_URL"],
            new_event(ActivityScheduledEvent, schedule, source="/wmsj/activities", time=starts),
        )

        async with Tap(env["WMSJ_AMQP_URL"]) as tap, TownshipClient(env["WMSJ_AMQP_URL"]) as township:
            s3_server.stop()
            try:
                await township.publish(event)
                await _sleep(4)
                assert status_of(evidence.url("evidence", "/health/ready")) == 503
                assert tap.matching(lambda e: e.subject == "e-s3down") == []
            finally:
                s3_server.start()  # the test leaves the server it stopped running again

            announced = await tap.wait_for(lambda e: e.subject == "e-s3down", count=2, timeout=90)
            assert {e.type for e in announced} == {"wmsj.evidence.stored.v1", "wmsj.evidence.stored.v2"}
            stored = announced[0]
            assert township.rejections == []
        kept = s3.stat_object(env["WMSJ_S3_EVIDENCE_BUCKET"], stored.data.object_key)
        assert kept.size == len(photo)
