"""Events held in the database until what they wait for arrives.

A township's event may overtake a fact it depends on, which travels a longer way: a unit
comes township → registry → ``wmsj.events`` → this service; an activity's schedule comes
through the activities service; a rating (评单) may overtake its order (点单). Such an event
is early, not wrong. Waiting for the fact inside the handler would keep the message
unacknowledged and hold one of the consumer's prefetch slots, so a batch of early events
would stall the service for every township, and only for as long as one can sensibly keep
a message unacknowledged. Instead the event is *held*:

- **hold**: the event, who sent it (the broker-checked user and township) and its reply
  queue are stored under what it waits for (``Awaited``), in the same transaction as its
  inbox entry; then its message is acknowledged. A re-sent duplicate is a duplicate in the
  inbox: it is neither held twice nor handled twice.
- **release**: when what it waits for arrives, every event held for it is handled as if it
  had just arrived, with the stored publisher: the same scope check, the same effect. It may
  then wait for something else (held again, under that), be refused late, or be applied.
- **expire**: an event still waiting after the hold (``WMSJ_HOLD_S``) is refused late.

A late refusal goes to the office on the bus and to the sender's reply queue (the message
was acknowledged long ago), and takes the event out of the inbox: like an event refused at
once, it was never handled, so the township may send it again, the same, once it has
registered what was missing.

Each held event is one document (``held``, keyed by the event's key) and leaves it exactly
once: released, held again or refused, each in a transaction that first takes that document
(two of them at the same moment write the same document: one conflicts, retries, and finds
it gone).

The pure rules (``outstayed``, ``duration``, ``outstayed_reason``) are the registry's too,
which holds its statements in its own unit placeholders.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from pymongo.asynchronous.client_session import AsyncClientSession

from shared import metrics
from shared.door import field_named_in
from shared.events import CloudEvent, EventRejected, EventRejectedEvent, FieldError, derived_id, parse_event
from shared.hold_rules import Awaited, outstayed, outstayed_reason
from shared.identity import Publisher, reply_queue_for
from shared.leases import run_leased_rounds
from shared.messaging import InvalidEvent, retry_transient
from shared.mongo import Document, Effect, Outgoing, Reply, stage

if TYPE_CHECKING:
    from shared.service import Service
    from shared.settings import HoldSettings

T = TypeVar("T")

# The pure rules live in shared.hold_rules (the registry's domain uses them without I/O).

# ----------------------------------------------------------------------------- the store


@dataclass(frozen=True)
class Held:
    """An event as it was held: who sent it, where to answer, what it waits for, since when."""

    event: CloudEvent[Any]
    who: Publisher
    reply_to: str | None
    awaited: Awaited
    held_at: datetime

    @classmethod
    def from_doc(cls, doc: Document) -> Held:
        return cls(
            event=parse_event(doc["event"]),
            who=Publisher(doc["user"], doc.get("township_id")),
            reply_to=doc.get("reply_to"),
            awaited=Awaited.from_key(doc["awaiting"]),
            held_at=doc["held_at"],
        )


Known = Callable[[Awaited], Awaitable[bool]]
Handle = Callable[[Held], Awaitable[None]]


class Holds:
    """One service's held events (collection ``held``), and what releases and expires them.

    The service says how to tell that something awaited is known now (``known``) and how to
    handle a released event (``handle``: the service's own handling, given the ``Held``; it
    calls ``hold`` again, ``settle``, or raises ``InvalidEvent`` for a late refusal).
    """

    def __init__(self, service: Service, settings: HoldSettings, known: Known, handle: Handle) -> None:
        self.service = service
        self.settings = settings
        self.held = service.db.held
        self.known = known
        self.handle = handle
        self.log = logging.getLogger(f"wmsj.{service.name}.holds")
        service.on_start.append(self.ensure_indexes)
        service.background.append(self.run_sweeps)

    @property
    def hold_for(self) -> timedelta:
        return timedelta(seconds=self.settings.hold_s)

    async def ensure_indexes(self) -> None:
        await self.held.create_index("awaiting")

    async def hold(
        self,
        event: CloudEvent[Any],
        who: Publisher,
        reply_to: str | None,
        awaited: Awaited,
        released: Held | None = None,
    ) -> None:
        """Hold ``event`` until ``awaited`` is known. Fresh from the queue (``released`` is
        None) it is held in the transaction that records it in the inbox; a released event that
        now waits for something else moves there, keeping its ``held_at`` (the hold bounds the
        whole wait). Returns once the hold is stored, so the message may be acknowledged."""
        if released is None:
            doc = {
                "_id": event.key,
                "awaiting": awaited.key,
                "event": event.model_dump_json(),
                "type": event.type,
                "user": who.user,
                "township_id": who.township_id,
                "reply_to": reply_to,
                "held_at": datetime.now(UTC),
            }

            async def hold(session: AsyncClientSession) -> list[Outgoing]:
                await self.held.replace_one({"_id": doc["_id"]}, doc, upsert=True, session=session)
                return []

            if await self.service.process(event, hold):
                metrics.mark("held")
        else:

            async def move(session: AsyncClientSession) -> None:
                await self.held.update_one(
                    {"_id": event.key, "awaiting": released.awaited.key},
                    {"$set": {"awaiting": awaited.key}},
                    session=session,
                )

            await self.transaction(f"holding {event.id} for {awaited.key}", move)
        self.log.info("held", extra={"event_id": event.id, "event_type": event.type, "awaiting": awaited.key})
        # The race: this handler saw ``awaited`` unknown, then it arrived and was released
        # (finding nothing held yet), then this hold was written: held until it expires. Two
        # ways close it. Hold and arrival could write one shared document (as the registry's
        # placeholders do), so that write conflicts order them; but then every hold for the
        # same unit conflicts with every other one too, and a batch of early events for one
        # unit would queue up behind write-conflict retries and their back-off — the stall
        # holding exists to avoid. Instead each side looks after writing: the arrival releases
        # after its fact is committed, and a hold looks again after it is committed. Whichever
        # commits second sees the other's write, so at least one of them releases the event
        # (both may: the release takes the held document in a transaction, so only one
        # handles it). Should this process die between its commit and its look, the sweep
        # releases what waits for something known (``sweep``).
        if await self._known(awaited):
            await self.release(awaited)

    async def settle(self, held: Held, effect: Effect) -> bool:
        """Apply a released event's ``effect``, in the transaction that takes it out of the
        holds; False (and nothing applied) if it was taken meanwhile. The event is already in
        the inbox (it went there when it was held). ``InvalidEvent`` from the effect passes
        through, nothing applied: the caller refuses the event late."""

        async def work(session: AsyncClientSession) -> bool:
            taken = await self.held.delete_one(_taking(held), session=session)
            if not taken.deleted_count:
                return False
            await stage(self.service.db, await effect(session), session)
            return True

        return await self.transaction(f"handling held {held.event.type} {held.event.id}", work)

    async def refuse(self, held: Held, reason: str) -> bool:
        """Refuse a held event late: taken out of the holds and out of the inbox, and the
        refusal staged for the bus and for the sender's reply queue; False if it was taken
        meanwhile (released or refused already)."""
        service = self.service
        rejected = EventRejectedEvent(
            # The id an immediate refusal of this event would have (``EventBus.reject``).
            id=derived_id(held.event.key, f"rejected-by-{service.name}"),
            source=service.bus.source,
            time=datetime.now(UTC),
            subject=held.event.id,
            data=EventRejected(
                rejected_source=held.event.source,
                rejected_id=held.event.id,
                rejected_type=held.event.type,
                reason=reason,
                errors=[
                    FieldError(
                        location=field_named_in(reason, held.event.model_dump(mode="json")), message=reason
                    )
                ],
                rejected_by=service.name,
            ),
        )
        # Only to the sender's own queue, whatever was kept (``shared.identity``).
        queue = reply_queue_for(held.who, held.reply_to)
        outgoing: list[Outgoing] = [rejected, *([Reply(rejected, queue)] if queue else [])]

        async def work(session: AsyncClientSession) -> bool:
            taken = await self.held.delete_one(_taking(held), session=session)
            if not taken.deleted_count:
                return False
            await service.db.inbox.delete_one({"_id": held.event.key}, session=session)
            await stage(service.db, outgoing, session)
            return True

        refused = await self.transaction(f"refusing held {held.event.type} {held.event.id}", work)
        if refused:
            self.log.warning(
                "held event refused: %s",
                reason,
                extra={"event_id": held.event.id, "event_type": held.event.type},
            )
        return refused

    async def release(self, awaited: Awaited) -> None:
        """Handle every event held for ``awaited``, now that it is known (each in turn; one
        that fails for another reason than a refusal stays held, for the sweep to retry)."""
        found = await retry_transient(
            lambda: self.held.find({"awaiting": awaited.key}).sort("held_at", 1).to_list(None),
            what=f"looking up events held for {awaited.key}",
            max_delay=self.settings.retry_max_delay_s,
        )
        # Released together, so that their effects share the service's batches (shared.uow)
        # instead of a transaction each; each fails or succeeds on its own.
        await asyncio.gather(*(self._release(Held.from_doc(doc)) for doc in found))

    async def _release(self, held: Held) -> None:
        try:
            await self.handle(held)
        except InvalidEvent as refusal:
            await self.refuse(held, refusal.reason)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # kept: the sweep tries again, or refuses it in the end
            self.log.warning(
                "releasing held %s failed: %s", held.event.id, error, extra={"event_id": held.event.id}
            )

    async def sweep(self, now: datetime) -> list[str]:
        """One round of the sweep, as of ``now`` (the timer's clock): release what waits for
        something known by now (an arrival whose own release did not finish), then refuse
        what has outstayed the hold. Returns the ids of the events refused."""
        docs = await retry_transient(
            lambda: self.held.find({}).sort("held_at", 1).to_list(None),
            what="listing held events",
            max_delay=self.settings.retry_max_delay_s,
        )
        released = set()
        for key in dict.fromkeys(d["awaiting"] for d in docs):
            if await self._known(awaited := Awaited.from_key(key)):
                await self.release(awaited)
                released.add(key)
        refused = []
        for doc in outstayed([d for d in docs if d["awaiting"] not in released], now, self.hold_for):
            held = Held.from_doc(doc)
            if await self._known(held.awaited):  # arrived since the look above: released, not refused
                await self.release(held.awaited)
            elif await self.refuse(held, outstayed_reason(held.awaited, self.hold_for)):
                refused.append(held.event.id)
        return refused

    async def run_sweeps(self) -> None:
        # Replicas: leased (one replica sweeps; ``shared.leases``). Idempotent as well: a
        # release or refusal takes the held document in its transaction, so only one does.
        await run_leased_rounds(
            self.service.db,
            f"{self.service.name}-hold-sweep",
            lambda: self.sweep(datetime.now(UTC)),
            self.settings.hold_sweep_interval_s,
            "hold sweep",
            self.log,
        )

    async def transaction(self, what: str, work: Callable[[AsyncClientSession], Awaitable[T]]) -> T:
        """``work`` in a transaction (the service's next batch, ``shared.uow``), retried while
        the database is away or on a write conflict; then the outbox is relayed."""
        done = await self.service.batcher.run(work)
        self.service.outbox.wake()
        return done

    async def _known(self, awaited: Awaited) -> bool:
        return await retry_transient(
            lambda: self.known(awaited),
            what=f"looking up {awaited.key}",
            max_delay=self.settings.retry_max_delay_s,
        )


def _taking(held: Held) -> Document:
    """The held document as ``held`` saw it: one that has moved on to wait for something
    else since is not this release's (nor this refusal's) to take."""
    return {"_id": held.event.key, "awaiting": held.awaited.key}
