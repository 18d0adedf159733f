"""The fault suite's machinery: a world of the four services (as OS processes, N replicas
each) on the suite's own servers, a township that publishes a city month and counts its
refusals, a barrier that says when everything is handled, and snapshots of what the
services stored, to compare a run with faults against the run without.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aio_pika
from pymongo import MongoClient

from shared.auth import DEV_OFFICE_KEY
from shared.events import CONTENT_TYPE, CloudEvent, EventRejectedEvent
from shared.identity import reply_queue, township_user
from shared.onboarding import REPLY_QUEUE_ARGUMENTS, permissions
from shared.topology import INGRESS
from tests.faults.month import CityMonth, Faulty
from tests.support import free_port
from wmsj import processes

SERVICE_QUEUES = {
    "registry.ingress",
    "registry.unrouted",
    "registry.events",
    "activities.ingress",
    "activities.events",
    "evidence.ingress",
    "evidence.events",
    "supervision.events",
    "supervision.ingress",
}
# What each service's database holds that a replay or a fault may not change; the inbox,
# outbox, leases and holds are the machinery, and the fields below say when (by the
# service's clock) a row was written, not what it says.
COMPARED = {
    "registry": ("units",),
    "activities": ("activities", "units"),
    "evidence": ("evidence", "activities", "units"),
    "supervision": ("units", "activities", "evidence_index", "scores"),
}
CLOCK_FIELDS = {
    "handled_at",
    "created_at",
    "updated_at",
    "computed_at",
    "issued_at",
    "stored_at",
    "checked_at",
    "completed_at",
}


@dataclass
class Servers:
    amqp_urls: list[str]  # one node, or the cluster's nodes
    mongo_url: str
    s3_endpoint: str
    rabbitmqctl: Callable[[list[str]], str]
    folder: Path


@dataclass
class World:
    """One scenario: its own virtual host and databases, ``replicas`` instances per service."""

    servers: Servers
    name: str
    replicas: int = 1
    overrides: dict[str, dict[str, str]] = field(default_factory=dict)
    layout: processes.Layout = field(init=False)
    env: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        vhost = f"faults-{self.name}"
        self.servers.rabbitmqctl(["add_vhost", vhost])
        self.servers.rabbitmqctl(["set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"])
        self.vhost = vhost
        urls = ",".join(u.rstrip("/") + "/" + vhost for u in self.servers.amqp_urls)
        self.prefix = f"faults_{self.name}_"
        self.env = {
            "WMSJ_AMQP_URL": urls,
            "WMSJ_MONGO_URL": self.servers.mongo_url,
            "WMSJ_DB_PREFIX": self.prefix,
            "WMSJ_S3_ENDPOINT": self.servers.s3_endpoint,
            "WMSJ_S3_ACCESS_KEY": "minioadmin",
            "WMSJ_S3_SECRET_KEY": "minioadmin",
            "WMSJ_S3_UPLOAD_BUCKET": "faults-uploads",
            "WMSJ_S3_EVIDENCE_BUCKET": "faults-evidence",
            "WMSJ_RETENTION_DAYS": "1",
            "WMSJ_LOG_LEVEL": "INFO",
            # Sweeps and timers often, so that a replica's lost lease is taken over soon.
            "WMSJ_HOLD_SWEEP_INTERVAL_S": "5",
        }
        ports = {
            processes.instance_name(s, k): free_port()
            for k in range(1, self.replicas + 1)
            for s in processes.SERVICES
        }
        self.layout = processes.Layout(self.servers.folder / self.name, ports)

    @property
    def instances(self) -> list[str]:
        return list(self.layout.ports)

    @property
    def amqp_url(self) -> str:
        return self.env["WMSJ_AMQP_URL"].split(",")[0]

    def env_of(self, name: str) -> dict[str, str]:
        """An instance's environment: the world's, and what ``overrides`` say for it (on a
        cluster, the order in which it tries the nodes)."""
        return {**self.env, **self.overrides.get(name, {})}

    def start(self, names: list[str] | None = None) -> None:
        names = names or self.instances
        for name in names:
            processes.start(self.layout, name, self.env_of(name))
        self.wait_ready(names)

    def wait_ready(self, names: list[str] | None = None, timeout: float = 180) -> None:
        names = names or self.instances
        states = processes.wait_ready(self.layout, names, timeout=timeout)
        if any(status != 200 for status, _ in states.values()):
            raise AssertionError(f"not ready: {states}\n{self.logs()}")

    def kill9(self, name: str) -> None:
        pid = int(self.layout.pid_file(name).read_text())
        os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        self.layout.pid_file(name).unlink()

    def stop(self) -> None:
        """Stop every instance, all at once (each by its pid)."""
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(len(self.instances)) as pool:
            list(pool.map(lambda name: processes.stop(self.layout, name), self.instances))

    def logs(self, tail: int = 2000) -> str:
        return "\n".join(
            f"--- {n}\n" + self.layout.log_file(n).read_text()[-tail:]
            for n in self.instances
            if self.layout.log_file(n).exists()
        )

    # -------------------------------------------------------------------- barrier

    def busy(self) -> dict[str, int]:
        """What is still to do: messages in the services' queues (ready + unacknowledged),
        outbox entries, held events, marks for the rescorer. Empty when all is done."""
        out: dict[str, int] = {}
        try:
            listed = self.servers.rabbitmqctl(["list_queues", "-p", self.vhost, "name", "messages"])
        except Exception as error:  # a node restarting: not settled
            return {f"broker: {error}"[:80]: 1}
        for line in listed.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] in SERVICE_QUEUES and parts[1] != "0":
                out[parts[0]] = int(parts[1])
        client: MongoClient[dict[str, Any]] = MongoClient(
            self.servers.mongo_url, serverSelectionTimeoutMS=3000
        )
        try:
            for service in processes.SERVICES:
                db = client[f"{self.prefix}{service}"]
                for collection in ("outbox", "held", "to_rescore"):
                    if n := db[collection].count_documents({}):
                        out[f"{service}.{collection}"] = n
        except Exception as error:
            out[f"mongo: {error}"[:80]] = 1
        finally:
            client.close()
        return out

    async def settle(self, timeout: float = 600) -> float:
        """Wait until nothing is left to do twice in a row, a second apart; seconds waited."""
        started = time.monotonic()
        quiet = 0
        busy: dict[str, int] = {}
        while quiet < 2:
            if time.monotonic() - started > timeout:
                raise AssertionError(f"{self.name}: not settled after {timeout}s: {busy}\n{self.logs()}")
            await asyncio.sleep(1)
            busy = await asyncio.to_thread(self.busy)
            quiet = quiet + 1 if not busy else 0
        return time.monotonic() - started

    # -------------------------------------------------------------------- results

    def snapshot(self, prefix: str | None = None) -> dict[str, dict[str, dict[str, Any]]]:
        """``{service.collection: {_id: document}}`` of what the services keep, without the
        fields that only say when a row was written."""
        prefix = prefix or self.prefix
        client: MongoClient[dict[str, Any]] = MongoClient(self.servers.mongo_url, tz_aware=True)
        try:
            return {
                f"{service}.{name}": {
                    str(doc["_id"]): _without_clock(doc) for doc in client[f"{prefix}{service}"][name].find()
                }
                for service, names in COMPARED.items()
                for name in names
            }
        finally:
            client.close()

    def score_table(self) -> bytes:
        """The office's score table of the month, as the API serves it (bytes)."""
        for name, port in self.layout.ports.items():  # any live instance answers the same
            if processes.service_of(name) != "supervision" or not self.layout.pid_file(name).exists():
                continue
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/scores?period=2020-06",
                headers={"Authorization": f"Bearer {DEV_OFFICE_KEY}"},
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                body: bytes = response.read()
                return body
        raise AssertionError("no supervision instance is running")


