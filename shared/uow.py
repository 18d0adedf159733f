"""The unit of work (a port): several events handled in one transaction, acknowledged together.

One transaction per event made the MongoDB-wire server the pipeline's bottleneck (issue 11:
≈ 10–20 events/s, while it writes ≈ 10–16k documents/s in bulk), and concurrent handlers of
one unit wrote the same document and retried, up to 23 times for one message. So a service
hands every event to its ``Batcher``: it takes what the handlers running at that moment
(the prefetch window) bring, up to a batch size or a few milliseconds, and applies every
event's effect in order in **one transaction** — inbox entries, effects, outbox entries —
and only then lets each handler return, so its message is acknowledged after the commit.

- A refused event (its effect raises anything but a transient failure) does not sink its
  batch-mates: the transaction is dropped, the batch re-run without it, and only it fails.
- Events of one batch that touch the same document see each other's effects, in order:
  they share the transaction.
- One batch is in flight at a time per process, so the process's own events never
  conflict with each other; a conflict (with a replica, the rescorer, a sweep) retries the
  whole batch and is counted (``Batcher.conflicts``).
- A crash between commit and acknowledgement only redelivers events whose inbox entries
  are committed: handled again, they change nothing (``apply_once``).

``UnitOfWork`` is the port: ``MongoUnitOfWork`` (``shared.mongo``) is the adapter, and
``InMemoryUnitOfWork`` here serves unit tests of handlers and of the batching itself.
Effects still take the transaction's ``session`` (a Mongo session there, the in-memory
transaction here), so handlers written against a session keep working unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from shared.events import CloudEvent
from shared.messaging import is_transient, retry_transient

log = logging.getLogger("wmsj.uow")
T = TypeVar("T")

# What an effect returns: events for the outbox (``shared.mongo.Outgoing``).
Outgoing = Any
Effect = Callable[[Any], Awaitable[Sequence[Outgoing]]]


class Transaction(Protocol):
    """One open transaction: the inbox, the outbox, and the session effects write through."""

    @property
    def session(self) -> Any: ...

    async def seen(self, event: CloudEvent[Any]) -> bool:
        """Whether the event is in the inbox already (handled by an earlier transaction)."""
        ...

    async def remember(self, event: CloudEvent[Any]) -> bool:
        """Put the event in the inbox; False if another consumer did meanwhile."""
        ...

    async def stage(self, outgoing: Sequence[Outgoing]) -> None:
        """Put ``outgoing`` in the outbox: published once the transaction commits."""
        ...

    async def preload(self, events: Sequence[CloudEvent[Any]]) -> None:
        """Look up the inbox entries of a whole batch at once (``seen`` then asks no more)."""
        ...


class UnitOfWork(Protocol):
    def transaction(self) -> contextlib.AbstractAsyncContextManager[Transaction]:
        """Open a transaction; it commits when the block ends, and is dropped if it raises."""
        ...


async def apply_once(tx: Transaction, event: CloudEvent[Any], effect: Effect) -> bool:
    """Apply ``effect`` for ``event`` in ``tx`` unless the event was handled already: the
    one place that decides "handled once", for a single event and for a batch alike.
    Returns False for a duplicate."""
    if await tx.seen(event):
        return False
    if not await tx.remember(event):  # handled concurrently by another consumer
        return False
    await tx.stage(await effect(tx.session))
    return True


@dataclass
class _Pending:
    event: CloudEvent[Any] | None  # None: other work, not an event's (``Batcher.run``)
    work: Callable[[Transaction], Awaitable[Any]]
    done: asyncio.Future[Any]


class _Refused(Exception):
    def __init__(self, item: _Pending, error: BaseException) -> None:
        super().__init__(str(error))
        self.item, self.error = item, error


def is_conflict(error: BaseException) -> bool:
    """A write conflict (another transaction wrote the same document first)."""
    labels = getattr(error, "has_error_label", None)
    return bool(labels and labels("TransientTransactionError")) or "WriteConflict" in str(error)


@dataclass
class BatchStats:
    batches: int = 0
    events: int = 0
    conflicts: int = 0  # transactions retried after a write conflict
    refused: int = 0
    largest: int = 0


@dataclass
class Batcher:
    """Collects the events of concurrently running handlers into batches (see the module)."""

    uow: UnitOfWork
    batch_size: int = 64
    wait_s: float = 0.005
    retry_max_delay_s: float = 10.0
    name: str = "events"
    stats: BatchStats = field(default_factory=BatchStats)
    _queue: asyncio.Queue[_Pending] | None = field(default=None, init=False)
    _runner: asyncio.Task[None] | None = field(default=None, init=False)
    _loop: asyncio.AbstractEventLoop | None = field(default=None, init=False)

    async def submit(self, event: CloudEvent[Any], effect: Effect) -> bool:
        """Handle ``event`` with the next batch; True once committed, False for a duplicate.
        Raises what its effect raised if it was refused (its batch-mates are unaffected)."""
        return bool(await self._enqueue(event, lambda tx: apply_once(tx, event, effect)))

    async def run(self, work: Callable[[Any], Awaitable[T]]) -> T:
        """Run ``work`` (given the session) in the next batch's transaction: what is not an
        event's effect but should share its batch (a held event released, a late refusal)."""
        result: T = await self._enqueue(None, lambda tx: work(tx.session))
        return result

    async def _enqueue(
        self, event: CloudEvent[Any] | None, work: Callable[[Transaction], Awaitable[Any]]
    ) -> Any:
        loop = asyncio.get_running_loop()
        if self._queue is None or self._runner is None or self._runner.done() or self._loop is not loop:
            self._loop = loop
            self._queue = asyncio.Queue()
            self._runner = asyncio.create_task(self._run(self._queue), name=f"batcher-{self.name}")
        done: asyncio.Future[Any] = loop.create_future()
        self._queue.put_nowait(_Pending(event, work, done))
        return await done

    async def close(self) -> None:
        if self._runner is not None and self._loop is asyncio.get_running_loop():
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
            self._runner = None

    async def _run(self, queue: asyncio.Queue[_Pending]) -> None:
        while True:
            batch = [await queue.get()]
            deadline = time.monotonic() + self.wait_s
            while len(batch) < self.batch_size:
                try:
                    batch.append(queue.get_nowait())
                    continue
                except asyncio.QueueEmpty:
                    pass
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(queue.get(), left))
                except TimeoutError:
                    break
            try:
                await self.apply(batch)
            except asyncio.CancelledError:
                for item in batch:
                    if not item.done.done():
                        item.done.cancel()
                raise
            except BaseException as error:  # never leave a handler waiting for ever
                for item in batch:
                    if not item.done.done():
                        item.done.set_exception(error)

    async def apply(self, batch: list[_Pending]) -> None:
        """Commit ``batch`` in one transaction, leaving out (and failing) each refused event."""
        remaining = list(batch)
        while remaining:
            try:
                results = await retry_transient(
                    lambda: self._attempt(remaining),
                    what=f"handling a batch of {len(remaining)} {self.name}",
                    max_delay=self.retry_max_delay_s,
                )
            except _Refused as refused:
                remaining.remove(refused.item)
                self.stats.refused += 1
                refused.item.done.set_exception(refused.error)
                continue
            except Exception as error:
                # Failed as a whole (at commit, say), not through one event's effect: halve
                # it until the event it fails for is alone, so the rest are not refused too.
                if len(remaining) == 1:
                    self.stats.refused += 1
                    remaining[0].done.set_exception(error)
                    return
                middle = len(remaining) // 2
                await self.apply(remaining[:middle])
                await self.apply(remaining[middle:])
                return
            self.stats.batches += 1
            self.stats.events += len(remaining)
            self.stats.largest = max(self.stats.largest, len(remaining))
            for item, handled in zip(remaining, results, strict=True):
                item.done.set_result(handled)
            return

    async def _attempt(self, batch: list[_Pending]) -> list[Any]:
        results: list[Any] = []
        try:
            async with self.uow.transaction() as tx:
                await tx.preload([item.event for item in batch if item.event is not None])
                keys: set[str] = set()
                for item in batch:
                    if item.event is not None:
                        if item.event.key in keys:  # the same event twice in a batch (a redelivery)
                            results.append(False)
                            continue
                        keys.add(item.event.key)
                    try:
                        results.append(await item.work(tx))
                    except Exception as error:
                        if is_transient(error):
                            raise
                        raise _Refused(item, error) from error
        except Exception as error:
            if is_conflict(error):
                self.stats.conflicts += 1
            raise
        return results


