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
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiormq.exceptions import DeliveryError
from pymongo import ASCENDING, AsyncMongoClient, DeleteOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, CollectionInvalid, DuplicateKeyError

from shared.door import body_digest
from shared.events import CloudEvent
from shared.identity import looks_like_reply_queue
from shared.rounds import run_rounds
from shared.uow import Conflict, apply_once

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
    """Apply ``effect`` for ``event`` exactly once, in a transaction of its own. Returns
    False if it was already handled. (``Service.process`` batches events instead.)

    ``effect`` writes through the session it is given and returns the events to publish.
    """
    async with MongoUnitOfWork(client, db).transaction() as tx:
        return await apply_once(tx, event, effect)


class MongoTransaction:
    """The unit of work's transaction on MongoDB: the inbox and outbox collections.

    For a batch, the inbox is read with one query (``preload``) and the inbox and outbox
    entries are written with one bulk insert each when the transaction ends (``flush``)."""

    def __init__(self, db: AsyncDatabase[Document], session: AsyncClientSession) -> None:
        self.db = db
        self.session = session
        self._preloaded: set[str] = set()  # inbox keys looked up by ``preload``
        self._handled: dict[str, Document] = {}  # of those, the ones in the inbox: their entries
        self._inbox: list[Document] = []
        self._outbox: list[Document] = []

    async def preload(self, events: Sequence[CloudEvent[Any]]) -> None:
        keys = [e.key for e in events]
        found = self.db.inbox.find({"_id": {"$in": keys}}, INBOX_LOOK, session=self.session)
        self._handled |= {d["_id"]: d async for d in found}
        self._preloaded |= set(keys)

    async def seen(self, event: CloudEvent[Any]) -> bool:
        """A duplicate; raises ``InvalidEvent`` for the same key with another body (``seen_before``)."""
        if event.key in self._preloaded:
            return seen_before(self._handled.get(event.key), event)
        return seen_before(
            await self.db.inbox.find_one({"_id": event.key}, INBOX_LOOK, session=self.session), event
        )

    async def remember(self, event: CloudEvent[Any]) -> bool:
        if not self._preloaded:  # a single event: its own insert, as before batching
            try:
                await self.db.inbox.insert_one(inbox_entry(event), session=self.session)
            except DuplicateKeyError:  # handled concurrently by another consumer
                return False
            return True
        self._inbox.append(inbox_entry(event))
        return True

    async def stage(self, outgoing: Sequence[Outgoing]) -> None:
        self._outbox += [_outbox_entry(item) for item in outgoing]

    async def flush(self) -> None:
        if self._inbox:
            try:
                await self.db.inbox.insert_many(self._inbox, ordered=False, session=self.session)
            except BulkWriteError as error:
                # Another consumer (a replica) handled one of them since ``preload``: the
                # batch is retried, and its ``preload`` then sees it.
                raise Conflict(f"an inbox entry was written concurrently: {error}") from error
        if self._outbox:
            await self.db.outbox.insert_many(self._outbox, session=self.session)


class MongoUnitOfWork:
    """``shared.uow.UnitOfWork`` on MongoDB: one multi-document transaction."""

    def __init__(self, client: AsyncMongoClient[Document], db: AsyncDatabase[Document]) -> None:
        self.client = client
        self.db = db

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[MongoTransaction]:
        async with self.client.start_session() as session, await session.start_transaction():
            tx = MongoTransaction(self.db, session)
            yield tx
            await tx.flush()


# ----------------------------------------------------------------------------- the inbox

# What ``seen_before`` needs of an inbox entry (a projection for ``find``).
INBOX_LOOK = {"_id": 1, "digest": 1}


def inbox_entry(event: CloudEvent[Any]) -> Document:
    """The inbox entry recording that ``event`` was handled: its key ``(source, id)`` — the
    door made sure a township's source is its own (``shared.door``), so the key is the
    broker-validated sender's — and a digest of what it states."""
    return {"_id": event.key, "type": event.type, "digest": stated(event), "handled_at": datetime.now(UTC)}


def stated(event: CloudEvent[Any]) -> str:
    """The digest of what ``event`` states: its canonical body but for ``time``. A sender
    that re-stamps the time when it sends an event again (a retry, an importer re-reading
    its file) sends the same statement; another type, subject or data is another one."""
    return body_digest(event.model_dump_json(exclude={"time"}))


def seen_before(entry: Document | None, event: CloudEvent[Any]) -> bool:
    """Whether the inbox ``entry`` found under ``event.key`` (None: none) makes ``event`` a
    duplicate, to be ignored. The same key with another body is not the same event sent
    again but a conflicting one: ``InvalidEvent``, answered to the sender (an id is used for
    one statement only). Entries written before digests were kept have none: a duplicate."""
    if entry is None:
        return False
    digest = entry.get("digest")
    if digest is not None and digest != stated(event):
        from shared.messaging import InvalidEvent

        raise InvalidEvent(
            f"event {event.id} from {event.source} was already received with a different content: "
            "an id names one statement only; send a new statement with a new id",
            location="id",
        )
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
        if not looks_like_reply_queue(entry["reply_to"]):
            # Not a reply queue (say, a service's own queue named in a held message's
            # reply_to before the door settled it): never answered there.
            log.warning("reply %s not sent to %s: not a reply queue", event_id, entry["reply_to"])
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
