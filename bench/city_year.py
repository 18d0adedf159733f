"""A generated city's year through the whole stack: how long until every score is final.

    .venv/bin/python bench/city_year.py [--townships 8] [--villages 49] [--activities 3000] [--photos 7500]

The office registers the city's units (townships, and villages under them: ≈ 400 units by
default); then each township, connected as its own RabbitMQ user (``wmsj township add``'s
user and permissions, made in the benchmark's virtual host and deleted after), publishes
its villages' activities for the year (scheduled and completed) and their photos (real
JPEGs, uploaded to S3 first), all at once, the way a township system catching up would.
The four services run as OS processes. The clock stops when every queue is empty, no
rescoring mark and no outbox entry is left: every score is final. Prints the publish time,
the time from the last publish to final scores, events per second, write-conflict retries
and each service's peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import random
import secrets
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pymongo import AsyncMongoClient

from bench.pipeline import (
    _drop_databases,
    conflicts_in_logs,
    drop_vhost,
    jpeg,
    peak_rss_mib,
    vhost,
)
from shared.events import (
    ActivityCompleted,
    ActivityCompletedEvent,
    ActivityScheduled,
    ActivityScheduledEvent,
    CloudEvent,
    EvidenceSubmitted,
    EvidenceSubmittedEvent,
    UnitKind,
    UnitRegistered,
    UnitRegisteredEvent,
    new_event,
)
from shared.identity import township_user
from shared.onboarding import BrokerAdmin
from shared.settings import S3Settings
from wmsj import processes
from wmsj.client import TownshipClient, object_store, upload


async def onboard(admin_url: str, township_id: str) -> str:
    """The township's broker user and reply queue, through the management API; its password."""
    async with BrokerAdmin(admin_url) as admin:
        return (await admin.add(township_id)).password


def city(townships: int, villages: int) -> dict[str, list[str]]:
    """Township code → its villages' codes (division codes: 9 and 12 digits)."""
    base = random.randrange(100_000, 999_000 - townships)
    return {
        f"432{base + t:06d}": [f"432{base + t:06d}{v + 201:03d}" for v in range(villages)]
        for t in range(townships)
    }


def registrations(towns: dict[str, list[str]]) -> list[CloudEvent[Any]]:
    at = datetime(2020, 1, 1, tzinfo=UTC)
    out: list[CloudEvent[Any]] = []
    for code, villages in towns.items():
        out.append(
            new_event(
                UnitRegisteredEvent,
                UnitRegistered(unit_id=code, name=f"镇 {code}", kind=UnitKind.TOWN, township_id=code),
                source="/office/bench",
                time=at,
            )
        )
        out += [
            new_event(
                UnitRegisteredEvent,
                UnitRegistered(
                    unit_id=v, name=f"村 {v}", kind=UnitKind.VILLAGE, parent_id=code, township_id=code
                ),
                source="/office/bench",
                time=at,
            )
            for v in villages
        ]
    return out


def year_of(
    town: str, units: list[str], activities: int, photos: int, run: str, rng: random.Random
) -> tuple[list[CloudEvent[Any]], list[tuple[str, bytes]]]:
    """One township's year: its activities (scheduled, completed) and photos (with uploads)."""
    events: list[CloudEvent[Any]] = []
    uploads: list[tuple[str, bytes]] = []
    source = f"/townships/{town}"
    done = []
    for n in range(activities):
        unit = units[n % len(units)]
        month = 1 + n * 12 // activities
        starts = datetime(2020, month, 1 + rng.randrange(27), 9, tzinfo=UTC)
        activity_id = f"{run}-{town}-a{n}"
        events.append(
            new_event(
                ActivityScheduledEvent,
                ActivityScheduled(
                    activity_id=activity_id,
                    unit_id=unit,
                    title="志愿服务活动",
                    starts_at=starts,
                    ends_at=starts + timedelta(hours=2),
                ),
                source=source,
                time=starts - timedelta(days=5),
            )
        )
        events.append(
            new_event(
                ActivityCompletedEvent,
                ActivityCompleted(
                    activity_id=activity_id,
                    unit_id=unit,
                    ended_at=starts + timedelta(hours=2),
                    volunteers=5 + rng.randrange(20),
                    service_hours=10 + rng.randrange(40),
                ),
                source=source,
                time=starts + timedelta(hours=3),
            )
        )
        done.append((activity_id, unit, starts))
    for p in range(photos):
        activity_id, unit, starts = done[p % len(done)]
        content = jpeg(rng)
        key = f"{unit}/{run}-{p}.jpg"
        uploads.append((key, content))
        events.append(
            new_event(
                EvidenceSubmittedEvent,
                EvidenceSubmitted(
                    evidence_id=f"{run}-{town}-e{p}",
                    activity_id=activity_id,
                    unit_id=unit,
                    object_key=key,
                    sha256=hashlib.sha256(content).hexdigest(),
                    size=len(content),
                    content_type="image/jpeg",
                ),
                source=source,
                time=starts + timedelta(hours=4),
            )
        )
    return events, uploads


