"""The evidence service's own database: what was kept, for which activity, from whom; the
activities, key projects and units' townships it has learned; what each activity's evidence
still lacks.

Each activity's document also lists its evidence (with whether each piece counts): every
handler that changes what an activity's evidence amounts to — a stored piece, a review, a
schedule — writes that one document, so two of them handled at the same moment conflict
and one retries and sees the other (no write skew in "is it complete?").
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from services.evidence.domain import KnownActivity
from shared.events import EvidenceRequirement, KeyProject
from shared.mongo import Document

Session = AsyncClientSession
Statement = tuple[datetime, str]  # see shared.events.statement


def _order(doc: Document) -> Statement:
    return doc["stated_at"], doc.get("stated", "")


class EvidenceStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.evidence = db.evidence
        self.activities = db.activities
        self.projects = db.projects
        self.fingerprints = db.fingerprints
        self.units = db.units

    async def ensure_indexes(self) -> None:
        await self.evidence.create_index("activity_id")
        await self.evidence.create_index("sha256")
        await self.evidence.create_index("dhash_bands")
        await self.activities.create_index("project_id")

    # ------------------------------------------------------------------ evidence

    async def put(self, record: dict[str, Any], session: Session) -> None:
        await self.evidence.replace_one({"_id": record["_id"]}, record, upsert=True, session=session)

    async def get(self, evidence_id: str, session: Session | None = None) -> Document | None:
        return await self.evidence.find_one({"_id": evidence_id}, session=session)

    async def for_activity(self, activity_id: str) -> list[Document]:
        return await self.evidence.find({"activity_id": activity_id}).sort("_id", 1).to_list(None)

    async def candidates(self, sha256: str, bands: list[str], session: Session) -> list[Document]:
        """Stored evidence with the same file, or sharing a band of the perceptual hash."""
        query: dict[str, Any] = {"sha256": sha256}
        if bands:
            query = {"$or": [query, {"dhash_bands": {"$in": bands}}]}
        return await self.evidence.find(query, session=session).to_list(None)

    async def claim_fingerprints(self, sha256: str, bands: list[str], session: Session) -> None:
        """Touch one document per fingerprint: the file's sha256 and each band of its
        perceptual hash. Two submissions of the same file, or of near-duplicates (which share
        a band), handled at the same moment thus write the same document: one transaction
        conflicts and retries, and then sees the other as a candidate. Only a counter is
        kept, so a common band's document stays small."""
        for key in [f"sha256:{sha256}", *(f"dhash:{band}" for band in bands)]:
            await self.fingerprints.update_one({"_id": key}, {"$inc": {"n": 1}}, upsert=True, session=session)

    # ------------------------------------------------------------------ units

    async def put_unit(self, unit_id: str, owner: str | None, stated: Statement, session: Session) -> bool:
        """Keep the unit's owning township unless a later statement of it is already kept
        (a move re-states the unit with its new township)."""
        current = await self.units.find_one({"_id": unit_id}, session=session)
        if current and _order(current) >= stated:
            return False
        doc = {"_id": unit_id, "owner": owner, "stated_at": stated[0], "stated": stated[1]}
        await self.units.replace_one({"_id": unit_id}, doc, upsert=True, session=session)
        return True

    async def unit(self, unit_id: str) -> Document | None:
        """The unit's owning township (``owner``; None: city level), if the unit is known."""
        return await self.units.find_one({"_id": unit_id})

    # ------------------------------------------------------------------ activities and projects

    async def activity(self, activity_id: str, session: Session | None = None) -> Document | None:
        return await self.activities.find_one({"_id": activity_id}, session=session)

    async def known_activity(self, activity_id: str) -> KnownActivity | None:
        doc = await self.activities.find_one({"_id": activity_id, "stated_at": {"$exists": True}})
        return known(doc) if doc else None

    async def put_schedule(self, fields: dict[str, Any], stated: Statement, session: Session) -> bool:
        """Keep the schedule unless a later statement of it is already kept."""
        current = await self.activity(fields["activity_id"], session)
        if current and "stated_at" in current and _order(current) >= stated:
            return False
        await self.activities.update_one(
            {"_id": fields["activity_id"]},
            {"$set": {**fields, "stated_at": stated[0], "stated": stated[1]}},
            upsert=True,
            session=session,
        )
        return True

    async def set_activity(self, activity_id: str, changes: dict[str, Any], session: Session) -> None:
        await self.activities.update_one({"_id": activity_id}, {"$set": changes}, session=session)

    async def activities_of(self, project_ids: list[str], session: Session) -> list[Document]:
        return await self.activities.find({"project_id": {"$in": project_ids}}, session=session).to_list(None)

    async def put_projects(
        self, year: int, version: int, projects: list[KeyProject], session: Session
    ) -> list[str]:
        """Keep each project's evidence rule from the newest list version; returns the
        projects whose rule changed."""
        changed = []
        for project in projects:
            current = await self.projects.find_one({"_id": project.project_id}, session=session)
            if current and (current["year"], current["version"]) >= (year, version):
                continue
            requirement = project.evidence.model_dump()
            await self.projects.replace_one(
                {"_id": project.project_id},
                {"_id": project.project_id, "year": year, "version": version, "evidence": requirement},
                upsert=True,
                session=session,
            )
            if not current or current["evidence"] != requirement:
                changed.append(project.project_id)
        return changed

    async def requirement(
        self, project_id: str | None, session: Session | None = None
    ) -> EvidenceRequirement:
        """The project's evidence rule; the contract's default when the project (or its list)
        is not known yet — the list's arrival re-assesses the activity."""
        if project_id:
            doc = await self.projects.find_one({"_id": project_id}, session=session)
            if doc:
                return EvidenceRequirement.model_validate(doc["evidence"])
        return EvidenceRequirement()


def known(doc: Document) -> KnownActivity:
    return KnownActivity(
        activity_id=doc["_id"],
        unit_id=doc["unit_id"],
        project_id=doc.get("project_id"),
        starts_at=doc["starts_at"],
        ends_at=doc["ends_at"],
    )
