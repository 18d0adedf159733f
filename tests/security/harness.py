"""What the adversarial suite uses to attack the running services as real senders would, and
to see what came of it: senders (two township users and the office) that publish any bytes
with any properties and collect the refusals on their own reply queue, a snapshot of every
service's database, and the services' log records."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import aio_pika
from pymongo.asynchronous.database import AsyncDatabase

from shared.events import CONTENT_TYPE, EventRejected, EventRejectedEvent
from shared.identity import TOWNSHIP_USER_PREFIX, reply_queue

INGRESS = "wmsj.ingress"
# Collections whose contents change without any message (the outbox is emptied by the relay
# on its own clock): everything else must be exactly as it was after a refused message.
VOLATILE = frozenset({"outbox"})


def as_user(amqp_url: str, user: str, password: str) -> str:
    parts = urlsplit(amqp_url)
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{parts.hostname}:{parts.port or 5672}"
    return urlunsplit(parts._replace(netloc=netloc))


class Sender:
    """A system on the ingress door: a township (its own RabbitMQ user and reply queue) or the
    office (a private reply queue). ``send`` publishes any bytes with any properties;
    refusals arriving on the sender's reply queue are kept by the refused event's id."""

    def __init__(self, amqp_url: str) -> None:
        self.amqp_url = amqp_url
        self.user = unquote(urlsplit(amqp_url).username or "guest")
        self.refusals: dict[str, list[EventRejected]] = {}
        self._arrived = asyncio.Condition()

    @property
    def is_township(self) -> bool:
        return self.user.startswith(TOWNSHIP_USER_PREFIX)

    @property
    def township_id(self) -> str:
        return self.user.removeprefix(TOWNSHIP_USER_PREFIX)

    @property
    def source(self) -> str:
        return f"/townships/{self.township_id}" if self.is_township else "/office"

    async def __aenter__(self) -> Sender:
        self._connection = await aio_pika.connect_robust(self.amqp_url)
        # Confirms; not ``on_return_raises``: an unroutable publish is what some cases try.
        channel = await self._connection.channel(publisher_confirms=True)
        self._exchange = await channel.get_exchange(INGRESS, ensure=True)
        if self.is_township:
            self.queue = await channel.get_queue(reply_queue(self.user), ensure=True)
        else:
            self.queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await self.queue.consume(self._on_reply)
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._connection.close()

    async def _on_reply(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        async with message.process():
            rejected = EventRejectedEvent.model_validate_json(message.body).data
            async with self._arrived:
                self.refusals.setdefault(rejected.rejected_id or "", []).append(rejected)
                self._arrived.notify_all()

    async def send(
        self,
        body: bytes | dict[str, Any],
        *,
        routing_key: str,
        message_id: str,
        reply_to: str | None = "",
        user_id: str | None = "",
        content_type: str | None = CONTENT_TYPE,
        content_encoding: str | None = None,
    ) -> None:
        """Publish to the ingress. ``reply_to``/``user_id`` "" mean the sender's own (None:
        the property left out)."""
        raw = json.dumps(body, ensure_ascii=False).encode() if isinstance(body, dict) else body
        await self._exchange.publish(
            aio_pika.Message(
                raw,
                content_type=content_type,
                content_encoding=content_encoding,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=message_id,
                timestamp=datetime.now(UTC),
                reply_to=self.queue.name if reply_to == "" else reply_to,
                user_id=self.user if user_id == "" else user_id,
            ),
            routing_key=routing_key,
        )

    async def refusal(self, event_id: str, timeout: float = 30) -> EventRejected:
        """The refusal of ``event_id``, once it has come to this sender's reply queue."""
        async with asyncio.timeout(timeout), self._arrived:
            await self._arrived.wait_for(lambda: event_id in self.refusals)
        return self.refusals[event_id][0]


async def snapshot(databases: list[AsyncDatabase[Any]]) -> dict[str, str]:
    """A digest of every document of every collection of the services' databases."""

    async def digest(db: AsyncDatabase[Any], name: str) -> tuple[str, str]:
        docs = await db[name].find({}).sort("_id", 1).to_list(None)
        text = json.dumps(docs, sort_keys=True, default=str).encode()
        return f"{db.name}.{name}", f"{len(docs)}:{hashlib.sha256(text).hexdigest()}"

    names = await asyncio.gather(*(db.list_collection_names() for db in databases))
    found = await asyncio.gather(
        *(
            digest(db, n)
            for db, listed in zip(databases, names, strict=True)
            for n in listed
            if n not in VOLATILE
        )
    )
    return dict(sorted(found))


class LogRecords(logging.Handler):
    """Every log record the services write while it is installed (on the root logger)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def mark(self) -> int:
        return len(self.records)

    def since(self, mark: int) -> list[logging.LogRecord]:
        return self.records[mark:]

    def troubles(self, mark: int) -> list[str]:
        """ERRORs and tracebacks since ``mark``: a refusal is a WARNING, never an error."""
        return [
            f"{r.levelname} {r.name}: {r.getMessage()}"
            for r in self.since(mark)
            if r.levelno >= logging.ERROR or r.exc_info
        ]


def deep_text(depth: int) -> str:
    return "[" * depth + "]" * depth
