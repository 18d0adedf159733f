"""Volunteers at an activity, pure: sign-up with capacity and a waitlist, check-in and
check-out crediting service hours, and hours added after the fact (补录).

A roster keeps, per volunteer, the latest sign-up and withdrawal, the earliest check-in and
the latest check-out (all by event time): min/max do not depend on arrival order or
repetition. Places are derived: active sign-ups (signed up after any withdrawal) in
sign-up order, the first ``capacity`` confirmed and the rest waitlisted — so a withdrawal
moves the first on the waitlist up. Sign-ups before the publication (which carries the
capacity) are held.

Hours: check-out minus check-in, to two decimals, at most 24 per attendance; credited as
``wmsj.volunteer.hours-credited.v1`` (basis "attendance") whenever the figure changes.
Attendance is the fact that counts: a volunteer who turns up from the waitlist is credited
too. Hours added after the fact need an approver other than the volunteer and an evidence id
(the event contract refuses them otherwise) and are credited with basis "supplement".
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

Action = Literal["signed-up", "withdrawn", "checked-in", "checked-out"]
MAX_HOURS = 24.0


@dataclass(frozen=True)
class Attendance:
    volunteer_id: str
    signed_up_at: datetime | None = None
    withdrawn_at: datetime | None = None
    checked_in_at: datetime | None = None
    checked_out_at: datetime | None = None

    @property
    def signed_up(self) -> bool:
        return self.signed_up_at is not None and (
            self.withdrawn_at is None or self.withdrawn_at < self.signed_up_at
        )

    @property
    def hours(self) -> float | None:
        if self.checked_in_at is None or self.checked_out_at is None:
            return None
        if self.checked_out_at <= self.checked_in_at:
            return None
        return min(round((self.checked_out_at - self.checked_in_at).total_seconds() / 3600, 2), MAX_HOURS)


@dataclass(frozen=True)
class Supplement:
    key: str  # the (source, id) of the event that added it
    volunteer_id: str
    hours: float
    approver_id: str
    evidence_id: str
    reason: str
    at: datetime


@dataclass(frozen=True)
class Roster:
    activity_id: str
    unit_id: str
    volunteers: tuple[Attendance, ...] = ()  # by volunteer id
    supplements: tuple[Supplement, ...] = ()

    def of(self, volunteer_id: str) -> Attendance | None:
        return next((a for a in self.volunteers if a.volunteer_id == volunteer_id), None)


class RefusedAttendance(ValueError):
    pass


def _later(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b > a else a


def _earlier(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b < a else a


def _base(current: Roster | None, activity_id: str, unit_id: str) -> Roster:
    if current is not None and current.unit_id != unit_id:
        raise RefusedAttendance(f"activity {activity_id} belongs to unit {current.unit_id}, not {unit_id}")
    return current or Roster(activity_id=activity_id, unit_id=unit_id)


def apply_attendance(
    current: Roster | None, activity_id: str, unit_id: str, volunteer_id: str, action: Action, at: datetime
) -> Roster | None:
    """The roster after this sign-up / withdrawal / check-in / check-out, or None if unchanged."""
    roster = _base(current, activity_id, unit_id)
    before = roster.of(volunteer_id) or Attendance(volunteer_id=volunteer_id)
    if action == "signed-up":
        after = replace(before, signed_up_at=_later(before.signed_up_at, at))
    elif action == "withdrawn":
        after = replace(before, withdrawn_at=_later(before.withdrawn_at, at))
    elif action == "checked-in":
        after = replace(before, checked_in_at=_earlier(before.checked_in_at, at))
    else:
        after = replace(before, checked_out_at=_later(before.checked_out_at, at))
    if roster.of(volunteer_id) == after:
        return None
    others = [a for a in roster.volunteers if a.volunteer_id != volunteer_id]
    return replace(roster, volunteers=tuple(sorted([*others, after], key=lambda a: a.volunteer_id)))


def apply_supplement(
    current: Roster | None, unit_id: str, supplement: Supplement, activity_id: str
) -> Roster | None:
    """The roster with these approved hours (补录), or None if already recorded."""
    roster = _base(current, activity_id, unit_id)
    if any(s.key == supplement.key for s in roster.supplements):
        return None
    return replace(roster, supplements=(*roster.supplements, supplement))


@dataclass(frozen=True)
class Places:
    confirmed: tuple[str, ...]
    waitlist: tuple[str, ...]


def places(roster: Roster | None, capacity: int | None) -> Places:
    """Who has a place and who waits, in sign-up order. Without a capacity (not published
    yet), everyone waits."""
    if roster is None:
        return Places((), ())
    active = sorted(
        (a for a in roster.volunteers if a.signed_up),
        key=lambda a: (a.signed_up_at, a.volunteer_id),
    )
    ids = tuple(a.volunteer_id for a in active)
    if capacity is None:
        return Places((), ids)
    return Places(ids[:capacity], ids[capacity:])
