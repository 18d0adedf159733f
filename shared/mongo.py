"""MongoDB through PyMongo's async API, with the two collections every service keeps:

- ``inbox``: the keys ``(source, id)`` of the events already handled. A handler's effects,
  its inbox entry and the events it wants to publish are written in **one transaction**, so
  an event is either fully handled or not at all, and handling it twice changes nothing.
- ``outbox``: events waiting to be published. They are written with the effects and
  published afterwards by ``Outbox.relay``; a crash in between only delays them. An entry
  goes to ``wmsj.events``, or (a ``Reply``) to one sender's own reply queue, and is deleted
  once the broker confirmed it: the events' record is the bus and what consumes it (the
  office's queues, each service's facts), not the outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiormq.exceptions import DeliveryError
from pymongo import ASCENDING, AsyncMongoClient, DeleteOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import CollectionInvalid, DuplicateKeyError

from shared.events import CloudEvent
from shared.rounds import run_rounds

if TYPE_CHECKING:
    from shared.messaging import EventBus

log = logging.getLogger("wmsj.mongo")

Document = dict[str, Any]


@dataclass(frozen=True)
class Reply:
    """An event for one sender's reply queue (its message's ``reply_to``) instead of the bus:
    a refusal decided later than the message it answers was acknowledged (a held statement)."""

    event: CloudEvent[Any]
    queue: str


Outgoing = CloudEvent[Any] | Reply
Effect = Callable[[AsyncClientSession], Awaitable[Sequence[Outgoing]]]


def connect(url: str) -> AsyncMongoClient[Document]:
    return AsyncMongoClient(url, tz_aware=True, serverSelectionTimeoutMS=3000, connectTimeoutMS=3000)


async def ensure_common_indexes(db: AsyncDatabase[Document]) -> None:
    # Made up front: a collection created implicitly inside a transaction makes every other
    # transaction creating it at the same moment fail with a write conflict (the first burst
    # of events after a fresh start would all be retried).
    existing = set(await db.list_collection_names())
    for name in ("inbox", "outbox"):
        if name not in existing:
            with contextlib.suppress(CollectionInvalid):  # another replica made it meanwhile
                await db.create_collection(name)
    # The outbox holds only what is pending (published entries are deleted) and is read in
    # ``_id`` order: it needs no index of its own, and one would slow every insert and delete.
    # Earlier code marked entries sent and kept them under a TTL index on ``sent_at``: a
    # database it used loses both, so that its sent entries are not published again.
    if "sent_at_1" in await db.outbox.index_information():
        await db.outbox.delete_many({"sent_at": {"$ne": None}})
        await db.outbox.drop_index("sent_at_1")


async def handle_once(
    client: AsyncMongoClient[Document],
    db: AsyncDatabase[Document],
    event: CloudEvent[Any],
    effect: Effect,
) -> bool:
    """Apply ``effect`` for ``event`` exactly once. Returns False if it was already handled.

    ``effect`` writes through the session it is given and returns the events to publish.
    """
    async with client.start_session() as session, await session.start_transaction():
        if await db.inbox.find_one({"_id": event.key}, {"_id": 1}, session=session):
            return False
        try:
            await db.inbox.insert_one(
                {"_id": event.key, "type": event.type, "handled_at": datetime.now(UTC)},
                session=session,
            )
        except DuplicateKeyError:  # handled concurrently by another consumer
            return False
        await stage(db, await effect(session), session)
    return True


async def stage(
    db: AsyncDatabase[Document], outgoing: Sequence[Outgoing], session: AsyncClientSession
) -> None:
    """Put ``outgoing`` in the outbox, in the caller's transaction: published once it commits
    (``Outbox.relay``), and never if it does not."""
    if outgoing:
        await db.outbox.insert_many([_outbox_entry(item) for item in outgoing], session=session)


def _outbox_entry(item: Outgoing) -> Document:
    event, reply_to = (item.event, item.queue) if isinstance(item, Reply) else (item, None)
    return {
        "event_id": event.id,
        "type": event.type,
        "body": event.model_dump_json(),
        "reply_to": reply_to,
        "created_at": datetime.now(UTC),
    }


class Outbox:
    """Publishes what handlers left in the outbox, oldest first, in batches.

    Handlers only ``wake`` it: one relay round then publishes what many concurrent handlers
    stored, with one query and one bulk delete for the whole batch instead of two per event.
    (Deleting by id in bulk is several times faster on the MongoDB-wire server used here than
    marking entries sent with ``update_many``, and it keeps the collection, which every round
    queries, as small as what is pending.)
    """

    BATCH = 500

    def __init__(self, db: AsyncDatabase[Document], bus: EventBus) -> None:
        self.db = db
        self.bus = bus
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def relay(self) -> int:
        """Publish every pending entry; returns how many were published."""
        async with self._lock:  # one relay at a time keeps the order and avoids double sends
            published = 0
            while True:
                batch = await self.db.outbox.find({}).sort("_id", ASCENDING).to_list(self.BATCH)
                if not batch:
                    return published
                # Sent together (the channel keeps their order), confirmed together.
                results = await asyncio.gather(
                    *(self._publish(entry) for entry in batch), return_exceptions=True
                )
                sent = [entry["_id"] for entry, result in zip(batch, results, strict=True) if result is None]
                if sent:
                    # A failure here leaves them pending: published again next round, which
                    # consumers ignore as duplicates (at least once, never lost).
                    await self.db.outbox.bulk_write([DeleteOne({"_id": i}) for i in sent], ordered=False)
                    published += len(sent)
                failed = [r for r in results if isinstance(r, BaseException)]
                if failed:
                    raise failed[0]  # the rest stay pending for the next round

    async def _publish(self, entry: Document) -> None:
        body, event_id, event_type = entry["body"].encode(), entry["event_id"], entry["type"]
        if not entry.get("reply_to"):
            await self.bus.publish_raw(body, event_id=event_id, event_type=event_type)
            return
        try:
            await self.bus.reply_raw(body, event_id=event_id, event_type=event_type, queue=entry["reply_to"])
        except DeliveryError:
            # The reply queue is the sender's and is gone (returned as unroutable): retrying
            # would stall the outbox for ever. The office still has the copy on the bus.
            log.warning("reply queue %s is gone; reply %s not delivered", entry["reply_to"], event_id)

    async def pending(self) -> int:
        return await self.db.outbox.count_documents({})

    async def run_forever(self, interval: float = 1.0) -> None:
        """Relay whenever a handler wakes us, and every ``interval`` regardless: that also
        catches entries whose handler crashed before waking us.

        Replicas: idempotent by construction, no lease (every replica relays, so what its
        handlers stored goes out at once): two relays may publish the same entry, a
        duplicate with the same ``(source, id)`` that every consumer's inbox ignores."""
        await run_rounds(self.relay, interval, "outbox relay", log, wake=self._wake)
