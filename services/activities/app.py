"""Activities service: volunteer activities scheduled and run against the key project list.

Reads township submissions from ``activities.ingress``; accepted schedules and completions
are stored and re-published on ``wmsj.events`` for supervision.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import FastAPI
from faststream.middlewares import AckPolicy
from pydantic import Field
from pymongo.asynchronous.client_session import AsyncClientSession

from services.activities import api
from services.activities.domain import RefusedActivity, apply_completed, apply_scheduled
from services.activities.settings import ActivitiesSettings
from services.activities.store import ActivityStore
from shared.events import (
    ActivityCompletedEvent,
    ActivityScheduledEvent,
    CloudEvent,
    EventRejectedEvent,
)
from shared.messaging import InvalidEvent, event_decoder
from shared.service import Service
from shared.topology import ACTIVITIES_INGRESS

service = Service("activities", ActivitiesSettings())
activities = ActivityStore(service.db)
service.on_start.append(activities.ensure_indexes)
service.documents_publishing(ActivityScheduledEvent, ActivityCompletedEvent, EventRejectedEvent)

ActivityEvent = Annotated[ActivityScheduledEvent | ActivityCompletedEvent, Field(discriminator="type")]


@service.broker.subscriber(
    ACTIVITIES_INGRESS,
    decoder=event_decoder(ActivityScheduledEvent, ActivityCompletedEvent),
    ack_policy=AckPolicy.REJECT_ON_ERROR,
    no_reply=True,
    title="activities.ingress:activity",
)
async def on_activity_event(event: ActivityEvent) -> None:
    """A unit schedules an activity (安排活动) or reports it done (活动完成)."""

    async def effect(session: AsyncClientSession) -> list[CloudEvent]:
        current = await activities.get(event.data.activity_id, session)
        try:
            if isinstance(event, ActivityScheduledEvent):
                updated = apply_scheduled(current, event.data, event.time)
            else:
                updated = apply_completed(current, event.data, event.time)
        except RefusedActivity as refusal:
            raise InvalidEvent(str(refusal)) from refusal
        if updated is None:
            return []
        await activities.put(updated, session)
        return [service.accepted(event, subject=updated.activity_id)]

    await service.process(event, effect)


def create_app() -> FastAPI:
    def routes(app: FastAPI) -> None:
        app.include_router(api.router(activities))

    return service.http_app("wmsj activities", routes)


asyncapi = service.asyncapi("Volunteer activities scheduled and run against the key project list.")
