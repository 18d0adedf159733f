"""The office's workbench in a real browser: Playwright driving Debian's chromium (no browser
download), against the four services running in the test process on the real servers.

A clerk signs in with the form, filters to one township, opens a unit and sees its chart and
its photos, downloads the bulletin, uploads the key project list and sees it published, and
settles a flagged pair of photos and sees the score change. Each test saves screenshots
(``WMSJ_SCREENSHOTS``, default ``build/screenshots``); the current ones are committed under
docs/screenshots/.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from openpyxl import Workbook

from shared.auth import caller_dependency, parse_keys
from shared.events import (
    ActivityCompleted,
    ActivityCompletedEvent,
    UnitKind,
    UnitRegistered,
    UnitRegisteredEvent,
    new_event,
)
from shared.events import activities as A
from shared.onboarding import BrokerAdmin
from tests.conftest import Infra
from tests.integration.test_evidence import scheduled, submitted
from tests.integration.test_supervision import publish_as_platform
from tests.integration.test_workbench import named_unit
from tests.support import Tap, free_port
from wmsj.client import TownshipClient, upload
from wmsj.demo import png

SCREENSHOTS = Path(os.environ.get("WMSJ_SCREENSHOTS", "build/screenshots"))
OFFICE_KEY = "dev-office-key"
KEYS = {OFFICE_KEY: "office", "t-pw-a-key": "township:t-pw-a"}


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
async def dashboard_url(
    infra: Infra, apps: dict[str, ModuleType], monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[str]:
    """The supervision dashboard, and the evidence, activities and registry HTTP APIs on ports
    of their own that let the dashboard's origin call them (CORS), as deployed services would be."""
    monkeypatch.setenv("WMSJ_API_KEYS", json.dumps(KEYS))
    supervision, evidence, activities, registry = (
        apps[n] for n in ("supervision", "evidence", "activities", "registry")
    )
    dashboard_port, evidence_port, activities_port, registry_port = (free_port() for _ in range(4))
    origin = f"http://127.0.0.1:{dashboard_port}"
    evidence_app = FastAPI()
    evidence_settings = evidence.settings.model_copy(update={"dashboard_origins": origin})
    evidence_app.include_router(evidence.api.router(evidence.evidence, evidence.objects, evidence_settings))
    evidence.api.allow_dashboard(evidence_app, evidence_settings)
    # Activities and the registry read their keys at import: these get the test's.
    keys = caller_dependency(parse_keys(json.dumps(KEYS)))
    activities_app = activities.create_app()
    activities_app.dependency_overrides[activities.api.CALLER.dependency] = keys
    activities.api.allow_dashboard(activities_app, origin)
    registry_app = FastAPI()
    registry_app.include_router(
        registry.township_routes.router(lambda: BrokerAdmin(infra.amqp_url), registry.api.CALLER)
    )
    registry_app.dependency_overrides[registry.api.CALLER.dependency] = keys
    registry.township_routes.allow_dashboard(registry_app, origin)
    app = FastAPI()
    supervision.api.mount(
        app,
        supervision.facts,
        supervision.scores,
        supervision.rules,
        supervision.record_inspection,
        supervision.recompute_all,
        f"http://127.0.0.1:{evidence_port}",
        supervision.office_desk,
        activities_url=f"http://127.0.0.1:{activities_port}",
        registry_url=f"http://127.0.0.1:{registry_port}",
    )
    async with (
        serving(evidence_app, evidence_port),
        serving(activities_app, activities_port),
        serving(registry_app, registry_port),
        serving(app, dashboard_port) as url,
    ):
        yield url


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=chromium(), args=["--no-sandbox", "--disable-gpu"]
        )
        yield launched
        await launched.close()


@pytest.fixture
async def page(browser: Any) -> AsyncIterator[Any]:
    context = await browser.new_context(
        viewport={"width": 1280, "height": 900}, locale="zh-CN", accept_downloads=True
    )
    opened = await context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda e: errors.append(str(e)))
    yield opened
    await context.close()
    assert errors == [], errors  # no script error (a CSP violation included)


