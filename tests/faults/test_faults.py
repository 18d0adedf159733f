"""A city month published while one thing at a time goes wrong; after each, what the
services stored equals what they stored from the same month without faults: nothing lost,
nothing counted twice, and every refusal back at its sender.

The servers are the suite's own (``conftest``). Each scenario is a world of its own (a
virtual host and databases); all publish the same month (same event ids and files)."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.faults.conftest import FULL, ROWS
from tests.faults.harness import COMPARED, Row, Servers, Township, World, compare, onboard, upload_month
from tests.faults.month import CityMonth
from tests.faults.servers import RabbitNode
from tests.support import PrivateMongo, PrivateS3, free_port
from wmsj import processes

Fault = Callable[[World], Awaitable[float]]  # injects a fault; returns seconds to recover


@dataclass
class Outcome:
    snapshot: dict[str, dict[str, Any]]
    scores: bytes
    refusals_missing: set[str]
    recover_s: float
    settle_s: float
    world: World
    recover_each: list[float]


async def run_month(world: World, month: CityMonth, faults: list[Fault] | None = None) -> Outcome:
    """Start the world, publish the month (the faults struck, one after another, from
    halfway, while the rest is published), wait until everything is handled, and read what
    the services stored."""
    world.start()
    try:
        await asyncio.to_thread(upload_month, world, month)
        await asyncio.to_thread(onboard, world, month.townships)
        async with Township(world.amqp_url, month.townships) as township:
            half = len(month.sends) // 2
            for item in month.sends[:half]:
                await township.send(item)
            injected = asyncio.create_task(_one_after_another(world, faults or []))
            for item in month.sends[half:]:
                await township.send(item)
            recover_each = await injected
            settle = await world.settle()
            missing = await township.wait_refusals({f.event_id for f in month.faulty})
        return Outcome(
            world.snapshot(),
            world.score_table(),
            missing,
            max(recover_each, default=0.0),
            settle,
            world,
            recover_each,
        )
    finally:
        world.stop()


async def _one_after_another(world: World, faults: list[Fault]) -> list[float]:
    return [await fault(world) for fault in faults]


def check(name: str, month: CityMonth, baseline: Outcome, outcome: Outcome, world: World) -> None:
    diff = compare(baseline.snapshot, outcome.snapshot)
    ROWS.append(
        Row(
            name,
            len(month.sends),
            diff.lost,
            diff.doubled,
            outcome.recover_s,
            outcome.settle_s,
            len(outcome.refusals_missing),
            len(diff.changed),
        )
    )
    examples = [
        (
            key,
            baseline.snapshot[key.split("/")[0]][key.split("/", 1)[1]],
            outcome.snapshot[key.split("/")[0]][key.split("/", 1)[1]],
        )
        for key in diff.changed[:2]
    ]
    assert (diff.lost, diff.doubled, diff.changed[:5]) == (0, 0, []), f"{examples}\n{world.logs()}"
    assert outcome.refusals_missing == set()
    assert outcome.scores == baseline.scores


@pytest.fixture(scope="module")
async def baseline(servers: tuple[Servers, PrivateMongo, PrivateS3], month: CityMonth) -> Outcome:
    world = World(servers[0], "baseline")
    outcome = await run_month(world, month)
    ROWS.append(Row("none (the month without faults)", len(month.sends), 0, 0, 0.0, outcome.settle_s))
    assert outcome.refusals_missing == set()
    rows = outcome.snapshot["supervision.scores"]
    assert rows and any(r["score"] > 0 for r in rows.values())  # a real month, really scored
    return outcome


@pytest.mark.parametrize("service", ["supervision", "activities"])
def test_a_service_rebuilt_from_the_event_archive_equals_the_live_one(
    baseline: Outcome, service: str
) -> None:
    world = baseline.world
    into = f"faults_replayed_{service}_"
    done = subprocess.run(
        [sys.executable, "-m", "wmsj.cli", "replay", service, "--into", into],
        env={**os.environ, **world.env},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    print(done.stdout)
    live, rebuilt = world.snapshot(), world.snapshot(into)
    for table in COMPARED[service]:
        key = f"{service}.{table}"
        assert rebuilt[key] == live[key], key
    if service == "supervision":  # the score table, as the office reads it
        assert rebuilt["supervision.scores"] and rebuilt["supervision.scores"] == live["supervision.scores"]


async def _ready_after(world: World, started: float, names: list[str] | None = None) -> float:
    await asyncio.to_thread(world.wait_ready, names)
    return time.monotonic() - started


# In CI, ``test_two_replicas_and_one_of_each_killed`` compares two replicas' score table
# with one's byte for byte (with a kill besides); the full run also does it without a kill.
full_only = pytest.mark.full


@full_only
async def test_two_replicas_of_every_service_score_the_month_byte_for_byte_as_one(
    servers: tuple[Servers, PrivateMongo, PrivateS3], month: CityMonth, baseline: Outcome
) -> None:
    world = World(servers[0], "replicas", replicas=2)
    outcome = await run_month(world, month)
    check("none, 2 replicas of every service", month, baseline, outcome, world)


def kill_and_restart(service: str) -> Fault:
    async def kill(world: World) -> float:
        await asyncio.sleep(0.5)  # into the batch the publishing started
        started = time.monotonic()
        world.kill9(service)
        processes.start(world.layout, service, world.env_of(service))
        return await _ready_after(world, started, [service])

    return kill


def restart_broker(rabbit: RabbitNode) -> Fault:
    async def restart(world: World) -> float:
        started = time.monotonic()
        await asyncio.to_thread(rabbit.stop)
        await asyncio.to_thread(rabbit.start)
        return await _ready_after(world, started)

    return restart


def restart_database(mongo: PrivateMongo) -> Fault:
    async def restart(world: World) -> float:
        started = time.monotonic()
        await asyncio.to_thread(mongo.stop)
        await asyncio.sleep(3)
        await asyncio.to_thread(mongo.start)
        return await _ready_after(world, started)

    return restart


def object_store_down(s3: PrivateS3, seconds: float = 30) -> Fault:
    async def outage(world: World) -> float:
        await asyncio.to_thread(s3.stop)
        await asyncio.sleep(seconds)
        started = time.monotonic()
        await asyncio.to_thread(s3.start)
        return await _ready_after(world, started)

    return outage


async def drill(
    servers: Servers, name: str, month: CityMonth, baseline: Outcome, faults: list[tuple[str, Fault]]
) -> None:
    """The month with ``faults``: each in a run of its own with the full month
    (``WMSJ_FAULTS_FULL=1``); in CI, one after another in one run (still one at a time, each
    recovered from before the next), to keep within CI's time."""
    if FULL:
        for label, fault in faults:
            world = World(servers, f"{name}-{len(ROWS)}")
            check(label, month, baseline, await run_month(world, month, [fault]), world)
        return
    world = World(servers, name)
    outcome = await run_month(world, month, [f for _, f in faults])
    for (label, _), recovered in zip(faults, outcome.recover_each, strict=True):
        outcome.recover_s = recovered
        check(f"{label}{' (one run)' if len(faults) > 1 else ''}", month, baseline, outcome, world)


