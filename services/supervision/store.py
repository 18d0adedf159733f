"""Supervision's own database: the facts it has learned from events, and the scores."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any
from uuid import uuid4

from pymongo import ReturnDocument, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from services.supervision.domain import (
    Activity,
    Evidence,
    Finding,
    Inspection,
    ItemResult,
    OrderRating,
    Project,
    Score,
    Unit,
)
from shared.mongo import Document

Session = AsyncClientSession
Statement = tuple[datetime, str]  # see shared.events.statement


def _order(doc: Document) -> Statement:
    return doc["stated_at"], doc.get("stated", "")


class FactStore:
    """Units, activities (plan, completion, evidence with its flags and reviews, whether it is
    complete, 四单 ratings), the key project list and inspections, as far as scoring needs them.

    Each fact keeps the time of the event that stated it; a fact stated earlier never
    overwrites one stated later, so arrival order does not matter.

    Evidence is kept *on its activity's document*, not in a collection of its own: handlers
    run concurrently, and a completion and its evidence handled at the same moment must
    write the same document, so that one transaction conflicts and retries and sees the
    other. Apart, each would miss the other and the score would be stale (write skew).
    Across activities of one unit the same holds through the rescoring mark: every fact
    about the unit's year writes its mark (``RescoreQueue.mark``), and the rescoring removes
    it in its own transaction (``RescoreQueue.take``). The office's review names only
    the evidence, so ``evidence_index`` maps evidence to its activity: a review and its
    evidence both write that entry, so whichever is handled second sees the other.
    """

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.units = db.units
        self.activities = db.activities
        self.projects = db.projects
        self.inspections = db.inspections
        self.evidence_index = db.evidence_index

    async def ensure_indexes(self) -> None:
        await self.activities.create_index([("unit_id", 1), ("completion.period", 1)])
        await self.inspections.create_index([("unit_id", 1), ("period", 1)])

    # ---------------------------------------------------------------- units

    async def put_unit(self, unit: dict[str, Any], stated: Statement, session: Session) -> Document | None:
        """Keep the unit; returns what was kept before (None if new or unchanged)."""
        current = await self.units.find_one({"_id": unit["unit_id"]}, session=session)
        if current and _order(current) >= stated:
            return None
        doc = {**unit, "_id": unit["unit_id"], "stated_at": stated[0], "stated": stated[1]}
        await self.units.replace_one({"_id": doc["_id"]}, doc, upsert=True, session=session)
        return current or {}

    async def all_units(self) -> list[Document]:
        return await self.units.find().sort("_id", 1).to_list(None)

    # ---------------------------------------------------------------- activities

    async def activity(self, activity_id: str, session: Session | None = None) -> Document | None:
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

    async def add_evidence(
        self, activity_id: str, unit_id: str, evidence: dict[str, Any], session: Session
    ) -> None:
        """Keep the evidence on its activity, merged with what is kept of it already (the
        same evidence is announced as v1 and as v2, which adds its report time)."""
        current = await self.activity(activity_id, session) or {}
        kept = {e["evidence_id"]: e for e in current.get("evidence", [])}
        kept[evidence["evidence_id"]] = {**kept.get(evidence["evidence_id"], {}), **evidence}
        await self.activities.update_one(
            {"_id": activity_id},
            {
                "$set": {"evidence": sorted(kept.values(), key=lambda e: e["evidence_id"])},
                "$setOnInsert": {"unit_id": unit_id},
            },
            upsert=True,
            session=session,
        )

    async def flag_evidence(
        self,
        activity_id: str,
        unit_id: str,
        evidence_id: str,
        session: Session,
        flag: dict[str, Any] | None = None,
    ) -> None:
        """Mark the evidence flagged; ``flag`` (signal, detail, the other occurrence) is kept
        for the office's review queue, which shows the pair side by side."""
        added: Document = {"flagged": evidence_id}
        if flag:
            added["flags"] = {**flag, "evidence_id": evidence_id}
        await self.activities.update_one(
            {"_id": activity_id},
            {"$addToSet": added, "$setOnInsert": {"unit_id": unit_id}},
            upsert=True,
            session=session,
        )

    async def put_statement(
        self,
        activity_id: str,
        unit_id: str | None,
        field: str,
        key: str,
        value: dict[str, Any],
        stated: Statement,
        session: Session,
    ) -> bool:
        """Keep ``value`` in the activity's list ``field`` (reviews, ratings) under ``key``
        (``value[key]`` identifies it), unless a later statement of it is kept."""
        current = await self.activity(activity_id, session) or {}
        kept = [v for v in current.get(field, []) if v[key] != value[key]]
        before = [v for v in current.get(field, []) if v[key] == value[key]]
        if before and _order(before[0]) >= stated:
            return False
        kept.append({**value, "stated_at": stated[0], "stated": stated[1]})
        update: Document = {"$set": {field: sorted(kept, key=lambda v: v[key])}}
        if unit_id:
            update["$setOnInsert"] = {"unit_id": unit_id}
        await self.activities.update_one({"_id": activity_id}, update, upsert=True, session=session)
        return True

    async def put_complete(
        self, activity_id: str, unit_id: str, evidence_ids: list[str], stated: Statement, session: Session
    ) -> bool:
        """The evidence service's latest word that the activity's evidence is complete."""
        current = await self.activity(activity_id, session)
        if current and current.get("evidence_complete") and _order(current["evidence_complete"]) >= stated:
            return False
        await self.activities.update_one(
            {"_id": activity_id},
            {
                "$set": {
                    "evidence_complete": {
                        "evidence_ids": evidence_ids,
                        "stated_at": stated[0],
                        "stated": stated[1],
                    }
                },
                "$setOnInsert": {"unit_id": unit_id},
            },
            upsert=True,
            session=session,
        )
        return True

    async def indexed(self, evidence_id: str, session: Session) -> Document | None:
        return await self.evidence_index.find_one({"_id": evidence_id}, session=session)

    async def index_evidence(
        self, evidence_id: str, fields: dict[str, Any], session: Session
    ) -> Document | None:
        """Set ``fields`` on the evidence's index entry; returns the entry as it was."""
        return await self.evidence_index.find_one_and_update(
            {"_id": evidence_id}, {"$set": fields}, upsert=True, session=session
        )

    async def completed_in(
        self, unit_id: str, months: list[str], session: Session | None = None
    ) -> list[Activity]:
        docs = await self.activities.find(
            {"unit_id": unit_id, "completion.period": {"$in": months}}, session=session
        ).to_list(None)
        return [to_activity(d) for d in sorted(docs, key=lambda d: d["_id"])]

    # ---------------------------------------------------------------- the office's views

    async def activities_of_months(self, months: list[str]) -> list[Document]:
        """Every activity completed in the months (charts, bulletin, to-do)."""
        return await self.activities.find({"completion.period": {"$in": months}}).to_list(None)

    async def activities_flagged(self) -> list[Document]:
        """Every activity with flagged evidence (the office's review queue)."""
        return await self.activities.find({"flagged.0": {"$exists": True}}).to_list(None)

    async def activities_by_id(self, activity_ids: list[str]) -> dict[str, Document]:
        docs = await self.activities.find({"_id": {"$in": activity_ids}}).to_list(None)
        return {d["_id"]: d for d in docs}

    async def evidence_entries(self, evidence_ids: list[str]) -> dict[str, Document]:
        docs = await self.evidence_index.find({"_id": {"$in": evidence_ids}}).to_list(None)
        return {d["_id"]: d for d in docs}

    async def inspections_of_months(self, months: list[str]) -> list[Inspection]:
        docs = await self.inspections.find({"period": {"$in": months}}).to_list(None)
        return [to_inspection(d) for d in sorted(docs, key=lambda d: d["_id"])]

    async def project_list(self, year: int) -> Document | None:
        return await self.projects.find_one({"_id": year})

    async def units_by_id(self, unit_ids: list[str], session: Session | None = None) -> dict[str, Unit]:
        docs = await self.units.find({"_id": {"$in": unit_ids}}, session=session).to_list(None)
        found = {d["_id"]: _unit(d) for d in docs}
        return {u: found.get(u) or Unit(u) for u in unit_ids}

    async def completed_in_units(
        self, unit_ids: list[str], months: list[str], session: Session | None = None
    ) -> dict[str, list[Activity]]:
        """``completed_in`` for many units with one query (the rescorer's batches)."""
        # By unit alone, the months picked here: the MongoDB-wire server used here serves an
        # ``$in`` from an index only when it is the query's one condition (it scanned every
        # activity for ``unit_id $in`` + ``period $in``).
        wanted = set(months)
        docs = await self.activities.find({"unit_id": {"$in": unit_ids}}, session=session).to_list(None)
        out: dict[str, list[Activity]] = {u: [] for u in unit_ids}
        for d in sorted(docs, key=lambda d: d["_id"]):
            if (d.get("completion") or {}).get("period") in wanted:
                out[d["unit_id"]].append(to_activity(d))
        return out

    async def years_of(self, unit_id: str, session: Session | None = None) -> set[str]:
        # ``$exists`` would make the server scan the collection: filtered here.
        docs = await self.activities.find(
            {"unit_id": unit_id}, {"completion.period": 1}, session=session
        ).to_list(None)
        return {d["completion"]["period"][:4] for d in docs if d.get("completion")}

    # ---------------------------------------------------------------- the key project list

    async def put_projects(
        self, year: int, version: int, projects: list[dict[str, Any]], session: Session
    ) -> bool:
        """Keep the year's list unless a higher version is kept."""
        current = await self.projects.find_one({"_id": year}, session=session)
        # Every version is remembered (the office's page lists them), whatever its order.
        summary = {"version": version, "projects": len(projects)}
        history = [v for v in (current or {}).get("versions", []) if v["version"] != version]
        if current and current["version"] >= version:
            await self.projects.update_one(
                {"_id": year},
                {"$set": {"versions": sorted([*history, summary], key=lambda v: v["version"])}},
                session=session,
            )
            return False
        await self.projects.replace_one(
            {"_id": year},
            {
                "_id": year,
                "version": version,
                "projects": projects,
                "versions": sorted([*history, summary], key=lambda v: v["version"]),
            },
            upsert=True,
            session=session,
        )
        return True

    async def projects_of(self, year: int, session: Session | None = None) -> list[Project]:
        doc = await self.projects.find_one({"_id": year}, session=session)
        if not doc:
            return []
        return [
            Project(
                project_id=p["project_id"],
                months=tuple(p["months"]),
                lead_unit_ids=tuple(p.get("lead_unit_ids", [])),
                participant_kinds=tuple(p.get("participant_kinds", [])),
                participant_unit_ids=tuple(p.get("participant_unit_ids", [])),
                min_photos=p.get("evidence", {}).get("min_photos", 1),
                report_within_days=p.get("evidence", {}).get("report_within_days", 7),
            )
            for p in doc["projects"]
        ]

    # ---------------------------------------------------------------- inspections, ratings

    async def put_inspection(
        self, doc: dict[str, Any], stated: Statement, session: Session
    ) -> Document | None:
        """Keep the inspection (a later statement of the same id replaces it); returns the one
        kept before (``{}`` if new), or None if this statement is older."""
        current = await self.inspections.find_one({"_id": doc["inspection_id"]}, session=session)
        if current and _order(current) >= stated:
            return None
        await self.inspections.replace_one(
            {"_id": doc["inspection_id"]},
            {**doc, "_id": doc["inspection_id"], "stated_at": stated[0], "stated": stated[1]},
            upsert=True,
            session=session,
        )
        return current or {}

    async def inspections_in(
        self, unit_id: str, months: list[str], session: Session | None = None
    ) -> list[Inspection]:
        docs = await self.inspections.find(
            {"unit_id": unit_id, "period": {"$in": months}}, session=session
        ).to_list(None)
        return [to_inspection(d) for d in docs]

    async def inspections_in_units(
        self, unit_ids: list[str], months: list[str], session: Session | None = None
    ) -> dict[str, list[Inspection]]:
        wanted = set(months)  # by unit alone: see ``completed_in_units``
        docs = await self.inspections.find({"unit_id": {"$in": unit_ids}}, session=session).to_list(None)
        out: dict[str, list[Inspection]] = {u: [] for u in unit_ids}
        for d in docs:
            if d["period"] in wanted:
                out[d["unit_id"]].append(to_inspection(d))
        return out

    async def unit_year_ids(self) -> set[tuple[str, str]]:
        """Every (unit, year) with a fact: what a full recompute covers."""
        found = {(u["_id"], y) for u in await self.all_units() for y in await self.years_of(u["_id"])}
        async for d in self.inspections.find({}, {"unit_id": 1, "period": 1}):
            found.add((d["unit_id"], d["period"][:4]))
        return found


