"""End-to-end throughput and latency of the pipeline, beside what the broker and the database
can do alone on the same machine.

    .venv/bin/python bench/pipeline.py [--events 1000] [--photos 300]

In one run, one after the other:

(a) **raw aio-pika**: the N message bodies published to a queue where a raw aio-pika
    consumer republishes each (publisher confirms, persistent, ack after) to a second
    queue: the floor any consume→republish service on this broker stands on;
(b) **raw MongoDB-wire bulk writes**: the documents the pipeline writes per fact (inbox
    entries, fact, rescoring mark, scores, outbox entries: 13 per event) written with
    unordered bulk inserts of 500, no transactions: the database's limit for the same work;
(c) **the pipeline** (the four services as OS processes, as in production):
    - *unit registrations*: ``unit registered`` → registry → accepted on wmsj.events;
    - *first fact of a unit*: ``activity completed`` for a unit without scores → activities →
      supervision → ``score updated`` of the month;
    - *fact of a scored unit*: the same units a month later (the common case);
    - *at half the maximum rate*: facts of scored units published at half the rate measured
      just before, for the latency of a pipeline that keeps up;
    - *evidence*: real JPEGs of 20–200 KB (uploaded to S3 beforehand) submitted for scheduled
      activities → evidence (S3 check, copy, thumbnail, hash, near-duplicate lookup) →
      ``evidence stored``.

Each pipeline row prints events/s, p50/p99 publish→result, and its ratio to (a) and (b).
Write-conflict retries are counted from the services' logs. Needs the servers
(``scripts/services.sh start``) and ``rabbitmqctl``; ``WMSJ_MONGO_URL`` picks the database
server, ``WMSJ_BATCH_SIZE`` the services' batch size.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import aio_pika

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared.events import (
    ActivityCompleted,
    ActivityCompletedEvent,
    ActivityScheduled,
    ActivityScheduledEvent,
    CloudEvent,
    EvidenceStoredEvent,
    EvidenceSubmitted,
    EvidenceSubmittedEvent,
    ScoreUpdatedEvent,
    UnitKind,
    UnitRegistered,
    UnitRegisteredEvent,
    new_event,
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


def workload(unit_ids: list[str], run: str, month: int = 6) -> list[ActivityCompletedEvent]:
    ended = datetime(2020, month, 15, 8, 0, tzinfo=UTC)
    return [
        new_event(  # type: ignore[misc]
            ActivityCompletedEvent,
            ActivityCompleted(
                activity_id=f"{run}-a{i}-{month}",
                unit_id=unit_id,
                ended_at=ended,
                volunteers=10,
                service_hours=20,
            ),
            source="/townships/bench",
            time=ended + timedelta(hours=1),
        )
        for i, unit_id in enumerate(unit_ids)
    ]


def summary(name: str, sent_at: dict[str, float], received_at: dict[str, float]) -> dict[str, Any]:
    latencies = sorted((received_at[k] - sent_at[k]) * 1000 for k in received_at)
    elapsed = max(received_at.values()) - min(sent_at.values())
    return {
        "name": name,
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


Key = Callable[[CloudEvent[Any]], str | None]  # what a result event answers (None: not ours)


async def bench_pipeline(
    events: Sequence[CloudEvent[Any]],
    amqp_url: str,
    name: str,
    result_type: str,
    key_of_result: Key,
    key_of_sent: Callable[[CloudEvent[Any]], str],
    rate: float | None = None,
) -> dict[str, Any]:
    """Publish ``events`` (all at once, or ``rate`` per second) and time each until the
    ``result_type`` event that answers it arrives on wmsj.events."""
    sent: dict[str, float] = {}
    received: dict[str, float] = {}
    connection = await aio_pika.connect_robust(amqp_url)
    channel = await connection.channel()
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(await channel.get_exchange("wmsj.events"), result_type)
    wanted = {key_of_sent(e) for e in events}

    async def on_result(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        async with message.process():
            from shared.events import parse_event

            key = key_of_result(parse_event(message.body))
            if key in wanted:
                received.setdefault(key, time.perf_counter())

    await queue.consume(on_result)
    async with TownshipClient(amqp_url) as township:
        start = time.perf_counter()
        for n, event in enumerate(events):
            if rate:
                await asyncio.sleep(max(0.0, start + n / rate - time.perf_counter()))
            sent[key_of_sent(event)] = time.perf_counter()
            await township.publish(event)
        await wait_all(received, len(events), timeout=900)
    await connection.close()
    return summary(name, sent, received)


async def bench_raw_mongo(n: int, mongo_url: str, db_name: str) -> dict[str, Any]:
    """(b): the documents of ``n`` facts, in unordered bulk inserts of 500."""
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    db = client[db_name]
    now = datetime.now(UTC)
    per_event = {"inbox": 2, "facts": 2, "marks": 1, "scores": 3, "outbox": 5}
    for name in per_event:
        await db.create_collection(name)
    start = time.perf_counter()
    for name, k in per_event.items():
        docs = [{"_id": f"{i}-{j}", "at": now, "body": "x" * 200} for i in range(n) for j in range(k)]
        for chunk in range(0, len(docs), 500):
            await db[name].insert_many(docs[chunk : chunk + 500], ordered=False)
    elapsed = time.perf_counter() - start
    await client.drop_database(db_name)
    await client.close()
    written = n * sum(per_event.values())
    return {
        "name": "raw MongoDB-wire bulk writes",
        "events": n,
        "per_s": n / elapsed,
        "docs_s": written / elapsed,
    }


async def bench_raw(events: list[ActivityCompletedEvent], amqp_url: str) -> dict[str, Any]:
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


def registrations(n: int, run: str) -> list[UnitRegisteredEvent]:
    base = random.randrange(10**6 - n)
    at = datetime(2020, 1, 1, tzinfo=UTC)
    return [
        new_event(  # type: ignore[misc]
            UnitRegisteredEvent,
            UnitRegistered(unit_id=f"439{base + i:06d}", name=f"bench town {run} {i}", kind=UnitKind.TOWN),
            source="/townships/bench",
            time=at,
        )
        for i in range(n)
    ]


def schedules(unit_ids: list[str], run: str) -> list[ActivityScheduledEvent]:
    starts = datetime(2020, 8, 10, 8, 0, tzinfo=UTC)
    return [
        new_event(  # type: ignore[misc]
            ActivityScheduledEvent,
            ActivityScheduled(
                activity_id=f"{run}-photo-{unit_id}",
                unit_id=unit_id,
                title="bench activity",
                starts_at=starts,
                ends_at=starts + timedelta(hours=2),
            ),
            source="/townships/bench",
            time=starts - timedelta(days=3),
        )
        for unit_id in unit_ids
    ]


def jpeg(rng: random.Random) -> bytes:
    """A real JPEG of 20–200 KB: noise over a gradient (noise does not compress, so the
    picture's area sets the size)."""
    from PIL import Image

    width = rng.randrange(160, 520)
    height = width * 3 // 4
    noise = Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3))
    gradient = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    out = io.BytesIO()
    Image.blend(gradient, noise, 0.6).save(out, "JPEG", quality=85)
    return out.getvalue()


