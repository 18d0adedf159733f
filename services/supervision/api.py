"""What the city office reads: scores and how each was made, rankings, red and black lists,
eligibility, a heatmap of activity coverage, exports, and the dashboard. A township's key
sees itself and the units under it; the office's key sees everything."""

from __future__ import annotations

import csv
import io
from collections.abc import Awaitable, Callable
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, HTTPException, Query, Response
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from services.supervision.domain import (
    RuleSet,
    Score,
    Unit,
    eligibility,
    enclosing,
    list_of,
    month_facts,
    months_of,
    rank,
    score_year,
)
from services.supervision.store import FactStore, ScoreStore, score_fields
from shared.auth import Caller, current_caller
from shared.events.supervision import InspectionRecorded, InspectionRecordedEvent
from shared.messaging import InvalidEvent
from shared.paging import Paged

DASHBOARD = Path(__file__).with_name("dashboard")
PeriodQuery = Annotated[
    str, Query(pattern=r"^\d{4}(-(0[1-9]|1[0-2])|-Q[1-4])?$", description="YYYY-MM, YYYY-Qn or YYYY")
]
EXPORT_COLUMNS = (
    "rank",
    "unit_id",
    "name",
    "kind",
    "township_id",
    "score",
    "max_score",
    "bonus",
    "vetoed",
    "list",
)


def mount(
    app: FastAPI,
    facts: FactStore,
    scores: ScoreStore,
    rules: RuleSet,
    record_inspection: Callable[[InspectionRecordedEvent], Awaitable[bool]],
    recompute_all: Callable[[], Awaitable[int]],
    evidence_url: str = "",
) -> None:
    app.include_router(router(facts, scores, rules, record_inspection, recompute_all))

    @app.get("/dashboard/config.json", tags=["dashboard"])
    async def dashboard_config() -> dict[str, Any]:
        """What the dashboard page needs besides this API: where the evidence service's API
        is, to show the evidence photos (view links, asked for with the office's key)."""
        return {"evidence_url": evidence_url.rstrip("/")}

    app.mount("/dashboard", StaticFiles(directory=DASHBOARD, html=True), name="dashboard")

    @app.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse("/dashboard/")


def visible(caller: Caller, unit: dict[str, Any]) -> bool:
    return caller.is_office or caller.township_id in (unit.get("township_id"), unit.get("unit_id"))


def empty_score(unit: Unit, period: str, rules: RuleSet) -> Score:
    """The score of a unit with no facts in the period's year (it is not left out).

    It depends only on the rules and the period: scored once (a whole empty year) and then
    named after each unit. ``GET /scores`` used to score an empty year for every unscored
    unit on every request (a third of supervision's CPU while an office client polled)."""
    key = (rules.version, period)  # the version names the rules' content (a hash of it)
    if key not in _EMPTY:
        if len(_EMPTY) > 1024:
            _EMPTY.clear()
        _EMPTY[key] = score_year(period[:4], lambda m: month_facts(Unit(""), m, []), rules)[period]
    return replace(_EMPTY[key], unit_id=unit.unit_id)


_EMPTY: dict[tuple[str, str], Score] = {}


