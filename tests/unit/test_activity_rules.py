"""Activity rules: schedule and completion are held separately, latest statement wins, and the
final state does not depend on the order (or repetition) of arrival."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.activities.domain import Activity, RefusedActivity, lifecycle
from shared.events import ActivityCompleted, ActivityScheduled

T0 = datetime(2020, 6, 1, 1, 0, tzinfo=UTC)
STARTS = datetime(2020, 6, 12, 1, 0, tzinfo=UTC)
NOW = datetime(2020, 7, 1, tzinfo=UTC)  # the injected clock: after every statement here


def scheduled(activity_id: str = "a1", unit_id: str = "u1", title: str = "理论宣讲") -> ActivityScheduled:
    return ActivityScheduled(
        activity_id=activity_id,
        unit_id=unit_id,
        title=title,
        starts_at=STARTS,
        ends_at=STARTS + timedelta(hours=2),
    )


def completed(activity_id: str = "a1", unit_id: str = "u1", volunteers: int = 12) -> ActivityCompleted:
    return ActivityCompleted(
        activity_id=activity_id,
        unit_id=unit_id,
        ended_at=STARTS + timedelta(hours=2),
        volunteers=volunteers,
        service_hours=2.0 * volunteers,
    )


def at(hours: int) -> datetime:
    return T0 + timedelta(hours=hours)


def after_end(hours: int) -> datetime:
    """A moment after the scheduled end (completions are reported after it)."""
    return STARTS + timedelta(hours=2 + hours)


def apply_scheduled(current, data, stated_at):  # type: ignore[no-untyped-def]
    return lifecycle.apply_scheduled(current, data, stated_at, NOW)


def apply_completed(current, data, stated_at):  # type: ignore[no-untyped-def]
    return lifecycle.apply_completed(current, data, stated_at, NOW)


def test_a_schedule_creates_a_scheduled_activity():
    activity = apply_scheduled(None, scheduled(), at(0))
    assert activity is not None
    assert (activity.activity_id, activity.unit_id, activity.status) == ("a1", "u1", "planned")
    assert activity.schedule is not None and activity.schedule.stated_at == at(0)


def test_a_completion_before_its_schedule_is_held():
    activity = apply_completed(None, completed(), after_end(5))
    assert activity is not None
    assert activity.status == "completed-awaiting-schedule"
    assert activity.completion is not None and activity.completion.volunteers == 12


def test_a_held_completion_is_reconciled_when_the_schedule_arrives():
    held = apply_completed(None, completed(), after_end(5))
    reconciled = apply_scheduled(held, scheduled(), at(0))
    assert reconciled is not None
    assert reconciled.status == "completed"
    assert reconciled.completion == held.completion  # type: ignore[union-attr]


def test_a_completion_after_its_schedule_completes_the_activity():
    activity = apply_completed(apply_scheduled(None, scheduled(), at(0)), completed(), after_end(5))
    assert activity is not None and activity.status == "completed"


def test_a_schedule_from_another_unit_is_refused():
    current = apply_scheduled(None, scheduled(unit_id="u1"), at(0))
    with pytest.raises(RefusedActivity) as refused:
        apply_scheduled(current, scheduled(unit_id="u2"), at(1))
    assert str(refused.value) == "activity a1 belongs to unit u1, not u2"


def test_a_completion_from_another_unit_is_refused():
    current = apply_scheduled(None, scheduled(unit_id="u1"), at(0))
    with pytest.raises(RefusedActivity) as refused:
        apply_completed(current, completed(unit_id="u2"), after_end(5))
    assert str(refused.value) == "activity a1 belongs to unit u1, not u2"


def test_a_duplicate_schedule_changes_nothing():
    current = apply_scheduled(None, scheduled(), at(0))
    assert apply_scheduled(current, scheduled(), at(0)) is None


def test_a_duplicate_completion_changes_nothing():
    current = apply_completed(None, completed(), after_end(5))
    assert apply_completed(current, completed(), after_end(5)) is None


def test_an_earlier_schedule_after_a_later_one_keeps_the_later_schedule():
    current = apply_scheduled(None, scheduled(title="改期后"), at(2))
    updated = apply_scheduled(current, scheduled(title="原计划"), at(1))
    assert updated is not None and updated.schedule == current.schedule  # type: ignore[union-attr]
    # ... and it is remembered as the first plan, so a reschedule shows whatever the order.
    assert updated.first_schedule is not None and updated.first_schedule.title == "原计划"
    assert apply_scheduled(updated, scheduled(title="原计划"), at(1)) is None


def test_an_earlier_completion_after_a_later_one_changes_nothing():
    current = apply_completed(None, completed(volunteers=15), after_end(6))
    assert apply_completed(current, completed(volunteers=9), after_end(5)) is None


def test_a_later_schedule_replaces_the_earlier_one_and_keeps_the_completion():
    current = apply_completed(
        apply_scheduled(None, scheduled(title="原计划"), at(1)), completed(), after_end(5)
    )
    updated = apply_scheduled(current, scheduled(title="改期后"), at(2))
    assert updated is not None
    assert updated.schedule is not None and updated.schedule.title == "改期后"
    assert updated.completion == current.completion  # type: ignore[union-attr]


def test_two_different_schedules_stated_at_the_same_time_give_the_same_activity_in_either_order():
    # The module promises a final state independent of arrival order; ties in event time
    # (a batch stamped once) are arrivals too.
    a, b = scheduled(title="理论宣讲"), scheduled(title="移风易俗")

    def arrive(first: ActivityScheduled, second: ActivityScheduled) -> Activity:
        current = apply_scheduled(None, first, at(0))
        assert current is not None
        return apply_scheduled(current, second, at(0)) or current

    assert arrive(a, b) == arrive(b, a)


# --------------------------------------------------------------------------- property

ACTIVITIES = ["a1", "a2", "a3"]


@st.composite
def histories(draw: st.DrawFn) -> list[tuple[str, ActivityScheduled | ActivityCompleted, datetime]]:
    """Events for a few activities, each at a distinct time; one unit per activity."""
    count = draw(st.integers(min_value=1, max_value=10))
    hours = draw(st.lists(st.integers(0, 1000), min_size=count, max_size=count, unique=True))
    events: list[tuple[str, ActivityScheduled | ActivityCompleted, datetime]] = []
    for hour in hours:
        activity_id = draw(st.sampled_from(ACTIVITIES))
        unit_id = f"unit-of-{activity_id}"
        if draw(st.booleans()):
            title = draw(st.sampled_from(["理论宣讲", "移风易俗", "环境整治"]))
            events.append(("scheduled", scheduled(activity_id, unit_id, title), at(hour)))
        else:
            volunteers = draw(st.integers(1, 30))
            events.append(("completed", completed(activity_id, unit_id, volunteers), after_end(hour)))
    return events


def fold(events: list[tuple[str, ActivityScheduled | ActivityCompleted, datetime]]) -> dict[str, Activity]:
    state: dict[str, Activity] = {}
    for kind, data, stated_at in events:
        apply = apply_scheduled if kind == "scheduled" else apply_completed
        current = state.get(data.activity_id)
        try:
            x = current if (y := apply(current, data, stated_at)) is None else y  # type: ignore[arg-type]
        except RefusedActivity:
            continue
        if x is not None:
            state[data.activity_id] = x
    return state


@settings(max_examples=200, deadline=None)
@given(data=st.data(), events=histories())
def test_any_arrival_order_with_duplicates_ends_in_the_state_of_time_order(data: st.DataObject, events):
    arrivals = data.draw(st.permutations(events + data.draw(st.lists(st.sampled_from(events), max_size=10))))
    in_time_order = sorted(events, key=lambda e: e[2])
    assert fold(arrivals) == fold(in_time_order)
