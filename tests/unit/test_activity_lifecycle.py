"""The lifecycle rules: planned → published → ongoing → completed, or cancelled; rescheduling.
The clock is injected (``now``), so every rule is tested at the moment it matters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.activities.domain.lifecycle import (
    Activity,
    RefusedActivity,
    apply_cancelled,
    apply_completed,
    apply_published,
    apply_scheduled,
)
from shared.events import ActivityCompleted, ActivityScheduled
from shared.events.activities import ActivityCancelled, ActivityPublished

STARTS = datetime(2020, 6, 12, 1, 0, tzinfo=UTC)
ENDS = STARTS + timedelta(hours=3)
PLANNED = STARTS - timedelta(days=7)
LATER = datetime(2020, 8, 1, tzinfo=UTC)  # a clock after everything


def schedule(starts: datetime = STARTS, hours: int = 3, title: str = "理论宣讲") -> ActivityScheduled:
    return ActivityScheduled(
        activity_id="a1", unit_id="u1", title=title, starts_at=starts, ends_at=starts + timedelta(hours=hours)
    )


def publish(capacity: int = 10) -> ActivityPublished:
    return ActivityPublished(activity_id="a1", unit_id="u1", capacity=capacity)


def complete(ended: datetime = ENDS, volunteers: int = 5, hours: float = 15) -> ActivityCompleted:
    return ActivityCompleted(
        activity_id="a1",
        unit_id="u1",
        ended_at=ended,
        volunteers=volunteers,
        service_hours=hours,
        people_served=40,
    )


def cancel() -> ActivityCancelled:
    return ActivityCancelled(activity_id="a1", unit_id="u1", reason="暴雨")


def planned() -> Activity:
    activity = apply_scheduled(None, schedule(), PLANNED, LATER)
    assert activity is not None
    return activity


def published() -> Activity:
    activity = apply_published(planned(), publish(), PLANNED + timedelta(hours=1), LATER)
    assert activity is not None
    return activity


def test_a_scheduled_activity_is_planned() -> None:
    assert planned().status == "planned"
    assert planned().state(STARTS + timedelta(hours=1)) == "planned"  # never published: not ongoing


def test_a_future_activity_can_be_published_with_its_capacity() -> None:
    activity = published()
    assert activity.status == "published"
    assert activity.publication is not None and activity.publication.capacity == 10


def test_only_future_activities_can_be_published() -> None:
    for too_late in (STARTS, ENDS + timedelta(days=1)):
        activity = apply_published(planned(), publish(), too_late, LATER)
        assert activity is not None and activity.status == "planned"
        assert activity.state(STARTS + timedelta(minutes=1)) == "planned"  # so never "ongoing"
        assert activity.problems == [
            f"only future activities can be published: published at {too_late.isoformat()}, "
            f"the activity starts at {STARTS.isoformat()}"
        ]
    assert published().problems == []


def test_a_publication_held_before_its_schedule_is_void_if_it_came_too_late() -> None:
    held = apply_published(None, publish(), STARTS + timedelta(minutes=1), LATER)
    assert held is not None and held.status == "awaiting-schedule"
    reconciled = apply_scheduled(held, schedule(), PLANNED, LATER)
    assert reconciled is not None and reconciled.status == "planned" and reconciled.problems


def test_a_reschedule_decides_whether_a_publication_was_in_time() -> None:
    late = apply_published(planned(), publish(), STARTS + timedelta(hours=1), LATER)
    moved = apply_scheduled(
        late, schedule(starts=STARTS + timedelta(days=1)), PLANNED + timedelta(hours=1), LATER
    )
    assert moved is not None and moved.status == "published" and moved.problems == []


def test_a_publication_held_before_its_schedule_is_reconciled() -> None:
    held = apply_published(None, publish(), PLANNED + timedelta(hours=1), LATER)
    reconciled = apply_scheduled(held, schedule(), PLANNED, LATER)
    assert reconciled is not None and reconciled.status == "published"


def test_a_published_activity_is_ongoing_from_its_start_until_completed() -> None:
    activity = published()
    assert activity.state(STARTS - timedelta(minutes=1)) == "published"
    assert activity.state(STARTS) == "ongoing"
    assert activity.state(ENDS + timedelta(days=2)) == "ongoing"  # until it is reported completed


def test_an_activity_completes_only_after_its_end_time() -> None:
    early = apply_completed(published(), complete(ended=STARTS), ENDS - timedelta(minutes=30), LATER)
    assert early is not None and early.status == "published"
    assert early.problems and early.problems[0].startswith("an activity completes only after its end time")
    done = apply_completed(published(), complete(), ENDS + timedelta(minutes=10), LATER)
    assert done is not None and done.status == "completed" and done.state(LATER) == "completed"


def test_a_completion_cannot_claim_an_end_after_it_was_reported() -> None:
    with pytest.raises(RefusedActivity, match="completes only after its end time"):
        apply_completed(
            published(), complete(ended=ENDS + timedelta(hours=5)), ENDS + timedelta(hours=1), LATER
        )


def test_a_completion_held_before_its_schedule_is_void_if_reported_before_the_end() -> None:
    held = apply_completed(None, complete(ended=STARTS), STARTS + timedelta(minutes=5), LATER)
    assert held is not None and held.status == "completed-awaiting-schedule"
    reconciled = apply_scheduled(held, schedule(), PLANNED, LATER)
    assert reconciled is not None and reconciled.status == "planned"


def test_a_completed_activity_records_volunteers_hours_and_people_served() -> None:
    done = apply_completed(published(), complete(volunteers=6, hours=18), ENDS + timedelta(hours=1), LATER)
    assert done is not None and done.completion is not None
    c = done.completion
    assert (c.volunteers, c.service_hours, c.people_served) == (6, 18, 40)


def test_hours_without_volunteers_are_refused() -> None:
    with pytest.raises(RefusedActivity, match="no volunteers"):
        apply_completed(published(), complete(volunteers=0, hours=3), ENDS + timedelta(hours=1), LATER)


def test_statements_dated_in_the_future_are_refused() -> None:
    now = PLANNED
    with pytest.raises(RefusedActivity, match="in the future"):
        apply_scheduled(None, schedule(), now + timedelta(hours=1), now)
    with pytest.raises(RefusedActivity, match="in the future"):
        apply_completed(None, complete(), ENDS + timedelta(hours=1), now)
    assert apply_scheduled(None, schedule(), now + timedelta(minutes=4), now) is not None  # clock skew


def test_a_cancelled_activity_is_cancelled_and_does_not_count() -> None:
    activity = apply_cancelled(published(), cancel(), PLANNED + timedelta(days=1), LATER)
    assert activity is not None and activity.status == "cancelled" and not activity.counts
    assert activity.state(STARTS + timedelta(minutes=1)) == "cancelled"


def test_a_cancellation_before_its_schedule_is_held_and_applies_once_scheduled() -> None:
    held = apply_cancelled(None, cancel(), PLANNED + timedelta(days=1), LATER)
    reconciled = apply_scheduled(held, schedule(), PLANNED, LATER)
    assert reconciled is not None and reconciled.status == "cancelled"


def test_rescheduling_replaces_the_time_window_and_shows_as_rescheduled() -> None:
    moved = apply_scheduled(
        published(), schedule(starts=STARTS + timedelta(days=2)), PLANNED + timedelta(days=2), LATER
    )
    assert moved is not None and moved.rescheduled
    assert moved.schedule is not None and moved.schedule.starts_at == STARTS + timedelta(days=2)
    assert moved.status == "published"  # still recruiting for the new time
    assert not published().rescheduled


def test_rescheduling_a_cancelled_activity_revives_it() -> None:
    cancelled = apply_cancelled(published(), cancel(), PLANNED + timedelta(days=1), LATER)
    revived = apply_scheduled(
        cancelled, schedule(starts=STARTS + timedelta(days=7)), PLANNED + timedelta(days=2), LATER
    )
    assert revived is not None and revived.status == "published"


def test_between_a_cancellation_and_a_completion_the_later_statement_decides() -> None:
    done = apply_completed(published(), complete(), ENDS + timedelta(hours=1), LATER)
    cancelled_after = apply_cancelled(done, cancel(), ENDS + timedelta(hours=2), LATER)
    assert cancelled_after is not None and cancelled_after.status == "cancelled"
    cancelled_before = apply_cancelled(done, cancel(), PLANNED + timedelta(days=1), LATER)
    assert cancelled_before is not None and cancelled_before.status == "completed"