# ----------------------------------------------------------------------------- in memory


class Conflict(ConnectionError):
    """The in-memory stand-in for a write conflict: transient, so the batch is retried."""

    def has_error_label(self, label: str) -> bool:
        return label == "TransientTransactionError"


@dataclass
class InMemoryTransaction:
    """A copy of the state, written by effects and kept only if the transaction commits."""

    documents: dict[str, dict[str, Any]]
    inbox: set[str]
    outbox: list[Outgoing]

    @property
    def session(self) -> InMemoryTransaction:
        return self

    async def seen(self, event: CloudEvent[Any]) -> bool:
        return event.key in self.inbox

    async def remember(self, event: CloudEvent[Any]) -> bool:
        if event.key in self.inbox:
            return False
        self.inbox.add(event.key)
        return True

    async def stage(self, outgoing: Sequence[Outgoing]) -> None:
        self.outbox.extend(outgoing)

    async def preload(self, events: Sequence[CloudEvent[Any]]) -> None:
        pass


@dataclass
class InMemoryUnitOfWork:
    """The unit of work for unit tests: documents in a dict, all-or-nothing commits, and
    ``conflicts`` injected write conflicts (the next that many commits fail and are retried)."""

    documents: dict[str, dict[str, Any]] = field(default_factory=dict)
    inbox: set[str] = field(default_factory=set)
    outbox: list[Outgoing] = field(default_factory=list)
    conflicts: int = 0
    commits: int = 0

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[InMemoryTransaction]:
        tx = InMemoryTransaction(copy.deepcopy(self.documents), set(self.inbox), [])
        yield tx
        if self.conflicts:
            self.conflicts -= 1
            raise Conflict("WriteConflict (injected)")
        self.documents, self.inbox = tx.documents, tx.inbox
        self.outbox.extend(tx.outbox)
        self.commits += 1
