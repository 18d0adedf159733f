"""Property: a township's month of events — schedules, reschedules, publications, sign-ups and
withdrawals, check-ins and check-outs, cancellations, completions, and 四单 orders — shuffled
and with duplicates, ends in exactly the same state as the same events in time order."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.activities.domain.attendance import Roster, apply_attendance, places
from services.activities.domain.lifecycle import (
    Activity,
    apply_cancelled,
    apply_completed,
    apply_published,
    apply_scheduled,
)
from services.activities.domain.months import units_without_activity
from services.activities.domain.orders import Order, add_statement, view
from shared.events import ActivityCompleted, ActivityScheduled, Data
from shared.events.activities import (
    ActivityCancelled,
    ActivityPublished,
    OrderAnswered,
    OrderDispatched,
    OrderPlaced,
    OrderRated,
    VolunteerAttendance,
)

MONTH = datetime(2020, 6, 1, 0, 0, tzinfo=UTC)
NOW = datetime(2020, 7, 15, tzinfo=UTC)
UNITS = ["village-1", "village-2", "station-1", "team-1"]
WITHIN = timedelta(hours=48)

Event = tuple[str, Data, datetime]  # (kind, payload, event time)


@dataclass
class State:
    activities: dict[str, Activity] = field(default_factory=dict)
    rosters: dict[str, Roster] = field(default_factory=dict)
    orders: dict[str, Order] = field(default_factory=dict)
    refused: list[Event] = field(default_factory=list)


LIFECYCLE: dict[str, Any] = {
    "scheduled": apply_scheduled,
    "published": apply_published,
    "cancelled": apply_cancelled,
    "completed": apply_completed,
}


def fold(events: list[Event]) -> State:
    """What the service does with each event, in the given arrival order."""
    state = State()
    for kind, data, at in events:
        try:
            if kind in LIFECYCLE:
                aid = data.activity_id  # type: ignore[attr-defined]
                updated = LIFECYCLE[kind](state.activities.get(aid), data, at, NOW)
                if updated is not None:
                    state.activities[aid] = updated
            elif kind in ("signed-up", "withdrawn", "checked-in", "checked-out"):
                assert isinstance(data, VolunteerAttendance)
                roster = apply_attendance(
                    state.rosters.get(data.activity_id),
                    data.activity_id,
                    data.unit_id,
                    data.volunteer_id,
                    kind,  # type: ignore[arg-type]
                    at,
                )
                if roster is not None:
                    state.rosters[data.activity_id] = roster
            else:
                oid = data.order_id  # type: ignore[attr-defined]
                order = add_statement(state.orders.get(oid), oid, kind, data, at)  # type: ignore[arg-type]
                if order is not None:
                    state.orders[oid] = order
        except ValueError:
            state.refused.append((kind, data, at))
    return state


def observed(state: State) -> dict[str, Any]:
    """Everything the service shows: statuses, places, hours, orders, the warning."""
    return {
        "activities": {aid: (a, a.state(NOW)) for aid, a in state.activities.items()},
        "places": {
            aid: places(
                r, a.publication.capacity if (a := state.activities.get(aid)) and a.publication else None
            )
            for aid, r in state.rosters.items()
        },
        "hours": {(aid, v.volunteer_id): v.hours for aid, r in state.rosters.items() for v in r.volunteers},
        "orders": {
            oid: view(o, WITHIN, activity_completed=state.activities["a0"].status == "completed")
            for oid, o in state.orders.items()
        },
        "warning": units_without_activity(UNITS, state.activities.values(), "2020-06"),
        "refused": sorted(state.refused, key=repr),
    }


@st.composite
def township_month(draw: st.DrawFn) -> list[Event]:
    """A plausible month: every event is valid in time order."""
    events: list[Event] = []
    for i in range(draw(st.integers(1, 4))):
        aid, unit = f"a{i}", draw(st.sampled_from(UNITS))
        starts = MONTH + timedelta(days=draw(st.integers(3, 25)), hours=draw(st.integers(0, 10)))
        hours = draw(st.integers(1, 4))
        planned = starts - timedelta(days=draw(st.integers(2, 3)))

        def schedule(start: datetime, title: str = "理论宣讲") -> ActivityScheduled:
            return ActivityScheduled(
                activity_id=aid,  # noqa: B023
                unit_id=unit,  # noqa: B023
                project_id="2020-P01",
                title=title,
                starts_at=start,
                ends_at=start + timedelta(hours=hours),  # noqa: B023
            )

        events.append(("scheduled", schedule(starts), planned))
        if draw(st.booleans()):  # rescheduled by up to a day either way
            starts += timedelta(hours=draw(st.integers(-24, 24)))
            events.append(("scheduled", schedule(starts, "改期"), planned + timedelta(hours=1)))
        ends = starts + timedelta(hours=hours)
        if draw(st.booleans()):
            capacity = draw(st.integers(1, 3))
            events.append(
                (
                    "published",
                    ActivityPublished(activity_id=aid, unit_id=unit, capacity=capacity),
                    planned + timedelta(hours=2),
                )
            )
            for n in range(draw(st.integers(0, 5))):
                who = VolunteerAttendance(activity_id=aid, unit_id=unit, volunteer_id=f"v{n}")
                signed = planned + timedelta(hours=3, minutes=draw(st.integers(0, 600)))
                events.append(("signed-up", who, signed))
                if draw(st.booleans()):
                    events.append(("withdrawn", who, signed + timedelta(minutes=draw(st.integers(1, 60)))))
                elif draw(st.booleans()):
                    events.append(("checked-in", who, starts + timedelta(minutes=draw(st.integers(0, 30)))))
                    events.append(("checked-out", who, ends - timedelta(minutes=draw(st.integers(0, 30)))))
        outcome = draw(st.sampled_from(["none", "completed", "cancelled"]))
        if outcome == "completed":
            volunteers = draw(st.integers(1, 20))
            done = ActivityCompleted(
                activity_id=aid,
                unit_id=unit,
                ended_at=ends,
                volunteers=volunteers,
                service_hours=volunteers * hours,
            )
            events.append(("completed", done, ends + timedelta(hours=1)))
        elif outcome == "cancelled":
            events.append(
                ("cancelled", ActivityCancelled(activity_id=aid, unit_id=unit), planned + timedelta(hours=4))
            )
    # One order (点单) served by activity a0, with a decline on the way.
    placed_at = MONTH + timedelta(days=1)
    events.append(
        (
            "placed",
            OrderPlaced(
                order_id="o1", requester_id="r1", requester_kind="resident", unit_id="station-1", need="助老"
            ),
            placed_at,
        )
    )
    events.append(
        (
            "dispatched",
            OrderDispatched(order_id="o1", dispatcher_id="station-1", team_id="team-1"),
            placed_at + timedelta(hours=1),
        )
    )
    if draw(st.booleans()):
        events.append(
            (
                "answered",
                OrderAnswered(order_id="o1", team_id="team-1", accepted=False),
                placed_at + timedelta(hours=2),
            )
        )
        events.append(
            (
                "dispatched",
                OrderDispatched(order_id="o1", dispatcher_id="station-1", team_id="team-2"),
                placed_at + timedelta(hours=3),
            )
        )
        team = "team-2"
    else:
        team = "team-1"
    events.append(
        (
            "answered",
            OrderAnswered(order_id="o1", team_id=team, accepted=True, activity_id="a0"),
            placed_at + timedelta(hours=4),
        )
    )
    events.append(
        (
            "rated",
            OrderRated(order_id="o1", requester_id="r1", rating=draw(st.integers(1, 5))),
            MONTH + timedelta(days=29),
        )
    )
    return events


@settings(max_examples=300, deadline=None)
@given(data=st.data(), month=township_month())
def test_a_shuffled_month_with_duplicates_ends_in_the_state_of_the_month_in_order(
    data: st.DataObject, month: list[Event]
) -> None:
    in_order = sorted(month, key=lambda e: e[2])
    duplicates = data.draw(st.lists(st.sampled_from(month), max_size=len(month)))
    arrivals = data.draw(st.permutations(month + duplicates))

    expected, actual = fold(in_order), fold(arrivals)
    assert expected.refused == []  # a plausible month: nothing in it is refused
    assert observed(actual) == observed(expected)
    # Not only what is shown: the stored documents are identical.
    assert (actual.activities, actual.rosters, actual.orders) == (
        expected.activities,
        expected.rosters,
        expected.orders,
    )
