"""The shared plumbing against the real broker and database: no silent loss."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

import pytest
from aiormq.exceptions import PublishError

from shared.events import UnitKind, UnitRegistered, UnitRegisteredEvent, new_event
from shared.mongo import Outgoing, Reply
from tests.conftest import Infra
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
        }
    )
    await tap.wait_for(lambda e: e.id == event.id, timeout=30)  # the background relay sends it
    # ... and then deletes it (just after the broker confirmed it).
    for _ in range(100):
        if await service.outbox.pending() == 0:
            break
        await asyncio.sleep(0.1)
    assert await service.outbox.pending() == 0


async def test_a_reply_goes_to_the_senders_queue_and_a_vanished_queue_does_not_stall_the_outbox(
    infra: Infra, apps: dict[str, ModuleType], tap: Tap
) -> None:
    import aio_pika

    service = apps["registry"].service
    connection = await aio_pika.connect_robust(infra.amqp_url)
    async with connection:
        channel = await connection.channel()
        mine = await channel.declare_queue(exclusive=True, auto_delete=True)
        cause, to_me, to_nobody, on_bus = some_event(), some_event(), some_event(), some_event()

        async def effect(_session: Any) -> list[Outgoing]:
            return [
                Reply(to_nobody, f"wmsj.replies.gone-{secrets.token_hex(4)}"),
                Reply(to_me, mine.name),
                on_bus,
            ]

        await service.process(cause, effect)
        await tap.wait_for(lambda e: e.id == on_bus.id, timeout=30)
        assert tap.matching(lambda e: e.id in (to_me.id, to_nobody.id)) == []  # replies skip the bus
        message = await _get(mine)
        assert message.message_id == to_me.id

    async def relayed() -> bool:
        return await service.outbox.pending() == 0

    for _ in range(100):
        if await relayed():
            break
        await asyncio.sleep(0.1)
    assert await relayed()


async def _get(queue: Any) -> Any:
    for _ in range(300):
        message = await queue.get(fail=False, no_ack=True)
        if message is not None:
            return message
        await asyncio.sleep(0.1)
    raise AssertionError("no message on the reply queue")
