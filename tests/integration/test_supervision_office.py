"""What the office does with supervision, on the real broker and database: inspections (as
an event and over HTTP), recompute, the API with keys and roles, exports, and a generated
set of events whose incremental scores equal a full recompute."""

from __future__ import annotations

import asyncio
import io
import json
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import httpx
import pytest
from faststream.rabbit import RabbitExchange
from openpyxl import load_workbook

from bench.recompute import Event, generate_year
from services.supervision.domain import months_of
from shared.events import (
    ActivityCompleted,
    ActivityCompletedEvent,
    ActivityScheduled,
    ActivityScheduledEvent,
    EvidenceStored,
    EvidenceStoredEvent,
    ScoreUpdatedEvent,
    UnitKind,
    UnitRegistered,
    UnitRegisteredEvent,
    new_event,
)
from shared.events.activities import OrderRatingCounted, OrderRatingCountedEvent
from shared.events.evidence import (
    EvidenceComplete,
    EvidenceCompleteEvent,
    EvidenceFlagged,
    EvidenceFlaggedEvent,
    EvidenceReviewed,
    EvidenceReviewedEvent,
    EvidenceStoredV2,
    EvidenceStoredV2Event,
)
from shared.events.supervision import (
    InspectionAssessment,
    InspectionFinding,
    InspectionRecorded,
    InspectionRecordedEvent,
    ScoreUpdatedV2Event,
)
from shared.topology import EVENTS
from tests.integration.test_supervision import facts, publish_as_platform
from tests.support import Tap
from wmsj.client import TownshipClient

OFFICE = {"Authorization": "Bearer dev-office-key"}


@pytest.fixture
async def http(
    apps: dict[str, ModuleType], monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[httpx.AsyncClient]:
    """The supervision HTTP app (its service already runs in the ``apps`` fixture), with
    the office's key and a township's."""
    from fastapi import FastAPI

    monkeypatch.setenv(
        "WMSJ_API_KEYS", json.dumps({"dev-office-key": "office", "t-mine-key": "township:t-mine"})
    )
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
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://supervision"
    ) as client:
        yield client


async def scored_unit(apps: dict[str, ModuleType], tap: Tap, township_id: str | None = None) -> str:
    unit_id, activity_id = "u-" + secrets.token_hex(4), "a-" + secrets.token_hex(4)
    events = facts(unit_id, activity_id)
    if township_id:
        events[0] = new_event(
            UnitRegisteredEvent,
            UnitRegistered(
                unit_id=unit_id, name="禾青镇第一村", kind=UnitKind.VILLAGE, township_id=township_id
            ),
            source="/wmsj/registry",
            time=events[0].time,
        )
    await publish_as_platform(apps, events)
    await tap.wait_for(
        lambda e: e.type == ScoreUpdatedEvent.TYPE and e.subject == unit_id and e.data.score == 100,
        timeout=60,
    )
    return unit_id


def inspection(unit_id: str, **extra: Any) -> InspectionRecordedEvent:
    return new_event(
        InspectionRecordedEvent,
        InspectionRecorded(
            inspection_id="i-" + secrets.token_hex(4),
            unit_id=unit_id,
            period="2020-06",
            inspected_at=datetime(2020, 6, 28, tzinfo=UTC),
            inspector="市文明办督查组",
            **extra,
        ),
        source="/office/inspections",
        time=datetime.now(UTC),
    )


async def test_an_inspection_event_deducts_points_with_its_findings(
    apps: dict[str, ModuleType], tap: Tap, township: TownshipClient
) -> None:
    unit_id = await scored_unit(apps, tap)
    await township.publish(inspection(unit_id, findings=[InspectionFinding(note="台账不全", occurrences=2)]))
    [update] = await tap.wait_for(
        lambda e: e.type == ScoreUpdatedEvent.TYPE and e.subject == unit_id and e.data.score == 90, timeout=60
    )
    assert {i.rule: i.points for i in update.data.breakdown}["inspection_findings"] == -10
    stored = await apps["supervision"].scores.get(unit_id, "2020-06")
    assert "台账不全" in {i.rule: i for i in stored.items}["inspection_findings"].reason


