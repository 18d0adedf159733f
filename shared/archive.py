"""The event archive: every accepted event on ``wmsj.events`` is also kept in a RabbitMQ
**stream** (``wmsj.archive``), for its retention (by age and by size), whoever reads it.

The outbox deletes what the broker confirmed, and each service keeps only the state its
events made; the archive is the record of the events themselves. It is what ``wmsj
replay`` rebuilds a service's database from, and where a new consumer (an office system)
catches up on history: a stream is read from any offset (``first``, a time, a position)
without taking anything away from other readers.

A stream's retention is fixed when it is declared (its arguments). To change it on an
existing archive, set a policy (``rabbitmqctl set_policy wmsj-archive '^wmsj\\.archive$'
'{"max-age":"2Y"}' --apply-to queues``): policies override arguments, and a re-declaration
with other arguments would be refused.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import aio_pika
from faststream.rabbit import RabbitQueue
from faststream.rabbit.schemas import QueueType
from pydantic_settings import BaseSettings, SettingsConfigDict

ARCHIVE_QUEUE = "wmsj.archive"


class ArchiveSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WMSJ_ARCHIVE_", extra="ignore")

    # Long enough to rebuild a year's scores and to re-review last year's (units: Y M D h m s).
    max_age: str = "2Y"
    # And never more than this on disk (oldest segments go first).
    max_bytes: int = 50_000_000_000
    # Retention drops whole segments: smaller segments keep it closer to the limits.
    segment_bytes: int = 100_000_000


def archive_queue(settings: ArchiveSettings | None = None) -> RabbitQueue:
    settings = settings or ArchiveSettings()
    return RabbitQueue(
        ARCHIVE_QUEUE,
        durable=True,
        queue_type=QueueType.STREAM,
        arguments={
            "x-max-age": settings.max_age,
            "x-max-length-bytes": settings.max_bytes,
            "x-stream-max-segment-size-bytes": settings.segment_bytes,
        },
    )


async def read_archive(
    amqp_url: str, since: datetime | str = "first", idle_s: float = 3.0, prefetch: int = 500
) -> AsyncIterator[tuple[bytes, str]]:
    """The archived events (body, routing key) from ``since`` (a time, or ``first``), in
    the order the broker accepted them, until none has come for ``idle_s`` (the end of the
    archive as it was when reading began, plus whatever arrived meanwhile).

    Reading a stream over AMQP needs a prefetch (QoS) and manual acknowledgement; the
    acknowledgement only moves the credit on, it takes nothing out of the stream."""
    import asyncio
    import contextlib

    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        queue = await channel.get_queue(ARCHIVE_QUEUE, ensure=False)
        arguments: dict[str, Any] = {"x-stream-offset": since}
        async with queue.iterator(arguments=arguments) as messages:
            while True:
                try:
                    message = await asyncio.wait_for(messages.__anext__(), timeout=idle_s)
                except (TimeoutError, StopAsyncIteration):
                    return
                with contextlib.suppress(Exception):
                    await message.ack()
                yield message.body, message.routing_key or ""
    finally:
        await connection.close()
