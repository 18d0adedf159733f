"""The activities service's own database.

One document per activity, per activity roster, per order: the handlers that could miss
each other's writes (two statements about one activity, two sign-ups for one activity, two
statements about one order) write the same document, so one of them conflicts and retries.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from pymongo import ReplaceOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from services.activities.domain.attendance import Attendance, Roster, Supplement
from services.activities.domain.lifecycle import (
    Activity,
    Cancellation,
    Completion,
    Publication,
    Schedule,
)
from services.activities.domain.months import month_bounds
from services.activities.domain.orders import WAITING, Order, OrderStatement, OrderView
from services.activities.domain.projects import ListVersion
from shared.events import KeyProject
from shared.mongo import Document


class ActivityStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.activities = db.activities

    async def ensure_indexes(self) -> None:
        await self.activities.create_index([("unit_id", 1), ("schedule.starts_at", 1)])
        await self.activities.create_index("schedule.starts_at")
        await self.activities.create_index("completion.ended_at")

    async def get(self, activity_id: str, session: AsyncClientSession | None = None) -> Activity | None:
        doc = await self.activities.find_one({"_id": activity_id}, session=session)
        return _to_activity(doc) if doc else None

    async def put(self, activity: Activity, session: AsyncClientSession) -> None:
        doc: dict[str, Any] = asdict(activity)
        doc["_id"] = doc.pop("activity_id")
        doc["status"] = activity.status
        await self.activities.replace_one({"_id": activity.activity_id}, doc, upsert=True, session=session)

    async def in_period(self, period: str, unit_id: str | None = None) -> list[Activity]:
        """Activities scheduled to start, or completed, in the month (the domain decides
        exactly which count: ``months.in_month``)."""
        start, end = month_bounds(period)
        window = {"$gte": start, "$lt": end}
        query: Document = {"$or": [{"schedule.starts_at": window}, {"completion.ended_at": window}]}
        if unit_id:
            query["unit_id"] = unit_id
        return [_to_activity(d) async for d in self.activities.find(query).sort("_id", 1)]

    async def list(self, unit_id: str | None = None) -> list[Activity]:
        query = {"unit_id": unit_id} if unit_id else {}
        return [_to_activity(d) async for d in self.activities.find(query).sort("_id", 1)]


def _part(cls: type[Any], doc: Document | None) -> Any:
    return cls(**doc) if doc else None


def _to_activity(doc: Document) -> Activity:
    return Activity(
        activity_id=doc["_id"],
        unit_id=doc["unit_id"],
        schedule=_part(Schedule, doc.get("schedule")),
        completion=_part(Completion, doc.get("completion")),
        publication=_part(Publication, doc.get("publication")),
        cancellation=_part(Cancellation, doc.get("cancellation")),
        first_schedule=_part(Schedule, doc.get("first_schedule")),
        owner=doc.get("owner"),
    )


class ProjectListStore:
    """Every version of every year's key project list."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.lists = db.project_lists

    async def ensure_indexes(self) -> None:
        await self.lists.create_index([("year", 1), ("version", 1)])

    async def of_year(self, year: int, session: AsyncClientSession | None = None) -> list[ListVersion]:
        found = self.lists.find({"year": year}, session=session).sort("version", 1)
        return [_to_list(d) async for d in found]

    async def all(self) -> list[ListVersion]:
        return [_to_list(d) async for d in self.lists.find({}).sort([("year", 1), ("version", 1)])]

    async def put(self, version: ListVersion, session: AsyncClientSession) -> None:
        doc = {
            "_id": f"{version.year}:{version.version}",
            "year": version.year,
            "version": version.version,
            "published_at": version.published_at,
            "content": version.content,
            "projects": [p.model_dump(mode="json") for p in version.projects],
        }
        await self.lists.replace_one({"_id": doc["_id"]}, doc, upsert=True, session=session)


def _to_list(doc: Document) -> ListVersion:
    return ListVersion(
        year=doc["year"],
        version=doc["version"],
        published_at=doc["published_at"],
        content=doc["content"],
        projects=tuple(KeyProject.model_validate(p) for p in doc["projects"]),
    )


class UnitStore:
    """The unit tree as the registry states it (accepted ``unit.registered`` facts)."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.units = db.units

    async def get(self, unit_id: str, session: AsyncClientSession | None = None) -> Document | None:
        return await self.units.find_one({"_id": unit_id}, session=session)

    async def put(self, unit: Document, stated: tuple[datetime, str], session: AsyncClientSession) -> bool:
        """Store the unit's details if this statement is the latest; False if not."""
        current = await self.get(unit["unit_id"], session)
        if current is not None and (current["stated_at"], current["stated"]) >= stated:
            return False
        doc = {**unit, "_id": unit["unit_id"], "stated_at": stated[0], "stated": stated[1]}
        await self.units.replace_one({"_id": doc["_id"]}, doc, upsert=True, session=session)
        return True

    async def get_many(self, unit_ids: list[str]) -> list[Document]:
        return await self.units.find({"_id": {"$in": unit_ids}}).to_list(None)

    async def parent_of(self, unit_id: str) -> str | None:
        doc = await self.get(unit_id)
        return doc.get("parent_id") if doc else None

    async def all(self) -> list[Document]:
        return [d async for d in self.units.find({}).sort("_id", 1)]


class RosterStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.rosters = db.rosters

    async def get(self, activity_id: str, session: AsyncClientSession | None = None) -> Roster | None:
        doc = await self.rosters.find_one({"_id": activity_id}, session=session)
        if doc is None:
            return None
        return Roster(
            activity_id=doc["_id"],
            unit_id=doc["unit_id"],
            volunteers=tuple(Attendance(**a) for a in doc["volunteers"]),
            supplements=tuple(Supplement(**s) for s in doc["supplements"]),
            owner=doc.get("owner"),
        )

    async def put(self, roster: Roster, session: AsyncClientSession) -> None:
        doc: dict[str, Any] = asdict(roster)
        doc["_id"] = doc.pop("activity_id")
        await self.rosters.replace_one({"_id": roster.activity_id}, doc, upsert=True, session=session)


class OrderStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.orders = db.orders

    async def ensure_indexes(self) -> None:
        await self.orders.create_index("accept_due_at")
        await self.orders.create_index("activity_id")
        await self.orders.create_index([("status", 1), ("accept_due_at", 1)])

    async def get(self, order_id: str, session: AsyncClientSession | None = None) -> Order | None:
        doc = await self.orders.find_one({"_id": order_id}, session=session)
        return _to_order(doc) if doc else None

    async def waiting(self) -> list[Order]:
        """The orders nobody has accepted yet (their derived status is one of ``WAITING``),
        the soonest to escalate first."""
        found = self.orders.find({"status": {"$in": list(WAITING)}}).sort([("accept_due_at", 1), ("_id", 1)])
        return [_to_order(d) async for d in found]

    async def put(self, order: Order, derived: OrderView, session: AsyncClientSession) -> None:
        # The derived fields are kept for queries: the timer scans ``accept_due_at``.
        doc = {
            "_id": order.order_id,
            "statements": [asdict(s) for s in order.statements],
            "owner": order.owner,
            "status": derived.status,
            "handler_id": derived.handler_id,
            "activity_id": derived.activity_id,
            "accept_due_at": derived.accept_due_at,
        }
        await self.orders.replace_one({"_id": order.order_id}, doc, upsert=True, session=session)

    async def due(self, now: datetime) -> list[str]:
        found = self.orders.find({"accept_due_at": {"$ne": None, "$lte": now}}, {"_id": 1}).sort("_id", 1)
        return [d["_id"] async for d in found]

    async def serving(self, activity_id: str) -> list[str]:
        return [d["_id"] async for d in self.orders.find({"activity_id": activity_id}, {"_id": 1})]


def _to_order(doc: Document) -> Order:
    return Order(
        order_id=doc["_id"],
        statements=tuple(OrderStatement(**s) for s in doc["statements"]),
        owner=doc.get("owner"),
    )


class EvidenceFactStore:
    """The evidence the evidence service stored (accepted ``evidence.stored`` facts): which
    activity each piece is of, for 补录, which must name a stored piece of its activity."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.evidence = db.evidence

    async def activity_of(self, evidence_id: str, session: AsyncClientSession | None = None) -> str | None:
        doc = await self.evidence.find_one({"_id": evidence_id}, session=session)
        return doc["activity_id"] if doc else None

    async def put(
        self, evidence_id: str, activity_id: str, unit_id: str, session: AsyncClientSession
    ) -> None:
        await self.evidence.replace_one(
            {"_id": evidence_id},
            {"_id": evidence_id, "activity_id": activity_id, "unit_id": unit_id},
            upsert=True,
            session=session,
        )


class VolunteerStore:
    """Whose volunteer each volunteer is (the registry's accepted ``volunteer.enrolled``
    facts, no personal data): hours are credited only to a township's own volunteers."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.volunteers = db.volunteers

    async def get(self, volunteer_id: str, session: AsyncClientSession | None = None) -> Document | None:
        return await self.volunteers.find_one({"_id": volunteer_id}, session=session)

    async def put_many(
        self, enrolled: list[Document], stated_at: datetime, session: AsyncClientSession
    ) -> None:
        """Keep each volunteer's latest statement (a batch: one read, one bulk write)."""
        ids = [e["volunteer_id"] for e in enrolled]
        found = self.volunteers.find({"_id": {"$in": ids}}, {"stated_at": 1}, session=session)
        current = {d["_id"]: d["stated_at"] async for d in found}
        writes = [
            ReplaceOne(
                {"_id": e["volunteer_id"]},
                {**e, "_id": e["volunteer_id"], "stated_at": stated_at},
                upsert=True,
            )
            for e in enrolled
            if e["volunteer_id"] not in current or current[e["volunteer_id"]] < stated_at
        ]
        if writes:
            await self.volunteers.bulk_write(writes, ordered=False, session=session)


class WarningStore:
    """The last monthly warning issued for each month (so it is re-issued only on change)."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.warnings = db.warnings

    async def last(self, period: str, session: AsyncClientSession | None = None) -> list[str] | None:
        doc = await self.warnings.find_one({"_id": period}, session=session)
        return list(doc["unit_ids"]) if doc else None

    async def put(self, period: str, unit_ids: list[str], at: datetime, session: AsyncClientSession) -> None:
        await self.warnings.replace_one(
            {"_id": period},
            {"_id": period, "unit_ids": unit_ids, "issued_at": at},
            upsert=True,
            session=session,
        )
