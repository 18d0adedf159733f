"""Volunteers at an activity: capacity and waitlist, check-in/out hours, 补录."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from services.activities.domain.attendance import (
    RefusedAttendance,
    Roster,
    Supplement,
    apply_attendance,
    apply_supplement,
    places,
)
from shared.events.activities import HoursSupplemented

T0 = datetime(2020, 6, 12, 1, 0, tzinfo=UTC)


def m(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def roster(*steps: tuple[str, str, datetime]) -> Roster:
    current: Roster | None = None
    for volunteer, action, at in steps:
        current = apply_attendance(current, "a1", "u1", volunteer, action, at) or current  # type: ignore[arg-type]
    assert current is not None
    return current


def test_sign_ups_beyond_the_capacity_are_waitlisted_in_sign_up_order() -> None:
    r = roster(("v3", "signed-up", m(3)), ("v1", "signed-up", m(1)), ("v2", "signed-up", m(2)))
    assert places(r, 2) == places(r, 2).__class__(confirmed=("v1", "v2"), waitlist=("v3",))


def test_a_withdrawal_moves_the_first_on_the_waitlist_up() -> None:
    r = roster(
        ("v1", "signed-up", m(1)),
        ("v2", "signed-up", m(2)),
        ("v3", "signed-up", m(3)),
        ("v1", "withdrawn", m(4)),
    )
    taken = places(r, 2)
    assert (taken.confirmed, taken.waitlist) == (("v2", "v3"), ())


def test_signing_up_again_after_withdrawing_goes_to_the_back() -> None:
    r = roster(
        ("v1", "signed-up", m(1)),
        ("v2", "signed-up", m(2)),
        ("v1", "withdrawn", m(3)),
        ("v1", "signed-up", m(4)),
    )
    assert places(r, 1).confirmed == ("v2",) and places(r, 1).waitlist == ("v1",)


def test_before_the_publication_gives_a_capacity_everyone_waits() -> None:
    r = roster(("v1", "signed-up", m(1)))
    assert (places(r, None).confirmed, places(r, None).waitlist) == ((), ("v1",))


def test_check_in_and_check_out_give_the_hours_between() -> None:
    r = roster(("v1", "checked-in", m(0)), ("v1", "checked-out", m(150)))
    assert r.of("v1").hours == 2.5  # type: ignore[union-attr]


def test_no_hours_without_both() -> None:
    assert roster(("v1", "checked-in", m(0))).of("v1").hours is None  # type: ignore[union-attr]
    assert roster(("v1", "checked-out", m(0))).of("v1").hours is None  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("first", "then", "problem"),
    [
        (("checked-in", m(10)), ("checked-out", m(5)), "not after the check-in"),
        (("checked-out", m(5)), ("checked-in", m(10)), "not after the check-in"),
        (("checked-in", m(10)), ("checked-out", m(10)), "not after the check-in"),
        (("checked-in", m(10)), ("checked-out", m(10.2)), "that is 0 hours"),
    ],
)
def test_a_zero_or_negative_span_is_refused_whichever_comes_first(
    first: tuple[str, datetime], then: tuple[str, datetime], problem: str
) -> None:
    before = roster(("v1", *first))
    with pytest.raises(RefusedAttendance, match=problem) as refused:
        apply_attendance(before, "a1", "u1", "v1", then[0], then[1])  # type: ignore[arg-type]
    assert refused.value.field == "time"


def test_the_earliest_check_in_and_the_latest_check_out_count_whatever_the_order() -> None:
    steps = [
        ("v1", "checked-out", m(120)),
        ("v1", "checked-in", m(30)),
        ("v1", "checked-in", m(0)),
        ("v1", "checked-out", m(60)),
    ]
    assert roster(*steps) == roster(*reversed(steps))
    assert roster(*steps).of("v1").hours == 2.0  # type: ignore[union-attr]


def test_hours_are_capped_at_a_day() -> None:
    assert roster(("v1", "checked-in", m(0)), ("v1", "checked-out", m(60 * 30))).of("v1").hours == 24.0  # type: ignore[union-attr]


def test_attendance_for_another_units_activity_is_refused() -> None:
    with pytest.raises(RefusedAttendance, match="belongs to unit u1, not u2"):
        apply_attendance(roster(("v1", "signed-up", m(1))), "a1", "u2", "v2", "signed-up", m(2))


def test_hours_added_after_the_fact_need_an_approver_and_evidence() -> None:
    fields = {"volunteer_id": "v1", "activity_id": "a1", "unit_id": "u1", "hours": 2, "reason": "设备故障"}
    with pytest.raises(ValidationError, match="approver_id"):
        HoursSupplemented(**fields, evidence_id="e1")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="evidence_id"):
        HoursSupplemented(**fields, approver_id="admin")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="cannot approve their own hours"):
        HoursSupplemented(**fields, approver_id="v1", evidence_id="e1")  # type: ignore[arg-type]
    ok = HoursSupplemented(**fields, approver_id="admin", evidence_id="e1")  # type: ignore[arg-type]
    supplement = Supplement(
        "src|id1", ok.volunteer_id, ok.hours, ok.approver_id, ok.evidence_id, ok.reason, m(0)
    )
    r = apply_supplement(None, "u1", supplement, "a1")
    assert r is not None and r.supplements == (supplement,)
    assert apply_supplement(r, "u1", supplement, "a1") is None  # the same event again
