"""The office's dashboard in a real headless browser (Debian's chromium): it loads, calls the
API with the office's key, and shows a unit's score, its breakdown and its evidence — the
photos themselves, through view links the page asks the evidence service for."""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from types import ModuleType
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI

from shared.events import ActivityCompleted, ActivityCompletedEvent, new_event, period_of
from tests.integration.test_evidence import scheduled, submitted
from tests.integration.test_supervision_office import scored_unit
from tests.support import Tap, free_port
from wmsj.client import TownshipClient, upload
from wmsj.demo import png


class Tables(HTMLParser):
    """The text of every table row, by the row's id or class."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, list[str]] = {}
        self.texts: dict[str, str] = {}
        self._row: str | None = None
        self._cell: list[str] | None = None
        self._span: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "tr":
            self._row = a.get("id") or a.get("class") or None
            if self._row:
                self.rows[self._row] = []
        elif tag == "td" and self._row:
            self._cell = []
        elif tag == "span" and a.get("id"):
            self._span = a["id"]
            self.texts[self._span or ""] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._row and self._cell is not None:
            self.rows[self._row].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr":
            self._row = None
        elif tag == "span":
            self._span = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._span:
            self.texts[self._span] += data


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "chromium is missing: scripts/setup.sh installs it"
    return found


@contextlib.asynccontextmanager
async def serving(app: FastAPI, port: int) -> AsyncIterator[str]:
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    for _ in range(1200):  # up to a minute
        if server.started:
            break
        await asyncio.sleep(0.05)
    assert server.started, "the server did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture
async def dashboard_url(apps: dict[str, ModuleType]) -> AsyncIterator[str]:
    """The supervision dashboard, and the evidence service's HTTP API on a port of its own
    that lets the dashboard's origin call it (CORS), as two deployed services would be."""
    supervision, evidence = apps["supervision"], apps["evidence"]
    dashboard_port, evidence_port = free_port(), free_port()
    evidence_app = FastAPI()
    evidence_settings = evidence.settings.model_copy(
        update={"dashboard_origins": f"http://127.0.0.1:{dashboard_port}"}
    )
    evidence_app.include_router(evidence.api.router(evidence.evidence, evidence.objects, evidence_settings))
    evidence.api.allow_dashboard(evidence_app, evidence_settings)
    app = FastAPI()
    supervision.api.mount(
        app,
        supervision.facts,
        supervision.scores,
        supervision.rules,
        supervision.record_inspection,
        supervision.recompute_all,
        f"http://127.0.0.1:{evidence_port}",
    )
    async with serving(evidence_app, evidence_port), serving(app, dashboard_port) as url:
        yield url


async def render(url: str) -> str:
    with tempfile.TemporaryDirectory() as profile:
        process = await asyncio.create_subprocess_exec(
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=10000",
            "--dump-dom",
            url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, err.decode(errors="replace")[-2000:]
    return out.decode()


async def test_the_dashboard_shows_a_units_score_and_its_breakdown(
    apps: dict[str, ModuleType], tap: Tap, dashboard_url: str
) -> None:
    unit_id = await scored_unit(apps, tap, "t-dash")
    dom = await render(f"{dashboard_url}/dashboard/?key=dev-office-key&period=2020-06&unit={unit_id}")
    page = Tables()
    page.feed(dom)

    row = page.rows[f"row-{unit_id}"]  # the ranking table
    assert row[1:3] == [unit_id, "禾青镇第一村"] and row[5] == "100" and row[9] == "red"
    assert page.texts["detail-unit"] == unit_id and page.texts["detail-score"] == "100 / 100"
    monthly = page.rows["item-monthly_activity"]  # the breakdown: rule, item, points, max, why, facts
    assert monthly[:4] == ["monthly_activity", "月月有活动", "30", "30"]
    assert "1 activities completed in 2020-06" in monthly[4]
    evidence = page.rows["item-evidence"]
    assert evidence[2] == "20" and "1 of 1 completed activities have their evidence" in evidence[4]
    assert "-e" in evidence[5]  # the evidence id it counted
    assert "image/png" in dom  # drill-down: the activity's evidence
    assert "rules notice-2026+" in dom


async def test_the_drill_down_shows_the_photos_the_evidence_service_keeps(
    apps: dict[str, ModuleType], township: TownshipClient, s3: Any, dashboard_url: str
) -> None:
    unit_id = "431381101"
    activity_id = await scheduled(apps, township, unit_id=unit_id)
    schedule = await apps["evidence"].evidence.activity(activity_id)
    ended = schedule["ends_at"]
    await township.publish(
        new_event(
            ActivityCompletedEvent,
            ActivityCompleted(
                activity_id=activity_id, unit_id=unit_id, ended_at=ended, volunteers=5, service_hours=10
            ),
            source="/townships/t",
            time=ended,
        )
    )
    settings, client = s3
    content = png(secrets.randbits(32))
    key = f"{unit_id}/{secrets.token_hex(4)}.png"
    upload(client, settings.upload_bucket, key, content, "image/png")
    photo = submitted(key, content, activity_id=activity_id, unit_id=unit_id)
    await township.publish(photo)
    # Supervision has the activity completed, with the photo the evidence service kept.
    deadline = asyncio.get_running_loop().time() + 120
    while True:
        doc = await apps["supervision"].facts.activity(activity_id)
        if doc and doc.get("completion") and doc.get("evidence"):
            break
        assert asyncio.get_running_loop().time() < deadline, "supervision never had the photo"
        await asyncio.sleep(0.2)

    period = period_of(ended)
    dom = await render(f"{dashboard_url}/dashboard/?key=dev-office-key&period={period}&unit={unit_id}")
    figure = re.search(
        r'<figure id="evidence-' + re.escape(photo.data.evidence_id) + r'">(.*?)</figure>', dom
    )
    assert figure, dom[-3000:]
    img = re.search(r"<img [^>]*>", figure.group(1))
    assert img, figure.group(1)
    # The browser loaded the picture from the object store through the view link.
    assert 'data-loaded="true"' in img.group(0) and "X-Amz-Signature" in img.group(0), img.group(0)
    assert township.rejections == []
