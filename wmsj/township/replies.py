"""Listening to the reply queue: every event of yours that the platform refused comes back
as a ``wmsj.event.rejected.v1`` on it, now or late (an event held for its unit is decided
when the unit arrives). A reply is acknowledged only once your handler has returned, so a
system that crashes while handling one gets it again.

    async with ReplyListener(AMQP_URL, on_rejection=store_it) as replies:
        ...                                  # keep it open while your system runs
        found = await replies.wait_for({event.id}, timeout=60)
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Awaitable, Callable, Iterable

import aio_pika

from shared.events import EventRejected, EventRejectedEvent
from shared.identity import TOWNSHIP_USER_PREFIX, reply_queue
from wmsj.township.publisher import user_of

Handler = Callable[[EventRejected], Awaitable[None] | None]


class ReplyListener:
    def __init__(self, amqp_url: str, on_rejection: Handler | None = None) -> None:
        self.amqp_url = amqp_url
        self.user = user_of(amqp_url)
        self.on_rejection = on_rejection
        self.rejections: dict[str, EventRejected] = {}  # by the refused event's id
        self.notices: list[bytes] = []  # the platform's other words (the monthly early warning)
        self.queue_name: str | None = None  # pass it to Publisher(reply_to=...) if not a township
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._arrived = asyncio.Condition()

    async def __aenter__(self) -> ReplyListener:
        self._connection = await aio_pika.connect_robust(self.amqp_url)
        channel = await self._connection.channel()
        if self.user.startswith(TOWNSHIP_USER_PREFIX):
            # The platform declared it, durable; a township may read it but not declare it.
            queue = await channel.get_queue(reply_queue(self.user), ensure=True)
        else:  # the office: a private queue for this session
            queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        self.queue_name = queue.name
        await queue.consume(self._on_reply)
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._connection is not None:
            await self._connection.close()

    async def _on_reply(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        async with message.process(requeue=True):
            # The reply queue also carries the township's monthly early warning
            # (wmsj.monthly-warning.issued.v1): not a refusal, and no failure either.
            if message.type and message.type != EventRejectedEvent.TYPE:
                self.notices.append(message.body)
                return
            rejected = EventRejectedEvent.model_validate_json(message.body).data
            if self.on_rejection is not None:
                outcome = self.on_rejection(rejected)
                if inspect.isawaitable(outcome):
                    await outcome
            async with self._arrived:
                self.rejections[rejected.rejected_id or ""] = rejected
                self._arrived.notify_all()

    async def wait_for(self, event_ids: Iterable[str], timeout: float) -> dict[str, EventRejected]:
        """The refusals of these events that came within ``timeout`` seconds (all, or fewer)."""
        wanted = set(event_ids)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout), self._arrived:
                await self._arrived.wait_for(lambda: wanted <= self.rejections.keys())
        return {i: r for i, r in self.rejections.items() if i in wanted}