def router(
    facts: FactStore,
    scores: ScoreStore,
    rules: RuleSet,
    record_inspection: Callable[[InspectionRecordedEvent], Awaitable[bool]],
    recompute_all: Callable[[], Awaitable[int]],
) -> APIRouter:
    api = APIRouter()
    auth: Any = current_caller()  # the keys are read when the router is made (WMSJ_API_KEYS)

    async def units_for(caller: Caller) -> dict[str, dict[str, Any]]:
        units = {u["_id"]: {**u, "unit_id": u["_id"]} for u in await facts.all_units()}
        return {k: u for k, u in units.items() if visible(caller, u)}

    async def table(
        caller: Caller, period: str, township_id: str | None = None, kind: str | None = None
    ) -> list[dict[str, Any]]:
        units = await units_for(caller)
        scored = {s.unit_id: s for s in await scores.for_period(period)}
        rows = []
        for unit_id in sorted(units.keys() | {u for u in scored if caller.is_office}):
            unit = units.get(unit_id, {"unit_id": unit_id})
            if township_id and township_id not in (unit.get("township_id"), unit_id):
                continue
            if kind and unit.get("kind") != kind:
                continue
            score = scored.get(unit_id) or empty_score(Unit(unit_id), period, rules)
            rows.append(row_of(unit, score))
        rank(rows)
        rank(rows, "kind")
        rank(rows, "township_id")
        rows.sort(key=lambda r: r["rank"])
        return rows

    def row_of(unit: dict[str, Any], score: Score) -> dict[str, Any]:
        fields = score_fields(score)
        return {
            "name": unit.get("name"),
            "kind": unit.get("kind"),
            "township_id": unit.get("township_id"),
            **{k: v for k, v in fields.items() if k != "items"},
            "breakdown": fields["items"],
            "list": list_of(score.score, rules.thresholds),
        }

    @api.get("/scores", tags=["scores"])
    async def list_scores(
        *,
        caller: Caller = auth,
        period: PeriodQuery,
        township_id: str | None = None,
        kind: str | None = None,
        page: Paged,
        response: Response,
    ) -> list[dict[str, Any]]:
        """Every visible unit's score for the month, quarter or year, best first, with its
        rank overall, within its kind and within its township, and its list (red/black);
        a page of them (``X-Total-Count``: how many in all)."""
        return page.of(await table(caller, period, township_id, kind), response)

    @api.get("/scores/{unit_id}", tags=["scores"])
    async def unit_score(*, caller: Caller = auth, unit_id: str, period: PeriodQuery) -> dict[str, Any]:
        """One unit's score with every item: points, why, and the facts it counted."""
        units = await units_for(caller)
        if unit_id not in units and not (caller.is_office and await scores.get(unit_id, period)):
            raise HTTPException(404, f"no unit {unit_id}")
        score = await scores.get(unit_id, period) or empty_score(Unit(unit_id), period, rules)
        return row_of(units.get(unit_id, {"unit_id": unit_id}), score)

    @api.get("/units/{unit_id}/history", tags=["scores"])
    async def history(
        *, caller: Caller = auth, unit_id: str, page: Paged, response: Response
    ) -> list[dict[str, Any]]:
        """Every score of the unit (months, quarters, years) in the years it has scores in, a
        page of them. A period whose score never differed from the empty one is not kept
        (nor announced): it is shown as the empty score."""
        if unit_id not in await units_for(caller) and not caller.is_office:
            raise HTTPException(404, f"no unit {unit_id}")
        kept = {s.period: s for s in await scores.for_unit(unit_id)}
        periods = {p for year in {k[:4] for k in kept} for m in months_of(year) for p in (m, *enclosing(m))}
        every = [kept.get(p) or empty_score(Unit(unit_id), p, rules) for p in sorted(periods)]
        return [score_fields(s) for s in page.of(every, response)]

    @api.get("/units/{unit_id}/activities", tags=["scores"])
    async def activities(
        *, caller: Caller = auth, unit_id: str, period: PeriodQuery, page: Paged, response: Response
    ) -> list[dict[str, Any]]:
        """Drill-down: the activities completed in the period and their evidence (a page)."""
        if unit_id not in await units_for(caller) and not caller.is_office:
            raise HTTPException(404, f"no unit {unit_id}")
        return [
            {**asdict(a), "month": a.month, "evidence": [asdict(e) for e in a.evidence]}
            for a in page.of(await facts.completed_in(unit_id, months_of(period)), response)
        ]

    @api.get("/rankings", tags=["scores"])
    async def rankings(
        *,
        caller: Caller = auth,
        period: PeriodQuery,
        within: Annotated[str, Query(pattern="^(kind|township_id)$")] = "kind",
    ) -> dict[str, list[dict[str, Any]]]:
        """The ranking within each unit kind, or within each township."""
        groups: dict[str, list[dict[str, Any]]] = {}
        for row in await table(caller, period):
            groups.setdefault(str(row.get(within)), []).append(row)
        return {g: sorted(rows, key=lambda r: r[f"rank_in_{within}"]) for g, rows in sorted(groups.items())}

    @api.get("/lists", tags=["scores"])
    async def red_and_black(*, caller: Caller = auth, period: PeriodQuery) -> dict[str, Any]:
        """红榜 and 黑榜 at the rules' thresholds."""
        rows = await table(caller, period)
        return {
            "thresholds": asdict(rules.thresholds),
            "red": [r for r in rows if r["list"] == "red"],
            "black": [r for r in rows if r["list"] == "black"],
        }

    @api.get("/eligibility", tags=["scores"])
    async def civilized_unit_eligibility(
        *, caller: Caller = auth, year: int, page: Paged, response: Response
    ) -> list[dict[str, Any]]:
        """Civilized-unit eligibility from the annual score and the three-year mean (a page
        of the units)."""
        out = []
        for unit_id, unit in page.of(sorted((await units_for(caller)).items()), response):
            annual = {}
            for y in (year - 2, year - 1, year):
                if found := await scores.get(unit_id, str(y)):
                    annual[y] = found
            result = eligibility(year, annual, rules.thresholds)
            out.append({"unit_id": unit_id, "name": unit.get("name"), **asdict(result)})
        return out

    @api.get("/heatmap", tags=["scores"])
    async def heatmap(*, caller: Caller = auth, year: int, page: Paged, response: Response) -> dict[str, Any]:
        """Activity coverage: completed activities of each unit in each month of the year
        (a page of the units)."""
        months = months_of(str(year))
        cells = {}
        shown = page.of(sorted(await units_for(caller)), response)
        completed = await facts.completed_in_units(shown, months)  # one query for the page
        for unit_id in shown:
            counts = dict.fromkeys(months, 0)
            for a in completed[unit_id]:
                counts[a.month or ""] = counts.get(a.month or "", 0) + 1
            cells[unit_id] = [counts[m] for m in months]
        return {"months": months, "units": cells}

    @api.get("/rules", tags=["rules"])
    async def current_rules(*, caller: Caller = auth) -> dict[str, Any]:
        return asdict(rules)

    @api.get("/exports/scores.csv", tags=["exports"])
    async def export_csv(*, caller: Caller = auth, period: PeriodQuery) -> Response:
        rows = await table(caller, period)
        rule_ids = [i.id for i in rules.items]
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow([*EXPORT_COLUMNS, *rule_ids])
        for r in rows:
            items = {i["rule"]: i["points"] for i in r["breakdown"]}
            writer.writerow([r[c] for c in EXPORT_COLUMNS] + [items.get(i, "") for i in rule_ids])
        return Response(
            out.getvalue().encode("utf-8-sig"),  # with a BOM, so spreadsheet programs read the Chinese
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="scores-{period}.csv"'},
        )

    @api.get("/exports/scores.xlsx", tags=["exports"])
    async def export_xlsx(*, caller: Caller = auth, period: PeriodQuery) -> Response:
        from openpyxl import Workbook

        rows = await table(caller, period)
        rule_ids = [i.id for i in rules.items]
        book = Workbook()
        sheet = book.active
        assert sheet is not None
        sheet.title = f"scores {period}"
        sheet.append([*EXPORT_COLUMNS, *rule_ids])
        for r in rows:
            items = {i["rule"]: i["points"] for i in r["breakdown"]}
            sheet.append([r[c] for c in EXPORT_COLUMNS] + [items.get(i) for i in rule_ids])
        reasons = book.create_sheet("breakdown")
        reasons.append(["unit_id", "rule", "label", "points", "max_points", "reason", "facts"])
        for r in rows:
            for i in r["breakdown"]:
                reasons.append(
                    [
                        r["unit_id"],
                        i["rule"],
                        i["label"],
                        i["points"],
                        i["max_points"],
                        i["reason"],
                        " ".join(i["facts"]),
                    ]
                )
        data = io.BytesIO()
        book.save(data)
        return Response(
            data.getvalue(),
            media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            headers={"Content-Disposition": f'attachment; filename="scores-{period}.xlsx"'},
        )

    @api.post("/inspections", tags=["inspections"], status_code=202)
    async def post_inspection(*, caller: Caller = auth, inspection: InspectionRecorded) -> dict[str, Any]:
        """The office records an inspection (same as ``wmsj.inspection.recorded.v1``)."""
        if not caller.is_office:
            raise HTTPException(403, "only the office records inspections")
        event = InspectionRecordedEvent(
            id=f"api-{inspection.inspection_id}-{inspection.inspected_at.timestamp():.0f}",
            source="/office/api",
            time=datetime.now(UTC),
            subject=inspection.unit_id,
            data=inspection,
        )
        try:
            handled = await record_inspection(event)
        except InvalidEvent as refused:
            raise HTTPException(
                422, {"reason": refused.reason, "errors": [e.model_dump() for e in refused.errors]}
            ) from None
        return {"recorded": handled, "event_id": event.id}

    @api.post("/recompute", tags=["rules"])
    async def recompute(*, caller: Caller = auth) -> dict[str, Any]:
        """Recompute every score from the facts with the loaded rules."""
        if not caller.is_office:
            raise HTTPException(403, "only the office recomputes")
        return {"changed": await recompute_all(), "rules_version": rules.version}

    return api