def amqp_as(user: str, password: str, url: str) -> str:
    from urllib.parse import quote, urlsplit, urlunsplit

    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}:{parts.port or 5672}"
    return urlunsplit(parts._replace(netloc=netloc))


def rabbitmqctl(args: list[str]) -> str:
    return subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, text=True).stdout


def queued(vhost_name: str) -> int:
    out = rabbitmqctl(["list_queues", "-p", vhost_name, "name", "messages"])
    return sum(
        int(line.split()[-1]) for line in out.splitlines() if line.split()[-1:] and line.split()[-1].isdigit()
    )


async def pending(mongo_url: str, run: str) -> int:
    client: AsyncMongoClient[Any] = AsyncMongoClient(mongo_url)
    try:
        total = 0
        for service in processes.SERVICES:
            db = client[f"{run}_{service}"]
            total += await db.outbox.count_documents({})
        total += await client[f"{run}_supervision"].to_rescore.count_documents({})
        return total
    finally:
        await client.close()


async def publish_all(url: str, events: list[CloudEvent[Any]]) -> None:
    async with TownshipClient(url) as client:
        for event in events:
            await client.publish(event)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--townships", type=int, default=8)
    parser.add_argument("--villages", type=int, default=49)
    parser.add_argument("--activities", type=int, default=3000)
    parser.add_argument("--photos", type=int, default=7500)
    args = parser.parse_args()
    run = "c" + secrets.token_hex(3)
    rng = random.Random(run)
    towns = city(args.townships, args.villages)
    units = registrations(towns)
    mongo_url = os.environ.get("WMSJ_MONGO_URL", "mongodb://127.0.0.1:27017/?retryWrites=false")
    vhost_name = f"wmsj-bench-{run}-city"
    state = Path(tempfile.mkdtemp(prefix="wmsj-city-"))
    layout = processes.Layout(state, {name: 19101 + i for i, name in enumerate(processes.SERVICES)})
    users: list[str] = []
    s3 = S3Settings()
    store = object_store(s3)
    per_town: dict[str, list[CloudEvent[Any]]] = {}
    started = time.perf_counter()
    for town, villages in towns.items():
        events, uploads = year_of(
            town,
            [town, *villages],
            args.activities // len(towns),
            args.photos // len(towns),
            run,
            rng,
        )
        for key, content in uploads:
            upload(store, s3.upload_bucket, key, content, "image/jpeg")
        per_town[town] = events
    print(f"generated and uploaded in {time.perf_counter() - started:.0f} s", flush=True)
    try:
        admin = vhost(vhost_name)
        env = {"WMSJ_AMQP_URL": admin, "WMSJ_DB_PREFIX": f"{run}_", "WMSJ_LOG_LEVEL": "WARNING"}
        env |= {k: v for k, v in os.environ.items() if k in ("WMSJ_PREFETCH", "WMSJ_BATCH_SIZE")}
        for name in layout.ports:
            processes.start(layout, name, env)
        states = processes.wait_ready(layout, list(layout.ports), timeout=60)
        if any(code != 200 for code, _ in states.values()):
            raise SystemExit(f"services not ready: {states}")
        urls = {}
        for town in towns:
            password = asyncio.run(onboard(admin, town))  # as `wmsj township add` does
            users.append(township_user(town))
            urls[town] = amqp_as(township_user(town), password, admin)
        asyncio.run(publish_all(admin, units))
        while queued(vhost_name) or asyncio.run(pending(mongo_url, run)):  # the units are known first
            time.sleep(1)
        total = sum(len(e) for e in per_town.values())
        start = time.perf_counter()

        async def every_township() -> None:
            await asyncio.gather(*(publish_all(urls[t], per_town[t]) for t in towns))

        asyncio.run(every_township())
        published = time.perf_counter()
        print(f"{total} events published by {len(towns)} townships in {published - start:.0f} s", flush=True)
        while True:
            time.sleep(2)
            if not queued(vhost_name) and not asyncio.run(pending(mongo_url, run)):
                time.sleep(2)  # confirm: nothing arrived meanwhile
                if not queued(vhost_name) and not asyncio.run(pending(mongo_url, run)):
                    break
        final = time.perf_counter()
        conflicts = conflicts_in_logs(layout)
        rss = peak_rss_mib(layout)
    finally:
        for name in layout.ports:
            processes.stop(layout, name)
        for user in users:
            subprocess.run(["rabbitmqctl", "-q", "delete_user", user], check=False, capture_output=True)
        drop_vhost(vhost_name)
        _drop_databases(run)
    units_n = len(units)
    print(
        f"\n{units_n} units, {args.activities} activities, {args.photos} photos from {len(towns)} townships"
        f" (batch size {os.environ.get('WMSJ_BATCH_SIZE', 'default')}, {os.cpu_count()} cores)"
    )
    print(f"publish: {published - start:.0f} s; last publish → every score final: {final - published:.0f} s")
    print(f"end to end: {total / (final - start):.1f} events/s")
    print(f"write-conflict retries (services' logs): {conflicts}")
    print("peak RSS MiB: " + ", ".join(f"{k} {v:.0f}" for k, v in rss.items()))


if __name__ == "__main__":
    main()
