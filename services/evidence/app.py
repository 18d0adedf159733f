"""Evidence service: picture-and-text material (图文资料) kept as the audit trail.

A township uploads a file to the upload bucket, then publishes ``evidence submitted`` with
its key, sha256, size and type (a claim check). This service checks that the object is
there and is what was declared, keeps it under a permanent content-addressed key with
object-lock retention, records it, and publishes ``evidence stored`` — or refuses it with
the reason.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import FastAPI
from faststream.middlewares import AckPolicy
from pymongo.asynchronous.client_session import AsyncClientSession

from services.evidence import api
from services.evidence.domain import RefusedEvidence, check_declared, check_object, permanent_key
from services.evidence.objects import ObjectStore
from services.evidence.settings import EvidenceSettings
from services.evidence.store import EvidenceStore
from shared.events import (
    CloudEvent,
    EventRejectedEvent,
    EvidenceStored,
    EvidenceStoredEvent,
    EvidenceSubmittedEvent,
    derived_id,
)
from shared.messaging import InvalidEvent, event_decoder, retry_transient
from shared.service import Service
from shared.topology import EVIDENCE_INGRESS

settings = EvidenceSettings()
service = Service("evidence", settings)
evidence = EvidenceStore(service.db)
objects = ObjectStore(settings.s3, settings.retention_days)
service.on_start += [evidence.ensure_indexes, objects.ensure_buckets]
service.readiness.append(objects.ping)
service.documents_publishing(EvidenceStoredEvent, EventRejectedEvent)


@service.broker.subscriber(
    EVIDENCE_INGRESS,
    decoder=event_decoder(EvidenceSubmittedEvent),
    ack_policy=AckPolicy.REJECT_ON_ERROR,
    no_reply=True,
    title="evidence.ingress:evidence-submitted",
)
async def on_evidence_submitted(event: EvidenceSubmittedEvent) -> None:
    """A unit reports picture-and-text material for an activity (上报图文资料)."""
    data = event.data
    if await service.already_handled(event):
        return
    try:
        check_declared(data)
        found = await retry_transient(
            lambda: objects.inspect_upload(data.object_key), what=f"reading upload {data.object_key}"
        )
        check_object(data, found)
    except RefusedEvidence as refusal:
        raise InvalidEvent(str(refusal)) from refusal
    key = permanent_key(data)
    # Kept before it is recorded: a crash in between only repeats an idempotent copy.
    await retry_transient(
        lambda: objects.keep(data.object_key, key, data.content_type), what=f"keeping {key}"
    )
    stored_at = datetime.now(UTC)

    async def effect(session: AsyncClientSession) -> list[CloudEvent]:
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
                "reported_at": event.time,
                "stored_at": stored_at,
            },
            session,
        )
        stored = EvidenceStored(
            evidence_id=data.evidence_id,
            activity_id=data.activity_id,
            unit_id=data.unit_id,
            object_key=key,
            sha256=data.sha256,
            size=data.size,
            content_type=data.content_type,
            stored_at=stored_at,
        )
        return [
            EvidenceStoredEvent(
                id=derived_id(event.key, "stored"),
                source=service.bus.source,
                time=stored_at,
                subject=data.evidence_id,
                data=stored,
            )
        ]

    await service.process(event, effect)


def create_app() -> FastAPI:
    def routes(app: FastAPI) -> None:
        app.include_router(api.router(evidence))

    return service.http_app("wmsj evidence", routes)


asyncapi = service.asyncapi("Picture-and-text evidence: verified, kept, immutable.")