async def test_an_inspection_the_rules_cannot_score_is_rejected(
    apps: dict[str, ModuleType], tap: Tap, township: TownshipClient
) -> None:
    unit_id = await scored_unit(apps, tap)
    await township.publish(
        inspection(unit_id, assessments=[InspectionAssessment(rule="office_assessment", points=50)])
    )
    [rejected] = await township.wait_for_rejections(1, timeout=60)
    assert rejected.rejected_by == "supervision" and "rules" in rejected.reason
    assert rejected.errors[0].location == "data.assessments.0.points"


async def test_the_office_records_an_inspection_over_http_and_a_township_may_not(
    apps: dict[str, ModuleType], tap: Tap, http: httpx.AsyncClient
) -> None:
    unit_id = await scored_unit(apps, tap)
    body = inspection(
        unit_id, findings=[InspectionFinding(veto=True, rule="serious_violation", note="虚报")]
    ).data
    payload = body.model_dump(mode="json")
    response = await http.post("/inspections", json=payload, headers=OFFICE)
    assert response.status_code == 202, response.text
    score = (await http.get(f"/scores/{unit_id}", params={"period": "2020-06"}, headers=OFFICE)).json()
    assert score["vetoed"] and score["score"] == 0
    year = (await http.get(f"/scores/{unit_id}", params={"period": "2020"}, headers=OFFICE)).json()
    assert year["vetoed"]
    assert (await http.post("/inspections", json=payload)).status_code == 401


async def test_a_township_key_sees_only_its_own_units(
    apps: dict[str, ModuleType], tap: Tap, http: httpx.AsyncClient
) -> None:
    mine, other = await scored_unit(apps, tap, "t-mine"), await scored_unit(apps, tap, "t-other")
    township = {"Authorization": "Bearer t-mine-key"}
    rows = (await http.get("/scores", params={"period": "2020-06"}, headers=township)).json()
    assert mine in {r["unit_id"] for r in rows} and other not in {r["unit_id"] for r in rows}
    assert all(r["township_id"] == "t-mine" for r in rows)
    assert (
        await http.get(f"/scores/{other}", params={"period": "2020-06"}, headers=township)
    ).status_code == 404
    assert (await http.get(f"/scores/{mine}", params={"period": "2020-06"}, headers=township)).json()[
        "score"
    ] == 100
    office_rows = (await http.get("/scores", params={"period": "2020-06"}, headers=OFFICE)).json()
    assert {mine, other} <= {r["unit_id"] for r in office_rows}
    assert (
        await http.get("/scores", params={"period": "2020-06"}, headers={"Authorization": "Bearer nope"})
    ).status_code == 401


async def test_the_xlsx_export_matches_the_api(
    apps: dict[str, ModuleType], tap: Tap, http: httpx.AsyncClient
) -> None:
    await scored_unit(apps, tap)
    rows = (await http.get("/scores", params={"period": "2020-06"}, headers=OFFICE)).json()
    response = await http.get("/exports/scores.xlsx", params={"period": "2020-06"}, headers=OFFICE)
    assert response.status_code == 200
    book = load_workbook(io.BytesIO(response.content))
    sheet = book["得分 2020-06"]
    header, *lines = [list(r) for r in sheet.iter_rows(values_only=True)]
    exported = [dict(zip(header, line, strict=True)) for line in lines]
    assert len(exported) == len(rows)
    labels = {
        i["id"]: f"{i['label']}（{i['id']}）"
        for i in (await http.get("/rules", headers=OFFICE)).json()["items"]
    }
    for row, line in zip(rows, exported, strict=True):
        assert (line["名次"], line["单位编号"], line["得分"], line["满分"]) == (
            row["rank"],
            row["unit_id"],
            row["score"],
            row["max_score"],
        )
        assert (
            line["一票否决"] == ("是" if row["vetoed"] else "否")
            and (line["榜单代码"] or None) == row["list"]
        )
        for item in row["breakdown"]:
            assert line[labels[item["rule"]]] == item["points"]
    reasons = [list(r) for r in book["得分明细"].iter_rows(values_only=True)][1:]
    assert len(reasons) == sum(len(r["breakdown"]) for r in rows)
    csv = (await http.get("/exports/scores.csv", params={"period": "2020-06"}, headers=OFFICE)).text
    assert len(csv.strip().splitlines()) == len(rows) + 1


