"""A lease in MongoDB: of two replicas, one runs a leased loop; the other takes over when
the holder's lease runs out or is given up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.leases import Lease
from shared.mongo import connect
from tests.conftest import Infra

pytestmark = pytest.mark.integration


async def test_one_replica_holds_a_lease_until_it_runs_out_or_is_given_up(infra: Infra) -> None:
    client = connect(infra.mongo_url)
    db = client[f"{infra.run_id}leases"]
    ttl = timedelta(seconds=30)
    first, second = Lease(db, "timers", ttl, "replica-1"), Lease(db, "timers", ttl, "replica-2")
    now = datetime.now(UTC)
    try:
        assert await first.acquire(now)
        assert not await second.acquire(now)
        assert await first.acquire(now + timedelta(seconds=20))  # renewed by its holder
        assert not await second.acquire(now + timedelta(seconds=40))  # renewal counts from 20 s
        assert await second.acquire(now + timedelta(seconds=51))  # the holder stopped renewing
        assert not await first.acquire(now + timedelta(seconds=52))
        await second.release()
        assert await first.acquire(now + timedelta(seconds=53))
    finally:
        await client.drop_database(db.name)
        await client.close()
