"""What a publisher is told when an event is refused (any service)."""

from __future__ import annotations

from typing import Literal

from shared.events.envelope import CloudEvent, Data, FieldError


class EventRejected(Data):
    """An incoming event was refused; its publisher can act on ``reason`` and ``errors``.
    The original message is in the dead-letter queue."""

    rejected_source: str | None
    rejected_id: str | None
    rejected_type: str | None
    reason: str
    errors: list[FieldError] = []  # noqa: RUF012  # pydantic copies defaults; the schema keeps "default": []
    rejected_by: str


class EventRejectedEvent(CloudEvent[EventRejected]):
    """An incoming event was refused, with the reason; the original is dead-lettered."""

    type: Literal["wmsj.event.rejected.v1"] = "wmsj.event.rejected.v1"
