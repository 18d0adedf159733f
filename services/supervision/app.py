"""Supervision service: scores every unit's volunteer-service record for the city office.

Consumes the accepted facts on ``wmsj.events`` (units, activities, stored evidence with its
fraud flags, the office's reviews and whether it is complete, 四单 ratings, the key project
list) and the office's inspections on its ingress queue, keeps what scoring needs and
marks the months each fact touches; a rescorer recomputes the marked scores in batches
(many units per transaction, a few queries each) with the loaded rule set, and publishes
``score updated`` whenever a score changes: ``.v2`` for every month, quarter and year, and
``.v1`` (months only, the first contract) beside it for the office systems built on it. A
full recompute (new rules, replay) announces the scores it changed the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import FastAPI
from faststream.rabbit.annotations import RabbitMessage
from pydantic import Field
from pymongo.asynchronous.client_session import AsyncClientSession

from services.supervision import api
from services.supervision.domain import (
    RuleSet,
    Score,
    Unit,
    granularity_of,
    month_facts,
    months_of,
    rescore,
    score_year,
)
from services.supervision.office import OfficeDesk
from services.supervision.settings import RULES_DIR, SupervisionSettings
from services.supervision.store import FactStore, RescoreQueue, ScoreStore
from shared.events import (
    ActivityCompletedEvent,
    ActivityScheduledEvent,
    CloudEvent,
    EvidenceStoredEvent,
    FieldError,
    ScoreUpdated,
    ScoreUpdatedEvent,
    UnitRegisteredEvent,
    derived_id,
    period_of,
    statement,
)
from shared.events.activities import OrderRatingCountedEvent, ProjectListPublishedEvent
from shared.events.evidence import (
    EvidenceCompleteEvent,
    EvidenceFlaggedEvent,
    EvidenceReviewedEvent,
    EvidenceStoredV2Event,
)
from shared.events.supervision import InspectionRecordedEvent, ScoreUpdatedV2, ScoreUpdatedV2Event
from shared.identity import publisher_of
from shared.messaging import InvalidEvent
from shared.mongo import stage
from shared.rounds import run_rounds
from shared.service import Service
from shared.topology import SUPERVISION_EVENTS, SUPERVISION_INGRESS
from shared.tracing import continued, current_traceparent, with_traceparent

settings = SupervisionSettings()
service = Service("supervision", settings)
rules = RuleSet.parse(settings.rules, (RULES_DIR / f"{settings.rules}.toml").read_text(encoding="utf-8"))
facts = FactStore(service.db)
scores = ScoreStore(service.db)
rescoring = RescoreQueue(service.db)
service.metrics.gauge("rescoring", lambda: service.db.to_rescore.count_documents({}))
service.documents_publishing(ScoreUpdatedEvent, ScoreUpdatedV2Event, InspectionRecordedEvent)
log = logging.getLogger("wmsj.supervision")

FactEvent = Annotated[
    UnitRegisteredEvent
    | ActivityScheduledEvent
    | ActivityCompletedEvent
    | EvidenceStoredEvent
    | EvidenceStoredV2Event
    | EvidenceFlaggedEvent
    | EvidenceReviewedEvent
    | EvidenceCompleteEvent
    | OrderRatingCountedEvent
    | ProjectListPublishedEvent,
    Field(discriminator="type"),
]
Touched = dict[str, set[str]]  # unit -> months whose scores a fact may change


@service.consumes(
    SUPERVISION_EVENTS,
    UnitRegisteredEvent,
    ActivityScheduledEvent,
    ActivityCompletedEvent,
    EvidenceStoredEvent,
    EvidenceStoredV2Event,
    EvidenceFlaggedEvent,
    EvidenceReviewedEvent,
    EvidenceCompleteEvent,
    OrderRatingCountedEvent,
    ProjectListPublishedEvent,
    title="supervision.events:facts",
)
async def on_fact(event: FactEvent) -> None:
    """An accepted fact about a unit, an activity, its evidence, its 四单 ratings, or the key
    project list: kept, and the months it touches marked for the rescorer."""
    # Taken here, in the handler's span: the batch runs the effect in its own task.
    traceparent = current_traceparent()

    async def effect(session: AsyncClientSession) -> list[CloudEvent]:
        await mark(await record_fact(event, session), session, traceparent)
        return []

    if await service.process(event, effect):
        marked.set()


@service.consumes(SUPERVISION_INGRESS, InspectionRecordedEvent, title="supervision.ingress:inspections")
async def on_inspection(event: InspectionRecordedEvent, message: RabbitMessage) -> None:
    """The city office records an inspection (督查): findings, deductions, assessments.

    Only the office: the broker's topic permissions already stop a township's user made by
    ``wmsj township add``, and this stops one whose permissions were set more widely."""
    if await service.already_handled(event):
        return
    if reason := publisher_of(message).may_not_publish_type(event.type, event.PUBLISHED_BY):
        raise InvalidEvent(reason)
    await record_inspection(event)


async def record_inspection(event: InspectionRecordedEvent) -> bool:
    """Check the inspection against the rules, keep it and rescore its month before
    returning (the HTTP API records through here too: the office sees the new score at
    once). False if it was already handled."""
    check_inspection(event)
    touched: Touched = defaultdict(set)
    traceparent = current_traceparent()

    async def effect(session: AsyncClientSession) -> list[CloudEvent]:
        data = event.data
        touched.clear()  # a retried transaction starts again
        doc = data.model_dump(mode="python")
        before = await facts.put_inspection(doc, statement(event.time, data), session)
        if before is None:
            return []
        touched[data.unit_id].add(data.period)
        if before:  # a restatement may move the inspection to another unit or month
            touched[before["unit_id"]].add(before["period"])
        await mark(touched, session, traceparent)
        # Re-published as accepted, for the event archive (``wmsj replay`` rebuilds from it).
        return [service.accepted(event, data.unit_id)]

    if not await service.process(event, effect):
        return False
    await rescore_marked(sorted({mark_id(unit_id, m[:4]) for unit_id, ms in touched.items() for m in ms}))
    return True


def check_inspection(event: InspectionRecordedEvent) -> None:
    """Findings must count against a deduction item, assessments set a discretionary item
    within its range: what the current rules can score."""
    items = {i.id: i for i in rules.items}
    errors = []
    for n, finding in enumerate(event.data.findings):
        item = items.get(finding.rule)
        if not finding.veto and (item is None or item.measure != "findings" or item.mode != "deduction"):
            errors.append(
                FieldError(location=f"data.findings.{n}.rule", message=f"{finding.rule!r} is no finding item")
            )
    for n, assessment in enumerate(event.data.assessments):
        item = items.get(assessment.rule)
        if item is None or item.mode != "discretionary":
            errors.append(
                FieldError(
                    location=f"data.assessments.{n}.rule",
                    message=f"{assessment.rule!r} is no discretionary item",
                )
            )
        elif not item.minimum <= assessment.points <= item.points:
            errors.append(
                FieldError(
                    location=f"data.assessments.{n}.points",
                    message=f"must be within [{item.minimum:g}, {item.points:g}]",
                )
            )
    if errors:
        raise InvalidEvent(f"the inspection does not fit the rules {rules.version}", errors)


async def record_fact(event: CloudEvent, session: AsyncClientSession) -> Touched:
    """Store the fact; return the (unit → months) whose scores it may change."""
    data = event.data
    touched: Touched = defaultdict(set)
    if isinstance(event, UnitRegisteredEvent):
        before = await facts.put_unit(data.model_dump(mode="json"), statement(event.time, data), session)
        if before is not None and before.get("kind") != data.kind.value:
            # The kind decides which key projects are due: rescore every year it has scores in.
            for year in await scores.years_of_unit(data.unit_id, session):
                touched[data.unit_id] |= set(months_of(year))
        return touched
    if isinstance(event, ProjectListPublishedEvent):
        if await facts.put_projects(
            data.year, data.version, [p.model_dump(mode="json") for p in data.projects], session
        ):
            for unit_id in await scores.units_in_year(str(data.year), session):
                touched[unit_id] |= set(months_of(str(data.year)))
        return touched
    if isinstance(event, EvidenceReviewedEvent):
        # The review names only the evidence: its index entry says which activity holds it.
        review = {"evidence_id": data.evidence_id, "verdict": data.verdict}
        stated = statement(event.time, data)
        entry = await facts.indexed(data.evidence_id, session) or {}
        kept = entry.get("review")
        if kept and (kept["stated_at"], kept["stated"]) >= stated:
            return touched
        await facts.index_evidence(
            data.evidence_id, {"review": {**review, "stated_at": stated[0], "stated": stated[1]}}, session
        )
        if not entry.get("activity_id"):
            return touched  # the evidence is not known yet: it takes the review along when it is
        activity_id = entry["activity_id"]
        before = await facts.activity(activity_id, session)
        await facts.put_statement(activity_id, None, "reviews", "evidence_id", review, stated, session)
        return touched_by(before, await facts.activity(activity_id, session))
    before = await facts.activity(data.activity_id, session)
    if isinstance(event, EvidenceStoredEvent | EvidenceStoredV2Event):
        # Evidence counts for the month its activity was completed in (kept on the activity).
        # The evidence service announces it twice, v1 and v2 (with the report time): one
        # entry, merged.
        evidence = {
            "evidence_id": data.evidence_id,
            "stored_at": data.stored_at,
            "content_type": data.content_type,
        }
        if isinstance(event, EvidenceStoredV2Event):
            evidence["reported_at"] = event.data.reported_at
        await facts.add_evidence(data.activity_id, data.unit_id, evidence, session)
        indexed = await facts.index_evidence(data.evidence_id, {"activity_id": data.activity_id}, session)
        if indexed and indexed.get("review"):  # reviewed before it was known here
            kept = indexed["review"]
            review = {"evidence_id": data.evidence_id, "verdict": kept["verdict"]}
            stated = (kept["stated_at"], kept["stated"])
            await facts.put_statement(
                data.activity_id, data.unit_id, "reviews", "evidence_id", review, stated, session
            )
    elif isinstance(event, EvidenceFlaggedEvent):
        flag = data.model_dump(
            mode="json",
            include={
                "signal",
                "detail",
                "other_evidence_id",
                "other_activity_id",
                "other_unit_id",
                "flagged_at",
            },
        )
        await facts.flag_evidence(data.activity_id, data.unit_id, data.evidence_id, session, flag)
    elif isinstance(event, EvidenceCompleteEvent):
        await facts.put_complete(
            data.activity_id, data.unit_id, list(data.evidence_ids), statement(event.time, data), session
        )
    elif isinstance(event, OrderRatingCountedEvent):
        rating = {"order_id": data.order_id, "rating": data.rating, "rated_at": data.rated_at}
        await facts.put_statement(
            data.activity_id, None, "ratings", "order_id", rating, statement(event.time, data), session
        )
    elif isinstance(event, ActivityScheduledEvent):
        await facts.put_activity_part(
            data.activity_id,
            data.unit_id,
            "schedule",
            data.model_dump(exclude={"activity_id", "unit_id"}),
            statement(event.time, data),
            session,
        )
    elif isinstance(event, ActivityCompletedEvent):
        completion = {
            **data.model_dump(exclude={"activity_id", "unit_id"}),
            "period": period_of(data.ended_at),
        }
        await facts.put_activity_part(
            data.activity_id, data.unit_id, "completion", completion, statement(event.time, data), session
        )
    return touched_by(before, await facts.activity(data.activity_id, session))


def touched_by(before: dict | None, after: dict | None) -> Touched:  # type: ignore[type-arg]
    """The months of a completed activity, before and after a fact about it: a corrected
    report may move the activity to another month."""
    touched: Touched = defaultdict(set)
    for doc in (before, after):
        if doc and doc.get("completion") and doc.get("unit_id"):
            touched[doc["unit_id"]].add(doc["completion"]["period"])
    return touched


# ----------------------------------------------------------------------------- rescoring

marked = asyncio.Event()  # set when a handler marked months; wakes the rescorer


def mark_id(unit_id: str, year: str) -> str:
    return f"{unit_id}|{year}"


async def mark(touched: Touched, session: AsyncClientSession, traceparent: str | None) -> None:
    """Mark the months ``touched``, with the trace of the fact (``traceparent``): the
    rescoring's announcements continue it (``rescore_marked``)."""
    now = datetime.now(UTC)
    for unit_id in sorted(touched):
        by_year: dict[str, set[str]] = defaultdict(set)
        for month in touched[unit_id]:
            by_year[month[:4]].add(month)
        for year in sorted(by_year):
            await rescoring.mark(unit_id, year, by_year[year], now, session, traceparent)