async def test_rankings_lists_eligibility_heatmap_and_history(
    apps: dict[str, ModuleType], tap: Tap, http: httpx.AsyncClient
) -> None:
    unit_id = await scored_unit(apps, tap, "t-rank")
    get = lambda path, **params: http.get(path, params=params, headers=OFFICE)  # noqa: E731
    rankings = (await get("/rankings", period="2020-06", within="township_id")).json()
    assert rankings["t-rank"][0]["unit_id"] == unit_id and rankings["t-rank"][0]["rank_in_township_id"] == 1
    lists = (await get("/lists", period="2020-06")).json()
    assert unit_id in {r["unit_id"] for r in lists["red"]}
    eligible = {r["unit_id"]: r for r in (await get("/eligibility", year=2020)).json()}
    assert eligible[unit_id]["eligible"] is False and eligible[unit_id]["annual"] == 8.3
    heatmap = (await get("/heatmap", year=2020)).json()
    assert heatmap["units"][unit_id][5] == 1 and sum(heatmap["units"][unit_id]) == 1
    periods = [s["period"] for s in (await get(f"/units/{unit_id}/history")).json()]
    assert {"2020-06", "2020-Q2", "2020"} <= set(periods) and len(periods) == 17
    [activity] = (await get(f"/units/{unit_id}/activities", period="2020-06")).json()
    assert activity["evidence"][0]["content_type"] == "image/png"
    assert (await http.get("/scores", params={"period": "2020-06"})).status_code == 401


def as_cloud_events(events: list[Event], suffix: str) -> list[Any]:
    """The generated facts as the owning services publish them (unit ids made unique)."""
    out: list[Any] = []
    for n, e in enumerate(events):
        unit_id, activity_id = e.unit_id + suffix, e.activity_id + suffix
        if e.kind == "schedule":
            assert e.project_id is None or e.project_id
            out.append(
                new_event(
                    ActivityScheduledEvent,
                    ActivityScheduled(
                        activity_id=activity_id,
                        unit_id=unit_id,
                        project_id=e.project_id,
                        title="活动",
                        starts_at=e.at,
                        ends_at=e.at + timedelta(hours=2),
                    ),
                    source="/wmsj/activities",
                    time=e.at,
                    id=f"s{n}{suffix}",
                )
            )
        elif e.kind == "completion":
            assert e.ended_at
            out.append(
                new_event(
                    ActivityCompletedEvent,
                    ActivityCompleted(
                        activity_id=activity_id,
                        unit_id=unit_id,
                        ended_at=e.ended_at,
                        volunteers=e.volunteers,
                        service_hours=e.hours,
                    ),
                    source="/wmsj/activities",
                    time=e.at,
                    id=f"c{n}{suffix}",
                )
            )
        elif e.kind == "evidence":
            assert e.evidence
            stored = EvidenceStored(
                evidence_id=e.evidence.evidence_id + suffix,
                activity_id=activity_id,
                unit_id=unit_id,
                object_key="k",
                sha256="a" * 64,
                size=1,
                content_type="image/png",
                stored_at=e.evidence.stored_at,
            )
            # Announced twice, as the evidence service does: v1, and v2 with the report time.
            out.append(
                new_event(EvidenceStoredEvent, stored, source="/wmsj/evidence", time=e.at, id=f"e{n}{suffix}")
            )
            assert e.evidence.reported_at
            out.append(
                new_event(
                    EvidenceStoredV2Event,
                    EvidenceStoredV2(**stored.model_dump(), reported_at=e.evidence.reported_at),
                    source="/wmsj/evidence",
                    time=e.at,
                    id=f"e2-{n}{suffix}",
                )
            )
        elif e.kind == "flag":
            flagged = EvidenceFlagged(
                evidence_id=e.evidence_id + suffix,
                activity_id=activity_id,
                unit_id=unit_id,
                signal="near-duplicate",
                detail="a near-duplicate of another activity's photo",
                flagged_at=e.at,
            )
            out.append(
                new_event(
                    EvidenceFlaggedEvent, flagged, source="/wmsj/evidence", time=e.at, id=f"f{n}{suffix}"
                )
            )
        elif e.kind == "review":
            reviewed = EvidenceReviewed(
                evidence_id=e.evidence_id + suffix,
                verdict=e.verdict,  # type: ignore[arg-type]
                reason="not this activity" if e.verdict == "rejected" else "",
                reviewer="市文明办",
            )
            out.append(
                new_event(
                    EvidenceReviewedEvent, reviewed, source="/wmsj/evidence", time=e.at, id=f"r{n}{suffix}"
                )
            )
        elif e.kind == "complete":
            complete = EvidenceComplete(
                activity_id=activity_id,
                unit_id=unit_id,
                project_id=None,
                min_photos=1,
                text_report_required=False,
                photos=len(e.evidence_ids),
                text_reports=0,
                evidence_ids=[i + suffix for i in e.evidence_ids],
                completed_at=e.at,
            )
            out.append(
                new_event(
                    EvidenceCompleteEvent, complete, source="/wmsj/evidence", time=e.at, id=f"x{n}{suffix}"
                )
            )
        elif e.kind == "rating":
            rating = OrderRatingCounted(
                order_id=e.order_id + suffix,
                activity_id=activity_id,
                rating=e.rating,
                rated_at=e.at if e.rating else None,
            )
            out.append(
                new_event(
                    OrderRatingCountedEvent, rating, source="/wmsj/activities", time=e.at, id=f"o{n}{suffix}"
                )
            )
    return out


