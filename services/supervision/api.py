"""What the city office reads: scores and how each was made, rankings, red and black lists,
eligibility, a heatmap of activity coverage, exports, and the dashboard. A township's key
sees itself and the units under it; the office's key sees everything."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Form, HTTPException, Query, Request, Response
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from openpyxl import Workbook

from services.supervision import bulletin
from services.supervision.domain import (
    CITY_TIME,
    RuleSet,
    Score,
    Unit,
    eligibility,
    enclosing,
    evidence_counts_complete,
    is_due,
    list_of,
    lists_due_at,
    month_facts,
    months_of,
    rank,
    score_year,
)
from services.supervision.labels import kind_label, list_label, township_of
from services.supervision.responses import (
    CompletedActivity,
    DashboardConfig,
    EligibilityRow,
    Heatmap,
    InspectionAccepted,
    Lists,
    Recomputed,
    Rules,
    ScoreHistoryEntry,
    ScoreRow,
    SignedIn,
    SignedOut,
    ToDo,
    TownshipCompleteness,
    TownshipDistribution,
    Trend,
)
from services.supervision.session import PageHeaders, Sessions, security_headers
from services.supervision.sheets import add_sheet, csv_bytes, xlsx_bytes
from services.supervision.store import FactStore, ScoreStore, score_fields, to_activity
from services.supervision.todo import FlaggedPair, township_todo
from shared.auth import Caller
from shared.events.supervision import InspectionRecorded, InspectionRecordedEvent
from shared.http import Id, Period, PeriodPath, Year
from shared.messaging import InvalidEvent
from shared.openapi import CSV, DOCX, PDF, XLSX, file_responses
from shared.paging import Paged
from shared.pii import scrub_free_text

DASHBOARD = Path(__file__).with_name("dashboard")
PeriodQuery = Period  # YYYY-MM, YYYY-Qn or YYYY, years 2000–2099 (shared.http): else a 422
YearQuery = Year


def mount(
    app: FastAPI,
    facts: FactStore,
    scores: ScoreStore,
    rules: RuleSet,
    record_inspection: Callable[[InspectionRecordedEvent], Awaitable[bool]],
    recompute_all: Callable[[], Awaitable[int]],
    evidence_url: str = "",
    office: Any = None,
    activities_url: str = "",
    registry_url: str = "",
) -> None:
    """The API, the dashboard page and its sign-in; ``office`` (an ``OfficeDesk``) lets the
    page publish the office's events (without it those routes answer 503)."""
    sessions = Sessions()
    app.include_router(router(facts, scores, rules, record_inspection, recompute_all, sessions))
    from services.supervision import office_api

    app.include_router(office_api.router(facts, rules, sessions, office))
    headers = security_headers(evidence_url, activities_url, registry_url)

    app.add_middleware(PageHeaders, headers=headers)

    @app.get("/dashboard/config.json", tags=["dashboard"], response_model=DashboardConfig)
    async def dashboard_config() -> dict[str, Any]:
        """What the dashboard page needs besides this API, asked for from the browser with
        the signed-in key: where the evidence service's API is (view links of the photos), the
        activities service's (open 四单 orders on the to-do) and the registry's (townships)."""
        return {
            "evidence_url": evidence_url.rstrip("/"),
            "activities_url": activities_url.rstrip("/"),
            "registry_url": registry_url.rstrip("/"),
        }

    @app.post(
        "/dashboard/session",
        tags=["dashboard"],
        response_model=SignedIn,
        responses={401: {"description": "The key is not known (密钥无效)."}},
    )
    async def sign_in(
        request: Request, response: Response, key: Annotated[str, Form(max_length=500)]
    ) -> dict[str, Any]:
        """Sign in with a key (a form field, never a URL): an HttpOnly, SameSite=Strict cookie."""
        who = sessions.sign_in(response, key, secure=request.url.scheme == "https")
        if who is None:
            raise HTTPException(401, "密钥无效")
        return {"role": who.role, "township_id": who.township_id}

    signed_in: Any = sessions.dependency()

    @app.get(
        "/dashboard/whoami", tags=["dashboard"], response_model=SignedIn
    )  # not public: it needs the cookie or a key
    async def whoami(caller: Caller = signed_in) -> dict[str, Any]:
        return {"role": caller.role, "township_id": caller.township_id}

    @app.delete("/dashboard/session", tags=["dashboard"], response_model=SignedOut)
    async def sign_out(response: Response) -> dict[str, Any]:
        sessions.sign_out(response)
        return {"signed_out": True}

    app.mount("/dashboard", StaticFiles(directory=DASHBOARD, html=True), name="dashboard")

    @app.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse("/dashboard/")


