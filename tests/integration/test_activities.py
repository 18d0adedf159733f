"""Activities against the real broker and database: arrival order does not matter."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import ModuleType

from shared.events import (
    ActivityCompleted,
    ActivityCompletedEvent,
    ActivityScheduled,
    ActivityScheduledEvent,
    new_event,
)
from tests.support import Tap
from wmsj.client import TownshipClient

START = datetime(2020, 6, 10, 1, 0, tzinfo=UTC)


def scheduled(activity_id: str, unit_id: str) -> ActivityScheduledEvent:
    data = ActivityScheduled(
        activity_id=activity_id,
        unit_id=unit_id,
        title="防汛安全宣传",
        starts_at=START,
        ends_at=START + timedelta(hours=3),
    )
    return new_event(ActivityScheduledEvent, data, source="/townships/t", time=START - timedelta(days=3))  # type: ignore[return-value]


def completed(activity_id: str, unit_id: str) -> ActivityCompletedEvent:
    data = ActivityCompleted(
        activity_id=activity_id,
        unit_id=unit_id,
        ended_at=START + timedelta(hours=3),
        volunteers=8,
        service_hours=24,
        people_served=60,
    )
    return new_event(ActivityCompletedEvent, data, source="/townships/t", time=START + timedelta(hours=4))  # type: ignore[return-value]


async def test_a_completion_arriving_before_its_schedule_is_held_then_reconciled(
    apps: dict[str, ModuleType], township: TownshipClient, tap: Tap
) -> None:
    activity_id = "a-" + secrets.token_hex(4)
    await township.publish(completed(activity_id, "431381101"))
    await tap.wait_for(lambda e: e.subject == activity_id)
    held = await apps["activities"].activities.get(activity_id)
    assert held is not None and held.status == "completed-awaiting-schedule"

    await township.publish(scheduled(activity_id, "431381101"))
    await tap.wait_for(lambda e: e.subject == activity_id, count=2)
    final = await apps["activities"].activities.get(activity_id)
    assert final is not None and final.status == "completed"
    assert final.schedule is not None and final.schedule.title == "防汛安全宣传"
    assert final.completion is not None and final.completion.volunteers == 8
    assert township.rejections == []


async def test_both_orders_end_in_the_same_state(
    apps: dict[str, ModuleType], township: TownshipClient, tap: Tap
) -> None:
    in_order, reversed_ = "a-" + secrets.token_hex(4), "a-" + secrets.token_hex(4)
    for event in (scheduled(in_order, "u1"), completed(in_order, "u1")):
        await township.publish(event)
    for event in (completed(reversed_, "u1"), scheduled(reversed_, "u1")):
        await township.publish(event)
    await tap.wait_for(lambda e: e.subject in (in_order, reversed_), count=4)

    store = apps["activities"].activities
    one, other = await store.get(in_order), await store.get(reversed_)
    assert one is not None and other is not None
    assert one.status == other.status == "completed"
    # Equal but for the activity id, which the canonical content (``stated``) includes.
    assert replace(one.schedule, stated="") == replace(other.schedule, stated="")  # type: ignore[type-var]
    assert replace(one.completion, stated="") == replace(other.completion, stated="")  # type: ignore[type-var]


async def test_an_activity_claimed_by_another_unit_is_refused(
    apps: dict[str, ModuleType], township: TownshipClient, tap: Tap
) -> None:
    activity_id = "a-" + secrets.token_hex(4)
    await township.publish(scheduled(activity_id, "431381101"))
    await tap.wait_for(lambda e: e.subject == activity_id)
    await township.publish(completed(activity_id, "431381103"))

    [rejection] = await township.wait_for_rejections(1, timeout=15)
    assert rejection.reason == f"activity {activity_id} belongs to unit 431381101, not 431381103"
    await asyncio.sleep(0.5)
    stored = await apps["activities"].activities.get(activity_id)
    assert stored is not None and stored.completion is None