async def test_incremental_scores_through_the_broker_equal_a_full_recompute(
    apps: dict[str, ModuleType], tap: Tap
) -> None:
    supervision = apps["supervision"]
    suffix = "-" + secrets.token_hex(3)
    _, _, generated = generate_year(4, seed=11)
    assert {e.kind for e in generated} >= {"flag", "review", "complete", "rating"}
    events = as_cloud_events([e for e in generated if e.kind != "inspection"], suffix)
    units = sorted({e.data.unit_id for e in events if hasattr(e.data, "unit_id")})
    bus = apps["registry"].service.bus
    await asyncio.gather(*(bus.publish(e, exchange=RabbitExchange(EVENTS.name)) for e in events))
    keys = [e.key for e in events]
    deadline = asyncio.get_running_loop().time() + 240
    while await supervision.service.db.inbox.count_documents({"_id": {"$in": keys}}) < len(keys):
        assert asyncio.get_running_loop().time() < deadline, "the events were not all handled"
        await asyncio.sleep(0.5)
    while await supervision.rescoring.count():  # and the months they touched all rescored
        assert asyncio.get_running_loop().time() < deadline, "the marked months were not all rescored"
        await asyncio.sleep(0.5)
    kept = {u: await supervision.scores.of_unit_year(u, "2020") for u in units}
    assert all(kept.values())  # periods whose score equals the empty one are not kept
    assert [await supervision.recompute(u, "2020") for u in units] == [0] * len(units)
    assert {u: await supervision.scores.of_unit_year(u, "2020") for u in units} == kept


