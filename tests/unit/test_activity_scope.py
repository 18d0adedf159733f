"""Which units a township's activities submission is about (its scope is checked on them)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.activities.domain.scope import units_named
from shared.events import ActivityScheduled, ProjectListPublished
from shared.events.activities import (
    ActivityCancelled,
    HoursSupplemented,
    OrderAnswered,
    OrderDispatched,
    OrderPlaced,
    OrderRated,
    VolunteerAttendance,
)

T = datetime(2020, 6, 1, 9, tzinfo=UTC)


def test_an_activitys_events_are_about_its_unit():
    scheduled = ActivityScheduled(
        activity_id="a1", unit_id="431381101201", title="宣讲", starts_at=T, ends_at=T.replace(hour=11)
    )
    assert units_named(scheduled) == ["431381101201"]
    assert units_named(ActivityCancelled(activity_id="a1", unit_id="u")) == ["u"]
    assert units_named(VolunteerAttendance(activity_id="a1", unit_id="u", volunteer_id="v")) == ["u"]
    supplement = HoursSupplemented(
        volunteer_id="v",
        activity_id="a1",
        unit_id="u",
        hours=2,
        approver_id="boss",
        evidence_id="e",
        reason="补录",
    )
    assert units_named(supplement) == ["u"]


def test_an_orders_statements_are_about_the_units_acting_in_them():
    by_village = OrderPlaced(
        order_id="o1",
        requester_id="431381101201",
        requester_kind="village",
        unit_id="431381101201-Z",
        need="x",
    )
    assert units_named(by_village) == ["431381101201-Z", "431381101201"]
    by_resident = OrderPlaced(
        order_id="o1", requester_id="r-7", requester_kind="resident", unit_id="Z", need="x"
    )
    assert units_named(by_resident) == ["Z"]  # a resident is no unit
    assert units_named(OrderDispatched(order_id="o1", dispatcher_id="S", team_id="FD")) == ["S", "FD"]
    assert units_named(OrderAnswered(order_id="o1", team_id="FD", accepted=False)) == ["FD"]


def test_a_rating_is_about_the_units_its_order_was_placed_with():
    rating = OrderRated(order_id="o1", requester_id="r-7", rating=5)
    placed = [
        {"unit_id": "Z", "requester_id": "r-7", "requester_kind": "resident"},
        {"unit_id": "Z", "requester_id": "V", "requester_kind": "village"},
    ]
    assert units_named(rating, placed) == ["Z", "V"]
    assert units_named(rating, []) == []  # the caller waits for the placement, else refuses


def test_the_project_list_names_no_unit_a_township_may_publish_about():
    listed = ProjectListPublished.model_validate(
        {"year": 2020, "version": 1, "projects": [{"project_id": "P", "theme": "t", "months": [6]}]}
    )
    with pytest.raises(TypeError):
        units_named(listed)
