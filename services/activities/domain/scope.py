"""Which units a township's submission is about, pure.

A township may publish only about units in its own subtree (``shared.identity``); the
activities service looks up the owning township of every unit an event names and refuses
the event if one is not the sender's. The units named:

- an activity's lifecycle, attendance and 补录: the activity's ``unit_id`` (the activity's
  own unit must be the same, which the lifecycle and attendance rules check);
- 点单 (placed): the unit the order is placed with, and the requesting village if a village
  orders; 派单 (dispatched): the dispatcher and the team; 接单 (answered): the team;
- 评单 (rated): the units of the order as it was placed (a resident's id is no unit), so a
  rating can only come from the township the order was placed in.

An order that reached the city's centre by escalation is the office's to dispatch: the
centre is in no township.
"""

from __future__ import annotations

from typing import Any

from shared.events import Data
from shared.events.activities import (
    ActivityCancelled,
    ActivityCompleted,
    ActivityPublished,
    ActivityScheduled,
    HoursSupplemented,
    OrderAnswered,
    OrderDispatched,
    OrderPlaced,
    OrderRated,
    VolunteerAttendance,
)

_OF_AN_ACTIVITY = (
    ActivityScheduled,
    ActivityCompleted,
    ActivityPublished,
    ActivityCancelled,
    VolunteerAttendance,
    HoursSupplemented,
)


def units_named(data: Data, placements: list[dict[str, Any]] | None = None) -> list[str]:
    """The units ``data`` is about, each once, in the order named. ``placements`` are the
    order's placed statements (their data), needed for a rating."""
    named: list[str]
    if isinstance(data, _OF_AN_ACTIVITY):
        named = [data.unit_id]
    elif isinstance(data, OrderPlaced):
        named = [data.unit_id, *([data.requester_id] if data.requester_kind == "village" else [])]
    elif isinstance(data, OrderDispatched):
        named = [data.dispatcher_id, data.team_id]
    elif isinstance(data, OrderAnswered):
        named = [data.team_id]
    elif isinstance(data, OrderRated):
        named = [
            unit
            for placed in placements or []
            for unit in [
                placed["unit_id"],
                *([placed["requester_id"]] if placed["requester_kind"] == "village" else []),
            ]
        ]
    else:
        raise TypeError(f"{type(data).__name__} names no unit a township may publish about")
    return list(dict.fromkeys(named))
