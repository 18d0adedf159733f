"""A township system's side of the bus, in plain aio-pika: what ``wmsj demo``, ``wmsj publish``,
the tests and the benchmark use, and a worked example for township developers.

A township publishes CloudEvents to the ``wmsj.ingress`` exchange with routing key = event
type, persistent, with publisher confirms, with the ``user_id`` property set to the RabbitMQ
user it connects as (the broker checks it; the platform learns who sent the event from it),
and names a ``reply_to`` queue on which the platform tells it about every event it refuses
(``wmsj.event.rejected.v1``). A township's reply queue is durable and its own
(``wmsj.replies.township-<id>``, declared by ``wmsj township add``), so a refusal waits for
it even while it is disconnected. The office (``guest`` locally) gets a private,
temporary reply queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

import aio_pika
from minio import Minio

from shared.events import CONTENT_TYPE, CloudEvent, EventRejected, EventRejectedEvent, parse_event
from shared.identity import TOWNSHIP_USER_PREFIX, reply_queue
from shared.settings import S3Settings

INGRESS_EXCHANGE = "wmsj.ingress"


class TownshipClient:
    def __init__(self, amqp_url: str) -> None:
        self.amqp_url = amqp_url
        # The RabbitMQ user: stated on every message as user_id, which the broker verifies.
        self.user_id = unquote(urlsplit(amqp_url).username or "guest")
        self.rejections: list[EventRejected] = []
        self.notices: list[CloudEvent[Any]] = []  # the platform's other words to the township
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._exchange: aio_pika.abc.AbstractExchange | None = None
        self._reply_queue: aio_pika.abc.AbstractQueue | None = None
        self._arrived = asyncio.Event()

    async def __aenter__(self) -> TownshipClient:
        self._connection = await aio_pika.connect_robust(self.amqp_url)
        channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
        # The platform declares the exchange; a township only needs to find it.
        self._exchange = await channel.get_exchange(INGRESS_EXCHANGE, ensure=True)
        if self.user_id.startswith(TOWNSHIP_USER_PREFIX):
            # Declared by the platform; a township may read it but not (re)declare it.
            self._reply_queue = await channel.get_queue(reply_queue(self.user_id), ensure=True)
        else:
            self._reply_queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await self._reply_queue.consume(self._on_reply)
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._connection:
            await self._connection.close()

    async def _on_reply(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        async with message.process():
            # The reply queue also carries what the platform tells the township besides its
            # refusals (its monthly early warning): kept apart, not read as a refusal.
            if message.type and message.type != EventRejectedEvent.TYPE:
                self.notices.append(parse_event(message.body))
                return
            rejected = EventRejectedEvent.model_validate_json(message.body)
            self.rejections.append(rejected.data)
            self._arrived.set()

    async def publish(self, event: CloudEvent[Any]) -> None:
        await self.publish_raw(event.model_dump_json().encode(), routing_key=event.type, message_id=event.id)

    async def publish_raw(
        self, body: bytes, *, routing_key: str, message_id: str | None = None, user_id: str | None = None
    ) -> None:
        """``user_id`` other than the connection's user is refused by the broker (for tests)."""
        assert self._exchange is not None and self._reply_queue is not None, "use 'async with'"
        await self._exchange.publish(
            aio_pika.Message(
                body,
                content_type=CONTENT_TYPE,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=message_id,
                timestamp=datetime.now(UTC),
                reply_to=self._reply_queue.name,
                user_id=user_id or self.user_id,
            ),
            routing_key=routing_key,
        )

    async def wait_for_rejections(self, count: int, timeout: float) -> list[EventRejected]:
        """The rejections received once ``count`` have come, or when ``timeout`` runs out."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while len(self.rejections) < count:
                    self._arrived.clear()
                    await self._arrived.wait()
        return list(self.rejections)


def object_store(settings: S3Settings) -> Minio:
    return Minio(
        settings.endpoint,
        access_key=settings.access_key,
        secret_key=settings.secret_key,
        secure=settings.secure,
        region=settings.region,
    )


def upload(client: Minio, bucket: str, key: str, content: bytes, content_type: str) -> str:
    """Upload a file to the upload bucket; returns its sha256 for the ``evidence submitted`` claim."""
    client.put_object(bucket, key, io.BytesIO(content), len(content), content_type=content_type)
    return hashlib.sha256(content).hexdigest()
