"""The monthly early warning names exactly the units without activity in a generated month."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.activities.domain.lifecycle import Activity, apply_cancelled, apply_completed, apply_scheduled
from services.activities.domain.months import month_bounds, units_without_activity
from shared.events import CITY_TZ, ActivityCompleted, ActivityScheduled
from shared.events.activities import ActivityCancelled

NOW = datetime(2020, 8, 1, tzinfo=CITY_TZ)
JUNE_START, JULY_START = month_bounds("2020-06")
# What a unit may do: each kind says whether it counts as activity in June.
KINDS = {
    "scheduled-in-june": True,
    "completed-in-june": True,
    "completed-awaiting-schedule-in-june": True,  # held, but it took place
    "scheduled-in-may": False,
    "scheduled-in-july": False,
    "cancelled-in-june": False,
    "late-on-30-june-city-time": True,  # 23:30 on 30 June in the city is June (UTC: 15:30)
    "early-on-1-july-city-time": False,  # 00:30 on 1 July in the city is July (UTC: 30 June)
}


def activity(activity_id: str, unit_id: str, kind: str) -> Activity:
    starts = {
        "scheduled-in-may": JUNE_START - timedelta(days=3),
        "scheduled-in-july": JULY_START + timedelta(days=3),
        "late-on-30-june-city-time": JULY_START - timedelta(minutes=30),
        "early-on-1-july-city-time": JULY_START + timedelta(minutes=30),
    }.get(kind, JUNE_START + timedelta(days=10))
    ends = starts + timedelta(minutes=20)
    plan = ActivityScheduled(
        activity_id=activity_id, unit_id=unit_id, title="t", starts_at=starts, ends_at=ends
    )
    done = ActivityCompleted(
        activity_id=activity_id, unit_id=unit_id, ended_at=ends, volunteers=3, service_hours=1
    )
    if kind == "completed-awaiting-schedule-in-june":
        a = apply_completed(None, done, ends + timedelta(hours=1), NOW)
    else:
        a = apply_scheduled(None, plan, starts - timedelta(days=5), NOW)
        if kind == "completed-in-june":
            a = apply_completed(a, done, ends + timedelta(hours=1), NOW)
        if kind == "cancelled-in-june":
            a = apply_cancelled(
                a,
                ActivityCancelled(activity_id=activity_id, unit_id=unit_id),
                starts - timedelta(days=1),
                NOW,
            )
    assert a is not None
    return a


@settings(max_examples=200, deadline=None)
@given(
    plans=st.dictionaries(
        st.from_regex(r"u[0-9]{1,3}", fullmatch=True),
        st.lists(st.sampled_from(sorted(KINDS)), max_size=4),
        min_size=1,
        max_size=30,
    )
)
@pytest.mark.slow
def test_the_warning_names_exactly_the_units_without_activity_in_a_generated_month(
    plans: dict[str, list[str]],
) -> None:
    activities = [
        activity(f"{unit}-{n}", unit, kind) for unit, kinds in plans.items() for n, kind in enumerate(kinds)
    ]
    expected = sorted(unit for unit, kinds in plans.items() if not any(KINDS[k] for k in kinds))
    assert units_without_activity(plans, activities, "2020-06") == expected


def test_a_month_of_three_units() -> None:
    activities = [
        activity("a1", "village-1", "completed-in-june"),
        activity("a2", "station-1", "cancelled-in-june"),
    ]
    assert units_without_activity(["village-1", "station-1", "team-1"], activities, "2020-06") == [
        "station-1",
        "team-1",
    ]