def visible(caller: Caller, unit: dict[str, Any]) -> bool:
    # A unit is its township's (``township_id``), or is the township itself.
    return caller.sees(unit.get("township_id")) or caller.sees(unit.get("unit_id"))


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


def active_in(row: dict[str, Any]) -> bool:
    return any(i["rule"] == "monthly_activity" and i["points"] > 0 for i in row["breakdown"])


def band_counts(scores: list[float]) -> dict[str, int]:
    bands = {"<60": 0, "60-79": 0, "80-89": 0, "≥90": 0}
    for s in scores:
        bands["<60" if s < 60 else "60-79" if s < 80 else "80-89" if s < 90 else "≥90"] += 1
    return bands


def counted_complete(doc: dict[str, Any]) -> bool:
    return evidence_counts_complete(to_activity(doc))


def router(
    facts: FactStore,
    scores: ScoreStore,
    rules: RuleSet,
    record_inspection: Callable[[InspectionRecordedEvent], Awaitable[bool]],
    recompute_all: Callable[[], Awaitable[int]],
    sessions: Sessions | None = None,
) -> APIRouter:
    api = APIRouter()
    # The keys are read when the router is made (WMSJ_API_KEYS); the dashboard's session
    # cookie is as good as its key.
    auth: Any = (sessions or Sessions()).dependency()

    async def units_for(caller: Caller) -> dict[str, dict[str, Any]]:
        units = {u["_id"]: {**u, "unit_id": u["_id"]} for u in await facts.all_units()}
        return {k: u for k, u in units.items() if visible(caller, u)}

    async def table(
        caller: Caller, period: str, township_id: str | None = None, kind: str | None = None
    ) -> list[dict[str, Any]]:
        units = await units_for(caller)
        scored = {s.unit_id: s for s in await scores.for_period(period)}
        due = is_due(period, datetime.now(UTC), rules)
        rows = []
        for unit_id in sorted(units.keys() | {u for u in scored if caller.is_office}):
            unit = units.get(unit_id, {"unit_id": unit_id})
            if township_id and township_id not in (unit.get("township_id"), unit_id):
                continue
            if kind and unit.get("kind") != kind:
                continue
            score = scored.get(unit_id) or empty_score(Unit(unit_id), period, rules)
            rows.append(row_of(unit, score, due))
        rank(rows)
        rank(rows, "kind")
        rank(rows, "township_id")
        rows.sort(key=lambda r: r["rank"])
        return rows

    def row_of(unit: dict[str, Any], score: Score, due: bool) -> dict[str, Any]:
        """A unit's row; a period in progress (not ``due``) has its scores so far and no list."""
        fields = score_fields(score)
        return scrub_free_text(  # type: ignore[no-any-return]
            {
                "name": unit.get("name"),
                "kind": unit.get("kind"),
                "township_id": unit.get("township_id"),
                **{k: v for k, v in fields.items() if k != "items"},
                "breakdown": fields["items"],
                "list": list_of(score.score, rules.thresholds) if due else None,
                "due": due,
            }
        )

    @api.get("/scores", tags=["scores"], response_model=list[ScoreRow])
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

    @api.get("/scores/{unit_id}", tags=["scores"], response_model=ScoreRow)
    async def unit_score(*, caller: Caller = auth, unit_id: Id, period: PeriodQuery) -> dict[str, Any]:
        """One unit's score with every item: points, why, and the facts it counted."""
        units = await units_for(caller)
        if unit_id not in units and not (caller.is_office and await scores.get(unit_id, period)):
            raise HTTPException(404, f"no unit {unit_id}")
        score = await scores.get(unit_id, period) or empty_score(Unit(unit_id), period, rules)
        return row_of(
            units.get(unit_id, {"unit_id": unit_id}), score, is_due(period, datetime.now(UTC), rules)
        )

    @api.get("/units/{unit_id}/history", tags=["scores"], response_model=list[ScoreHistoryEntry])
    async def history(
        *, caller: Caller = auth, unit_id: Id, page: Paged, response: Response
    ) -> list[dict[str, Any]]:
        """Every score kept for the unit (months, quarters, years)."""
        if unit_id not in await units_for(caller) and not caller.is_office:
            raise HTTPException(404, f"no unit {unit_id}")
        kept = {s.period: s for s in await scores.for_unit(unit_id)}
        periods = {p for year in {k[:4] for k in kept} for m in months_of(year) for p in (m, *enclosing(m))}
        every = [kept.get(p) or empty_score(Unit(unit_id), p, rules) for p in sorted(periods)]
        return [score_fields(s) for s in page.of(every, response)]

    @api.get("/units/{unit_id}/activities", tags=["scores"], response_model=list[CompletedActivity])
    async def activities(*, caller: Caller = auth, unit_id: Id, period: PeriodQuery) -> list[dict[str, Any]]:
        """Drill-down: the activities completed in the period and their evidence."""
        if unit_id not in await units_for(caller) and not caller.is_office:
            raise HTTPException(404, f"no unit {unit_id}")
        return scrub_free_text(  # type: ignore[no-any-return]
            [
                {**asdict(a), "month": a.month, "evidence": [asdict(e) for e in a.evidence]}
                for a in await facts.completed_in(unit_id, months_of(period))
            ]
        )

    @api.get("/rankings", tags=["scores"], response_model=dict[str, list[ScoreRow]])
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

    @api.get("/lists", tags=["scores"], response_model=Lists)
    async def red_and_black(*, caller: Caller = auth, period: PeriodQuery) -> dict[str, Any]:
        """红榜 and 黑榜 at the rules' thresholds; none while the period is in progress (until
        ``due_at``: its end plus the rules' ``lists_due_days``)."""
        rows = await table(caller, period)
        return {
            "due": is_due(period, datetime.now(UTC), rules),
            "due_at": lists_due_at(period, rules),
            "thresholds": asdict(rules.thresholds),
            "red": [r for r in rows if r["list"] == "red"],
            "black": [r for r in rows if r["list"] == "black"],
        }

    @api.get("/eligibility", tags=["scores"], response_model=list[EligibilityRow])
    async def civilized_unit_eligibility(
        *, caller: Caller = auth, year: YearQuery, page: Paged, response: Response
    ) -> list[dict[str, Any]]:
        """Civilized-unit eligibility from the annual score and the three-year mean."""
        out = []
        for unit_id, unit in page.of(sorted((await units_for(caller)).items()), response):
            annual = {}
            for y in (year - 2, year - 1, year):
                if found := await scores.get(unit_id, str(y)):
                    annual[y] = found
            result = eligibility(year, annual, rules.thresholds)
            out.append({"unit_id": unit_id, "name": unit.get("name"), **asdict(result)})
        return out

    @api.get("/heatmap", tags=["scores"], response_model=Heatmap)
    async def heatmap(*, caller: Caller = auth, year: YearQuery) -> dict[str, Any]:
        """Activity coverage: completed activities of each unit in each month of the year,
        with each unit's name, kind and township (the page groups and filters by them)."""
        months = months_of(str(year))
        units = await units_for(caller)
        cells = {unit_id: dict.fromkeys(months, 0) for unit_id in sorted(units)}
        for doc in await facts.activities_of_months(months):
            if doc["unit_id"] in cells:
                cells[doc["unit_id"]][doc["completion"]["period"]] += 1
        return {
            "months": months,
            "units": {u: [c[m] for m in months] for u, c in cells.items()},
            "info": {
                u: {
                    "name": units[u].get("name"),
                    "kind": units[u].get("kind"),
                    "township_id": units[u].get("township_id"),
                }
                for u in cells
            },
        }

    @api.get("/rules", tags=["rules"], response_model=Rules)
    async def current_rules(*, caller: Caller = auth) -> dict[str, Any]:
        return asdict(rules)

    def export_rows(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
        """Chinese headers; codes beside their labels, so a machine can still read the file."""
        items = [i for i in rules.items]
        header = [
            "名次",
            "单位编号",
            "单位名称",
            "类型代码",
            "类型",
            "所属乡镇编号",
            "所属乡镇",
            "得分",
            "满分",
            "加分",
            "一票否决",
            "榜单代码",
            "榜单",
            "类型内名次",
            "乡镇内名次",
            *[f"{i.label}（{i.id}）" for i in items],
        ]
        names = {u: r.get("name") for u, r in ((r["unit_id"], r) for r in rows)}
        out = []
        for r in rows:
            points = {i["rule"]: i["points"] for i in r["breakdown"]}
            out.append(
                [
                    r["rank"],
                    r["unit_id"],
                    r.get("name") or "",
                    r.get("kind") or "",
                    kind_label(r.get("kind")),
                    r.get("township_id") or "",
                    names.get(r.get("township_id")) or "",
                    r["score"],
                    r["max_score"],
                    r["bonus"],
                    "是" if r["vetoed"] else "否",
                    r.get("list") or "",
                    list_label(r),
                    r["rank_in_kind"],
                    r["rank_in_township_id"],
                    *[points.get(i.id, "") for i in items],
                ]
            )
        return header, out

    @api.get("/exports/scores.csv", tags=["exports"], responses=file_responses(CSV))
    async def export_csv(*, caller: Caller = auth, period: PeriodQuery) -> Response:
        header, rows = export_rows(await table(caller, period))
        return Response(
            csv_bytes(header, rows),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="scores-{period}.csv"'},
        )

    @api.get("/exports/scores.xlsx", tags=["exports"], responses=file_responses(XLSX))
    async def export_xlsx(*, caller: Caller = auth, period: PeriodQuery) -> Response:
        rows = await table(caller, period)
        header, lines = export_rows(rows)
        book = Workbook()
        add_sheet(book, f"得分 {period}", header, lines, first=True)
        add_sheet(
            book,
            "得分明细",
            ["单位编号", "单位名称", "评分项代码", "评分项", "得分", "满分", "说明", "依据"],
            [
                [
                    r["unit_id"],
                    r.get("name") or "",
                    i["rule"],
                    i["label"],
                    i["points"],
                    i["max_points"],
                    i["reason"],
                    " ".join(i["facts"]),
                ]
                for r in rows
                for i in r["breakdown"]
            ],
        )
        return Response(
            xlsx_bytes(book),
            media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            headers={"Content-Disposition": f'attachment; filename="scores-{period}.xlsx"'},
        )

    # ------------------------------------------------------------------ charts

    @api.get("/charts/trend", tags=["charts"], response_model=Trend)
    async def trend(
        *, caller: Caller = auth, year: YearQuery, township_id: str | None = None
    ) -> dict[str, Any]:
        """The visible units' mean score in each month of the year, and how many had an activity."""
        months = months_of(str(year))
        units = {
            k
            for k, u in (await units_for(caller)).items()
            if not township_id or township_id in (u.get("township_id"), k)
        }
        out: dict[str, Any] = {"months": months, "mean": [], "active": [], "units": []}
        for month in months:
            # A unit without a score in the month has no facts in its year: it scores 0 (what
            # ``table`` would compute for it, one unit at a time).
            scored = {s.unit_id: s for s in await scores.for_period(month)}
            ids = units | (set(scored) if caller.is_office and not township_id else set())
            total = sum(scored[u].score for u in ids if u in scored)
            active = sum(
                1
                for u in ids
                if u in scored and any(i.rule == "monthly_activity" and i.points > 0 for i in scored[u].items)
            )
            out["mean"].append(round(total / len(ids), 1) if ids else 0)
            out["active"].append(active)
            out["units"].append(len(ids))
        return out

    @api.get("/charts/distribution", tags=["charts"], response_model=list[TownshipDistribution])
    async def distribution(*, caller: Caller = auth, period: PeriodQuery) -> list[dict[str, Any]]:
        """Each township's scores (for a box plot): the spread, not only the mean."""
        rows = await table(caller, period)
        names = {r["unit_id"]: r.get("name") for r in rows}
        groups: dict[str, list[float]] = {}
        for r in rows:
            groups.setdefault(township_of(r) or "", []).append(r["score"])
        return [
            {
                "township_id": t,
                "name": names.get(t) or t or "市直",
                "scores": sorted(v),
                "mean": round(sum(v) / len(v), 1),
                "bands": band_counts(v),
            }
            for t, v in sorted(groups.items())
        ]

    @api.get("/charts/completeness", tags=["charts"], response_model=list[TownshipCompleteness])
    async def completeness(*, caller: Caller = auth, period: PeriodQuery) -> list[dict[str, Any]]:
        """Per township: completed activities, and how many have complete evidence."""
        units = await units_for(caller)
        out: dict[str, dict[str, Any]] = {}
        for doc in await facts.activities_of_months(months_of(period)):
            unit = units.get(doc["unit_id"])
            if unit is None:
                continue
            township = township_of(unit) or ""
            entry = out.setdefault(
                township,
                {
                    "township_id": township,
                    "name": (units.get(township) or {}).get("name") or township or "市直",
                    "activities": 0,
                    "complete": 0,
                },
            )
            entry["activities"] += 1
            entry["complete"] += 1 if counted_complete(doc) else 0
        return [out[t] for t in sorted(out)]

    # ------------------------------------------------------------------ bulletin

    async def flagged_in(caller: Caller, months: list[str]) -> list[dict[str, Any]]:
        units = await units_for(caller)
        out = []
        for doc in await facts.activities_of_months(months):
            if doc["unit_id"] not in units:
                continue
            details = {f["evidence_id"]: f for f in doc.get("flags", [])}
            reviews = {r["evidence_id"]: r["verdict"] for r in doc.get("reviews", [])}
            for evidence_id in sorted(doc.get("flagged", [])):
                out.append(
                    {
                        "evidence_id": evidence_id,
                        "activity_id": doc["_id"],
                        "unit_id": doc["unit_id"],
                        "signal": details.get(evidence_id, {}).get("signal"),
                        "review": reviews.get(evidence_id),
                    }
                )
        return out

    async def findings_in(caller: Caller, months: list[str]) -> list[dict[str, Any]]:
        units = await units_for(caller)
        labels = {i.id: i.label for i in rules.items}
        out = []
        for inspection in await facts.inspections_of_months(months):
            if inspection.unit_id not in units:
                continue
            for f in inspection.findings:
                out.append(
                    {
                        "unit_id": inspection.unit_id,
                        "unit_name": units[inspection.unit_id].get("name") or inspection.unit_id,
                        "date": inspection.inspected_at.astimezone(CITY_TIME).strftime("%Y-%m-%d"),
                        "rule": f.rule,
                        "rule_label": "一票否决" if f.veto else labels.get(f.rule, f.rule),
                        "note": f.note,
                        "occurrences": f.occurrences,
                    }
                )
        return out

    async def compose_bulletin(caller: Caller, period: str) -> bulletin.Bulletin:
        rows = await table(caller, period)
        months = months_of(period)
        now = datetime.now(UTC)
        return bulletin.compose(
            period,
            rows,
            await flagged_in(caller, months),
            await findings_in(caller, months),
            is_due(period, now, rules),
            now,
        )

    @api.get("/bulletins/{period}.docx", tags=["bulletins"], responses=file_responses(DOCX))
    async def bulletin_docx(*, caller: Caller = auth, period: PeriodPath) -> Response:
        """The month's supervision bulletin (督查通报) as a Word file."""
        content = bulletin.docx(await compose_bulletin(caller, period))
        return Response(
            content,
            media_type="application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            headers={"Content-Disposition": f'attachment; filename="bulletin-{period}.docx"'},
        )

    @api.get("/bulletins/{period}.pdf", tags=["bulletins"], responses=file_responses(PDF))
    async def bulletin_pdf(*, caller: Caller = auth, period: PeriodPath) -> Response:
        """The month's supervision bulletin (督查通报) as a PDF, its Chinese font embedded."""
        content = bulletin.pdf(await compose_bulletin(caller, period))
        return Response(
            content,
            media_type="application/pdf",
            headers={"Content-Disposition": f'attachment; filename="bulletin-{period}.pdf"'},
        )

    # ------------------------------------------------------------------ a township's to-do

    @api.get("/todo", tags=["to-do"], response_model=ToDo)
    async def todo(
        *, caller: Caller = auth, period: PeriodQuery, township_id: str | None = None
    ) -> dict[str, Any]:
        """What is still missing this month in the caller's subtree (a township key), or in
        ``township_id``'s (the office): units without a completed activity, activities whose
        evidence is incomplete and what they lack, flagged evidence and late reports."""
        units = await units_for(caller)
        if township_id:
            units = {k: u for k, u in units.items() if township_id in (u.get("township_id"), k)}
        docs = [d for d in await facts.activities_of_months(months_of(period)) if d["unit_id"] in units]
        projects = {p.project_id: p for p in await facts.projects_of(int(period[:4]))}
        now = datetime.now(UTC)
        flagged_docs = await facts.activities_flagged()
        others = await facts.activities_by_id(
            sorted(
                {
                    f["other_activity_id"]
                    for d in flagged_docs
                    for f in d.get("flags", [])
                    if f.get("other_activity_id")
                }
            )
        )
        pairs = [
            FlaggedPair(
                evidence_id=flag["evidence_id"],
                unit_id=doc["unit_id"],
                activity_id=doc["_id"],
                review=next(
                    (r["verdict"] for r in doc.get("reviews", []) if r["evidence_id"] == flag["evidence_id"]),
                    None,
                ),
                other_evidence_id=flag.get("other_evidence_id"),
                # The flag names the other unit; an older flag only its activity.
                other_unit_id=flag.get("other_unit_id")
                or (others.get(flag.get("other_activity_id") or "") or {}).get("unit_id"),
                other_activity_id=flag.get("other_activity_id"),
            )
            for doc in flagged_docs
            for flag in doc.get("flags", [])
        ]
        todo = township_todo(units, [to_activity(d) for d in docs], pairs, projects, rules, now)
        return {
            "period": period,
            "due": is_due(period, now, rules),
            **todo,
            # 四单 orders are the activities service's (supervision keeps none): the page lists
            # the open ones from its GET /orders?open=true with the signed-in key.
            "orders_near_escalation": None,
        }

    @api.post("/inspections", tags=["inspections"], status_code=202, response_model=InspectionAccepted)
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

    @api.post("/recompute", tags=["rules"], response_model=Recomputed)
    async def recompute(*, caller: Caller = auth) -> dict[str, Any]:
        """Recompute every score from the facts with the loaded rules."""
        if not caller.is_office:
            raise HTTPException(403, "only the office recomputes")
        return {"changed": await recompute_all(), "rules_version": rules.version}

    return api
