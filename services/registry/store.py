"""The registry's own database.

- ``units``: one document per unit. A unit whose statement names a parent not yet known
  leaves it *waiting* in a placeholder document under the parent's id (and so does a
  volunteer whose unit is not known yet, its personal data sealed); the parent's own
  registration replaces that document, so the two handlers write the same document and
  cannot miss each other (one gets a write conflict and retries). Waiting statements that
  outstay the hold are taken out by the same read-and-write of that document.
- ``unit_history``: every accepted statement of a unit, and every move of its subtree.
- ``volunteers``: personal data sealed (``shared.pii``); ``hours``: the service-hours ledger,
  one entry per (volunteer, activity, basis).
"""

from __future__ import annotations

import re
from dataclasses import asdict
from datetime import date
from typing import Any

from pymongo import UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from services.registry.domain import Unit
from services.registry.volunteers import Volunteer
from shared.mongo import Document

REAL = {"placeholder": {"$ne": True}}


class UnitStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.units = db.units
        self.history = db.unit_history
        self.volunteers = db.volunteers
        self.hours = db.hours

    async def ensure_indexes(self) -> None:
        await self.units.create_index("township_id")
        await self.units.create_index("kind")
        await self.units.create_index("ancestors")
        await self.units.create_index("placeholder")
        await self.history.create_index([("unit_id", 1), ("stated_at", 1)])
        await self.volunteers.create_index("id_card_fingerprint")
        await self.volunteers.create_index("township_id")
        await self.hours.create_index("volunteer_id")

    # ----------------------------------------------------------------------- units

    async def get(self, unit_id: str, session: AsyncClientSession | None = None) -> Unit | None:
        doc = await self.units.find_one({"_id": unit_id}, session=session)
        return _to_unit(doc) if doc and not doc.get("placeholder") else None

    async def waiting(self, unit_id: str, session: AsyncClientSession) -> list[Document]:
        """Statements of children held until this unit is known."""
        doc = await self.units.find_one({"_id": unit_id}, {"waiting": 1}, session=session)
        return list(doc.get("waiting", [])) if doc else []

    async def hold(self, parent_id: str, entry: Document, session: AsyncClientSession) -> None:
        await self.units.update_one(
            {"_id": parent_id},
            {"$push": {"waiting": entry}, "$setOnInsert": {"placeholder": True}},
            upsert=True,
            session=session,
        )

    async def placeholders(self) -> list[Document]:
        """The ids and waiting statements of every unit something waits for."""
        return [d async for d in self.units.find({"placeholder": True}, {"waiting": 1})]

    async def unhold(self, unit_id: str, keys: set[str], session: AsyncClientSession) -> list[Document]:
        """Take the statements with these keys out of the waiting list of a unit that is still
        unknown; returns those taken (none if the unit has arrived meanwhile)."""
        doc = await self.units.find_one({"_id": unit_id, "placeholder": True}, session=session)
        if doc is None:
            return []
        taken = [e for e in doc.get("waiting", []) if e["key"] in keys]
        rest = [e for e in doc.get("waiting", []) if e["key"] not in keys]
        if rest:
            await self.units.update_one({"_id": unit_id}, {"$set": {"waiting": rest}}, session=session)
        else:
            await self.units.delete_one({"_id": unit_id}, session=session)
        return taken

    async def put(self, unit: Unit, session: AsyncClientSession) -> None:
        doc = _to_doc(unit)
        await self.units.replace_one({"_id": unit.unit_id}, doc, upsert=True, session=session)

    async def touch(self, unit_id: str, session: AsyncClientSession) -> None:
        """Write the parent when a child is placed under it: a concurrent move of the parent
        then conflicts with the child's placement instead of missing it."""
        await self.units.update_one({"_id": unit_id}, {"$inc": {"children_rev": 1}}, session=session)

    async def descendants(self, unit_id: str, session: AsyncClientSession | None = None) -> list[Unit]:
        return [_to_unit(d) async for d in self.units.find({"ancestors": unit_id, **REAL}, session=session)]

    async def record(self, entry: Document, session: AsyncClientSession) -> None:
        await self.history.insert_one(entry, session=session)

    async def unit_history(self, unit_id: str) -> list[Document]:
        cursor = self.history.find({"unit_id": unit_id}, {"_id": 0}).sort(
            [("stated_at", 1), ("recorded_at", 1)]
        )
        return [d async for d in cursor]

    async def search(
        self,
        township_id: str | None = None,
        kind: str | None = None,
        name: str | None = None,
        code: str | None = None,
        under: str | None = None,
    ) -> list[Unit]:
        """Units matching every given filter: in a township, of a kind, whose name contains
        ``name``, whose id starts with ``code``, in the subtree of ``under`` (itself included)."""
        query: Document = dict(REAL)
        clauses: list[Document] = []
        if township_id:
            clauses.append({"$or": [{"township_id": township_id}, {"_id": township_id}]})
        if under:
            clauses.append({"$or": [{"ancestors": under}, {"_id": under}]})
        if kind:
            query["kind"] = kind
        if name:
            query["name"] = {"$regex": re.escape(name)}
        if code:
            query["_id"] = {"$regex": "^" + re.escape(code)}
        if clauses:
            query["$and"] = clauses
        return [_to_unit(d) async for d in self.units.find(query).sort("_id", 1)]

    # ----------------------------------------------------------------------- volunteers

    async def volunteer(
        self, volunteer_id: str, session: AsyncClientSession | None = None
    ) -> Volunteer | None:
        doc = await self.volunteers.find_one({"_id": volunteer_id}, session=session)
        return _to_volunteer(doc) if doc else None

    async def all_volunteers(self) -> dict[str, Volunteer]:
        """Every volunteer, in one scan: a spreadsheet import checks thousands of rows against
        them (one scan is far cheaper than thousands of look-ups, or one huge ``$in``)."""
        return {d["_id"]: _to_volunteer(d) async for d in self.volunteers.find({})}

    async def card_holder(self, fingerprint: str, session: AsyncClientSession | None = None) -> str | None:
        doc = await self.volunteers.find_one(
            {"id_card_fingerprint": fingerprint}, {"_id": 1}, session=session
        )
        return doc["_id"] if doc else None

    async def put_volunteer(self, volunteer: Volunteer, session: AsyncClientSession | None = None) -> None:
        doc = asdict(volunteer)
        doc["_id"] = doc.pop("volunteer_id")
        doc["team_ids"] = list(volunteer.team_ids)
        await self.volunteers.replace_one({"_id": volunteer.volunteer_id}, doc, upsert=True, session=session)

    async def put_volunteers(self, volunteers: list[Volunteer]) -> None:
        """A spreadsheet's volunteers, in bulk (each document on its own: no transaction needed)."""
        ops = []
        for v in volunteers:
            doc = asdict(v)
            doc["_id"] = doc.pop("volunteer_id")
            doc["team_ids"] = list(v.team_ids)
            ops.append(UpdateOne({"_id": v.volunteer_id}, {"$set": doc}, upsert=True))
        for start in range(0, len(ops), 500):
            await self.volunteers.bulk_write(ops[start : start + 500], ordered=False)

    async def list_volunteers(
        self, township_id: str | None = None, unit_id: str | None = None
    ) -> list[Volunteer]:
        query: Document = {}
        if township_id:
            query["township_id"] = township_id
        if unit_id:
            query["unit_id"] = unit_id
        return [_to_volunteer(d) async for d in self.volunteers.find(query).sort("_id", 1)]

    async def credit(self, entry_id: str, entry: Document, session: AsyncClientSession) -> None:
        await self.hours.replace_one({"_id": entry_id}, entry, upsert=True, session=session)

    async def ledger(self, volunteer_id: str) -> list[Document]:
        cursor = self.hours.find({"volunteer_id": volunteer_id}, {"_id": 0}).sort("credited_at", 1)
        return [d async for d in cursor]

    async def total_hours(self) -> dict[str, float]:
        """Every volunteer's service hours, from the ledger."""
        pipeline: list[Document] = [{"$group": {"_id": "$volunteer_id", "hours": {"$sum": "$hours"}}}]
        cursor = await self.hours.aggregate(pipeline)
        return {d["_id"]: float(d["hours"]) async for d in cursor}