async def sign_in(page: Any, url: str, key: str = OFFICE_KEY) -> None:
    await page.goto(f"{url}/dashboard/")
    await page.fill("#signin-key", key)
    await page.click("#signin-button")
    await page.wait_for_selector("#main", state="visible")
    assert key not in page.url
    assert await page.evaluate("localStorage.length + sessionStorage.length") == 0
    [cookie] = await page.context.cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and key not in cookie["value"]


async def show_period(page: Any, period: str) -> None:
    await page.fill("#period", period)
    await page.click("#controls button[type=submit]")
    await page.wait_for_function("() => document.getElementById('status').textContent.includes('规则')")


async def shot(page: Any, name: str) -> None:
    await asyncio.to_thread(SCREENSHOTS.mkdir, parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


async def eventually(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 120) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.2)


async def township_named(apps: dict[str, ModuleType], township_id: str, name: str) -> None:
    await publish_as_platform(
        apps,
        [
            new_event(
                UnitRegisteredEvent,
                UnitRegistered(unit_id=township_id, name=name, kind=UnitKind.TOWN),
                source="/wmsj/registry",
                time=datetime(2020, 1, 1, tzinfo=UTC),
            )
        ],
    )


async def test_sign_in_filter_to_a_township_open_a_unit_see_its_chart_and_download_the_bulletin(
    apps: dict[str, ModuleType], tap: Tap, page: Any, dashboard_url: str
) -> None:
    suffix = secrets.token_hex(3)
    mine, other = f"t-pw-a{suffix}", f"t-pw-b{suffix}"
    await township_named(apps, mine, "禾青镇")
    await township_named(apps, other, "金竹山镇")
    unit_id = await named_unit(apps, tap, "禾青镇第一村", mine)
    await named_unit(apps, tap, "金竹山镇第一村", other)

    await page.goto(f"{dashboard_url}/dashboard/")
    await page.fill("#signin-key", "wrong-key")
    await page.click("#signin-button")
    await page.wait_for_function("() => document.getElementById('signin-error').textContent === '密钥无效'")
    await sign_in(page, dashboard_url)
    await show_period(page, "2020-06")
    await page.select_option("#township", mine)
    rows = await page.locator("#ranking tbody tr").all_inner_texts()
    assert len(rows) == 2 and all("禾青镇" in r for r in rows) and not any("金竹山" in r for r in rows)
    row = await page.locator(f"#row-{unit_id} td").all_inner_texts()
    assert row[2:4] == ["禾青镇第一村", "村"] and row[5] == "100" and row[9] == "红榜"
    assert await page.locator("#red-list").inner_text() != "未到公布时间"
    await shot(page, "ranking")

    await page.click(f"#row-{unit_id} a")
    await page.wait_for_selector(f"#detail[data-loaded='{unit_id}'] #chart-unit canvas")
    assert int(await page.get_attribute("#chart-unit", "data-ready") or 0) > 1  # items and the score line
    monthly = await page.locator("#breakdown tr.item-monthly_activity td").all_inner_texts()
    assert monthly[:4] == ["monthly_activity", "月月有活动", "30", "30"]
    assert monthly[4] == "2020-06 完成活动 1 次（要求 1）：达标"
    assert await page.inner_text("#detail-score") == "100 / 100"
    await shot(page, "unit")

    await page.click("[data-tab=charts-tab]")
    await page.wait_for_selector("#chart-trend[data-ready] canvas")
    await page.wait_for_selector("#chart-completeness canvas")
    await shot(page, "charts")
    await page.click("[data-tab=heatmap-tab]")
    await page.wait_for_selector(f"#heat-row-{unit_id}")
    assert "禾青镇第一村" in await page.inner_text(f"#heat-row-{unit_id}")
    await shot(page, "heatmap")
    await page.click("#lang")  # English on request
    assert await page.inner_text("[data-tab=heatmap-tab]") == "Coverage"
    await page.click("#lang")

    async with page.expect_download() as waiting:
        await page.click("#bulletin-docx")
    download = await waiting.value
    from docx import Document

    bulletin = Document(str(await download.path()))
    assert "文明实践工作督查通报（2020年6月）" in "\n".join(p.text for p in bulletin.paragraphs)

    # Signed out (the session gone), the CSV button shows the refusal in Chinese and saves nothing.
    await page.context.clear_cookies()
    downloads: list[Any] = []
    page.on("download", lambda d: downloads.append(d))
    await page.click("#csv")
    await page.wait_for_function("() => document.getElementById('signin').hidden === false")
    assert downloads == []


