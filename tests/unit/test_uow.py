"""The batching unit of work (shared.uow) with the in-memory unit of work: several events in
one transaction, a refused one isolated, shared documents seen in order, redelivery after a
crash, and a conflict retried."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

import shared.messaging
from shared.events import UnitRegisteredEvent
from shared.messaging import InvalidEvent
from shared.uow import Batcher, InMemoryTransaction, InMemoryUnitOfWork, apply_once

NOW = datetime(2020, 6, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def no_back_off(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    async def instant(_: float) -> None:
        await asyncio.sleep(0)

    monkeypatch.setattr(shared.messaging, "_sleep", instant)
    yield


def event(n: int) -> UnitRegisteredEvent:
    return UnitRegisteredEvent.model_validate(
        {
            "id": f"e{n}",
            "source": "/townships/t1",
            "time": NOW,
            "data": {"unit_id": f"u{n}", "name": f"unit {n}", "kind": "village"},
        }
    )


def count_on(doc_id: str, refuse: bool = False):  # type: ignore[no-untyped-def]
    """An effect that adds one to a shared document's counter and records the order."""

    async def effect(tx: InMemoryTransaction) -> list[Any]:
        doc = tx.documents.setdefault(doc_id, {"n": 0, "seen": []})
        doc["n"] += 1
        doc["seen"].append(doc["n"])
        if refuse:
            raise InvalidEvent("refused on purpose")
        return [f"announce {doc_id} {doc['n']}"]

    return effect


async def submit_all(batcher: Batcher, items: list[tuple[UnitRegisteredEvent, Any]]) -> list[Any]:
    return await asyncio.gather(*(batcher.submit(e, f) for e, f in items), return_exceptions=True)


async def test_a_batch_is_one_transaction_and_each_event_is_answered() -> None:
    uow = InMemoryUnitOfWork()
    batcher = Batcher(uow, batch_size=10, wait_s=0.01)
    results = await submit_all(batcher, [(event(n), count_on(f"d{n}")) for n in range(5)])
    assert results == [True] * 5
    assert uow.commits == 1 and batcher.stats.largest == 5
    assert len(uow.inbox) == 5 and len(uow.outbox) == 5
    await batcher.close()


async def test_a_refused_event_does_not_sink_its_batch_mates() -> None:
    uow = InMemoryUnitOfWork()
    batcher = Batcher(uow, batch_size=10, wait_s=0.01)
    items = [(event(n), count_on("shared", refuse=n == 2)) for n in range(5)]
    results = await submit_all(batcher, items)
    assert [r is True for r in results] == [True, True, False, True, True]
    assert isinstance(results[2], InvalidEvent)
    # The refused event left nothing: not its inbox entry, not its write, not its outbox entry.
    assert event(2).key not in uow.inbox and len(uow.inbox) == 4
    assert uow.documents["shared"]["n"] == 4
    assert uow.outbox == [f"announce shared {n}" for n in range(1, 5)]
    assert batcher.stats.refused == 1
    await batcher.close()


async def test_two_events_on_one_document_see_each_other_in_order() -> None:
    uow = InMemoryUnitOfWork()
    batcher = Batcher(uow, batch_size=10, wait_s=0.01)
    await submit_all(batcher, [(event(n), count_on("activity-1")) for n in range(3)])
    assert uow.commits == 1
    assert uow.documents["activity-1"] == {"n": 3, "seen": [1, 2, 3]}
    assert uow.outbox == ["announce activity-1 1", "announce activity-1 2", "announce activity-1 3"]
    await batcher.close()


async def test_a_crash_between_commit_and_ack_redelivers_and_changes_nothing() -> None:
    uow = InMemoryUnitOfWork()
    first = Batcher(uow, batch_size=10, wait_s=0.01)
    items = [(event(n), count_on("doc")) for n in range(4)]
    assert await submit_all(first, items) == [True] * 4
    await first.close()  # the process dies: committed, never acknowledged
    before = (dict(uow.documents["doc"]), set(uow.inbox), list(uow.outbox))
    again = Batcher(uow, batch_size=10, wait_s=0.01)  # the restarted process gets them again
    assert await submit_all(again, items) == [False] * 4
    assert (uow.documents["doc"], uow.inbox, uow.outbox) == before
    await again.close()


async def test_a_batch_that_conflicts_is_retried_whole_and_counted() -> None:
    uow = InMemoryUnitOfWork(conflicts=2)
    batcher = Batcher(uow, batch_size=10, wait_s=0.01)
    results = await submit_all(batcher, [(event(n), count_on("doc")) for n in range(3)])
    assert results == [True] * 3
    assert batcher.stats.conflicts == 2 and uow.commits == 1
    assert uow.documents["doc"] == {"n": 3, "seen": [1, 2, 3]}  # the failed attempts left nothing
    await batcher.close()


async def test_batch_size_one_is_one_event_per_transaction() -> None:
    uow = InMemoryUnitOfWork()
    batcher = Batcher(uow, batch_size=1, wait_s=0.01)
    items = [(event(n), count_on("doc", refuse=n == 1)) for n in range(3)]
    results = await submit_all(batcher, items)
    assert results[0] is True and isinstance(results[1], InvalidEvent) and results[2] is True
    assert uow.commits == 2 and batcher.stats.largest == 1
    await batcher.close()


async def test_the_same_event_twice_in_one_batch_is_handled_once() -> None:
    uow = InMemoryUnitOfWork()
    batcher = Batcher(uow, batch_size=10, wait_s=0.01)
    results = await submit_all(batcher, [(event(1), count_on("doc")), (event(1), count_on("doc"))])
    assert results == [True, False]
    assert uow.documents["doc"]["n"] == 1
    await batcher.close()


async def test_apply_once_alone_skips_a_handled_event() -> None:
    uow = InMemoryUnitOfWork()
    for expected in (True, False):
        async with uow.transaction() as tx:
            assert await apply_once(tx, event(1), count_on("doc")) is expected
    assert uow.documents["doc"]["n"] == 1


async def test_a_batch_failing_as_a_whole_is_halved_until_the_culprit_is_alone() -> None:
    class FailsWithSeven(InMemoryUnitOfWork):
        """Fails at commit (not in an effect) whenever the seventh event is in the batch."""

        @contextlib.asynccontextmanager
        async def transaction(self) -> AsyncIterator[InMemoryTransaction]:
            async with super().transaction() as tx:
                yield tx
                if event(7).key in tx.inbox:
                    raise RuntimeError("commit failed")

    uow = FailsWithSeven()
    batcher = Batcher(uow, batch_size=16, wait_s=0.01)
    results = await submit_all(batcher, [(event(n), count_on(f"d{n}")) for n in range(10)])
    assert [r is True for r in results] == [n != 7 for n in range(10)]
    assert isinstance(results[7], RuntimeError)
    assert event(7).key not in uow.inbox and len(uow.inbox) == 9
    await batcher.close()
