"""Supervision's own database: the facts it has learned from events, and the scores."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from services.supervision.domain import CompletedActivity, MonthlyScore
from shared.events import ScoreItem
from shared.mongo import Document

Session = AsyncClientSession
Statement = tuple[datetime, str]  # see shared.events.statement


def _order(doc: Document) -> Statement:
    return doc["stated_at"], doc.get("stated", "")


class FactStore:
    """Units, activity completions and evidence, as far as scoring needs them.

    Each fact keeps the time of the event that stated it; a fact stated earlier never
    overwrites one stated later, so arrival order does not matter.

    Evidence is kept *on its activity's document*, not in a collection of its own: handlers
    run concurrently, and a completion and its evidence handled at the same moment must
    write the same document, so that one transaction conflicts and retries and sees the
    other. Apart, each would miss the other and the score would be stale (write skew).
    """

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.units = db.units
        self.activities = db.activities

    async def ensure_indexes(self) -> None:
        await self.activities.create_index([("unit_id", 1), ("completion.period", 1)])

    async def put_unit(self, unit: dict[str, Any], stated: Statement, session: Session) -> None:
        current = await self.units.find_one({"_id": unit["unit_id"]}, session=session)
        if current and _order(current) >= stated:
            return
        doc = {**unit, "_id": unit["unit_id"], "stated_at": stated[0], "stated": stated[1]}
        await self.units.replace_one({"_id": doc["_id"]}, doc, upsert=True, session=session)

    async def activity(self, activity_id: str, session: Session) -> Document | None:
        return await self.activities.find_one({"_id": activity_id}, session=session)

    async def put_activity_part(
        self,
        activity_id: str,
        unit_id: str,
        part: str,
        value: dict[str, Any],
        stated: Statement,
        session: Session,
    ) -> bool:
        """Set ``part`` ("schedule" or "completion") unless a later statement is already kept."""
        current = await self.activity(activity_id, session)
        if current and current.get(part) and _order(current[part]) >= stated:
            return False
        await self.activities.update_one(
            {"_id": activity_id},
            {"$set": {"unit_id": unit_id, part: {**value, "stated_at": stated[0], "stated": stated[1]}}},
            upsert=True,
            session=session,
        )
        return True

    async def add_evidence(self, evidence_id: str, activity_id: str, session: Session) -> None:
        await self.activities.update_one(
            {"_id": activity_id}, {"$addToSet": {"evidence_ids": evidence_id}}, upsert=True, session=session
        )

    async def completed_in(self, unit_id: str, period: str, session: Session) -> list[CompletedActivity]:
        done = await self.activities.find(
            {"unit_id": unit_id, "completion.period": period}, session=session
        ).to_list(None)
        return [
            CompletedActivity(
                activity_id=d["_id"],
                volunteers=d["completion"]["volunteers"],
                evidence_count=len(d.get("evidence_ids", [])),
            )
            for d in sorted(done, key=lambda d: d["_id"])
        ]

    async def all_units(self) -> list[Document]:
        return await self.units.find().sort("_id", 1).to_list(None)


class ScoreStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.scores = db.scores

    async def ensure_indexes(self) -> None:
        await self.scores.create_index([("period", 1), ("score", -1)])

    async def get(self, unit_id: str, period: str, session: Session | None = None) -> MonthlyScore | None:
        doc = await self.scores.find_one({"_id": f"{unit_id}|{period}"}, session=session)
        return _to_score(doc) if doc else None

    async def put(self, score: MonthlyScore, updated_at: datetime, session: Session) -> bool:
        """Keep ``score``; True if it differs from the one kept before.

        The document is written even when the score is unchanged (``revision``): two
        transactions that rescore the same unit and month then always conflict, and the
        one retried sees the other's facts.
        """
        key = f"{score.unit_id}|{score.period}"
        before = await self.get(score.unit_id, score.period, session)
        fields = asdict(score)
        fields["breakdown"] = [item.model_dump() for item in score.breakdown]
        update: Document = {"$inc": {"revision": 1}}
        if before != score:
            update["$set"] = {**fields, "updated_at": updated_at}
        await self.scores.update_one({"_id": key}, update, upsert=True, session=session)
        return before != score

    async def for_period(self, period: str) -> list[MonthlyScore]:
        return [_to_score(d) async for d in self.scores.find({"period": period})]


def _to_score(doc: Document) -> MonthlyScore:
    return MonthlyScore(
        unit_id=doc["unit_id"],
        period=doc["period"],
        score=doc["score"],
        max_score=doc["max_score"],
        breakdown=tuple(ScoreItem(**item) for item in doc["breakdown"]),
        rules_version=doc["rules_version"],
    )