# Facts stated by a service's clock: ``evidence complete`` is dated when the evidence service
# found it so, and its statement (time and canonical content) carries that date.
CLOCK_STATEMENTS = {"evidence_complete"}


def _without_clock(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        skip = CLOCK_FIELDS | ({"stated", "stated_at"} if key in CLOCK_STATEMENTS else set())
        return {k: _without_clock(v, k) for k, v in value.items() if k not in skip}
    if isinstance(value, list):
        # Lists of records (an activity's evidence) are kept in arrival order, which a
        # fault changes; what is in them is what counts.
        items = [_without_clock(v) for v in value]
        if items and all(isinstance(v, dict) for v in items):
            items.sort(key=lambda v: json.dumps(v, sort_keys=True, default=str))
        return items
    if isinstance(value, datetime):
        return value.isoformat()
    return value


@dataclass
class Difference:
    lost: int = 0  # rows (or list entries) the run without faults has and this one does not
    doubled: int = 0  # rows or list entries this run has more of
    changed: list[str] = field(default_factory=list)  # rows present in both, not equal


def compare(expected: dict[str, dict[str, Any]], got: dict[str, dict[str, Any]]) -> Difference:
    diff = Difference()
    for table, rows in expected.items():
        mine = got.get(table, {})
        diff.lost += len(rows.keys() - mine.keys())
        diff.doubled += len(mine.keys() - rows.keys())
        for key in rows.keys() & mine.keys():
            if rows[key] != mine[key]:
                lists = _list_lengths(rows[key]), _list_lengths(mine[key])
                for path in lists[0].keys() | lists[1].keys():
                    a, b = lists[0].get(path, 0), lists[1].get(path, 0)
                    diff.lost += max(0, a - b)
                    diff.doubled += max(0, b - a)
                diff.changed.append(f"{table}/{key}")
    return diff


def _list_lengths(value: Any, path: str = "") -> dict[str, int]:
    out: dict[str, int] = {}
    if isinstance(value, dict):
        for k, v in value.items():
            out.update(_list_lengths(v, f"{path}.{k}"))
    elif isinstance(value, list):
        out[path] = len(value)
    return out


TOWNSHIP_PASSWORD = "faults-township"


def onboard(world: World, townships: set[str]) -> None:
    """Each township's system as ``wmsj township add`` makes it: its own broker user, with
    the permissions ``shared.onboarding`` grants, and its durable reply queue."""
    for township in sorted(townships):
        user = township_user(township)
        try:
            world.servers.rabbitmqctl(["add_user", user, TOWNSHIP_PASSWORD])
        except RuntimeError as error:  # users are the node's, shared by the worlds
            if "already exists" not in str(error):
                raise
        configure, write, read, topic = permissions(township)
        world.servers.rabbitmqctl(["set_permissions", "-p", world.vhost, user, configure, write, read])
        world.servers.rabbitmqctl(
            ["set_topic_permissions", "-p", world.vhost, user, INGRESS.name, topic, "^$"]
        )


def _township_of(source: str) -> str | None:
    return source.removeprefix("/townships/") if source.startswith("/townships/") else None


class Township:
    """The townships' systems and the office: each township publishes its own events as its
    own broker user (persistent, confirmed, retried while the broker is away: a retried send
    may arrive twice, which is the platform's to ignore) and reads its refusals on its own
    reply queue; the office (``guest``) publishes what names no township and reads its
    refusals on a durable queue of its own. No refusal is lost while they reconnect."""

    def __init__(self, amqp_url: str, townships: set[str], reply_queue: str = "faults.replies") -> None:
        self.amqp_url, self.townships, self.reply_queue = amqp_url, townships, reply_queue
        self.refused: dict[str, str] = {}  # rejected id -> reason
        self._arrived = asyncio.Event()
        self.exchanges: dict[str | None, tuple[aio_pika.abc.AbstractExchange, str, str]] = {}
        self.connections: list[aio_pika.abc.AbstractRobustConnection] = []

    def _url_of(self, user: str) -> str:
        parts = urllib.parse.urlsplit(self.amqp_url)
        netloc = f"{user}:{TOWNSHIP_PASSWORD}@{parts.hostname}:{parts.port}"
        return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))

    async def _open(self, url: str) -> aio_pika.abc.AbstractChannel:
        connection = await aio_pika.connect_robust(url, reconnect_interval=1)
        self.connections.append(connection)
        return await connection.channel(publisher_confirms=True)

    async def __aenter__(self) -> Township:
        office = await self._open(self.amqp_url)
        exchange = await office.get_exchange(INGRESS.name, ensure=True)
        queue = await office.declare_queue(
            self.reply_queue, durable=True, arguments={"x-queue-type": "quorum"}
        )
        await queue.consume(self._on_reply)
        self.exchanges[None] = (exchange, "guest", self.reply_queue)
        for township in sorted(self.townships):
            user = township_user(township)
            own = reply_queue(user)
            await office.declare_queue(own, durable=True, arguments=dict(REPLY_QUEUE_ARGUMENTS))
            channel = await self._open(self._url_of(user))
            # Declared (passively: a township configures nothing) so that the robust channel
            # consumes it again after reconnecting; ``get_queue`` would not be restored.
            replies = await channel.declare_queue(own, passive=True)
            await replies.consume(self._on_reply)
            self.exchanges[township] = (await channel.get_exchange(INGRESS.name, ensure=False), user, own)
        return self

    async def __aexit__(self, *_: object) -> None:
        for connection in self.connections:
            with contextlib.suppress(Exception):
                await connection.close()

    async def _on_reply(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        async with message.process():
            if json.loads(message.body).get("type") != EventRejectedEvent.TYPE:
                return  # a township's to-do (its monthly warning) comes the same way
            rejected = EventRejectedEvent.model_validate_json(message.body)
            self.refused[rejected.data.rejected_id] = rejected.data.reason
            self._arrived.set()

    async def send(self, item: CloudEvent[Any] | Faulty, patience: float = 300) -> None:
        if isinstance(item, Faulty):
            body, key, message_id, sender = item.body, item.routing_key, item.event_id, item.township
        else:
            body, key, message_id = item.model_dump_json().encode(), item.type, item.id
            sender = _township_of(item.source)
        exchange, user, replies = self.exchanges[sender]
        deadline = time.monotonic() + patience
        while True:
            try:
                await exchange.publish(
                    aio_pika.Message(
                        body,
                        content_type=CONTENT_TYPE,
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        message_id=message_id,
                        reply_to=replies,
                        user_id=user,
                    ),
                    routing_key=key,
                    timeout=10,
                )
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)

    async def wait_refusals(self, ids: set[str], timeout: float = 120) -> set[str]:
        """The ids among ``ids`` not refused back to their senders within ``timeout``."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while ids - self.refused.keys():
                    self._arrived.clear()
                    await self._arrived.wait()
        return ids - self.refused.keys()


def upload_month(world: World, month: CityMonth) -> None:
    from minio import Minio

    from wmsj.client import upload

    client = Minio(world.env["WMSJ_S3_ENDPOINT"], "minioadmin", "minioadmin", secure=False)
    for key, content, kind in month.uploads:
        upload(client, world.env["WMSJ_S3_UPLOAD_BUCKET"], key, content, kind)


@dataclass
class Row:
    fault: str
    events: int
    lost: int
    doubled: int
    recover_s: float
    settle_s: float
    refusals_missing: int = 0
    changed: int = 0

    def line(self) -> str:
        return (
            f"| {self.fault:<50} | {self.events:>6} | {self.lost:>4} | {self.doubled:>14} "
            f"| {self.recover_s:>15.1f} | {self.refusals_missing:>16} |"
        )


TABLE_HEAD = (
    "| fault                                              | events | lost | double-counted "
    "| recover (s)     | refusals missing |\n"
    "|----------------------------------------------------|--------|------|----------------"
    "|-----------------|------------------|"
)


def table(rows: list[Row]) -> str:
    return "\n".join([TABLE_HEAD, *(r.line() for r in rows)])


def dump(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, ensure_ascii=False, indent=1, sort_keys=True, default=str))
