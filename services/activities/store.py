"""The activities service's own database."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from services.activities.domain import Activity, Completion, Schedule
from shared.mongo import Document


class ActivityStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.activities = db.activities

    async def ensure_indexes(self) -> None:
        await self.activities.create_index([("unit_id", 1), ("schedule.starts_at", 1)])

    async def get(self, activity_id: str, session: AsyncClientSession | None = None) -> Activity | None:
        doc = await self.activities.find_one({"_id": activity_id}, session=session)
        return _to_activity(doc) if doc else None

    async def put(self, activity: Activity, session: AsyncClientSession) -> None:
        doc: dict[str, Any] = asdict(activity)
        doc["_id"] = doc.pop("activity_id")
        doc["status"] = activity.status
        await self.activities.replace_one({"_id": activity.activity_id}, doc, upsert=True, session=session)

    async def list(self, unit_id: str | None = None) -> list[Activity]:
        query = {"unit_id": unit_id} if unit_id else {}
        return [_to_activity(d) async for d in self.activities.find(query).sort("_id", 1)]


def _to_activity(doc: Document) -> Activity:
    return Activity(
        activity_id=doc["_id"],
        unit_id=doc["unit_id"],
        schedule=Schedule(**doc["schedule"]) if doc.get("schedule") else None,
        completion=Completion(**doc["completion"]) if doc.get("completion") else None,
    )