def evidence(activities: list[ActivityScheduledEvent], n: int, run: str) -> list[EvidenceSubmittedEvent]:
    """``n`` photos spread over ``activities``, uploaded to the upload bucket now."""
    from shared.settings import S3Settings
    from wmsj.client import object_store, upload

    settings = S3Settings()
    client = object_store(settings)
    rng = random.Random(run)
    out = []
    sizes = []
    for i in range(n):
        activity = activities[i % len(activities)].data
        content = jpeg(rng)
        sizes.append(len(content))
        key = f"{activity.unit_id}/{run}-{i}.jpg"
        sha = upload(client, settings.upload_bucket, key, content, "image/jpeg")
        out.append(
            new_event(
                EvidenceSubmittedEvent,
                EvidenceSubmitted(
                    evidence_id=f"{run}-e{i}",
                    activity_id=activity.activity_id,
                    unit_id=activity.unit_id,
                    object_key=key,
                    sha256=sha,
                    size=len(content),
                    content_type="image/jpeg",
                ),
                source="/townships/bench",
                time=datetime.now(UTC),
            )
        )
    print(
        f"{n} JPEGs uploaded: {min(sizes) // 1024}–{max(sizes) // 1024} KB, mean {statistics.mean(sizes) / 1024:.0f} KB"
    )
    return out  # type: ignore[return-value]


def conflicts_in_logs(layout: processes.Layout) -> dict[str, int]:
    """Transactions retried after a write conflict, from each service's log."""
    found = {}
    for name in layout.ports:
        path = layout.log_file(name)
        text = path.read_text(errors="replace") if path.exists() else ""
        found[name] = sum(1 for line in text.splitlines() if "failed (attempt" in line and "onflict" in line)
    return found