def _unit(doc: Document) -> Unit:
    return Unit(doc["_id"], doc.get("name", ""), doc.get("kind", ""), doc.get("township_id"))


def to_activity(doc: Document) -> Activity:
    completion = doc.get("completion") or {}
    flagged = set(doc.get("flagged", []))
    reviews = {r["evidence_id"]: r["verdict"] for r in doc.get("reviews", [])}
    complete = doc.get("evidence_complete")
    return Activity(
        activity_id=doc["_id"],
        unit_id=doc["unit_id"],
        ended_at=completion.get("ended_at"),
        project_id=(doc.get("schedule") or {}).get("project_id"),
        volunteers=completion.get("volunteers", 0),
        service_hours=completion.get("service_hours", 0.0),
        evidence=tuple(
            sorted(
                (
                    Evidence(
                        e["evidence_id"],
                        e["stored_at"],
                        e.get("content_type", ""),
                        e.get("reported_at"),
                        e["evidence_id"] in flagged,
                        reviews.get(e["evidence_id"]),
                    )
                    for e in doc.get("evidence", [])
                ),
                key=lambda e: e.evidence_id,
            )
        ),
        complete_with=tuple(complete["evidence_ids"]) if complete else None,
        ratings=tuple(
            OrderRating(r["order_id"], r["rating"], r["rated_at"])
            for r in doc.get("ratings", [])
            if r.get("rating") is not None
        ),
    )


