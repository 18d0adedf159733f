"""Volunteers at an activity, pure: sign-up with capacity and a waitlist, check-in and
check-out crediting service hours, and hours added after the fact (补录).

A roster keeps, per volunteer, the latest sign-up and withdrawal, the earliest check-in and
the latest check-out (all by event time): min/max do not depend on arrival order or
repetition. Places are derived: active sign-ups (signed up after any withdrawal) in
sign-up order, the first ``capacity`` confirmed and the rest waitlisted — so a withdrawal
moves the first on the waitlist up. Sign-ups before the publication (which carries the
capacity) are held.

Hours: check-out minus check-in, to two decimals, at most 24 per attendance; credited as
``wmsj.volunteer.hours-credited.v1`` (basis "attendance") whenever the figure changes. A
check-in or check-out that would make the span zero hours (under a minute's hundredth of an
hour) or negative is refused with the reason: it could credit nothing, and a check-out the
volunteer made must not vanish silently.

Who may credit hours (``check_credit``): a township credits check-out hours and 补录 only to
its own registered volunteer, at an activity scheduled here (an existing activity: its unit
is then the township's own, which the scope check and ``check_owner`` make sure of); 补录
also names the stored evidence of that activity. The roster, like the activity, is the township's that first stated it
(``shared.ownership``).
Attendance is the fact that counts: a volunteer who turns up from the waitlist is credited
too. Hours added after the fact need an approver other than the volunteer and an evidence id
(the event contract refuses them otherwise) and are credited with basis "supplement".
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from shared.ownership import Owner, foreign, not_yours, owner_after

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
    owner: Owner = None  # the township that first stated attendance at the activity

    def of(self, volunteer_id: str) -> Attendance | None:
        return next((a for a in self.volunteers if a.volunteer_id == volunteer_id), None)


class RefusedAttendance(ValueError):
    def __init__(self, reason: str, field: str = "data.activity_id") -> None:
        super().__init__(reason)
        self.field = field  # the field at fault, for the refusal's ``errors``


def check_owner(current: Roster | None, activity_id: str, sender_township: str | None) -> None:
    """Ownership: attendance at an activity is stated by the township that owns it; another
    township's sign-up, check-in/out or 补录 is refused naming nothing of the owner."""
    if current is not None and foreign(current.owner, sender_township):
        raise RefusedAttendance(not_yours("activity", activity_id))


def claimed(roster: Roster, sender_township: str | None, unit_township: str | None) -> Roster:
    return replace(roster, owner=owner_after(roster.owner, sender_township, unit_township))


@dataclass(frozen=True)
class CreditBasis:
    """What a credit of hours rests on, as known here when it is stated."""

    activity_unit_id: str | None  # the unit of the activity as scheduled here (None: not scheduled)
    evidence_activity_id: str | None = (
        None  # 补录: the activity its evidence is stored for (None: not stored)
    )
    volunteer_known: bool = False  # the registry accepted the volunteer
    volunteer_township: str | None = None  # …registered by this township (its owner)


def check_credit(
    kind: Literal["check-out", "supplement"],
    activity_id: str,
    volunteer_id: str,
    evidence_id: str | None,
    basis: CreditBasis,
    sender_township: str | None,
) -> None:
    """Hours are credited (check-out, 补录) only to the sender's own registered volunteer, at
    an existing activity, and 补录 only with a stored piece of that activity's evidence. The
    office (``sender_township`` None), which corrects the record, is not held to it. (The
    activity's unit is the sender's own: the scope check and ``check_owner`` say so.) The
    refusals name nothing of another township."""
    if sender_township is None:
        return
    if basis.activity_unit_id is None:
        raise RefusedAttendance(
            f"activity {activity_id} is not scheduled: hours ({kind}) are credited only at an "
            "activity that exists; schedule it first, then send this again"
        )
    if not basis.volunteer_known or basis.volunteer_township != sender_township:
        raise RefusedAttendance(
            f"volunteer {volunteer_id} is not one of your township's registered volunteers: hours "
            "are credited only to a township's own volunteers",
            "data.volunteer_id",
        )
    if kind == "supplement" and basis.evidence_activity_id != activity_id:
        raise RefusedAttendance(
            f"evidence {evidence_id} is not stored evidence of activity {activity_id}: 补录 needs "
            "the approved evidence of that activity; submit it, and once it is stored send this again",
            "data.evidence_id",
        )


def _check_span(attendance: Attendance) -> None:
    """A check-in and check-out that make a zero or negative span are refused (see above)."""
    came, left = attendance.checked_in_at, attendance.checked_out_at
    if came is None or left is None:
        return
    if left <= came:
        raise RefusedAttendance(
            f"volunteer {attendance.volunteer_id} checked out at {left.isoformat()}, not after the "
            f"check-in at {came.isoformat()}: a span of no time credits no hours",
            "time",
        )
    if round((left - came).total_seconds() / 3600, 2) <= 0:
        raise RefusedAttendance(
            f"volunteer {attendance.volunteer_id} checked out {int((left - came).total_seconds())} s "
            "after checking in: that is 0 hours (to the hundredth): it credits no hours",
            "time",
        )


def _later(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b > a else a


def _earlier(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b < a else a


def _base(current: Roster | None, activity_id: str, unit_id: str) -> Roster:
    if current is not None and current.unit_id != unit_id:
        raise RefusedAttendance(
            f"activity {activity_id} belongs to unit {current.unit_id}, not {unit_id}", "data.unit_id"
        )
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
    _check_span(after)
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
