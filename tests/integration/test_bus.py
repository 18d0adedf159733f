"""The shared plumbing against the real broker and database: no silent loss."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime
from types import ModuleType

import pytest
from aiormq.exceptions import PublishError

from shared.events import UnitKind, UnitRegistered, UnitRegisteredEvent, new_event
from tests.support import Tap


def some_event() -> UnitRegisteredEvent:
    data = UnitRegistered(unit_id="u-" + secrets.token_hex(4), name="x", kind=UnitKind.VILLAGE)
    return new_event(UnitRegisteredEvent, data, source="/test", time=datetime.now(UTC))  # type: ignore[return-value]


async def test_an_event_no_queue_takes_is_an_error_not_a_silent_loss(apps: dict[str, ModuleType]) -> None:
    bus = apps["registry"].service.bus
    with pytest.raises(PublishError, match="NO_ROUTE"):
        await bus.publish(some_event(), routing_key="wmsj.nobody.listens.v1")


async def test_outbox_entries_left_by_a_crash_are_published_by_the_relay(
    apps: dict[str, ModuleType], tap: Tap
) -> None:
    service = apps["registry"].service
    event = some_event()
    # What a handler leaves behind if the process dies after its transaction commits.
    await service.db.outbox.insert_one(
        {
            "event_id": event.id,
            "type": event.type,
            "body": event.model_dump_json(),
            "created_at": datetime.now(UTC),
            "sent_at": None,
        }
    )
    await tap.wait_for(lambda e: e.id == event.id, timeout=30)  # the background relay sends it
    # ... and then marks it sent (just after the broker confirmed it).
    for _ in range(100):
        if await service.outbox.pending() == 0:
            break
        await asyncio.sleep(0.1)
    assert await service.outbox.pending() == 0