async def test_each_service_killed_mid_batch_and_restarted(
    servers: tuple[Servers, PrivateMongo, PrivateS3], month: CityMonth, baseline: Outcome
) -> None:
    kills = [(f"kill -9 {s} mid-batch, restart", kill_and_restart(s)) for s in processes.SERVICES]
    await drill(servers[0], "kill", month, baseline, kills)


async def test_the_broker_database_and_object_store_fail(
    servers: tuple[Servers, PrivateMongo, PrivateS3], month: CityMonth, baseline: Outcome, rabbit: RabbitNode
) -> None:
    faults = [
        ("RabbitMQ node restarted", restart_broker(rabbit)),
        ("MongoDB-wire server restarted", restart_database(servers[1])),
        ("S3 down for 30 s", object_store_down(servers[2])),
    ]
    await drill(servers[0], "servers", month, baseline, faults)


async def test_two_replicas_and_one_of_each_killed(
    servers: tuple[Servers, PrivateMongo, PrivateS3], month: CityMonth, baseline: Outcome
) -> None:
    async def kill_one_of_each(world: World) -> float:
        await asyncio.sleep(0.5)
        started = time.monotonic()
        for service in processes.SERVICES:
            world.kill9(processes.instance_name(service, 1))  # the holder of the leases, most likely
        # The survivors carry on alone: nothing waits for the killed ones to return.
        return await _ready_after(world, started, [processes.instance_name(s, 2) for s in processes.SERVICES])

    world = World(servers[0], "replica-killed", replicas=2)
    outcome = await run_month(world, month, [kill_one_of_each])
    # Byte for byte the score table of one replica each (``check``), and what they stored.
    check("2 replicas each, one of each kill -9ed", month, baseline, outcome, world)


@pytest.fixture(scope="module")
def cluster(suite_folder: Path) -> Iterator[list[RabbitNode]]:
    """Three RabbitMQ nodes of the suite's own, clustered (quorum queues and the archive
    stream are then replicated on all three)."""
    tag = secrets.token_hex(2)
    nodes = [
        RabbitNode(suite_folder / f"cluster-{n}", f"faults{tag}c{n}", free_port(), free_port())
        for n in (1, 2, 3)
    ]
    try:
        for node in nodes:
            node.start()
        for node in nodes[1:]:
            node.join(nodes[0])
        yield nodes
    finally:
        for node in nodes:
            node.stop()


@full_only
async def test_a_cluster_node_stopped_mid_stream(
    servers: tuple[Servers, PrivateMongo, PrivateS3],
    cluster: list[RabbitNode],
    month: CityMonth,
    baseline: Outcome,
) -> None:
    first, second, third = cluster
    on_cluster = Servers(
        [first.url, second.url, third.url],
        servers[0].mongo_url,
        servers[0].s3_endpoint,
        first.ctl,
        servers[0].folder,
    )

    def nodes_from(*nodes: RabbitNode) -> dict[str, str]:
        vhost = "faults-cluster"
        # Office queues as quorum queues: a classic one lives on one node (shared/topology.py).
        return {
            "WMSJ_AMQP_URL": ",".join(f"{n.url}{vhost}" for n in nodes),
            "WMSJ_OFFICE_QUEUE_TYPE": "quorum",
        }

    # Three services reach the cluster through the node that is stopped; they must carry on
    # through the others. The township publishes through the first node throughout.
    overrides = {
        "registry": nodes_from(third, first, second),
        "activities": nodes_from(second, third, first),
        "evidence": nodes_from(second, first, third),
        "supervision": nodes_from(second, third, first),
    }

    async def stop_a_node(world: World) -> float:
        await asyncio.sleep(0.5)
        started = time.monotonic()
        await asyncio.to_thread(second.stop)
        return await _ready_after(world, started)

    world = World(on_cluster, "cluster", overrides=overrides)
    outcome = await run_month(world, month, [stop_a_node])
    check("3-node RabbitMQ cluster, one node stopped", month, baseline, outcome, world)
