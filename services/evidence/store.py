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

from pymongo import UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from services.evidence.domain import KnownActivity, hash_bands, is_featureless
from shared.events import EvidenceRequirement, KeyProject
from shared.mongo import Document

Session = AsyncClientSession
Statement = tuple[datetime, str]  # see shared.events.statement


# What a candidate needs (``app.occurrence``): not the whole record.
CANDIDATE = {"activity_id": 1, "unit_id": 1, "sha256": 1, "dhash": 1}
# A band shared by more photos than this is not looked up (see ``claim_fingerprints``).
COMMON_BAND = 64
BANDS_VERSION = 2  # byte pairs; 1 was single bytes


def _order(doc: Document) -> Statement:
    return doc["stated_at"], doc.get("stated", "")


class EvidenceStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.evidence = db.evidence
        self.activities = db.activities
        self.projects = db.projects
        self.fingerprints = db.fingerprints
        self.units = db.units
        self.meta = db.meta

    async def ensure_indexes(self) -> None:
        await self.evidence.create_index("activity_id")
        await self.evidence.create_index("sha256")
        await self.evidence.create_index("dhash_bands")
        await self.activities.create_index("project_id")
        await self._rekey_bands()

    async def _rekey_bands(self) -> None:
        """Evidence stored before the band keys became byte pairs (``hash_bands``) gets the
        new keys, once: its near-duplicates are found again."""
        if await self.meta.find_one({"_id": "dhash_bands", "version": BANDS_VERSION}):
            return
        async for doc in self.evidence.find({"dhash": {"$ne": None}}, {"dhash": 1}):
            dhash = int(doc["dhash"], 16)
            bands = [] if is_featureless(dhash) else hash_bands(dhash)
            await self.evidence.update_one({"_id": doc["_id"]}, {"$set": {"dhash_bands": bands}})
        await self.meta.replace_one(
            {"_id": "dhash_bands"}, {"_id": "dhash_bands", "version": BANDS_VERSION}, upsert=True
        )

    # ------------------------------------------------------------------ evidence

    async def put(self, record: dict[str, Any], session: Session) -> None:
        await self.evidence.replace_one({"_id": record["_id"]}, record, upsert=True, session=session)

    async def get(self, evidence_id: str, session: Session | None = None) -> Document | None:
        return await self.evidence.find_one({"_id": evidence_id}, session=session)

    async def for_activity(self, activity_id: str) -> list[Document]:
        docs = await self.evidence.find({"activity_id": activity_id}).to_list(None)
        return sorted(docs, key=lambda d: d["_id"])

    async def candidates(self, sha256: str, bands: list[str], session: Session) -> list[Document]:
        """Stored evidence with the same file, or sharing a band of the perceptual hash.

        Two queries, each served by its index: the MongoDB-wire server used here never
        serves a ``$or`` from an index (it scanned every photo, ≈ 1.3 s at 20,000). ``bands``
        should come from ``claim_fingerprints``, which leaves out the over-common ones."""
        found = {
            d["_id"]: d
            for d in await self.evidence.find({"sha256": sha256}, CANDIDATE, session=session).to_list(None)
        }
        if bands:
            near = self.evidence.find({"dhash_bands": {"$in": bands}}, CANDIDATE, session=session)
            for d in await near.to_list(None):
                found.setdefault(d["_id"], d)
        return list(found.values())

    async def claim_fingerprints(self, sha256: str, bands: list[str], session: Session) -> list[str]:
        """Touch one document per fingerprint: the file's sha256 and each band of its
        perceptual hash. Two submissions of the same file, or of near-duplicates (which share
        a band), handled at the same moment thus write the same document: one transaction
        conflicts and retries, and then sees the other as a candidate. Only a counter is
        kept, so a common band's document stays small.

        Returns the bands worth looking up: a band already shared by more than
        ``COMMON_BAND`` photos (a sky, a wall, a logo that many photos have in common) is
        left out, or one lookup would fetch all of them and it would grow with every photo.
        A near-duplicate shares several bands, so it is still found through another."""
        keys = [f"sha256:{sha256}", *(f"dhash:{band}" for band in bands)]
        counts = {
            d["_id"]: d.get("n", 0)
            async for d in self.fingerprints.find({"_id": {"$in": keys}}, session=session)
        }
        await self.fingerprints.bulk_write(
            [UpdateOne({"_id": key}, {"$inc": {"n": 1}}, upsert=True) for key in keys],
            ordered=True,
            session=session,
        )
        return [band for band in bands if counts.get(f"dhash:{band}", 0) <= COMMON_BAND]

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
        # By ``_id`` alone: the server scans the collection for ``_id`` plus any other field.
        doc = await self.activities.find_one({"_id": activity_id})
        return known(doc) if doc and "stated_at" in doc else None

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