async def test_the_office_publishes_the_key_project_list_and_records_an_inspection(
    apps: dict[str, ModuleType], tap: Tap, page: Any, dashboard_url: str, tmp_path: Path
) -> None:
    inspected = await named_unit(apps, tap, "禾青镇督查村", "t-pw-insp")
    await sign_in(page, dashboard_url)
    await page.click("[data-tab=office-tab]")
    await page.wait_for_selector("#projects-kept")
    year = 2077
    await page.fill("#projects-year", str(year))
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    async with page.expect_download() as waiting:  # the template the page offers
        await page.click("#projects-template")
    template = await (await waiting.value).path()
    from openpyxl import load_workbook

    content = await asyncio.to_thread(Path(template).read_bytes)
    header = load_workbook(io.BytesIO(content)).worksheets[0][1]
    sheet.append([c.value for c in header])
    sheet.append(["P-PW-1", "关爱留守儿童", "3,6,9", "", "village,community", "", 2, "是", 7, 10])
    sheet.append(["P-PW-2", "=理论宣讲", "1-12", "", "", "", 1, "否", 5, 5])
    bad = tmp_path / "bad.xlsx"
    book.save(bad)
    await page.set_input_files("#projects-file", str(bad))
    await page.click("#projects-preview-button")
    await page.wait_for_function(
        "() => document.getElementById('projects-status').textContent.includes('第 3 行')"
    )
    assert "清单有误" in await page.inner_text("#projects-status")
    sheet.delete_rows(3)
    sheet.append(["P-PW-2", "理论宣讲", "1,2,3,4,5,6,7,8,9,10,11,12", "", "", "431381101", 1, "否", 5, 5])
    good = tmp_path / "good.xlsx"
    book.save(good)
    await page.set_input_files("#projects-file", str(good))
    await page.click("#projects-preview-button")
    await page.wait_for_selector("#project-P-PW-2")
    assert "留守儿童" in await page.inner_text("#project-P-PW-1")
    await page.click("#projects-publish-button")
    await page.wait_for_selector("#projects-kept[data-version='1']", timeout=120_000)
    assert "历史版本：第 1 版（2 项）" in await page.inner_text("#projects-kept")
    assert "第 1 版已生效" in await page.inner_text("#projects-status")
    await shot(page, "office-projects")

    # An inspection, from the form with the rules' items: the score drops at once.
    await page.fill("#inspection-unit", inspected)
    await page.fill("#inspection-date", "2020-06-20")
    await page.select_option("#inspection-rule", "inspection_findings")
    await page.fill("#inspection-count", "1")
    await page.fill("#inspection-note", "活动记录不全")
    await page.click("#inspection-form button[type=submit]")
    await page.wait_for_function(
        "() => document.getElementById('inspection-status').textContent.includes('督查已录入')"
    )
    score = (await apps["supervision"].scores.get(inspected, "2020-06")).score
    assert score == 95
    # Kept by supervision from the activities service's accepted event: it went over the bus
    # as the office and was accepted.
    kept = await apps["supervision"].facts.project_list(year)
    assert kept and [p["project_id"] for p in kept["projects"]] == ["P-PW-1", "P-PW-2"]


