"""The loop every background job runs in: a failed round is logged and the next one runs;
a wake starts a round at once; stopping the service cancels the loop."""

from __future__ import annotations

import asyncio
import logging

import pytest

from shared.rounds import run_rounds


async def test_a_failed_round_is_logged_and_the_next_one_runs(caplog: pytest.LogCaptureFixture) -> None:
    done: list[int] = []
    third = asyncio.Event()

    async def one_round() -> None:
        done.append(len(done))
        if len(done) == 1:
            raise ConnectionError("database away")
        if len(done) == 3:
            third.set()

    loop = asyncio.create_task(run_rounds(one_round, 0.01, "sweep", logging.getLogger("t")))
    await asyncio.wait_for(third.wait(), timeout=5)
    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop
    assert "sweep failed: database away" in caplog.text


async def test_a_wake_starts_a_round_before_the_interval() -> None:
    wake, ran = asyncio.Event(), asyncio.Event()

    async def one_round() -> None:
        ran.set()

    loop = asyncio.create_task(run_rounds(one_round, 3600, "relay", logging.getLogger("t"), wake=wake))
    await asyncio.sleep(0.05)
    assert not ran.is_set()  # an hour's interval: nothing yet
    wake.set()
    await asyncio.wait_for(ran.wait(), timeout=5)
    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop
