"""The registry's own database: units."""

from __future__ import annotations

from dataclasses import asdict

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from services.registry.domain import Unit
from shared.mongo import Document


class UnitStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.units = db.units

    async def ensure_indexes(self) -> None:
        await self.units.create_index("township_id")
        await self.units.create_index("kind")

    async def get(self, unit_id: str, session: AsyncClientSession | None = None) -> Unit | None:
        doc = await self.units.find_one({"_id": unit_id}, session=session)
        return _to_unit(doc) if doc else None

    async def put(self, unit: Unit, session: AsyncClientSession) -> None:
        doc = asdict(unit)
        doc["_id"] = doc.pop("unit_id")
        await self.units.replace_one({"_id": unit.unit_id}, doc, upsert=True, session=session)

    async def list(self, township_id: str | None = None, kind: str | None = None) -> list[Unit]:
        query: Document = {}
        if township_id:
            query["$or"] = [{"township_id": township_id}, {"_id": township_id}]
        if kind:
            query["kind"] = kind
        return [_to_unit(d) async for d in self.units.find(query).sort("_id", 1)]


def _to_unit(doc: Document) -> Unit:
    return Unit(
        unit_id=doc["_id"],
        name=doc["name"],
        kind=doc["kind"],
        parent_id=doc.get("parent_id"),
        township_id=doc.get("township_id"),
        stated_at=doc["stated_at"],
        stated=doc.get("stated", ""),
    )