async def run_rescorer() -> None:
    """Rescore what handlers marked, in batches: while one batch is rescored, the marks of
    the facts that arrive meanwhile gather into the next.

    Replicas: idempotent by construction, no lease (each replica rescores what its own
    handlers marked, at once): a rescoring takes its marks in its transaction, so two
    replicas taking the same marks conflict and the one retried finds them gone; its
    announcements are named after the mark's revision, the same for a retry."""
    await run_rounds(rescore_all_marked, settings.rescore_interval_s, "rescoring", log, wake=marked)


service.background.append(run_rescorer)


async def rescore_all_marked() -> int:
    """Rescore every marked unit-year, oldest first; how many were rescored."""
    done = 0
    while ids := await rescoring.oldest(settings.rescore_batch):
        done += await rescore_marked(ids)
    return done


async def rescore_marked(ids: list[str]) -> int:
    """Rescore the marked unit-years ``ids`` (those still marked) in one transaction that
    also removes their marks and stages the announcements of the scores that changed."""

    async def attempt(session: AsyncClientSession) -> int:
        marks = await rescoring.take(ids, session)
        now = datetime.now(UTC)
        by_year: dict[str, dict[str, set[str] | None]] = defaultdict(dict)
        # Announcements are named after their mark (made once, revised by each fact), so
        # the same rescoring retried is the same announcement and a later one is new.
        cause: dict[str, str] = {}
        for m in marks:
            by_year[m["year"]][m["unit_id"]] = set(m["months"])
            cause[m["_id"]] = f"rescore|{m['_id']}|{m['created']}|{m['revision']}"
        changed: dict[str, list[CloudEvent]] = defaultdict(list)
        for year in sorted(by_year):
            for score in await rescore_units(year, by_year[year], now, session):
                key = mark_id(score.unit_id, year)
                changed[key] += score_updates(cause[key], score, now)
        announcements: list[CloudEvent] = []
        for m in marks:
            if changed[m["_id"]]:
                announcements += traced_announcements(m, changed[m["_id"]])
        await stage(service.db, announcements, session)
        return len(marks)

    if not ids:
        return 0
    # In the service's batches (shared.uow), as the facts are: one transaction at a time in
    # this process, so a rescoring never conflicts with the facts that marked its units.
    done = await service.batcher.run(attempt)
    service.outbox.wake()
    return done


