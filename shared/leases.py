"""Leases in MongoDB: of N replicas of a service, one runs a periodic loop at a time.

A service may run as N competing consumers (``wmsj up --replicas N``, ``docker compose up
--scale``). Its handlers are safe with N by construction (inbox + transactions); its periodic
loops (``shared.rounds``) each run in every replica. Each loop is one of:

- **idempotent by construction**: two replicas running the same round at once change what
  one would, because the round's writes are transactions that first take what they act on
  (a mark, a held event) or check the state they change, and what they publish has ids
  derived from the cause (a duplicate the inbox ignores). Such a loop runs everywhere.
- **leased**: the round is idempotent too, but doing it in every replica is wasted work or
  doubled output, so a lease (one document per loop in the service's ``leases``
  collection) lets one replica do it. The holder renews it every round; when the holder
  dies the lease runs out (``ttl``) and another replica takes it over.

A lease is never what correctness rests on: a holder paused longer than the lease (a GC, a
stopped VM) may run one last round beside its successor, which the idempotence covers.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

log = logging.getLogger("wmsj.leases")

# Who this process is, in the lease documents (and so in the logs): host, pid and a random
# part, because a restarted container may reuse its pid.
REPLICA = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Lease:
    """The lease named ``name`` in ``db.leases``, held for ``ttl`` after each renewal."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]], name: str, ttl: timedelta, holder: str = REPLICA):
        self.leases = db.leases
        self.name = name
        self.ttl = ttl
        self.holder = holder
        self.held = False

    async def acquire(self, now: datetime | None = None) -> bool:
        """Take or renew the lease; True if this replica holds it until ``now + ttl``."""
        now = now or datetime.now(UTC)
        try:
            doc = await self.leases.find_one_and_update(
                {"_id": self.name, "$or": [{"holder": self.holder}, {"until": {"$lt": now}}]},
                {"$set": {"holder": self.holder, "until": now + self.ttl, "renewed_at": now}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError:  # held by another replica: the upsert found no match
            doc = None
        held = doc is not None and doc.get("holder") == self.holder
        if held != self.held:
            log.info("lease %s %s", self.name, "taken" if held else "lost", extra={"replica": self.holder})
        self.held = held
        return held

    async def release(self) -> None:
        """Give the lease up (on a clean stop), so another replica need not wait it out."""
        if self.held:
            await self.leases.delete_one({"_id": self.name, "holder": self.holder})
            self.held = False

    def guard(self, one_round: Callable[[], Awaitable[object]]) -> Callable[[], Awaitable[object]]:
        """``one_round`` run only while this replica holds the lease (taken or renewed
        first, each round)."""

        async def leased_round() -> object:
            if await self.acquire():
                return await one_round()
            return None

        return leased_round


def lease_ttl(interval_s: float) -> timedelta:
    """Long enough that a holder renews it (every round) well before it runs out, short
    enough that a dead holder's loop resumes elsewhere within a few rounds."""
    return timedelta(seconds=max(3 * interval_s, 5.0))


async def run_leased_rounds(
    db: AsyncDatabase[dict[str, Any]],
    name: str,
    one_round: Callable[[], Awaitable[object]],
    interval_s: float,
    what: str,
    logger: logging.Logger,
) -> None:
    """``shared.rounds.run_rounds`` for a leased loop: only the replica holding lease
    ``name`` runs the round; the lease is given up when the loop is stopped."""
    from shared.rounds import run_rounds

    lease = Lease(db, name, lease_ttl(interval_s))
    try:
        await run_rounds(lease.guard(one_round), interval_s, what, logger)
    finally:
        try:
            await lease.release()
        except Exception as error:  # stopping anyway: the lease then runs out by itself
            logger.warning("could not give up lease %s: %s", name, error)
