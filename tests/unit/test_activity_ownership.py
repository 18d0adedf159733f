"""Ownership and hours rules of the activities service (pure): an activity id, its roster and
an order id are the township's that first stated them; hours are credited only at an
existing activity (补录 with stored evidence of it), never for a zero or negative span."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.activities.domain import attendance, lifecycle, orders
from services.activities.domain.attendance import (
    CreditBasis,
    RefusedAttendance,
    apply_attendance,
    check_credit,
)
from services.activities.domain.lifecycle import Activity, RefusedActivity, apply_scheduled
from services.activities.domain.orders import Order, RefusedOrder, add_statement
from shared.events import ActivityScheduled
from shared.events.activities import OrderPlaced

T0 = datetime(2020, 6, 12, 1, 0, tzinfo=UTC)
NOW = T0 + timedelta(days=1)
NOT_YOURS = "is another township's: choose an id of your own"


def schedule(unit_id: str = "431381101201") -> ActivityScheduled:
    return ActivityScheduled(
        activity_id="a1", unit_id=unit_id, title="宣讲", starts_at=T0, ends_at=T0 + timedelta(hours=2)
    )


def owned_activity(owner: str | None) -> Activity:
    made = apply_scheduled(None, schedule(), T0 - timedelta(days=1), NOW)
    assert made is not None
    return lifecycle.claimed(made, owner, None)


def test_an_activity_is_claimed_by_the_township_that_first_states_it() -> None:
    assert owned_activity("431381101").owner == "431381101"
    # Stated first by the office: its unit's township owns it, and keeps it after the office
    # restates it.
    by_office = lifecycle.claimed(owned_activity(None), None, "431381101")
    assert by_office.owner == "431381101"
    assert lifecycle.claimed(by_office, None, "431381102").owner == "431381101"


def test_another_townships_statement_about_an_activity_is_refused_naming_nothing_of_it() -> None:
    with pytest.raises(RefusedActivity) as refused:
        lifecycle.check_owner(owned_activity("431381101"), "a1", "431381102")
    assert str(refused.value) == f"activity a1 {NOT_YOURS}"
    assert refused.value.field == "data.activity_id"
    assert "431381101" not in str(refused.value)
    lifecycle.check_owner(owned_activity("431381101"), "a1", "431381101")  # its own
    lifecycle.check_owner(owned_activity("431381101"), "a1", None)  # the office
    lifecycle.check_owner(owned_activity(None), "a1", "431381102")  # nobody's yet
    lifecycle.check_owner(None, "a1", "431381102")  # a new id


def test_attendance_at_another_townships_activity_is_refused_naming_nothing_of_it() -> None:
    roster = apply_attendance(None, "a1", "431381101201", "v1", "signed-up", T0)
    assert roster is not None
    roster = attendance.claimed(roster, "431381101", None)
    with pytest.raises(RefusedAttendance, match=NOT_YOURS) as refused:
        attendance.check_owner(roster, "a1", "431381102")
    assert "431381101" not in str(refused.value)
    attendance.check_owner(roster, "a1", "431381101")
    attendance.check_owner(roster, "a1", None)


def test_another_townships_order_statement_is_refused_even_back_dated() -> None:
    placed = OrderPlaced(
        order_id="o1", requester_id="r1", requester_kind="resident", unit_id="u1", need="助老"
    )
    order = add_statement(None, "o1", "placed", placed, T0)
    assert order is not None
    order = orders.claimed(order, "431381101", None)
    assert isinstance(order, Order) and order.owner == "431381101"
    # A back-dated 点单 would replay first and take the order over: it is refused instead.
    with pytest.raises(RefusedOrder) as refused:
        orders.check_owner(order, "o1", "431381102")
    assert str(refused.value) == f"order o1 {NOT_YOURS}" and refused.value.field == "data.order_id"
    orders.check_owner(order, "o1", None)  # the office dispatches escalated orders


OURS = "431381101"
OWN_VOLUNTEER = {"volunteer_known": True, "volunteer_township": OURS}


@pytest.mark.parametrize("kind", ["check-out", "supplement"])
def test_hours_are_credited_only_at_an_activity_that_exists(kind: str) -> None:
    with pytest.raises(RefusedAttendance, match="is not scheduled") as refused:
        check_credit(kind, "a1", "v1", "e1", CreditBasis(None, "a1", **OWN_VOLUNTEER), OURS)  # type: ignore[arg-type]
    assert refused.value.field == "data.activity_id"
    check_credit(kind, "a1", "v1", "e1", CreditBasis("u1", "a1", **OWN_VOLUNTEER), OURS)  # type: ignore[arg-type]
    check_credit(kind, "a1", "v1", "e1", CreditBasis(None, None), None)  # type: ignore[arg-type]  # the office


@pytest.mark.parametrize("kind", ["check-out", "supplement"])
@pytest.mark.parametrize("township", [None, "431381102"])
def test_hours_are_credited_only_to_the_townships_own_registered_volunteer(
    kind: str, township: str | None
) -> None:
    basis = CreditBasis("u1", "a1", volunteer_known=township is not None, volunteer_township=township)
    with pytest.raises(RefusedAttendance) as refused:
        check_credit(kind, "a1", "v1", "e1", basis, OURS)  # type: ignore[arg-type]
    assert str(refused.value).startswith("volunteer v1 is not one of your township's registered volunteers")
    assert "431381102" not in str(refused.value) and refused.value.field == "data.volunteer_id"


def test_a_supplement_needs_stored_evidence_of_that_very_activity() -> None:
    for stored_for in (None, "a2"):
        with pytest.raises(RefusedAttendance, match="is not stored evidence of activity a1") as refused:
            check_credit("supplement", "a1", "v1", "e1", CreditBasis("u1", stored_for, **OWN_VOLUNTEER), OURS)  # type: ignore[arg-type]
        assert refused.value.field == "data.evidence_id"
    check_credit("check-out", "a1", "v1", None, CreditBasis("u1", None, **OWN_VOLUNTEER), OURS)  # type: ignore[arg-type]


def test_a_check_in_after_the_check_out_is_refused_with_the_time_at_fault() -> None:
    roster = apply_attendance(None, "a1", "u1", "v1", "checked-out", T0)
    with pytest.raises(RefusedAttendance, match="credits no hours") as refused:
        apply_attendance(roster, "a1", "u1", "v1", "checked-in", T0 + timedelta(minutes=1))
    assert refused.value.field == "time"
