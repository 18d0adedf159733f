"""End-to-end throughput and latency of the pipeline, beside raw aio-pika on the same broker.

    .venv/bin/python bench/pipeline.py [--events 1000]

Pipeline: a township publishes ``activity completed`` for N different units; each goes
ingress → activities (validate, store, outbox) → wmsj.events → supervision (store, mark,
rescore in batches, outbox) → ``score updated``. Latency is from the township's publish to
the moment the ``score updated`` of that unit's month is received. Two rounds, measured
apart because their cost differs several times over:

- *first fact of a unit*: the unit has no scores yet, so its whole year is scored and
  announced (17 scores, 29 ``score updated`` events: v2 for every month, quarter and the
  year, v1 for every month);
- *fact of a scored unit*: the same units, a month later: the month, its quarter and the
  year change (3 scores, 4 events) — the common case once a year is under way.

Baseline: the same N message bodies, published to a queue where a raw aio-pika consumer
republishes each (publisher confirms, persistent, ack after) to a second queue: the floor
any consume→republish service on this broker stands on.

Both run in one process, on the same broker, each in a virtual host of its own, one after
the other; the services run as separate OS processes, as in production. Needs the servers
(``scripts/services.sh start``) and ``rabbitmqctl``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import aio_pika

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared.events import (
    ActivityCompleted,
    ActivityCompletedEvent,
    ScoreUpdatedEvent,
    new_event,
    period_of,
)
from wmsj import processes
from wmsj.client import TownshipClient

BASE_URL = os.environ.get("WMSJ_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


def vhost(name: str) -> str:
    user = urlsplit(BASE_URL).username or "guest"
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", name], check=True, capture_output=True)
    subprocess.run(["rabbitmqctl", "-q", "set_permissions", "-p", name, user, ".*", ".*", ".*"], check=True)
    return urlunsplit(urlsplit(BASE_URL)._replace(path="/" + quote(name, safe="")))


def drop_vhost(name: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", "delete_vhost", name], check=False, capture_output=True)


def workload(n: int, run: str, month: int = 6) -> list[ActivityCompletedEvent]:
    ended = datetime(2020, month, 15, 8, 0, tzinfo=UTC)
    return [
        new_event(  # type: ignore[misc]
            ActivityCompletedEvent,
            ActivityCompleted(
                activity_id=f"{run}-a{i}-{month}",
                unit_id=f"{run}-u{i}",
                ended_at=ended,
                volunteers=10,
                service_hours=20,
            ),
            source="/townships/bench",
            time=ended + timedelta(hours=1),
        )
        for i in range(n)
    ]


def summary(name: str, sent_at: dict[str, float], received_at: dict[str, float]) -> dict[str, float]:
    latencies = sorted((received_at[k] - sent_at[k]) * 1000 for k in received_at)
    elapsed = max(received_at.values()) - min(sent_at.values())
    return {
        "name": name,  # type: ignore[dict-item]
        "events": len(received_at),
        "per_s": len(received_at) / elapsed,
        "p50": statistics.median(latencies),
        "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
    }


async def wait_all(received: dict[str, float], n: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while len(received) < n:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {len(received)} of {n} arrived within {timeout}s")
        await asyncio.sleep(0.05)


async def bench_pipeline(events: list[ActivityCompletedEvent], amqp_url: str, name: str) -> dict[str, float]:
    sent: dict[str, float] = {}
    received: dict[str, float] = {}
    connection = await aio_pika.connect_robust(amqp_url)
    channel = await connection.channel()
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(await channel.get_exchange("wmsj.events"), ScoreUpdatedEvent.TYPE)

    period = period_of(events[0].data.ended_at)

    async def on_score(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        async with message.process():
            score = ScoreUpdatedEvent.model_validate_json(message.body).data
            if score.period == period:
                received.setdefault(score.unit_id, time.perf_counter())

    await queue.consume(on_score)
    async with TownshipClient(amqp_url) as township:
        for event in events:
            sent[event.data.unit_id] = time.perf_counter()
            await township.publish(event)
        await wait_all(received, len(events), timeout=600)
    await connection.close()
    return summary(name, sent, received)


async def bench_raw(events: list[ActivityCompletedEvent], amqp_url: str) -> dict[str, float]:
    sent: dict[str, float] = {}
    received: dict[str, float] = {}
    connection = await aio_pika.connect_robust(amqp_url)
    consume_channel = await connection.channel()
    await consume_channel.set_qos(prefetch_count=32)
    publish_channel = await connection.channel(publisher_confirms=True)
    inbound = await consume_channel.declare_queue("bench.in", durable=True)
    outbound = await consume_channel.declare_queue("bench.out", durable=True)

    async def republish(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        await publish_channel.default_exchange.publish(
            aio_pika.Message(
                message.body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT, message_id=message.message_id
            ),
            routing_key="bench.out",
        )
        await message.ack()

    async def on_out(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        received.setdefault(message.message_id or "", time.perf_counter())
        await message.ack()

    await inbound.consume(republish)
    await outbound.consume(on_out)
    producer = await connection.channel(publisher_confirms=True)
    for event in events:
        sent[event.data.unit_id] = time.perf_counter()
        await producer.default_exchange.publish(
            aio_pika.Message(
                event.model_dump_json().encode(),
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=event.data.unit_id,
            ),
            routing_key="bench.in",
        )
    await wait_all(received, len(events), timeout=600)
    await connection.close()
    return summary("raw aio-pika consume→republish", sent, received)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1000)
    args = parser.parse_args()
    run = "b" + secrets.token_hex(3)
    first, later = workload(args.events, run, month=5), workload(args.events, run, month=6)

    raw_vhost, pipe_vhost = f"wmsj-bench-{run}-raw", f"wmsj-bench-{run}-pipe"
    state = Path(tempfile.mkdtemp(prefix="wmsj-bench-"))
    layout = processes.Layout(state, {name: 19001 + i for i, name in enumerate(processes.SERVICES)})
    try:
        raw = asyncio.run(bench_raw(later, vhost(raw_vhost)))
        env = {
            "WMSJ_AMQP_URL": vhost(pipe_vhost),
            "WMSJ_DB_PREFIX": f"{run}_",
            "WMSJ_LOG_LEVEL": "WARNING",
            **{k: v for k, v in os.environ.items() if k == "WMSJ_PREFETCH"},
        }
        for name in layout.ports:
            processes.start(layout, name, env)
        states = processes.wait_ready(layout, list(layout.ports), timeout=60)
        if any(code != 200 for code, _ in states.values()):
            raise SystemExit(f"services not ready: {states}")
        new_units = asyncio.run(bench_pipeline(first, env["WMSJ_AMQP_URL"], "wmsj: first fact of a unit"))
        pipeline = asyncio.run(bench_pipeline(later, env["WMSJ_AMQP_URL"], "wmsj: fact of a scored unit"))
    finally:
        for name in layout.ports:
            processes.stop(layout, name)
        drop_vhost(raw_vhost)
        drop_vhost(pipe_vhost)
        _drop_databases(run)

    print(f"\n{args.events} events, one broker, {os.cpu_count()} cores\n")
    print(f"{'':34} {'events/s':>10} {'p50 ms':>10} {'p99 ms':>10}")
    for row in (raw, new_units, pipeline):
        print(f"{row['name']:34} {row['per_s']:>10.0f} {row['p50']:>10.1f} {row['p99']:>10.1f}")
    print(f"\npipeline (fact of a scored unit) / raw throughput: {pipeline['per_s'] / raw['per_s']:.2f}")


def _drop_databases(run: str) -> None:
    from pymongo import MongoClient

    client: MongoClient[dict[str, object]] = MongoClient(
        os.environ.get("WMSJ_MONGO_URL", "mongodb://127.0.0.1:27017/?retryWrites=false")
    )
    for name in client.list_database_names():
        if name.startswith(f"{run}_"):
            client.drop_database(name)
    client.close()


if __name__ == "__main__":
    main()