async def rescore_units(
    year: str, months_of_unit: dict[str, set[str] | None], now: datetime, session: AsyncClientSession
) -> list[Score]:
    """Rescore, for each unit, the months given (None: the whole year) and their quarters
    and the year, with one query per kind of fact for all the units; keep the scores and
    return those that changed."""
    unit_ids = sorted(months_of_unit)
    every_month = months_of(year)
    units = await facts.units_by_id(unit_ids, session)
    activities = await facts.completed_in_units(unit_ids, every_month, session)
    inspections = await facts.inspections_in_units(unit_ids, every_month, session)
    kept = await scores.of_units_year(unit_ids, year, session)
    projects = await facts.projects_of(int(year), session)
    new_and_kept: list[tuple[Score, Score | None]] = []
    for unit_id in unit_ids:

        def facts_of(period: str, unit_id: str = unit_id):  # type: ignore[no-untyped-def]
            return month_facts(units[unit_id], period, activities[unit_id], inspections[unit_id], projects)

        months = months_of_unit[unit_id]
        if months is None:
            new = score_year(year, facts_of, rules)
        else:
            new = rescore(sorted(months), facts_of, kept[unit_id], rules)
        # A period never scored reads as the empty score (``api.empty_score``): a new score
        # equal to it changes nothing anyone sees, so it is neither kept nor announced. (A
        # unit's first fact used to keep and announce its whole year: 17 scores, 29 events.)
        # Unless the year was scored under other rules: then every period is announced anew.
        other_rules = any(s.rules_version != rules.version for s in kept[unit_id].values())
        new_and_kept += [
            (
                new[p],
                kept[unit_id].get(p) or (None if other_rules else api.empty_score(Unit(unit_id), p, rules)),
            )
            for p in sorted(new)
        ]
    return await scores.put_many(new_and_kept, now, session)


