"""Supervision service: scores every unit's volunteer-service record for the city office.

Consumes the accepted facts on ``wmsj.events`` (units, activities, stored evidence), keeps
what scoring needs, recomputes the scores each fact touches, and publishes
``score updated`` whenever a score changes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import FastAPI
from faststream.middlewares import AckPolicy
from pydantic import Field
from pymongo.asynchronous.client_session import AsyncClientSession

from services.supervision import api
from services.supervision.domain import score_month
from services.supervision.settings import SupervisionSettings
from services.supervision.store import FactStore, ScoreStore
from shared.events import (
    ActivityCompletedEvent,
    ActivityScheduledEvent,
    CloudEvent,
    EvidenceStoredEvent,
    ScoreUpdated,
    ScoreUpdatedEvent,
    UnitRegisteredEvent,
    derived_id,
    period_of,
    statement,
)
from shared.messaging import event_decoder
from shared.service import Service
from shared.topology import SUPERVISION_EVENTS

service = Service("supervision", SupervisionSettings())
facts = FactStore(service.db)
scores = ScoreStore(service.db)
service.on_start += [facts.ensure_indexes, scores.ensure_indexes]
service.documents_publishing(ScoreUpdatedEvent)

FactEvent = Annotated[
    UnitRegisteredEvent | ActivityScheduledEvent | ActivityCompletedEvent | EvidenceStoredEvent,
    Field(discriminator="type"),
]


@service.broker.subscriber(
    SUPERVISION_EVENTS,
    decoder=event_decoder(
        UnitRegisteredEvent, ActivityScheduledEvent, ActivityCompletedEvent, EvidenceStoredEvent
    ),
    ack_policy=AckPolicy.REJECT_ON_ERROR,
    no_reply=True,
    title="supervision.events:facts",
)
async def on_fact(event: FactEvent) -> None:
    """An accepted fact about a unit, an activity or its evidence."""

    async def effect(session: AsyncClientSession) -> list[CloudEvent]:
        touched = await record_fact(event, session)
        return await rescore(event, touched, session)

    await service.process(event, effect)


async def record_fact(event: CloudEvent, session: AsyncClientSession) -> set[tuple[str, str]]:
    """Store the fact; return the (unit, month) scores it may change."""
    data = event.data
    if isinstance(event, UnitRegisteredEvent):
        await facts.put_unit(data.model_dump(mode="json"), statement(event.time, data), session)
        return set()
    if isinstance(event, ActivityScheduledEvent):
        await facts.put_activity_part(
            data.activity_id,
            data.unit_id,
            "schedule",
            data.model_dump(exclude={"activity_id", "unit_id"}),
            statement(event.time, data),
            session,
        )
        return set()
    if isinstance(event, ActivityCompletedEvent):
        before = await facts.activity(data.activity_id, session)
        completion = {
            **data.model_dump(exclude={"activity_id", "unit_id"}),
            "period": period_of(data.ended_at),
        }
        changed = await facts.put_activity_part(
            data.activity_id, data.unit_id, "completion", completion, statement(event.time, data), session
        )
        touched = {(data.unit_id, completion["period"])} if changed else set()
        if changed and before and before.get("completion"):  # a corrected report may move months
            touched.add((before["unit_id"], before["completion"]["period"]))
        return touched
    # Evidence stored: it counts for the month its activity was completed in.
    await facts.add_evidence(data.evidence_id, data.activity_id, session)
    activity = await facts.activity(data.activity_id, session)
    if activity and activity.get("completion"):
        return {(activity["unit_id"], activity["completion"]["period"])}
    return set()


async def rescore(
    cause: CloudEvent,
    touched: set[tuple[str, str]],
    session: AsyncClientSession,
) -> list[CloudEvent]:
    updates: list[CloudEvent] = []
    now = datetime.now(UTC)
    for unit_id, period in sorted(touched):
        score = score_month(unit_id, period, await facts.completed_in(unit_id, period, session))
        if not await scores.put(score, now, session):
            continue
        updates.append(
            ScoreUpdatedEvent(
                id=derived_id(cause.key, f"score:{unit_id}:{period}"),
                source=service.bus.source,
                time=now,
                subject=unit_id,
                data=ScoreUpdated(
                    unit_id=unit_id,
                    period=period,
                    score=score.score,
                    max_score=score.max_score,
                    rules_version=score.rules_version,
                    breakdown=list(score.breakdown),
                ),
            )
        )
    return updates


def create_app() -> FastAPI:
    def routes(app: FastAPI) -> None:
        app.include_router(api.router(facts, scores))

    return service.http_app("wmsj supervision", routes)


asyncapi = service.asyncapi("Supervision scores of every unit, for the city civilization office.")
