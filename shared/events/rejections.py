"""What a publisher is told when an event is refused (any service)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import model_validator

from shared.events.envelope import CloudEvent, Data, FieldError


class EventRejected(Data):
    """An incoming event was refused; its publisher can act on ``reason`` and ``errors``
    (never empty: each names the field it concerns, ``(event)`` for the event as a whole).
    A refusal is final: the refused message is not kept."""

    CHECK_TEXT = False  # it quotes what it refused

    rejected_source: str | None
    rejected_id: str | None
    rejected_type: str | None
    reason: str
    errors: list[FieldError] = []  # noqa: RUF012  # pydantic copies defaults; the schema keeps "default": []
    rejected_by: str

    @model_validator(mode="before")
    @classmethod
    def _errors_name_a_field(cls, values: Any) -> Any:
        # Every refusal names what it concerns: a refusal built without errors says its
        # reason about the event as a whole rather than nothing.
        if isinstance(values, dict) and not values.get("errors") and isinstance(values.get("reason"), str):
            return {**values, "errors": [{"location": "(event)", "message": values["reason"]}]}
        return values


class EventRejectedEvent(CloudEvent[EventRejected]):
    """An incoming event was refused, with the reason and the fields at fault."""

    type: Literal["wmsj.event.rejected.v1"] = "wmsj.event.rejected.v1"
