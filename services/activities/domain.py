"""Activity rules, pure: no I/O.

Township systems retry and batch, so an activity's events come duplicated and out of order.
An activity is therefore kept as two independent parts — its schedule and its completion —
each set by the latest-stated event of its kind (by event time). A ``completed`` that arrives
before its ``scheduled`` is held, not refused, and the final state does not depend on the
order of arrival.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from shared.events import ActivityCompleted, ActivityScheduled, statement


@dataclass(frozen=True)
class Schedule:
    project_id: str | None
    title: str
    starts_at: datetime
    ends_at: datetime
    place: str
    stated_at: datetime
    stated: str  # canonical content: the tie-break between statements made at one time


@dataclass(frozen=True)
class Completion:
    ended_at: datetime
    volunteers: int
    service_hours: float
    people_served: int
    stated_at: datetime
    stated: str


@dataclass(frozen=True)
class Activity:
    activity_id: str
    unit_id: str
    schedule: Schedule | None = None
    completion: Completion | None = None

    @property
    def status(self) -> str:
        if self.completion is not None:
            # Completed before we heard of its schedule: held until the schedule arrives.
            return "completed" if self.schedule is not None else "completed-awaiting-schedule"
        return "scheduled"


class RefusedActivity(ValueError):
    pass


def _order(part: Schedule | Completion) -> tuple[datetime, str]:
    return part.stated_at, part.stated


def _same_unit(current: Activity | None, activity_id: str, unit_id: str) -> None:
    if current is not None and current.unit_id != unit_id:
        raise RefusedActivity(f"activity {activity_id} belongs to unit {current.unit_id}, not {unit_id}")


def apply_scheduled(
    current: Activity | None, data: ActivityScheduled, stated_at: datetime
) -> Activity | None:
    """The activity after this schedule, or None if nothing changes."""
    _same_unit(current, data.activity_id, data.unit_id)
    schedule = Schedule(
        project_id=data.project_id,
        title=data.title,
        starts_at=data.starts_at,
        ends_at=data.ends_at,
        place=data.place,
        stated_at=stated_at,
        stated=statement(stated_at, data)[1],
    )
    base = current or Activity(activity_id=data.activity_id, unit_id=data.unit_id)
    if base.schedule is not None and _order(base.schedule) >= _order(schedule):
        return None
    return replace(base, schedule=schedule)


def apply_completed(
    current: Activity | None, data: ActivityCompleted, stated_at: datetime
) -> Activity | None:
    """The activity after this completion report, or None if nothing changes."""
    _same_unit(current, data.activity_id, data.unit_id)
    completion = Completion(
        ended_at=data.ended_at,
        volunteers=data.volunteers,
        service_hours=data.service_hours,
        people_served=data.people_served,
        stated_at=stated_at,
        stated=statement(stated_at, data)[1],
    )
    base = current or Activity(activity_id=data.activity_id, unit_id=data.unit_id)
    if base.completion is not None and _order(base.completion) >= _order(completion):
        return None
    return replace(base, completion=completion)
