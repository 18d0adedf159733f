"""The activities service's HTTP API (read-only): activities, calendars, the key project
list, orders and the monthly early warning.

Every route needs an API key (``shared.auth``). The office sees everything; a township sees
the activities, orders and warnings of the units in its own subtree (another township's are
"not found", as in the registry), and the key project list, which is the whole city's.
Periods and years are bounded (``shared.http``); free text (titles, descriptions, reasons,
comments) is served with ID-card and phone numbers masked (``shared.pii.scrub_free_text``)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, HTTPException, Response
from fastapi.middleware.cors import CORSMiddleware

from services.activities.domain.attendance import places
from services.activities.domain.lifecycle import Activity
from services.activities.domain.months import in_month, units_without_activity
from services.activities.domain.orders import OrderView
from services.activities.domain.orders import view as order_view
from services.activities.domain.projects import ListVersion, check_plan
from services.activities.responses import (
    ActivityDetail,
    ActivityView,
    CityCalendar,
    MonthlyWarningView,
    OpenOrder,
    OrderState,
    ProjectListVersion,
    UnitCalendar,
)
from services.activities.store import ActivityStore, OrderStore, ProjectListStore, RosterStore, UnitStore
from shared.auth import Caller, current_caller
from shared.events import period_of
from shared.http import Id, Month, YearPath
from shared.identity import owning_township
from shared.paging import Paged
from shared.pii import scrub_free_text

CALLER: Any = current_caller()  # keys from WMSJ_API_KEYS; tests override ``CALLER.dependency``
Who = Annotated[Caller, CALLER]
PeriodQuery = Month | None  # YYYY-MM (2000–2099); default: this month


def _when(activity: Activity) -> datetime:
    if activity.schedule is not None:
        return activity.schedule.starts_at
    assert activity.completion is not None  # in a month: scheduled or completed
    return activity.completion.ended_at


def _owned_by(caller: Caller, unit: dict[str, Any]) -> bool:
    """Whether a unit (as the registry stated it) is in the calling township's subtree."""
    return caller.sees(owning_township(unit["_id"], unit["kind"], unit.get("township_id")))


def involved(order: OrderView) -> list[str]:
    """Every unit that placed, held, declined or was escalated an order (ids that are no
    unit, such as a resident's, match no township)."""
    ids = [order.requester_id, order.handler_id, order.team_id, *order.declined_by]
    ids += [u for e in order.escalations for u in (e.from_unit_id, e.to_unit_id)]
    return list(dict.fromkeys(i for i in ids if i))


@dataclass(frozen=True)
class Stores:
    activities: ActivityStore
    project_lists: ProjectListStore
    units: UnitStore
    rosters: RosterStore
    orders: OrderStore


def allow_dashboard(app: FastAPI, dashboard_origins: str) -> None:
    """Let the supervision dashboard's page read this API from the browser (CORS), for the
    open orders on a township's to-do. Only GETs, only its origins; the key still decides
    what is seen."""
    origins = [o.strip() for o in dashboard_origins.split(",") if o.strip()]
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET"],
            allow_headers=["Authorization", "X-API-Key"],
            expose_headers=["X-Total-Count"],
        )