def _to_doc(unit: Unit) -> Document:
    doc: dict[str, Any] = asdict(unit)
    doc["_id"] = doc.pop("unit_id")
    doc["ancestors"] = list(unit.ancestors)
    doc["contacts"] = [dict(c) for c in unit.contacts]
    for key in ("title_held_since", "title_review_due"):  # BSON has no date-only type
        doc[key] = doc[key].isoformat() if doc[key] else None
    return doc


def _to_unit(doc: Document) -> Unit:
    return Unit(
        unit_id=doc["_id"],
        name=doc["name"],
        kind=doc["kind"],
        parent_id=doc.get("parent_id"),
        township_id=doc.get("township_id"),
        stated_at=doc["stated_at"],
        stated=doc.get("stated", ""),
        ancestors=tuple(doc.get("ancestors", ())),
        category=doc.get("category"),
        title_held_since=date.fromisoformat(doc["title_held_since"]) if doc.get("title_held_since") else None,
        title_review_due=date.fromisoformat(doc["title_review_due"]) if doc.get("title_review_due") else None,
        contacts=tuple(doc.get("contacts", ())),
        active=doc.get("active", True),
    )


def _to_volunteer(doc: Document) -> Volunteer:
    return Volunteer(
        volunteer_id=doc["_id"],
        name=doc["name"],
        id_card_sealed=doc["id_card_sealed"],
        id_card_fingerprint=doc["id_card_fingerprint"],
        phone_sealed=doc["phone_sealed"],
        unit_id=doc["unit_id"],
        township_id=doc.get("township_id"),
        team_ids=tuple(doc.get("team_ids", ())),
        active=doc.get("active", True),
        stated_at=doc["stated_at"],
        stated=doc["stated"],
        # Registered before owners were recorded: its township at registration owns it.
        owner=doc.get("owner", doc.get("township_id")),
    )
