"""Evidence service: picture-and-text material (图文资料) kept as the audit trail.

A township uploads a file to the upload bucket (with a presigned POST policy it asks for,
or through this service's streaming HTTP upload), then publishes ``evidence submitted``
with its key, sha256, size and type (a claim check). This service checks that the activity
is scheduled, that the object is there and is what was declared, keeps it under a permanent
content-addressed key with object-lock retention (plus a thumbnail of a photo), records it,
and publishes ``evidence stored`` — or refuses it with the reason. A photo reused for
another activity or unit, or taken long before the activity, is flagged for the office
(``evidence flagged``) and counts only once the office accepts it (``evidence reviewed``).
When an activity's evidence meets its project's rule, ``evidence complete`` follows.

It learns activities, the key project list and units' townships from ``evidence.events``
(accepted facts). A township may submit evidence only about units in its own subtree, and
only the office reviews (``check_scope``); who sent it is the broker-checked ``user_id``.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import FastAPI
from faststream.rabbit.annotations import RabbitMessage
from pydantic import Field
from pymongo.asynchronous.client_session import AsyncClientSession

from services.evidence import api
from services.evidence.domain import (
    Counted,
    Occurrence,
    Photo,
    RefusedEvidence,
    check_activity,
    check_declared,
    check_object,
    check_owner,
    check_upload_key,
    fraud_signals,
    hash_bands,
    is_featureless,
    kind_of,
    permanent_key,
    progress,
)
from services.evidence.objects import ObjectStore, TakenUpload
from services.evidence.photos import READABLE, analyse_bytes
from services.evidence.settings import EvidenceSettings
from services.evidence.store import EvidenceStore
from shared.events import (
    ActivityScheduledEvent,
    CloudEvent,
    EventRejectedEvent,
    EvidenceStored,
    EvidenceStoredEvent,
    EvidenceSubmittedEvent,
    FieldError,
    ProjectListPublishedEvent,
    UnitRegisteredEvent,
    derived_id,
    statement,
)
from shared.events.evidence import (
    EvidenceComplete,
    EvidenceCompleteEvent,
    EvidenceFlagged,
    EvidenceFlaggedEvent,
    EvidenceReviewedEvent,
    EvidenceStoredV2,
    EvidenceStoredV2Event,
)
from shared.holds import Awaited, Held, Holds
from shared.identity import Publisher, owning_township, publisher_of
from shared.messaging import InvalidEvent, retry_transient
from shared.mongo import Document
from shared.ownership import owner_after
from shared.service import Service
from shared.topology import EVIDENCE_EVENTS, EVIDENCE_INGRESS

settings = EvidenceSettings()
service = Service("evidence", settings)
evidence = EvidenceStore(service.db)
objects = ObjectStore(settings.s3, settings.retention_days)
service.on_start += [evidence.ensure_indexes, objects.ensure_buckets]
service.on_stop.append(lambda: stop_image_pool())
service.readiness.append(objects.ping)
service.documents_publishing(
    EvidenceStoredEvent,
    EvidenceStoredV2Event,
    EvidenceFlaggedEvent,
    EvidenceCompleteEvent,
    EvidenceReviewedEvent,
    EventRejectedEvent,
)

IngressEvent = Annotated[EvidenceSubmittedEvent | EvidenceReviewedEvent, Field(discriminator="type")]
FactEvent = Annotated[
    ActivityScheduledEvent | ProjectListPublishedEvent | UnitRegisteredEvent, Field(discriminator="type")
]


@service.consumes(
    EVIDENCE_INGRESS, EvidenceSubmittedEvent, EvidenceReviewedEvent, title="evidence.ingress:evidence"
)
async def on_ingress(event: IngressEvent, message: RabbitMessage) -> None:
    """A unit reports picture-and-text material (上报图文资料), or the office reviews it (审核)."""
    # A redelivered duplicate changes nothing, even if its unit has since moved out of the
    # sender's township: it is not judged again. Nor is a duplicate of a held submission.
    if await service.already_handled(event):
        return
    who = publisher_of(message)  # the broker-checked user_id
    if isinstance(event, EvidenceSubmittedEvent):
        await on_evidence_submitted(event, who, message.reply_to or None)
    else:
        await check_scope(event, who)
        await on_evidence_reviewed(event)


async def check_scope(
    event: EvidenceSubmittedEvent | EvidenceReviewedEvent, who: Publisher
) -> Awaited | None:
    """Refuse a township's review (office only) or its evidence about a unit outside its
    subtree; return the unit to wait for if it is not known yet.

    Checked first, before the upload is read or kept. The office may submit and review
    anything: nothing is looked up. For a township the unit must be known here, to tell
    whose it is; the registry's accepted unit comes on ``evidence.events``, a longer way than
    the submission, so evidence about a unit not known yet is held until it arrives
    (``shared.holds``), and refused late if it does not within the hold. The activity's own
    unit must be the same unit (``check_activity``), so a township cannot attach evidence to
    another's activity either.
    """
    if who.is_office:
        return None
    if reason := who.may_not_publish_type(event.type, event.PUBLISHED_BY):
        raise InvalidEvent(reason)
    if isinstance(event, EvidenceSubmittedEvent):
        # Another township's evidence id or upload first: those refusals name nothing of
        # it, where the unit scope below would name the unit's township.
        try:
            check_upload_key(event.data.object_key, who.township_id)
            await _check_owner(event.data.evidence_id, who)
        except RefusedEvidence as refusal:
            raise refused(refusal) from refusal
        unit_id = event.data.unit_id
        unit = await retry_transient(lambda: evidence.unit(unit_id), what=f"looking up unit {unit_id}")
        if unit is None:
            return Awaited("unit", unit_id)
        if reason := who.may_not_publish_about(unit_id, unit["owner"]):
            raise InvalidEvent(reason)
    return None


async def on_evidence_submitted(
    event: EvidenceSubmittedEvent, who: Publisher, reply_to: str | None, held: Held | None = None
) -> None:
    """Evidence fresh from the queue, or ``held`` evidence now that what it waited for has
    arrived (the same rules, with the publisher stored when it was held). Evidence about a
    unit not known yet, or for an activity not scheduled yet (the schedule travels a longer
    way: township → activities → wmsj.events), is held until it arrives (``holds``)."""
    data = event.data
    taken: TakenUpload | None = None
    try:
        awaited = await check_scope(event, who)
        check_declared(data)  # what can be refused now is, held or not
        activity = None
        if awaited is None:
            activity = await retry_transient(
                lambda: evidence.known_activity(data.activity_id),
                what=f"looking up activity {data.activity_id}",
            )
            awaited = None if activity else Awaited("activity", data.activity_id)
        if awaited is not None:
            await holds.hold(event, who, reply_to, awaited, held)
            return
        assert activity is not None
        check_activity(data, activity, await _township_of(activity.unit_id), who.township_id)
        # Copied once: the checks, the analysis and the copy kept all read the same bytes.
        taken = await retry_transient(
            lambda: objects.take_upload(data.object_key), what=f"reading upload {data.object_key}"
        )
        check_object(data, taken.found if taken else None)
        assert taken is not None
        photo, thumbnail = await read_photo(taken, data.content_type)
        key = permanent_key(data)
        thumbnail_key = f"{key}.thumb.jpg" if thumbnail else None
        # Kept before it is recorded: a crash in between only repeats an idempotent copy. The
        # checked copy and its thumbnail are put at once (and beside the other handlers' puts).
        kept_copy = taken
        copies = [
            retry_transient(lambda: objects.keep(kept_copy, key, data.content_type), what=f"keeping {key}")
        ]
        if thumbnail and thumbnail_key:
            copies.append(
                retry_transient(
                    lambda: objects.keep_thumbnail(thumbnail_key, thumbnail), what=f"keeping {thumbnail_key}"
                )
            )
        await asyncio.gather(*copies)
    except RefusedEvidence as refusal:
        raise refused(refusal) from refusal
    finally:
        if taken is not None:
            taken.close()
    stored_at = datetime.now(UTC)

    async def effect(session: AsyncClientSession) -> list[CloudEvent]:
        stored = await evidence.get(data.evidence_id, session)
        try:  # again, in the transaction: another township may have stored it meanwhile
            check_owner(await _owner_of(stored), stored is not None, data.evidence_id, who.township_id)
        except RefusedEvidence as refusal:
            raise refused(refusal) from refusal
        owner = owner_after(
            await _owner_of(stored),
            who.township_id,
            await _township_of(data.unit_id) if who.is_office else None,
        )
        bands = hash_bands(photo.dhash) if photo and not is_featureless(photo.dhash) else []
        looked_up = await evidence.claim_fingerprints(data.sha256, bands, session)
        others = [occurrence(d) for d in await evidence.candidates(data.sha256, looked_up, session)]
        flags = fraud_signals(data, photo, activity, others)
        await evidence.put(
            {
                "_id": data.evidence_id,
                "activity_id": data.activity_id,
                "unit_id": data.unit_id,
                "object_key": key,
                "upload_key": data.object_key,
                "sha256": data.sha256,
                "size": data.size,
                "content_type": data.content_type,
                "caption": data.caption,
                "submitted_by": event.source,
                "owner": owner,  # the township that first stated the evidence id
                "reported_at": event.time,
                "stored_at": stored_at,
                "thumbnail_key": thumbnail_key,
                "taken_at": photo.taken_at if photo else None,
                "gps": list(photo.gps) if photo and photo.gps else None,
                "dhash": f"{photo.dhash:016x}" if photo else None,
                "dhash_bands": bands,
                "flags": [
                    {
                        "signal": f.signal,
                        "detail": f.detail,
                        "other_evidence_id": f.other.evidence_id if f.other else None,
                        "other_activity_id": f.other.activity_id if f.other else None,
                        "other_unit_id": f.other.unit_id if f.other else None,
                        "distance": f.distance,
                    }
                    for f in flags
                ],
                "review": None,
            },
            session,
        )
        kept = EvidenceStored(
            evidence_id=data.evidence_id,
            activity_id=data.activity_id,
            unit_id=data.unit_id,
            object_key=key,
            sha256=data.sha256,
            size=data.size,
            content_type=data.content_type,
            stored_at=stored_at,
        )
        # v2 adds the township's report time (for timeliness); v1 goes on beside it for
        # consumers built on it.
        published: list[CloudEvent] = [
            EvidenceStoredEvent(
                id=derived_id(event.key, "stored"),
                source=service.bus.source,
                time=stored_at,
                subject=data.evidence_id,
                data=kept,
            ),
            EvidenceStoredV2Event(
                id=derived_id(event.key, "stored-v2"),
                source=service.bus.source,
                time=stored_at,
                subject=data.evidence_id,
                data=EvidenceStoredV2(**kept.model_dump(), reported_at=event.time),
            ),
        ]
        for n, flag in enumerate(flags):
            published.append(
                EvidenceFlaggedEvent(
                    id=derived_id(event.key, f"flag-{n}"),
                    source=service.bus.source,
                    time=stored_at,
                    subject=data.evidence_id,
                    data=EvidenceFlagged(
                        evidence_id=data.evidence_id,
                        activity_id=data.activity_id,
                        unit_id=data.unit_id,
                        signal=flag.signal,
                        detail=flag.detail,
                        other_evidence_id=flag.other.evidence_id if flag.other else None,
                        other_activity_id=flag.other.activity_id if flag.other else None,
                        other_unit_id=flag.other.unit_id if flag.other else None,
                        distance=flag.distance,
                        flagged_at=stored_at,
                    ),
                )
            )
        item = Counted(
            data.evidence_id,
            kind_of(data.content_type),
            data.sha256,
            counts=not flags,
            awaiting_review=bool(flags),
        )
        return published + await count_on_activity(event.key, data.activity_id, item, session)

    if held is None:
        await service.process(event, effect)
    else:
        await holds.settle(held, effect)


async def on_evidence_reviewed(event: EvidenceReviewedEvent) -> None:
    data = event.data
    stated = statement(event.time, data)

    async def effect(session: AsyncClientSession) -> list[CloudEvent]:
        doc = await evidence.get(data.evidence_id, session)
        if doc is None:
            raise InvalidEvent(f"unknown evidence {data.evidence_id!r}: only stored evidence can be reviewed")
        current = doc.get("review")
        if current and (current["stated_at"], current["stated"]) >= stated:
            return []  # a later review is already kept
        doc["review"] = {**data.model_dump(), "stated_at": stated[0], "stated": stated[1]}
        await evidence.put(doc, session)
        item = Counted(
            doc["_id"], kind_of(doc["content_type"]), doc["sha256"], counts=data.verdict == "accepted"
        )
        return [
            service.accepted(event, subject=data.evidence_id),
            *await count_on_activity(event.key, doc["activity_id"], item, session),
        ]

    await service.process(event, effect)


@service.consumes(
    EVIDENCE_EVENTS,
    ActivityScheduledEvent,
    ProjectListPublishedEvent,
    UnitRegisteredEvent,
    title="evidence.events:activities-projects-and-units",
)
async def on_fact(event: FactEvent) -> None:
    """An accepted schedule (what evidence belongs to), key project list (what it must hold)
    or unit (which township it is in: whose evidence it may be); then the submissions held
    for that schedule or unit."""

    async def effect(session: AsyncClientSession) -> list[CloudEvent]:
        if isinstance(event, UnitRegisteredEvent):
            unit = event.data
            owner = owning_township(unit.unit_id, unit.kind, unit.township_id)
            await evidence.put_unit(unit.unit_id, owner, statement(event.time, unit), session)
            return []
        if isinstance(event, ActivityScheduledEvent):
            data = event.data
            fields = data.model_dump(include={"activity_id", "unit_id", "project_id", "starts_at", "ends_at"})
            if not await evidence.put_schedule(fields, statement(event.time, data), session):
                return []
            scheduled = await evidence.activity(data.activity_id, session)
            changed = [scheduled] if scheduled else []
        else:
            projects = event.data
            ids = await evidence.put_projects(projects.year, projects.version, projects.projects, session)
            changed = await evidence.activities_of(ids, session) if ids else []
        published: list[CloudEvent] = []
        for doc in changed:  # the rule an activity's evidence is held to may have changed
            if doc and doc.get("evidence"):
                published += await reassess(event.key, doc, doc["evidence"], session)
        return published

    await service.process(event, effect)
    # Also for a duplicate: the first delivery may have died before it released them.
    if isinstance(event, UnitRegisteredEvent):
        await holds.release(Awaited("unit", event.data.unit_id))
    elif isinstance(event, ActivityScheduledEvent):
        await holds.release(Awaited("activity", event.data.activity_id))


async def known(awaited: Awaited) -> bool:
    """Whether what a held submission waits for is known here now."""
    if awaited.kind == "activity":
        return await evidence.known_activity(awaited.id) is not None
    return await evidence.unit(awaited.id) is not None


async def handle_held(held: Held) -> None:
    assert isinstance(held.event, EvidenceSubmittedEvent)  # the only kind held here
    await on_evidence_submitted(held.event, held.who, held.reply_to, held)


holds = Holds(service, settings, known, handle_held)


# ----------------------------------------------------------------------------- helpers


def refused(problem: RefusedEvidence) -> InvalidEvent:
    """A domain refusal as the sender hears it: the reason, and the field it concerns."""
    return InvalidEvent(str(problem), [FieldError(location=problem.field, message=str(problem))])


async def _township_of(unit_id: str) -> str | None:
    unit = await retry_transient(lambda: evidence.unit(unit_id), what=f"looking up unit {unit_id}")
    return unit["owner"] if unit else None


async def _check_owner(evidence_id: str, who: Publisher) -> None:
    """Before the upload is read: is this evidence id another township's?"""
    stored = await retry_transient(
        lambda: evidence.get(evidence_id), what=f"looking up evidence {evidence_id}"
    )
    check_owner(await _owner_of(stored), stored is not None, evidence_id, who.township_id)