def router(stores: Stores, accept_within: timedelta) -> APIRouter:
    api = APIRouter(tags=["activities"])

    async def in_scope(caller: Caller, unit_ids: list[str]) -> bool:
        """Whether the caller may see what these units did: the office always; a township
        if one of them is in its subtree (an order involves several units)."""
        return caller.is_office or bool(await theirs(caller, unit_ids))

    async def theirs(caller: Caller, unit_ids: list[str]) -> set[str]:
        """Those of ``unit_ids`` in the calling township's subtree (one query)."""
        return {u["_id"] for u in await stores.units.get_many(unit_ids) if _owned_by(caller, u)}

    async def visible(caller: Caller, activities: list[Activity]) -> list[Activity]:
        if caller.is_office:
            return activities
        mine = await theirs(caller, sorted({a.unit_id for a in activities}))
        return [a for a in activities if a.unit_id in mine]

    async def view(activity: Activity, lists: list[ListVersion], now: datetime) -> dict[str, Any]:
        out: dict[str, Any] = {
            **asdict(activity),
            "status": activity.state(now),
            "rescheduled": activity.rescheduled,
            "problems": activity.problems,  # parts that do not take effect, and why
        }
        if activity.schedule is not None:
            unit = await stores.units.get(activity.unit_id)
            plan = check_plan(
                lists,
                activity.unit_id,
                unit.get("kind") if unit else None,
                activity.schedule.project_id,
                activity.schedule.starts_at,
                activity.schedule.stated_at,
            )
            out["plan"] = asdict(plan)
        return scrub_free_text(out)  # type: ignore[no-any-return]

    async def calendar(caller: Caller, period: str, unit_id: str | None) -> list[dict[str, Any]]:
        now = datetime.now(UTC)
        lists = await stores.project_lists.of_year(int(period[:4]))
        found = [a for a in await stores.activities.in_period(period, unit_id) if in_month(a, period)]
        found = await visible(caller, found)
        found.sort(key=lambda a: (_when(a), a.activity_id))
        return [await view(a, lists, now) for a in found]

    @api.get("/activities", response_model=list[ActivityView])
    async def list_activities(
        caller: Who, page: Paged, response: Response, unit_id: str | None = None
    ) -> list[dict[str, Any]]:
        now = datetime.now(UTC)
        lists = await stores.project_lists.all()
        found = await visible(caller, await stores.activities.list(unit_id=unit_id))
        return [await view(a, lists, now) for a in page.of(found, response)]

    @api.get("/activities/{activity_id}", response_model=ActivityDetail)
    async def get_activity(caller: Who, activity_id: Id) -> dict[str, Any]:
        activity = await stores.activities.get(activity_id)
        if activity is None or not await in_scope(caller, [activity.unit_id]):
            raise HTTPException(404, f"no activity {activity_id}")
        out = await view(activity, await stores.project_lists.all(), datetime.now(UTC))
        roster = await stores.rosters.get(activity_id)
        capacity = activity.publication.capacity if activity.publication else None
        taken = places(roster, capacity)
        out["volunteers"] = scrub_free_text(
            {
                "capacity": capacity,
                "confirmed": list(taken.confirmed),
                "waitlist": list(taken.waitlist),
                "attendance": [
                    {**asdict(a), "hours": a.hours} for a in (roster.volunteers if roster else ())
                ],
                "supplements": [asdict(s) for s in (roster.supplements if roster else ())],
            }
        )
        return out

    @api.get("/units/{unit_id}/calendar", response_model=UnitCalendar)
    async def unit_calendar(caller: Who, unit_id: Id, period: PeriodQuery = None) -> dict[str, Any]:
        """A unit's monthly calendar (月度活动安排)."""
        if not await in_scope(caller, [unit_id]):
            raise HTTPException(404, f"no unit {unit_id}")
        period = period or period_of(datetime.now(UTC))
        return {"unit_id": unit_id, "period": period, "activities": await calendar(caller, period, unit_id)}

    @api.get("/calendar", response_model=CityCalendar)
    async def city_calendar(caller: Who, period: PeriodQuery = None) -> dict[str, Any]:
        """The city's calendar for a month, by key project (activities without one: ""); a
        township's key sees its own subtree's part of it."""
        period = period or period_of(datetime.now(UTC))
        by_project: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for activity in await calendar(caller, period, None):
            project_id = (activity.get("schedule") or {}).get("project_id") or ""
            by_project[project_id].append(activity)
        return {
            "period": period,
            "projects": [
                {
                    "project_id": project_id,
                    "theme": next((a["plan"]["theme"] for a in acts if a.get("plan", {}).get("theme")), None),
                    "activities": acts,
                }
                for project_id, acts in sorted(by_project.items())
            ],
        }

    @api.get("/warnings/monthly", response_model=MonthlyWarningView)
    async def monthly_warning(caller: Who, period: PeriodQuery = None) -> dict[str, Any]:
        """The units with nothing scheduled or completed in the month (so far)."""
        period = period or period_of(datetime.now(UTC))
        known = [u["_id"] for u in await stores.units.all() if caller.is_office or _owned_by(caller, u)]
        missing = units_without_activity(known, await stores.activities.in_period(period), period)
        return {"period": period, "units_known": len(known), "unit_ids": missing}

    @api.get("/projects/{year}", response_model=list[ProjectListVersion])
    async def project_list(caller: Who, year: YearPath) -> list[dict[str, Any]]:
        """Every version of a year's key project list."""
        versions = [
            {
                "year": v.year,
                "version": v.version,
                "published_at": v.published_at,
                "projects": [p.model_dump(mode="json") for p in v.projects],
            }
            for v in await stores.project_lists.of_year(year)
        ]
        return scrub_free_text(versions)  # type: ignore[no-any-return]

    @api.get("/orders", response_model=list[OpenOrder])
    async def list_orders(
        caller: Who, page: Paged, response: Response, open: bool = True
    ) -> list[dict[str, Any]]:
        """The open 四单 orders (nobody has accepted them yet: placed, dispatched, declined or
        escalated) that involve the caller's units, the soonest to escalate first: each with
        its state, the unit holding it, ``accept_due_at`` (when it escalates to the level
        above if nobody accepts it, the rule ``due_escalation`` applies) and ``overdue``
        (past that time: the timer escalates it on its next round, or, at the top of the
        tree, it stays). ``open=false`` is refused: closed orders are read one at a time."""
        if not open:
            raise HTTPException(422, "only open orders are listed (open=true); read a closed one by its id")
        now = datetime.now(UTC)
        views = [order_view(o, accept_within) for o in await stores.orders.waiting()]
        if not caller.is_office:
            mine = await theirs(caller, sorted({u for v in views for u in involved(v)}))
            views = [v for v in views if mine.intersection(involved(v))]
        return [
            scrub_free_text({**asdict(v), "overdue": v.accept_due_at is not None and v.accept_due_at <= now})
            for v in page.of(views, response)
        ]

    @api.get("/orders/{order_id}", response_model=OrderState)
    async def get_order(caller: Who, order_id: Id) -> dict[str, Any]:
        order = await stores.orders.get(order_id)
        if order is None:
            raise HTTPException(404, f"no order {order_id}")
        first = order_view(order, accept_within)
        if not await in_scope(caller, involved(first)):
            raise HTTPException(404, f"no order {order_id}")
        done = False
        if first.activity_id:
            activity = await stores.activities.get(first.activity_id)
            done = activity is not None and activity.status == "completed"
        return scrub_free_text(asdict(order_view(order, accept_within, activity_completed=done)))  # type: ignore[no-any-return]

    return api