def traced_announcements(mark: dict[str, Any], announcements: list[CloudEvent]) -> list[CloudEvent]:
    """A mark's announcements in the trace of the latest fact that marked it (the last cause
    of the new score): a span, child of that fact's handling, linked to the first fact's
    trace (the facts between are not linked), so a township's event and the ``score
    updated`` it caused are one trace."""
    with continued(
        "supervision publish wmsj.score.updated",
        mark.get("traceparent"),
        links=[mark.get("first_traceparent")],
        **{"wmsj.unit_id": mark["unit_id"], "wmsj.year": mark["year"]},
    ) as traceparent:
        return [with_traceparent(event, traceparent) for event in announcements]


def score_updates(cause_key: str, score: Score, now: datetime) -> list[CloudEvent]:
    """What announces a changed score: v2 for any period; v1 too for a month, so the office
    systems built on the first contract keep receiving what they did."""
    what = f"score:{score.unit_id}:{score.period}:{score.rules_version}"
    kind = granularity_of(score.period)
    v2 = ScoreUpdatedV2(
        unit_id=score.unit_id,
        period=score.period,
        period_kind=kind,
        score=score.score,
        max_score=score.max_score,
        bonus=score.bonus,
        vetoed=score.vetoed,
        rules_version=score.rules_version,
        breakdown=list(score.breakdown),
    )
    out: list[CloudEvent] = [
        ScoreUpdatedV2Event(
            id=derived_id(cause_key, f"{what}:v2"),
            source=service.bus.source,
            time=now,
            subject=score.unit_id,
            data=v2,
        )
    ]
    if kind == "month":
        v1 = ScoreUpdated.model_validate(v2.model_dump(include=set(ScoreUpdated.model_fields)))
        out.append(
            ScoreUpdatedEvent(
                id=derived_id(cause_key, what),
                source=service.bus.source,
                time=now,
                subject=score.unit_id,
                data=v1,
            )
        )
    return out