async def _owner_of(stored: Document | None) -> str | None:
    """The township a stored piece of evidence is recorded as owned by; one kept before owners
    were recorded is its unit's township's."""
    if stored is None:
        return None
    if "owner" in stored:
        return stored["owner"]  # type: ignore[no-any-return]
    return await _township_of(stored["unit_id"])


async def read_photo(taken: TakenUpload, content_type: str) -> tuple[Photo | None, bytes | None]:
    """The photo's hash, EXIF facts and thumbnail, from the checked copy (the bytes that are
    kept), worked out in another process: decoding and resizing hold the GIL, and in a thread
    they stalled every other handler (and the transactions of the batch waiting for them) for
    as long as a photo took."""
    if content_type not in READABLE:
        return None, None
    data = taken.reader().read()  # the checked copy, the one that is kept
    with service.metrics.analysing():
        return await asyncio.get_running_loop().run_in_executor(image_pool(), analyse_bytes, data)


_pool: ProcessPoolExecutor | None = None


def image_pool() -> ProcessPoolExecutor:
    """The photo readers: one process per core (``image_workers``), started on first use
    (``spawn``: a forked copy of this process would inherit its threads' locks)."""
    global _pool
    if _pool is None:
        workers = settings.image_workers or os.cpu_count() or 1
        _pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    return _pool