def to_inspection(doc: Document) -> Inspection:
    return Inspection(
        inspection_id=doc["_id"],
        unit_id=doc["unit_id"],
        period=doc["period"],
        inspected_at=doc["inspected_at"],
        findings=tuple(
            Finding(f["rule"], f.get("note", ""), f.get("occurrences", 1), f.get("veto", False))
            for f in doc.get("findings", [])
        ),
        assessments=tuple((a["rule"], a["points"]) for a in doc.get("assessments", [])),
    )


class ScoreStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.scores = db.scores

    async def ensure_indexes(self) -> None:
        await self.scores.create_index([("period", 1), ("score", -1)])
        await self.scores.create_index([("unit_id", 1), ("year", 1)])

    async def get(self, unit_id: str, period: str, session: Session | None = None) -> Score | None:
        doc = await self.scores.find_one({"_id": f"{unit_id}|{period}"}, session=session)
        return to_score(doc) if doc and "score" in doc else None

    async def of_unit_year(self, unit_id: str, year: str, session: Session | None = None) -> dict[str, Score]:
        # Only conditions the index holds (the server scans for ``$exists``); the unit's year
        # document, which has no score, is left out here.
        docs = await self.scores.find({"unit_id": unit_id, "year": year}, session=session).to_list(None)
        return {d["period"]: to_score(d) for d in docs if "score" in d}

    async def of_units_year(
        self, unit_ids: list[str], year: str, session: Session | None = None
    ) -> dict[str, dict[str, Score]]:
        # By unit alone (an ``$in`` beside another condition makes the server scan).
        docs = await self.scores.find({"unit_id": {"$in": unit_ids}}, session=session).to_list(None)
        out: dict[str, dict[str, Score]] = {u: {} for u in unit_ids}
        for d in docs:
            if d.get("year") == year and "score" in d:
                out[d["unit_id"]][d["period"]] = to_score(d)
        return out

    async def years_of_unit(self, unit_id: str, session: Session | None = None) -> list[str]:
        return sorted(await self.scores.distinct("year", {"unit_id": unit_id}, session=session))

    async def units_in_year(self, year: str, session: Session | None = None) -> list[str]:
        return sorted(await self.scores.distinct("unit_id", {"period": year}, session=session))

    async def touch_year(self, unit_id: str, year: str, session: Session) -> int:
        """Write the unit's year document whatever changed (a full recompute does): two
        recomputes of the same unit's year then conflict, and the one retried sees the other's
        scores. Returns the document's new revision, which names the recompute's announcements."""
        doc = await self.scores.find_one_and_update(
            {"_id": f"{unit_id}|{year}"},
            {"$inc": {"revision": 1}, "$setOnInsert": {"unit_id": unit_id, "period": year, "year": year}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
            session=session,
        )
        assert doc is not None  # upserted
        return int(doc["revision"])

    async def put_many(
        self, scores: list[tuple[Score, Score | None]], updated_at: datetime, session: Session
    ) -> list[Score]:
        """Keep each ``(score, kept before)`` that changed, with one bulk write; the changed."""
        changed = [score for score, before in scores if score != before]
        if changed:
            await self.scores.bulk_write(
                [
                    UpdateOne(
                        {"_id": f"{score.unit_id}|{score.period}"},
                        {"$set": {**score_fields(score), "year": score.period[:4], "updated_at": updated_at}},
                        upsert=True,
                    )
                    for score in changed
                ],
                ordered=False,
                session=session,
            )
        return changed

    async def for_period(self, period: str) -> list[Score]:
        return [to_score(d) async for d in self.scores.find({"period": period}) if "score" in d]

    async def for_unit(self, unit_id: str) -> list[Score]:
        docs = await self.scores.find({"unit_id": unit_id}).to_list(None)
        return [to_score(d) for d in sorted(docs, key=lambda d: d["period"]) if "score" in d]

    async def versions(self) -> set[str]:
        return set(await self.scores.distinct("rules_version"))


def score_fields(score: Score) -> dict[str, Any]:
    fields = asdict(score)
    fields["items"] = [{**asdict(i), "facts": list(i.facts)} for i in score.items]
    return fields


def to_score(doc: Document) -> Score:
    return Score(
        unit_id=doc["unit_id"],
        period=doc["period"],
        score=doc["score"],
        max_score=doc["max_score"],
        bonus=doc["bonus"],
        vetoed=doc["vetoed"],
        items=tuple(ItemResult(**{**i, "facts": tuple(i["facts"])}) for i in doc["items"]),
        rules_version=doc["rules_version"],
    )


class RescoreQueue:
    """The unit-years whose facts changed and whose scores are not recomputed yet (待重算).

    A fact's handler records the fact and marks its unit's months here, in its transaction;
    the rescorer takes marks in batches and rescores many units with a few queries and one
    bulk write, instead of a dozen round trips per fact. Both write the mark's document: a
    fact handled while its unit is being rescored conflicts with that rescoring, and one of
    the two transactions is retried and sees the other (no score is left stale).
    """

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.marks = db.to_rescore

    async def ensure_indexes(self) -> None:
        await self.marks.create_index("since")

    async def mark(
        self,
        unit_id: str,
        year: str,
        months: set[str],
        at: datetime,
        session: Session,
        traceparent: str | None = None,
    ) -> None:
        """Mark the months; ``traceparent`` is the trace of the fact that marked them: the
        rescoring continues the latest fact's trace (``traceparent``) and links to the
        first's (``first_traceparent``)."""
        await self.marks.update_one(
            {"_id": f"{unit_id}|{year}"},
            {
                "$addToSet": {"months": {"$each": sorted(months)}},
                "$inc": {"revision": 1},
                "$setOnInsert": {
                    "unit_id": unit_id,
                    "year": year,
                    "since": at,
                    "created": uuid4().hex,
                    **({"first_traceparent": traceparent} if traceparent else {}),
                },
                **({"$set": {"traceparent": traceparent}} if traceparent else {}),
            },
            upsert=True,
            session=session,
        )

    async def oldest(self, limit: int) -> list[str]:
        """The ids of the marks waiting longest."""
        docs = await self.marks.find({}, {"_id": 1}).sort("since", 1).limit(limit).to_list(None)
        return [d["_id"] for d in docs]

    async def take(self, ids: list[str], session: Session) -> list[Document]:
        """The marks still there (read in the rescoring's transaction), removed with it."""
        docs = await self.marks.find({"_id": {"$in": ids}}, session=session).to_list(None)
        if docs:
            await self.marks.delete_many({"_id": {"$in": [d["_id"] for d in docs]}}, session=session)
        return docs

    async def count(self) -> int:
        return await self.marks.count_documents({})
