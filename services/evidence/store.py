"""The evidence service's own database: what was kept, for which activity, from whom."""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from shared.mongo import Document


class EvidenceStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.evidence = db.evidence

    async def ensure_indexes(self) -> None:
        await self.evidence.create_index("activity_id")
        await self.evidence.create_index("sha256")

    async def put(self, record: dict[str, Any], session: AsyncClientSession) -> None:
        await self.evidence.replace_one({"_id": record["_id"]}, record, upsert=True, session=session)

    async def get(self, evidence_id: str) -> Document | None:
        return await self.evidence.find_one({"_id": evidence_id})

    async def for_activity(self, activity_id: str) -> list[Document]:
        return await self.evidence.find({"activity_id": activity_id}).sort("_id", 1).to_list(None)