async def test_switching_the_rules_recomputes_the_scores_with_the_new_version(
    apps: dict[str, ModuleType], tap: Tap, monkeypatch: pytest.MonkeyPatch
) -> None:
    supervision = apps["supervision"]
    unit_id = await scored_unit(apps, tap)
    text = (supervision.RULES_DIR / f"{supervision.settings.rules}.toml").read_text(encoding="utf-8")
    heavier = supervision.RuleSet.parse("heavier", text.replace("points = 30", "points = 50", 1))
    monkeypatch.setattr(supervision, "rules", heavier)
    assert await supervision.recompute(unit_id, "2020") > 0
    month = await supervision.scores.get(unit_id, "2020-06")
    assert month.rules_version == heavier.version and month.max_score == 120 and month.score == 120
    assert (await supervision.scores.get(unit_id, "2020")).rules_version == heavier.version
    assert await supervision.recompute(unit_id, "2020") == 0  # recomputing again changes nothing
    monkeypatch.undo()  # back to the service's rules, for the tests that follow
    before_going_back = datetime.now(UTC)
    assert await supervision.recompute(unit_id, "2020") == 17
    assert (await supervision.scores.get(unit_id, "2020-06")).rules_version == supervision.rules.version

    # Each recompute announced the scores it changed: every month, quarter and the year
    # (v2), the months on v1 too; the recompute that changed nothing announced nothing.
    def announced(version: str, event_type: str) -> list[Any]:
        return tap.matching(
            lambda e: e.type == event_type and e.subject == unit_id and e.data.rules_version == version
        )

    back = await tap.wait_for(
        lambda e: (
            e.type == ScoreUpdatedV2Event.TYPE
            and e.subject == unit_id
            and e.data.rules_version == supervision.rules.version
            and e.data.period_kind == "year"
            and e.time >= before_going_back
        ),
        timeout=60,
    )
    assert [e.data.score for e in {e.key: e for e in back}.values()] == [8.3]
    heavier_v2 = {e.key: e for e in announced(heavier.version, ScoreUpdatedV2Event.TYPE)}.values()
    assert sorted(e.data.period for e in heavier_v2) == sorted(
        [*months_of("2020"), *(f"2020-Q{q}" for q in range(1, 5)), "2020"]
    )
    june = next(e for e in heavier_v2 if e.data.period == "2020-06")
    assert (june.data.period_kind, june.data.score, june.data.max_score) == ("month", 120, 120)
    heavier_v1 = {e.key: e for e in announced(heavier.version, ScoreUpdatedEvent.TYPE)}.values()
    assert sorted(e.data.period for e in heavier_v1) == months_of("2020")


async def test_a_key_project_list_rescores_the_units_it_makes_projects_due_for(
    apps: dict[str, ModuleType], tap: Tap
) -> None:
    from shared.events.activities import KeyProject, ProjectListPublished, ProjectListPublishedEvent

    unit_id, activity_id = "u-" + secrets.token_hex(4), "a-" + secrets.token_hex(4)
    ended = datetime(2021, 3, 12, 8, tzinfo=UTC)  # a year of its own: the list touches only it
    events = facts(unit_id, activity_id)
    events[1] = new_event(
        ActivityCompletedEvent,
        ActivityCompleted(
            activity_id=activity_id, unit_id=unit_id, ended_at=ended, volunteers=12, service_hours=3
        ),
        source="/wmsj/activities",
        time=ended,
    )
    await publish_as_platform(apps, events)
    await tap.wait_for(
        lambda e: e.type == ScoreUpdatedEvent.TYPE and e.subject == unit_id and e.data.score == 100,
        timeout=60,
    )

    projects = ProjectListPublished(
        year=2021,
        version=1,
        projects=[
            KeyProject(
                project_id="P-" + unit_id, theme="理论宣讲", months=[3], participant_unit_ids=[unit_id]
            )
        ],
    )
    await publish_as_platform(
        apps, [new_event(ProjectListPublishedEvent, projects, source="/wmsj/activities", time=ended)]
    )
    [update] = await tap.wait_for(
        lambda e: (
            e.type == ScoreUpdatedEvent.TYPE
            and e.subject == unit_id
            and "1 key projects due" in {i.rule: i.reason for i in e.data.breakdown}["key_projects"]
        ),
        timeout=60,
    )
    item = {i.rule: i for i in update.data.breakdown}["key_projects"]
    assert item.points == 0 and "0 of 1 key projects due in 2021-03 done" in item.reason
    assert update.data.score == 80