async def test_one_verdict_settles_a_flagged_pair_and_the_score_changes(
    apps: dict[str, ModuleType], township: TownshipClient, s3: Any, page: Any, dashboard_url: str
) -> None:
    """The same photo reported by two units: the later copy is flagged and its unit's
    evidence is incomplete; the office accepts the pair in the page and the score rises."""
    settings, client = s3
    content = png(secrets.randbits(32))
    units = ["u-" + secrets.token_hex(4), "u-" + secrets.token_hex(4)]
    await publish_as_platform(
        apps,
        [
            new_event(
                UnitRegisteredEvent,
                UnitRegistered(unit_id=u, name=n, kind=UnitKind.VILLAGE, township_id="t-pw-pair"),
                source="/wmsj/registry",
                time=datetime(2020, 1, 1, tzinfo=UTC),
            )
            for u, n in zip(units, ["禾青镇原件村", "禾青镇复制村"], strict=True)
        ],
    )
    photos = []
    for unit_id in units:
        activity_id = await scheduled(apps, township, unit_id=unit_id)
        ended = (await apps["evidence"].evidence.activity(activity_id))["ends_at"]
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
        key = f"{unit_id}/{secrets.token_hex(4)}.png"
        upload(client, settings.upload_bucket, key, content, "image/png")
        photo = submitted(key, content, activity_id=activity_id, unit_id=unit_id)
        report = f"{unit_id} 活动总结".encode()
        report_key = f"{unit_id}/{secrets.token_hex(4)}.txt"
        upload(client, settings.upload_bucket, report_key, report, "text/plain")
        await township.publish(
            submitted(report_key, report, activity_id=activity_id, unit_id=unit_id, content_type="text/plain")
        )
        await township.publish(photo)
        photos.append(photo.data.evidence_id)
        if len(photos) == 1:  # the original is kept before the copy arrives
            await eventually(
                lambda: apps["evidence"].evidence.get(photos[0]), "the original was never kept", timeout=60
            )
    period = datetime.now(UTC).astimezone(apps["supervision"].api.CITY_TIME).strftime("%Y-%m")
    http = httpx.AsyncClient(base_url=dashboard_url, headers={"Authorization": f"Bearer {OFFICE_KEY}"})

    async def score_of(unit_id: str) -> dict[str, Any]:
        return (await http.get(f"/scores/{unit_id}", params={"period": period})).json()

    async def flagged_and_scored() -> bool:
        activities = (await http.get(f"/units/{units[1]}/activities", params={"period": period})).json()
        evidence = {e["evidence_id"]: e for a in activities for e in a["evidence"]}
        return photos[1] in evidence and evidence[photos[1]]["flagged"] and len(evidence) == 2

    await eventually(flagged_and_scored, "the copy was never flagged and scored")
    before = await score_of(units[1])
    evidence_before = next(i for i in before["breakdown"] if i["rule"] == "evidence")
    assert evidence_before["points"] == 0

    # Both units have the pair on their to-do until the office decides.
    todo = (await http.get("/todo", params={"period": period, "township_id": "t-pw-pair"})).json()
    assert {(f["unit_id"], f["evidence_id"]) for f in todo["flagged_evidence"]} == {
        (units[1], photos[1]),
        (units[0], photos[0]),
    }

    await sign_in(page, dashboard_url)
    await page.click("[data-tab=office-tab]")
    pair = page.locator(f"#pair-{photos[1]}")
    await pair.wait_for()
    text = await pair.inner_text()
    assert "禾青镇原件村" in text and "禾青镇复制村" in text and "同一文件重复使用" in text
    assert f"同一文件已作为单位 {units[0]}" in text  # the evidence service's detail, in Chinese
    await page.wait_for_function(
        f"() => !document.getElementById('pair-{photos[1]}').textContent.includes('…')"  # the EXIF times asked for
    )
    # Both photos, side by side, loaded from the object store through view links.
    for evidence_id in photos:
        image = pair.locator(f"#evidence-{evidence_id} img")
        await page.wait_for_function(
            f"() => document.querySelector('#pair-{photos[1]} #evidence-{evidence_id} img')?.dataset.loaded"
        )
        assert await image.get_attribute("data-loaded") == "true"
    await shot(page, "office-review")
    await pair.locator("select").select_option("both")
    await pair.locator("button[type=submit]").click()
    await pair.locator("text=已审核").wait_for()

    async def complete() -> bool:
        # The verdict counts the photo at once (timeliness); the evidence service then finds
        # the activity's evidence complete, a later event (the evidence item).
        now = await score_of(units[1])
        return next(i for i in now["breakdown"] if i["rule"] == "evidence")["points"] == 20

    await eventually(complete, "the evidence never counted after the verdict")
    after = await score_of(units[1])
    assert after["score"] > before["score"]
    await show_period(page, period)
    await page.click("[data-tab=ranking-tab]")
    await page.fill("#search", "复制村")
    await page.click(f"#row-{units[1]} a")
    await page.wait_for_function(
        f"() => document.getElementById('detail-score').textContent.startsWith('{after['score']:g}')"
    )
    await page.wait_for_selector(f"#detail[data-loaded='{units[1]}'] #activities img[data-loaded='true']")
    await shot(page, "unit-after-review")
    await http.aclose()
    assert township.rejections == []


async def test_a_township_signs_in_and_sees_only_its_to_do(
    apps: dict[str, ModuleType], tap: Tap, page: Any, dashboard_url: str, township: TownshipClient
) -> None:
    await township_named(apps, "t-pw-a", "禾青镇")
    done = await named_unit(apps, tap, "禾青镇第一村", "t-pw-a")
    elsewhere = await named_unit(apps, tap, "金竹山镇第二村", "t-pw-z")
    # An open 四单 order with the township's village, one with the other's.
    ours, theirs = "o-" + secrets.token_hex(4), "o-" + secrets.token_hex(4)
    for order_id, unit_id in ((ours, done), (theirs, elsewhere)):
        placed = A.OrderPlaced(
            order_id=order_id, requester_id="r1", requester_kind="resident", unit_id=unit_id, need="义诊"
        )
        await township.publish(
            new_event(A.OrderPlacedEvent, placed, source="/office", time=datetime.now(UTC))
        )

    async def known() -> bool:
        return all([await apps["activities"].orders.get(o) is not None for o in (ours, theirs)])

    await eventually(known, "the orders never reached the activities service")
    await sign_in(page, dashboard_url, "t-pw-a-key")
    await show_period(page, "2020-06")
    await page.wait_for_selector("#todo-without")
    assert await page.is_hidden("#office-tab-button")
    ranking = await page.locator("#ranking tbody tr").all_inner_texts()
    assert not any(elsewhere in r for r in ranking)
    without = await page.inner_text("#todo-without")
    assert "禾青镇" in without and "禾青镇第一村" not in without and "金竹山" not in without
    await page.wait_for_selector(f"#todo-orders li:has-text('{ours}')")
    orders = await page.inner_text("#todo-orders")
    assert "已点单" in orders and "禾青镇第一村" in orders and "升级" in orders and theirs not in orders
    await shot(page, "township-todo")
    assert done


async def test_the_office_adds_rotates_and_revokes_a_township_in_the_page(
    page: Any, dashboard_url: str
) -> None:
    township_id = "t-pw-" + secrets.token_hex(3)
    await sign_in(page, dashboard_url)
    await page.click("button[data-tab='office-tab']")
    await page.wait_for_selector("#townships")
    await page.fill("#township-new", township_id)
    await page.click("#townships-form button[type='submit']")
    await page.wait_for_selector(f"#township-{township_id}")
    await page.wait_for_selector("#township-secret", state="visible")
    first = await page.inner_text("#secret-password")
    assert first and township_id in await page.inner_text("#township-secret")
    assert "只显示这一次" in await page.inner_text("#township-secret")
    assert (await page.inner_text("#secret-api_key")).strip()
    await shot(page, "office-townships")

    await page.click(f"#township-{township_id} button.rotate")
    await page.wait_for_function(
        "(old) => { const p = document.getElementById('secret-password'); return p && p.textContent && p.textContent !== old; }",
        arg=first,
    )

    page.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await page.click(f"#township-{township_id} button.revoke")
    await page.wait_for_selector(f"#township-{township_id}", state="detached")
    assert "已撤销" in await page.inner_text("#townships-status")
    assert await page.is_hidden("#township-secret")  # shown once: gone after the next action