async def recompute_all() -> int:
    """Recompute every unit's every year from the facts with the loaded rules (replaying
    history, or after the rules changed). Returns how many scores changed; each is
    announced on the bus like any other change."""
    return sum([await recompute(unit_id, year) for unit_id, year in sorted(await facts.unit_year_ids())])


async def recompute(unit_id: str, year: str) -> int:
    """Recompute one unit's year in a transaction of its own, with the announcements of
    the scores it changed; how many changed."""

    async def attempt(session: AsyncClientSession) -> int:
        now = datetime.now(UTC)
        revision = await scores.touch_year(unit_id, year, session)
        changed = await rescore_units(year, {unit_id: None}, now, session)
        # Named after this rescoring of the unit's year (its revision), so a later
        # recompute that changes the same score again is a new announcement.
        cause = f"recompute|{unit_id}|{year}|{revision}"
        await stage(service.db, [e for s in changed for e in score_updates(cause, s, now)], session)
        return len(changed)

    changed = await service.batcher.run(attempt)
    if changed:
        service.outbox.wake()
    return changed


async def recompute_if_rules_changed() -> None:
    stale = await scores.versions() - {rules.version}
    if stale:
        log.info("rules changed: recomputing", extra={"from": sorted(stale), "to": rules.version})
        await recompute_all()


service.on_start += [
    facts.ensure_indexes,
    scores.ensure_indexes,
    rescoring.ensure_indexes,
    recompute_if_rules_changed,
]


office_desk = OfficeDesk(settings.office_amqp_url or settings.amqp_url)


async def close_office_desk_at_stop() -> None:
    """The office's connection (opened by the first action in the page) closes with the service."""
    try:
        await asyncio.Event().wait()
    finally:
        await office_desk.close()


service.background.append(close_office_desk_at_stop)


def create_app() -> FastAPI:
    def routes(app: FastAPI) -> None:
        api.mount(
            app,
            facts,
            scores,
            rules,
            record_inspection,
            recompute_all,
            settings.evidence_url,
            office_desk,
            activities_url=settings.activities_url,
            registry_url=settings.registry_url,
        )

    return service.http_app("wmsj supervision", routes)


asyncapi = service.asyncapi("Supervision scores of every unit, for the city civilization office.")
