"""An activity's lifecycle, pure: no I/O, and the clock is a ``now`` parameter.

planned → published → ongoing → completed, or cancelled; rescheduled by a new ``scheduled``
statement (the latest wins; the first-stated time window is kept, so a reschedule shows).

Township systems retry and batch, so an activity's events come duplicated and out of order.
An activity is therefore kept as independent parts — schedule, publication, cancellation,
completion — each set by the latest-stated event of its kind (by event time, then canonical
content), and its status is *derived* from the parts. A part that arrives before the
schedule (a completion, a publication, a cancellation) is held, not refused, and reconciled
when the schedule comes; the final state does not depend on the order of arrival.

Rules. Refused (the township gets ``wmsj.event.rejected.v1``; nothing is stored) when the
event alone shows it is wrong:
- a statement about an activity id another township stated first (``check_owner``; the
  reason names nothing of that township; the office may state anything);
- a statement dated in the future (past ``now`` + ``CLOCK_SKEW``): a wrong clock would
  otherwise win every later "latest statement" comparison;
- a statement about an activity from another unit than the one it belongs to;
- a completion whose ``ended_at`` is after its own event time (it completes only after its
  end), or that reports service hours without volunteers. What a completion records —
  volunteers, service hours, people served — is required by the event contract.

Rules between parts are applied when the status is derived, never by refusing: a refusal
would be judged against whatever schedule happened to have arrived, and a reschedule arriving
after it would then make the outcome depend on arrival order. So:
- only future activities can be published: a publication stated at or after the (current)
  scheduled start does not take effect — the activity stays "planned";
- an activity completes only after its end time: a completion stated before the (current)
  scheduled end does not take effect;
- between a cancellation and a completion the later-stated decides; a schedule stated after
  a cancellation revives the activity.
Each part that does not take effect is listed, with the reason, in ``problems`` (and in the
API), so the township sees why.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from shared.events import ActivityCompleted, ActivityScheduled, Data, statement
from shared.events.activities import ActivityCancelled, ActivityPublished
from shared.ownership import Owner, foreign, not_yours, owner_after

CLOCK_SKEW = timedelta(minutes=5)


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
class Publication:
    capacity: int
    stated_at: datetime
    stated: str


@dataclass(frozen=True)
class Cancellation:
    reason: str
    stated_at: datetime
    stated: str


@dataclass(frozen=True)
class Completion:
    ended_at: datetime
    volunteers: int
    service_hours: float
    people_served: int
    stated_at: datetime
    stated: str


Part = Schedule | Publication | Cancellation | Completion


@dataclass(frozen=True)
class Activity:
    activity_id: str
    unit_id: str
    schedule: Schedule | None = None
    completion: Completion | None = None
    publication: Publication | None = None
    cancellation: Cancellation | None = None
    first_schedule: Schedule | None = None  # the earliest-stated schedule: shows a reschedule
    owner: Owner = None  # the township that first stated the activity id (shared.ownership)

    @property
    def status(self) -> str:
        """The status the parts give, apart from time: planned, published, cancelled,
        completed, or one of the held states before the schedule is known
        ("completed-awaiting-schedule", "awaiting-schedule"). ``state(now)`` adds "ongoing"."""
        if self.schedule is None:
            # Heard of before its schedule: held until the schedule arrives.
            return "completed-awaiting-schedule" if self.completion is not None else "awaiting-schedule"
        if self.cancelled:
            return "cancelled"
        if self.completion is not None and completion_problem(self.schedule, self.completion) is None:
            return "completed"
        if self.publication is not None and publication_problem(self.schedule, self.publication) is None:
            return "published"
        return "planned"

    def state(self, now: datetime) -> str:
        """The status at ``now``: a published activity is "ongoing" from its start until it
        is reported completed."""
        status = self.status
        if status == "published" and self.schedule is not None and now >= self.schedule.starts_at:
            return "ongoing"
        return status

    @property
    def cancelled(self) -> bool:
        c = self.cancellation
        if c is None:
            return False
        if self.schedule is not None and _order(self.schedule) > _order(c):
            return False  # rescheduled after the cancellation: revived
        return self.completion is None or _order(c) > _order(self.completion)

    @property
    def problems(self) -> list[str]:
        """Why a held or reported part does not take effect."""
        if self.schedule is None:
            return []
        found = []
        if self.publication is not None and (p := publication_problem(self.schedule, self.publication)):
            found.append(p)
        if self.completion is not None and (p := completion_problem(self.schedule, self.completion)):
            found.append(p)
        return found

    @property
    def rescheduled(self) -> bool:
        first, last = self.first_schedule, self.schedule
        return (
            first is not None
            and last is not None
            and (first.starts_at, first.ends_at) != (last.starts_at, last.ends_at)
        )

    @property
    def counts(self) -> bool:
        """Whether it counts as activity of its unit: neither cancelled nor void."""
        return self.status not in ("cancelled", "awaiting-schedule")


class RefusedActivity(ValueError):
    def __init__(self, reason: str, field: str = "data.activity_id") -> None:
        super().__init__(reason)
        self.field = field  # the field at fault, for the refusal's ``errors``


def check_owner(current: Activity | None, activity_id: str, sender_township: str | None) -> None:
    """Ownership: an activity id is the township's that first stated it; another township's
    statement about it (a schedule, publication, cancellation, completion) is refused, and
    the reason names nothing of the owner. The office may state anything."""
    if current is not None and foreign(current.owner, sender_township):
        raise RefusedActivity(not_yours("activity", activity_id))


def claimed(activity: Activity, sender_township: str | None, unit_township: str | None) -> Activity:
    """The activity as kept after an accepted statement: its first township claims it."""
    return replace(activity, owner=owner_after(activity.owner, sender_township, unit_township))


def _order(part: Part) -> tuple[datetime, str]:
    return part.stated_at, part.stated


def publication_problem(schedule: Schedule, publication: Publication) -> str | None:
    if publication.stated_at >= schedule.starts_at:
        return (
            f"only future activities can be published: published at {publication.stated_at.isoformat()}, "
            f"the activity starts at {schedule.starts_at.isoformat()}"
        )
    return None


def completion_problem(schedule: Schedule, completion: Completion) -> str | None:
    if completion.stated_at < schedule.ends_at:
        return (
            f"an activity completes only after its end time: reported at {completion.stated_at.isoformat()}, "
            f"it ends at {schedule.ends_at.isoformat()}"
        )
    return None


def _check_time(stated_at: datetime, now: datetime) -> None:
    if stated_at > now + CLOCK_SKEW:
        raise RefusedActivity(f"the event is dated {stated_at.isoformat()}, in the future", "time")


def _base(current: Activity | None, activity_id: str, unit_id: str) -> Activity:
    if current is not None and current.unit_id != unit_id:
        raise RefusedActivity(
            f"activity {activity_id} belongs to unit {current.unit_id}, not {unit_id}", "data.unit_id"
        )
    return current or Activity(activity_id=activity_id, unit_id=unit_id)


def _stated(stated_at: datetime, data: Data) -> str:
    return statement(stated_at, data)[1]


def apply_scheduled(
    current: Activity | None, data: ActivityScheduled, stated_at: datetime, now: datetime
) -> Activity | None:
    """The activity after this (re)schedule, or None if nothing changes."""
    _check_time(stated_at, now)
    base = _base(current, data.activity_id, data.unit_id)
    schedule = Schedule(
        project_id=data.project_id,
        title=data.title,
        starts_at=data.starts_at,
        ends_at=data.ends_at,
        place=data.place,
        stated_at=stated_at,
        stated=_stated(stated_at, data),
    )
    first = base.first_schedule
    if first is None or _order(schedule) < _order(first):
        first = schedule
    if base.schedule is not None and _order(base.schedule) >= _order(schedule):
        return None if first == base.first_schedule else replace(base, first_schedule=first)
    return replace(base, schedule=schedule, first_schedule=first)


def apply_published(
    current: Activity | None, data: ActivityPublished, stated_at: datetime, now: datetime
) -> Activity | None:
    """The activity after its publication (发布招募), or None if nothing changes."""
    _check_time(stated_at, now)
    base = _base(current, data.activity_id, data.unit_id)
    publication = Publication(capacity=data.capacity, stated_at=stated_at, stated=_stated(stated_at, data))
    if base.publication is not None and _order(base.publication) >= _order(publication):
        return None
    return replace(base, publication=publication)


def apply_cancelled(
    current: Activity | None, data: ActivityCancelled, stated_at: datetime, now: datetime
) -> Activity | None:
    """The activity after its cancellation, or None if nothing changes."""
    _check_time(stated_at, now)
    base = _base(current, data.activity_id, data.unit_id)
    cancellation = Cancellation(reason=data.reason, stated_at=stated_at, stated=_stated(stated_at, data))
    if base.cancellation is not None and _order(base.cancellation) >= _order(cancellation):
        return None
    return replace(base, cancellation=cancellation)


def apply_completed(
    current: Activity | None, data: ActivityCompleted, stated_at: datetime, now: datetime
) -> Activity | None:
    """The activity after this completion report, or None if nothing changes."""
    _check_time(stated_at, now)
    if data.ended_at > stated_at + CLOCK_SKEW:
        raise RefusedActivity(
            f"an activity completes only after its end time: reported at {stated_at.isoformat()} "
            f"as ended at {data.ended_at.isoformat()}",
            "data.ended_at",
        )
    if data.volunteers == 0 and data.service_hours > 0:
        raise RefusedActivity("service hours are reported, but no volunteers", "data.service_hours")
    base = _base(current, data.activity_id, data.unit_id)
    completion = Completion(
        ended_at=data.ended_at,
        volunteers=data.volunteers,
        service_hours=data.service_hours,
        people_served=data.people_served,
        stated_at=stated_at,
        stated=_stated(stated_at, data),
    )
    if base.completion is not None and _order(base.completion) >= _order(completion):
        return None
    return replace(base, completion=completion)
