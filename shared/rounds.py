"""Background work done in rounds, for ever: timers, sweeps, the outbox relay, the rescorer.

One loop for all of them, so that each treats a failed round the same way: logged, and the
next round tries again (the work it left is still in the database), while cancellation —
the service stopping — ends the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable


async def run_rounds(
    one_round: Callable[[], Awaitable[object]],
    interval_s: float,
    what: str,
    log: logging.Logger,
    wake: asyncio.Event | None = None,
) -> None:
    """Run ``one_round`` every ``interval_s`` seconds, or as soon as ``wake`` is set.

    With ``wake``, a failed round is followed by a pause of ``interval_s``: a handler that
    keeps waking the loop must not make it retry a broken database without a break.
    """
    while True:
        if wake is None:
            await asyncio.sleep(interval_s)
        else:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval_s):
                    await wake.wait()
            wake.clear()
        try:
            await one_round()
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the work stays where it is; the next round tries again
            log.warning("%s failed: %s", what, error)
            if wake is not None:
                await asyncio.sleep(interval_s)
