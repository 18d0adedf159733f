"""The office's workbench over HTTP, on the real broker and database: sign-in by a session
cookie, the dashboard's Content-Security-Policy, a month in progress without lists, exports
that survive any unit name, the monthly bulletin (DOCX and PDF) equal to the API, and a
township's to-do."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from types import ModuleType

import aio_pika
import httpx
import pytest
from openpyxl import load_workbook

from services.supervision.domain import CITY_TIME
from shared.events import (
    ActivityCompleted,
    ActivityCompletedEvent,
    ActivityScheduled,
    ActivityScheduledEvent,
    UnitKind,
    UnitRegistered,
    UnitRegisteredEvent,
    new_event,
)
from shared.events.activities import MonthlyWarningEvent
from shared.events.evidence import EvidenceFlagged, EvidenceFlaggedEvent
from tests.conftest import Infra
from tests.integration.test_activity_workflows import _known, eventually, register
from tests.integration.test_supervision import facts, publish_as_platform
from tests.integration.test_supervision_office import scored_unit
from tests.support import Tap, declare_reply_queue
from wmsj.client import TownshipClient

OFFICE = {"Authorization": "Bearer dev-office-key"}
PERIOD = "2020-06"


@pytest.fixture
async def http(
    apps: dict[str, ModuleType], monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[httpx.AsyncClient]:
    from fastapi import FastAPI

    monkeypatch.setenv("WMSJ_API_KEYS", json.dumps({"dev-office-key": "office", "t-wb-key": "township:t-wb"}))
    supervision = apps["supervision"]
    app = FastAPI()
    supervision.api.mount(
        app,
        supervision.facts,
        supervision.scores,
        supervision.rules,
        supervision.record_inspection,
        supervision.recompute_all,
        "http://evidence.example",
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://supervision"
    ) as client:
        yield client


async def named_unit(apps: dict[str, ModuleType], tap: Tap, name: str, township_id: str) -> str:
    """A village of ``township_id`` named ``name``, scored 100 in 2020-06."""
    unit_id, activity_id = "u-" + secrets.token_hex(4), "a-" + secrets.token_hex(4)
    events = facts(unit_id, activity_id)
    events[0] = new_event(
        UnitRegisteredEvent,
        UnitRegistered(unit_id=unit_id, name=name, kind=UnitKind.VILLAGE, township_id=township_id),
        source="/wmsj/registry",
        time=events[0].time,
    )
    await publish_as_platform(apps, events)
    await tap.wait_for(
        lambda e: e.type == "wmsj.score.updated.v1" and e.subject == unit_id and e.data.score == 100,
        timeout=60,
    )
    return unit_id


async def test_the_dashboard_signs_in_with_a_cookie_and_sends_a_csp(http: httpx.AsyncClient) -> None:
    page = await http.get("/dashboard/")
    policy = page.headers["content-security-policy"]
    assert (
        "script-src 'self';" in policy and "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]
    )
    assert page.headers["x-frame-options"] == "DENY" and "<script>" not in page.text  # no inline script
    assert (await http.post("/dashboard/session", data={"key": "wrong"})).status_code == 401
    signed = await http.post("/dashboard/session", data={"key": "t-wb-key"})
    assert signed.json() == {"role": "township", "township_id": "t-wb"}
    cookie = signed.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "t-wb-key" not in cookie
    assert (await http.get("/dashboard/whoami")).json()["township_id"] == "t-wb"  # the cookie is the key
    assert (await http.get("/scores", params={"period": PERIOD})).status_code == 200
    await http.delete("/dashboard/session")
    http.cookies.clear()
    assert (await http.get("/scores", params={"period": PERIOD})).status_code == 401


async def test_a_month_in_progress_has_scores_so_far_and_no_lists(
    apps: dict[str, ModuleType], tap: Tap, http: httpx.AsyncClient
) -> None:
    now = datetime.now(CITY_TIME)
    month = f"{now.year:04d}-{now.month:02d}"
    unit_id, activity_id = "u-" + secrets.token_hex(4), "a-" + secrets.token_hex(4)
    events = facts(unit_id, activity_id)[:1]  # a unit without any activity: 黑榜 material
    await publish_as_platform(apps, events)
    for _ in range(300):
        rows = (await http.get("/scores", params={"period": month}, headers=OFFICE)).json()
        if mine := next((r for r in rows if r["unit_id"] == unit_id), None):
            break
        await asyncio.sleep(0.2)
    assert mine and mine["score"] == 0
    assert mine["due"] is False and mine["list"] is None
    lists = (await http.get("/lists", params={"period": month}, headers=OFFICE)).json()
    assert lists["due"] is False and lists["black"] == [] and lists["red"] == []
    assert datetime.fromisoformat(lists["due_at"]) > datetime.now(UTC)


async def test_exports_neutralise_formulas_and_are_formatted(
    apps: dict[str, ModuleType], tap: Tap, http: httpx.AsyncClient
) -> None:
    evil = '=HYPERLINK("http://x","点我")'
    unit_id = await named_unit(apps, tap, evil, "t-wb-x")
    response = await http.get("/exports/scores.csv", params={"period": PERIOD}, headers=OFFICE)
    assert response.content.startswith(b"\xef\xbb\xbf")  # UTF-8 with a BOM
    lines = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert lines[0][:4] == ["名次", "单位编号", "单位名称", "类型代码"]
    row = next(line for line in lines if line[1] == unit_id)
    assert row[2] == "'" + evil and row[3] == "village" and row[4] == "村" and row[12] == "红榜"

    book = load_workbook(
        io.BytesIO(
            (await http.get("/exports/scores.xlsx", params={"period": PERIOD}, headers=OFFICE)).content
        )
    )
    sheet = book[f"得分 {PERIOD}"]
    assert sheet.freeze_panes == "A2" and sheet.auto_filter.ref and sheet["A1"].font.b
    assert sheet.column_dimensions["C"].width > 8
    cell = next(r[2] for r in sheet.iter_rows(min_row=2) if r[1].value == unit_id)
    assert cell.value == evil and cell.data_type == "s"  # text, never a formula


async def test_the_bulletin_equals_the_api(
    apps: dict[str, ModuleType], tap: Tap, http: httpx.AsyncClient
) -> None:
    from docx import Document
    from pypdf import PdfReader

    township = "t-bul-" + secrets.token_hex(3)
    good = await named_unit(apps, tap, "禾青镇通报村", township)
    # A flagged photo of the month, for the bulletin's list of flagged evidence.
    activity = (
        await http.get(f"/units/{good}/activities", params={"period": PERIOD}, headers=OFFICE)
    ).json()[0]
    await publish_as_platform(
        apps,
        [
            new_event(
                EvidenceFlaggedEvent,
                EvidenceFlagged(
                    evidence_id=activity["evidence"][0]["evidence_id"],
                    activity_id=activity["activity_id"],
                    unit_id=good,
                    signal="same-file",
                    detail="the same file as another unit's",
                    flagged_at=datetime(2020, 6, 16, tzinfo=UTC),
                ),
                source="/wmsj/evidence",
                time=datetime(2020, 6, 16, tzinfo=UTC),
            )
        ],
    )
    # It scored 100 before (named_unit saw it): the flagged photo no longer counts.
    for _ in range(300):
        if (await http.get(f"/scores/{good}", params={"period": PERIOD}, headers=OFFICE)).json()[
            "score"
        ] < 100:
            break
        await asyncio.sleep(0.2)
    rows = (await http.get("/scores", params={"period": PERIOD}, headers=OFFICE)).json()
    lists = (await http.get("/lists", params={"period": PERIOD}, headers=OFFICE)).json()

    # The charts' figures, from the same scores.
    trend = (
        await http.get("/charts/trend", params={"year": 2020, "township_id": township}, headers=OFFICE)
    ).json()
    mine = next(r for r in rows if r["unit_id"] == good)
    assert (trend["mean"][5], trend["active"][5], trend["units"][5]) == (mine["score"], 1, 1)
    assert trend["mean"][4] == 0 and trend["active"][4] == 0
    spread = {
        d["township_id"]: d
        for d in (await http.get("/charts/distribution", params={"period": PERIOD}, headers=OFFICE)).json()
    }
    assert spread[township]["scores"] == [mine["score"]]
    complete = {
        d["township_id"]: d
        for d in (await http.get("/charts/completeness", params={"period": PERIOD}, headers=OFFICE)).json()
    }
    assert (complete[township]["activities"], complete[township]["complete"]) == (1, 1)

    response = await http.get(f"/bulletins/{PERIOD}.docx", headers=OFFICE)
    assert response.status_code == 200, response.text
    document = Document(io.BytesIO(response.content))
    text = "\n".join(p.text for p in document.paragraphs)
    assert "文明实践工作督查通报（2020年6月）" in text
    tables = {}
    for heading, table in zip(
        [p.text for p in document.paragraphs if p.style.name == "Heading 2"], document.tables[1:], strict=True
    ):
        # An empty table has one row saying （无）.
        tables[heading] = [[c.text for c in row.cells] for row in table.rows if row.cells[0].text != "（无）"]
    summary = {row.cells[0].text: row.cells[1].text for row in document.tables[0].rows}
    assert summary["参评单位"] == str(len(rows))
    assert summary["红榜单位"] == str(len(lists["red"])) and summary["黑榜单位"] == str(len(lists["black"]))
    assert tables[f"{township} 排名"][1:] == [["1", "禾青镇通报村", "村", f"{mine['score']:g}"]]
    assert [r[1] for r in tables["红榜"][1:]] == [r["name"] or r["unit_id"] for r in lists["red"]]
    assert [r[1] for r in tables["黑榜"][1:]] == [r["name"] or r["unit_id"] for r in lists["black"]]
    assert [activity["evidence"][0]["evidence_id"], "同一文件重复使用", "待审核"] == next(
        r[1:] for r in tables["疑似问题图文资料"] if r[1] == activity["evidence"][0]["evidence_id"]
    )
    assert len(document.inline_shapes) == 1  # the chart

    response = await http.get(f"/bulletins/{PERIOD}.pdf", headers=OFFICE)
    assert response.status_code == 200 and response.content.startswith(b"%PDF")
    reader = PdfReader(io.BytesIO(response.content))
    pdf_text = "".join(page.extract_text() for page in reader.pages)
    assert "文明实践工作督查通报" in pdf_text and "禾青镇通报村" in pdf_text
    flat = pdf_text.replace(" ", "").replace("\n", "")
    assert f"参评单位{len(rows)}" in flat
    assert f"红榜单位{len(lists['red'])}" in flat and f"黑榜单位{len(lists['black'])}" in flat
    for listed in lists["red"][:20] + lists["black"][:20]:
        assert (listed["name"] or listed["unit_id"]).replace(" ", "") in flat
    assert f"1禾青镇通报村村{mine['score']:g}" in flat  # its township's ranking row
    embedded = [
        f.get_object()["/DescendantFonts"][0].get_object()["/FontDescriptor"].get_object()
        for page in reader.pages
        for f in page["/Resources"]["/Font"].values()  # type: ignore[index]
        if "/DescendantFonts" in f.get_object()
    ] or [
        f.get_object()["/FontDescriptor"].get_object()
        for page in reader.pages
        for f in page["/Resources"]["/Font"].values()  # type: ignore[index]
        if "/FontDescriptor" in f.get_object()
    ]
    assert embedded and all("/FontFile2" in d for d in embedded)  # the Chinese font is in the file


async def test_a_townships_to_do_shows_only_its_subtree(
    apps: dict[str, ModuleType], tap: Tap, http: httpx.AsyncClient
) -> None:
    idle_id = "u-" + secrets.token_hex(4)
    await publish_as_platform(
        apps,
        [
            new_event(
                UnitRegisteredEvent,
                UnitRegistered(
                    unit_id=idle_id, name="禾青镇待办村", kind=UnitKind.VILLAGE, township_id="t-wb"
                ),
                source="/wmsj/registry",
                time=datetime(2020, 5, 1, tzinfo=UTC),
            ),
        ],
    )
    busy = await named_unit(apps, tap, "禾青镇忙碌村", "t-wb")
    other = await scored_unit(apps, tap, "t-other-wb")
    incomplete = "a-" + secrets.token_hex(4)
    await publish_as_platform(
        apps,
        [
            new_event(
                ActivityCompletedEvent,
                ActivityCompleted(
                    activity_id=incomplete,
                    unit_id=busy,
                    ended_at=datetime(2020, 6, 20, tzinfo=UTC),
                    volunteers=3,
                    service_hours=6,
                ),
                source="/wmsj/activities",
                time=datetime(2020, 6, 20, tzinfo=UTC),
            )
        ],
    )
    township = {"Authorization": "Bearer t-wb-key"}
    for _ in range(300):
        todo = (await http.get("/todo", params={"period": PERIOD}, headers=township)).json()
        if any(a["activity_id"] == incomplete for a in todo["incomplete_evidence"]) and any(
            u["unit_id"] == idle_id for u in todo["without_activity"]
        ):
            break
        await asyncio.sleep(0.2)
    without = {u["unit_id"] for u in todo["without_activity"]}
    assert idle_id in without and busy not in without and other not in without
    [gap] = [a for a in todo["incomplete_evidence"] if a["activity_id"] == incomplete]
    assert gap["missing"] == ["还差 1 张照片", "缺文字报告"]
    assert {a["activity_id"] for a in todo["late_reports"]} >= {incomplete}  # its deadline passed long ago
    units = {
        r["unit_id"] for r in (await http.get("/scores", params={"period": PERIOD}, headers=township)).json()
    }
    assert other not in units and busy in units
    assert (await http.get("/office/reviews", headers=township)).status_code == 403


async def test_each_township_hears_the_monthly_warning_for_its_own_units(
    apps: dict[str, ModuleType], infra: Infra, township: TownshipClient, tap: Tap
) -> None:
    tag = "wt" + secrets.token_hex(3)
    mine, other = f"{tag}-a", f"{tag}-b"
    queue_name = await declare_reply_queue(infra.amqp_url, mine)
    units = [(f"{mine}-u{n}", mine) for n in range(3)] + [(f"{other}-u0", other)]
    await register(
        township,
        tap,
        *(UnitRegistered(unit_id=u, name=u, kind=UnitKind.SCHOOL, township_id=t) for u, t in units),
    )
    activities = apps["activities"]
    for unit_id, _ in units:
        await eventually(lambda unit_id=unit_id: _known(activities, unit_id))
    starts = datetime(2018, 3, 12, 2, 0, tzinfo=UTC)
    plan = ActivityScheduled(
        activity_id=f"{tag}-a0",
        unit_id=units[0][0],
        title="t",
        starts_at=starts,
        ends_at=starts + timedelta(hours=2),
    )
    await township.publish(
        new_event(ActivityScheduledEvent, plan, source="/townships/t", time=starts - timedelta(days=3))
    )
    await tap.wait_for(lambda e: isinstance(e, ActivityScheduledEvent) and e.subject == plan.activity_id)

    warning = await activities.issue_monthly_warning("2018-03", datetime(2018, 3, 25, tzinfo=UTC))
    assert warning is not None and {f"{mine}-u1", f"{other}-u0"} <= set(warning.data.unit_ids)
    connection = await aio_pika.connect_robust(infra.amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.get_queue(queue_name, ensure=True)
        heard = None
        for _ in range(300):  # the outbox relays it shortly
            message = await queue.get(fail=False, no_ack=True)
            if message is not None:
                heard = MonthlyWarningEvent.model_validate_json(message.body)
                if heard.data.period == "2018-03":
                    break
            await asyncio.sleep(0.2)
    finally:
        await connection.close()
    assert heard is not None and heard.type == "wmsj.monthly-warning.issued.v1"
    assert heard.data.unit_ids == [f"{mine}-u1", f"{mine}-u2"] and heard.data.units_known == 3