def peak_rss_mib(layout: processes.Layout) -> dict[str, float]:
    peaks = {}
    for name in layout.ports:
        pid = processes._pid(layout, name)
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except (OSError, TypeError):
            continue
        kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM"))
        peaks[name] = kib / 1024
    return peaks


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--photos", type=int, default=300)
    args = parser.parse_args()
    run = "b" + secrets.token_hex(3)
    units = registrations(args.events, run)
    unit_ids = [u.data.unit_id for u in units]
    first, later, paced = (workload(unit_ids, run, month) for month in (5, 6, 7))
    planned = schedules(unit_ids[: max(1, args.photos // 3)], run)
    mongo_url = os.environ.get("WMSJ_MONGO_URL", "mongodb://127.0.0.1:27017/?retryWrites=false")

    raw_vhost, pipe_vhost = f"wmsj-bench-{run}-raw", f"wmsj-bench-{run}-pipe"
    state = Path(tempfile.mkdtemp(prefix="wmsj-bench-"))
    layout = processes.Layout(state, {name: 19001 + i for i, name in enumerate(processes.SERVICES)})
    by_unit: Callable[[CloudEvent[Any]], str] = lambda e: e.data.unit_id  # noqa: E731
    rows: list[dict[str, Any]] = []
    try:
        raw = asyncio.run(bench_raw(later, vhost(raw_vhost)))
        raw_mongo = asyncio.run(bench_raw_mongo(args.events, mongo_url, f"{run}_rawbulk"))
        env = {
            "WMSJ_AMQP_URL": vhost(pipe_vhost),
            "WMSJ_DB_PREFIX": f"{run}_",
            "WMSJ_LOG_LEVEL": "WARNING",
            **{k: v for k, v in os.environ.items() if k in ("WMSJ_PREFETCH", "WMSJ_BATCH_SIZE")},
        }
        for name in layout.ports:
            processes.start(layout, name, env)
        states = processes.wait_ready(layout, list(layout.ports), timeout=60)
        if any(code != 200 for code, _ in states.values()):
            raise SystemExit(f"services not ready: {states}")
        amqp = env["WMSJ_AMQP_URL"]

        def scored(month: str) -> Key:
            return lambda e: e.data.unit_id if e.data.period == month else None

        rows.append(
            asyncio.run(
                bench_pipeline(
                    units, amqp, "wmsj: unit registrations", UnitRegisteredEvent.TYPE, by_unit, by_unit
                )
            )
        )
        rows.append(
            asyncio.run(
                bench_pipeline(
                    first,
                    amqp,
                    "wmsj: first fact of a unit",
                    ScoreUpdatedEvent.TYPE,
                    scored("2020-05"),
                    by_unit,
                )
            )
        )
        rows.append(
            asyncio.run(
                bench_pipeline(
                    later,
                    amqp,
                    "wmsj: fact of a scored unit",
                    ScoreUpdatedEvent.TYPE,
                    scored("2020-06"),
                    by_unit,
                )
            )
        )
        half = rows[-1]["per_s"] / 2
        rows.append(
            asyncio.run(
                bench_pipeline(
                    paced,
                    amqp,
                    f"wmsj: scored unit at {half:.0f}/s",
                    ScoreUpdatedEvent.TYPE,
                    scored("2020-07"),
                    by_unit,
                    rate=half,
                )
            )
        )
        by_activity: Callable[[CloudEvent[Any]], str] = lambda e: e.data.activity_id  # noqa: E731
        asyncio.run(
            bench_pipeline(planned, amqp, "schedules", ActivityScheduledEvent.TYPE, by_activity, by_activity)
        )
        time.sleep(2)  # the accepted schedules reach the evidence service a hop later
        photos = evidence(planned, args.photos, run)
        by_evidence: Callable[[CloudEvent[Any]], str] = lambda e: e.data.evidence_id  # noqa: E731
        rows.append(
            asyncio.run(
                bench_pipeline(
                    photos, amqp, "wmsj: evidence (JPEG)", EvidenceStoredEvent.TYPE, by_evidence, by_evidence
                )
            )
        )
        conflicts = conflicts_in_logs(layout)
        rss = peak_rss_mib(layout)
    finally:
        for name in layout.ports:
            processes.stop(layout, name)
        drop_vhost(raw_vhost)
        drop_vhost(pipe_vhost)
        _drop_databases(run)

    size = os.environ.get("WMSJ_BATCH_SIZE", "default (64)")
    print(f"\n{args.events} events, {args.photos} photos, batch size {size}, {os.cpu_count()} cores")
    print(f"\n{'':36} {'events/s':>9} {'p50 ms':>9} {'p99 ms':>9} {'/ (a)':>7} {'/ (b)':>7}")
    print(f"{'(a) ' + raw['name']:36} {raw['per_s']:>9.0f} {raw['p50']:>9.1f} {raw['p99']:>9.1f}")
    print(
        f"{'(b) ' + raw_mongo['name']:36} {raw_mongo['per_s']:>9.0f} ({raw_mongo['docs_s']:.0f} documents/s)"
    )
    for row in rows:
        print(
            f"{row['name']:36} {row['per_s']:>9.1f} {row['p50']:>9.1f} {row['p99']:>9.1f}"
            f" {row['per_s'] / raw['per_s']:>7.3f} {row['per_s'] / raw_mongo['per_s']:>7.3f}"
        )
    print(f"\nwrite-conflict retries (services' logs): {conflicts}")
    print("peak RSS MiB: " + ", ".join(f"{k} {v:.0f}" for k, v in rss.items()))


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
