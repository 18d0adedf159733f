"""Publishing a township's events: confirms, ``mandatory``, ``user_id``, ``reply_to`` and a
local outbox file.

    async with Publisher(AMQP_URL, outbox="outbox.jsonl") as publisher:
        await publisher.publish(event)     # returns once the broker has stored it

On entering, whatever the outbox still holds (a crash, a lost connection) is sent first.
``publish`` raises ``BrokerRefused`` when the broker refuses the message for good (403: the
user may not publish that type; 406: a ``user_id`` that is not the connection's user) or
routes it nowhere; that event leaves the outbox (sending it again could never work), and the
publisher goes on with a new channel. Any other failure (the connection dropped) leaves the
event in the outbox for the next ``resend()`` or start.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import aio_pika
import aiormq
from pamqp.commands import Basic

from shared.events import CONTENT_TYPE, CloudEvent
from shared.identity import TOWNSHIP_USER_PREFIX, reply_queue
from wmsj.township.outbox import Entry, Outbox

INGRESS_EXCHANGE = "wmsj.ingress"


class BrokerRefused(Exception):
    """The broker will never take this message: the reason is RabbitMQ's."""


def user_of(amqp_url: str) -> str:
    """The RabbitMQ user in an AMQP URL (``guest`` when it names none)."""
    return unquote(urlsplit(amqp_url).username or "guest")


class Publisher:
    def __init__(
        self, amqp_url: str, outbox: str | Path | None = None, *, reply_to: str | None = None
    ) -> None:
        """``outbox``: the file of events not confirmed yet (None: kept in memory only).
        ``reply_to``: where refusals go; a township's own reply queue by default."""
        self.amqp_url = amqp_url
        self.user = user_of(amqp_url)  # stated as user_id on every message; the broker checks it
        self.reply_to = reply_to or (
            reply_queue(self.user) if self.user.startswith(TOWNSHIP_USER_PREFIX) else None
        )
        self.outbox = Outbox(outbox) if outbox is not None else None
        self._memory: dict[str, Entry] = {}  # without a file: what is in flight
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._channel: aio_pika.abc.AbstractChannel | None = None
        self._exchange: aio_pika.abc.AbstractExchange | None = None

    async def __aenter__(self) -> Publisher:
        self._connection = await aio_pika.connect_robust(self.amqp_url)
        await self.resend()
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._connection is not None:
            await self._connection.close()

    async def _ingress(self) -> aio_pika.abc.AbstractExchange:
        assert self._connection is not None, "use 'async with Publisher(...)'"
        if self._channel is None or self._channel.is_closed:
            # A refusal closes the channel (AMQP): the next message gets a new one.
            self._channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
            self._exchange = await self._channel.get_exchange(INGRESS_EXCHANGE, ensure=True)  # passive
        assert self._exchange is not None
        return self._exchange

    async def publish(self, event: CloudEvent[Any]) -> None:
        """Send one event and wait for the broker's confirm; it is in the outbox until then."""
        entry = Entry(
            key=event.key, routing_key=event.type, message_id=event.id, body=event.model_dump_json()
        )
        if self.outbox is not None:
            self.outbox.add(entry)
        await self._send(entry)

    async def publish_json(self, event: dict[str, Any]) -> None:
        """Send an event given as JSON (a dict): for events from a file, or any type."""
        entry = Entry(
            key=f"{event.get('source')}|{event.get('id')}",
            routing_key=str(event.get("type")),
            message_id=str(event.get("id")),
            body=json.dumps(event, ensure_ascii=False),
        )
        if self.outbox is not None:
            self.outbox.add(entry)
        await self._send(entry)

    async def resend(self) -> int:
        """Send what the outbox holds (not confirmed before); returns how many were sent."""
        pending = self.outbox.pending() if self.outbox is not None else []
        for entry in pending:
            try:
                await self._send(entry)
            except BrokerRefused:
                continue  # dropped from the outbox; nothing else to do with it
        return len(pending)

    async def _send(self, entry: Entry) -> None:
        exchange = await self._ingress()
        message = aio_pika.Message(
            entry.body.encode(),
            content_type=CONTENT_TYPE,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=entry.message_id,
            timestamp=datetime.now(UTC),
            user_id=self.user,
            reply_to=self.reply_to,
        )
        try:
            await exchange.publish(message, routing_key=entry.routing_key, mandatory=True)
        except (
            aiormq.exceptions.ChannelAccessRefused,
            aiormq.exceptions.ChannelPreconditionFailed,
        ) as closed:
            self._forget(entry)
            raise BrokerRefused(f"{entry.routing_key}: {closed}") from closed
        except aio_pika.exceptions.DeliveryError as failed:
            if not isinstance(failed.frame, Basic.Return):
                raise  # a nack: the broker could not store it now; it stays in the outbox
            self._forget(entry)
            raise BrokerRefused(f"{entry.routing_key}: not routed to any queue") from failed
        self._forget(entry)  # confirmed: the broker has it

    def _forget(self, entry: Entry) -> None:
        if self.outbox is not None:
            self.outbox.done(entry.key)
