"""The office's dashboard in a real headless browser (Debian's chromium): it loads, calls the
API with the office's key, and shows a unit's score, its breakdown and its evidence."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from types import ModuleType

import pytest
import uvicorn
from fastapi import FastAPI

from tests.integration.test_supervision_office import scored_unit
from tests.support import Tap, free_port


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


@pytest.fixture
async def dashboard_url(apps: dict[str, ModuleType]) -> AsyncIterator[str]:
    supervision = apps["supervision"]
    app = FastAPI()
    supervision.api.mount(
        app,
        supervision.facts,
        supervision.scores,
        supervision.rules,
        supervision.record_inspection,
        supervision.recompute_all,
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    for _ in range(1200):  # up to a minute
        if server.started:
            break
        await asyncio.sleep(0.05)
    assert server.started, "the dashboard server did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    with contextlib.suppress(asyncio.CancelledError):
        await task


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