async def stop_image_pool() -> None:
    global _pool
    if _pool is not None:
        _pool.shutdown(wait=False, cancel_futures=True)
        _pool = None


def occurrence(doc: Document) -> Occurrence:
    return Occurrence(
        evidence_id=doc["_id"],
        activity_id=doc["activity_id"],
        unit_id=doc["unit_id"],
        sha256=doc["sha256"],
        dhash=int(doc["dhash"], 16) if doc.get("dhash") else None,
    )


async def count_on_activity(
    cause: str, activity_id: str, item: Counted, session: AsyncClientSession
) -> list[CloudEvent]:
    doc = await evidence.activity(activity_id, session)
    if doc is None:
        return []
    items = [i for i in doc.get("evidence", []) if i["evidence_id"] != item.evidence_id]
    items.append(asdict(item))
    return await reassess(cause, doc, items, session)


async def reassess(
    cause: str, doc: Document, items: list[dict[str, Any]], session: AsyncClientSession
) -> list[CloudEvent]:
    """Measure the activity's evidence against its project's rule; announce it complete
    the moment it becomes so."""
    requirement = await evidence.requirement(doc.get("project_id"), session)
    now = datetime.now(UTC)
    reached = progress(requirement, [Counted(**i) for i in items])
    changes: dict[str, Any] = {
        "evidence": items,
        "requirement": requirement.model_dump(),
        "photos": reached.photos,
        "text_reports": reached.text_reports,
        "missing": reached.missing,
        "complete": reached.complete,
    }
    published: list[CloudEvent] = []
    if reached.complete and not doc.get("complete"):
        changes["completed_at"] = now
        published.append(
            EvidenceCompleteEvent(
                id=derived_id(cause, f"complete:{doc['_id']}"),
                source=service.bus.source,
                time=now,
                subject=doc["_id"],
                data=EvidenceComplete(
                    activity_id=doc["_id"],
                    unit_id=doc["unit_id"],
                    project_id=doc.get("project_id"),
                    min_photos=requirement.min_photos,
                    text_report_required=requirement.text_report,
                    photos=reached.photos,
                    text_reports=reached.text_reports,
                    evidence_ids=reached.evidence_ids,
                    completed_at=now,
                ),
            )
        )
    await evidence.set_activity(doc["_id"], changes, session)
    return published


def create_app() -> FastAPI:
    def routes(app: FastAPI) -> None:
        app.include_router(api.router(evidence, objects, settings))
        api.allow_dashboard(app, settings)
        api.own_limits(app)

    return service.http_app("wmsj evidence", routes)


asyncapi = service.asyncapi("Picture-and-text evidence: verified, kept, immutable, reviewable.")
