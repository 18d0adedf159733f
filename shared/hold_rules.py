"""The pure rules of holding an early event (no I/O): what it waits for, when its hold has
run out, and what its sender is told then. ``shared.holds`` stores and releases held events
with them; the registry, which holds statements in its own unit placeholders, uses them too."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

Kind = Literal["unit", "activity", "order", "volunteer"]


@dataclass(frozen=True)
class Awaited:
    """What a held event waits for: a unit to be registered, an activity to be scheduled, an
    order to be placed, or a volunteer to be registered (hours are credited only to one)."""

    kind: Kind
    id: str

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.id}"

    @classmethod
    def from_key(cls, key: str) -> Awaited:
        kind, _, id_ = key.partition(":")
        if kind not in ("unit", "activity", "order", "volunteer") or not id_:
            raise ValueError(f"not an awaited key: {key!r}")
        return cls(kind, id_)  # type: ignore[arg-type]  # checked just above


def outstayed(waiting: Sequence[dict[str, Any]], now: datetime, hold: timedelta) -> list[dict[str, Any]]:
    """The held entries that have waited ``hold`` or longer as of ``now``. One held before
    holds were timed (no ``held_at``) has waited longer than any hold."""
    return [e for e in waiting if e.get("held_at") is None or e["held_at"] + hold <= now]


def duration(span: timedelta) -> str:
    """A hold's length as people say it: "1 h", "30 min", "90 s"."""
    seconds = int(span.total_seconds())
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def outstayed_reason(awaited: Awaited, hold: timedelta) -> str:
    """Why a held event is refused when its hold runs out: what it waited for, and what to do."""
    within = duration(hold)
    if awaited.kind == "activity":
        return (
            f"activity {awaited.id} was not scheduled within {within}; schedule it first "
            "(wmsj.activity.scheduled.v1), then submit the evidence again"
        )
    if awaited.kind == "volunteer":
        return (
            f"volunteer {awaited.id} was not registered within {within}; hours are credited only to "
            "a registered volunteer: register them first, then send the event again"
        )
    if awaited.kind == "order":
        return (
            f"order {awaited.id} was not placed (点单) within {within}; a rating (评单) follows its "
            "order: place the order first, then send the rating again"
        )
    return (
        f"unit {awaited.id} was not registered within {within}; register it first, then send the event again"
    )
