"""Registry service: the source of truth about units (who is who in the programme).

Reads township submissions from ``registry.ingress``, refuses what breaks the rules, stores
the rest and re-publishes it as accepted facts on ``wmsj.events``. Also answers for the
ingress exchange's unrouted messages: a township that sends an event type nobody owns is
told so.
"""

from __future__ import annotations

from fastapi import FastAPI
from faststream.middlewares import AckPolicy
from faststream.rabbit.annotations import RabbitMessage
from pymongo.asynchronous.client_session import AsyncClientSession

from services.registry import api
from services.registry.domain import RefusedUnit, apply_registration
from services.registry.settings import RegistrySettings
from services.registry.store import UnitStore
from shared.events import (
    TOWNSHIP_EVENTS,
    CloudEvent,
    EventRejectedEvent,
    UnitRegisteredEvent,
)
from shared.messaging import InvalidEvent, event_decoder
from shared.service import Service
from shared.topology import REGISTRY_INGRESS, REGISTRY_UNROUTED

service = Service("registry", RegistrySettings())
units = UnitStore(service.db)
service.on_start.append(units.ensure_indexes)
service.documents_publishing(UnitRegisteredEvent, EventRejectedEvent)


@service.broker.subscriber(
    REGISTRY_INGRESS,
    decoder=event_decoder(UnitRegisteredEvent),
    ack_policy=AckPolicy.REJECT_ON_ERROR,
    no_reply=True,
    title="registry.ingress:unit-registered",
)
async def on_unit_registered(event: UnitRegisteredEvent) -> None:
    """A township states a unit's details (登记单位)."""

    async def effect(session: AsyncClientSession) -> list[CloudEvent]:
        current = await units.get(event.data.unit_id, session)
        try:
            unit = apply_registration(current, event.data, event.time)
        except RefusedUnit as refusal:
            raise InvalidEvent(str(refusal)) from refusal
        if unit is None:
            return []
        await units.put(unit, session)
        return [service.accepted(event, subject=unit.unit_id)]

    await service.process(event, effect)


async def _raw(message: RabbitMessage, _original: object) -> bytes:
    return message.body


@service.broker.subscriber(
    REGISTRY_UNROUTED,
    decoder=_raw,
    ack_policy=AckPolicy.REJECT_ON_ERROR,
    no_reply=True,
    title="registry.unrouted:unknown-type",
    include_in_schema=False,
)
async def on_unrouted(body: bytes, message: RabbitMessage) -> None:
    """A message on the ingress exchange whose routing key no service owns."""
    known = ", ".join(e.TYPE for e in TOWNSHIP_EVENTS)
    raise InvalidEvent(
        f"no service accepts routing key {message.raw_message.routing_key!r} on the ingress "
        f"exchange; township systems may publish: {known} (routing key = event type)"
    )


def create_app() -> FastAPI:
    def routes(app: FastAPI) -> None:
        app.include_router(api.router(units))

    return service.http_app("wmsj registry", routes)


asyncapi = service.asyncapi("Units of the civilization-practice programme: who is who.")
