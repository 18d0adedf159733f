"""The event contract: every message on the bus is one of these.

One module per owner: ``units`` (registry), ``activities``, ``evidence``, ``supervision``,
``rejections`` (any service); ``envelope`` holds the CloudEvents envelope and the helpers.
Defining an event class registers it; importing this package imports every module, so
``EVENT_TYPES`` and ``parse_event`` know every event.

Versioning: the version is part of the type (``wmsj.unit.registered.v1``) and so of the
routing key. A published version never changes incompatibly; a breaking change is a new
``.v2`` model added next to the old one, and consumers keep accepting both.
"""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import Field, TypeAdapter

from shared.events.activities import (
    ActivityCompleted,
    ActivityCompletedEvent,
    ActivityScheduled,
    ActivityScheduledEvent,
    EvidenceRequirement,
    HoursCredited,
    HoursCreditedEvent,
    KeyProject,
    ProjectListPublished,
    ProjectListPublishedEvent,
)
from shared.events.envelope import (
    CITY_TZ,
    CONTENT_TYPE,
    EVENT_TYPES,
    CloudEvent,
    Data,
    FieldError,
    Id,
    Period,
    Sha256,
    derived_id,
    describe_errors,
    new_event,
    period_of,
    statement,
)
from shared.events.evidence import (
    EvidenceStored,
    EvidenceStoredEvent,
    EvidenceSubmitted,
    EvidenceSubmittedEvent,
)
from shared.events.rejections import EventRejected, EventRejectedEvent
from shared.events.supervision import ScoreItem, ScoreUpdated, ScoreUpdatedEvent
from shared.events.units import UnitKind, UnitRegistered, UnitRegisteredEvent

ALL_EVENTS: tuple[type[CloudEvent[Any]], ...] = tuple(EVENT_TYPES.values())
# What may come in on the ingress exchange, by whom (the office may send township events too).
TOWNSHIP_EVENTS = tuple(e for e in ALL_EVENTS if e.PUBLISHED_BY == "township")
OFFICE_EVENTS = tuple(e for e in ALL_EVENTS if e.PUBLISHED_BY == "office")

AnyEvent = Annotated[Union[ALL_EVENTS], Field(discriminator="type")]  # type: ignore[valid-type]  # noqa: UP007
_ANY_EVENT: TypeAdapter[CloudEvent[Any]] = TypeAdapter(AnyEvent)


def parse_event(raw: bytes | str | dict[str, Any]) -> CloudEvent[Any]:
    """Validate any known event; raises ``pydantic.ValidationError``."""
    if isinstance(raw, dict):
        return _ANY_EVENT.validate_python(raw)
    return _ANY_EVENT.validate_json(raw)


__all__ = [
    "ALL_EVENTS",
    "CITY_TZ",
    "CONTENT_TYPE",
    "EVENT_TYPES",
    "OFFICE_EVENTS",
    "TOWNSHIP_EVENTS",
    "ActivityCompleted",
    "ActivityCompletedEvent",
    "ActivityScheduled",
    "ActivityScheduledEvent",
    "AnyEvent",
    "CloudEvent",
    "Data",
    "EventRejected",
    "EventRejectedEvent",
    "EvidenceRequirement",
    "EvidenceStored",
    "EvidenceStoredEvent",
    "EvidenceSubmitted",
    "EvidenceSubmittedEvent",
    "FieldError",
    "HoursCredited",
    "HoursCreditedEvent",
    "Id",
    "KeyProject",
    "Period",
    "ProjectListPublished",
    "ProjectListPublishedEvent",
    "ScoreItem",
    "ScoreUpdated",
    "ScoreUpdatedEvent",
    "Sha256",
    "UnitKind",
    "UnitRegistered",
    "UnitRegisteredEvent",
    "derived_id",
    "describe_errors",
    "new_event",
    "parse_event",
    "period_of",
    "statement",
]
