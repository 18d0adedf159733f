"""Test helpers that talk to the real broker: watching the bus and the dead-letter queue."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aio_pika

from shared.events import CloudEvent, parse_event

_TOWN_CODES_USED: set[str] = set()


def town_code() -> str:
    """A township division code (9 digits) no other test of this process uses, drawn from a
    million: township users are broker-wide and a run's units stay in its databases, so a
    code drawn twice (by two tests, or by two runs at once on one broker) would let one test
    see another's units and users. Codes under 431381 are left to the tests that fix theirs."""
    while True:
        code = f"431{secrets.randbelow(10**6):06d}"
        if not code.startswith("431381") and code not in _TOWN_CODES_USED:
            _TOWN_CODES_USED.add(code)
            return code


class Tap:
    """Sees every event published on ``wmsj.events`` (through a queue of its own)."""

    def __init__(self, amqp_url: str) -> None:
        self.amqp_url = amqp_url
        self.events: list[CloudEvent[Any]] = []

    async def __aenter__(self) -> Tap:
        self._connection = await aio_pika.connect_robust(self.amqp_url)
        channel = await self._connection.channel()
        exchange = await channel.get_exchange("wmsj.events", ensure=True)
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(exchange, "#")
        await queue.consume(self._on_message)
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._connection.close()

    async def _on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        async with message.process():
            self.events.append(parse_event(message.body))

    def matching(self, predicate: Callable[[CloudEvent[Any]], bool]) -> list[CloudEvent[Any]]:
        return [e for e in self.events if predicate(e)]

    async def wait_for(
        self, predicate: Callable[[CloudEvent[Any]], bool], *, count: int = 1, timeout: float = 20
    ) -> list[CloudEvent[Any]]:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            found = self.matching(predicate)
            if len(found) >= count:
                return found
            await asyncio.sleep(0.05)
        raise AssertionError(
            f"expected {count} matching events within {timeout}s, saw {len(self.matching(predicate))}"
        )


async def publish_as_platform(amqp_url: str, event: CloudEvent[Any]) -> None:
    """Publish an accepted fact on ``wmsj.events``, as the service that owns it would."""
    connection = await aio_pika.connect_robust(amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange("wmsj.events", ensure=True)
        await exchange.publish(
            aio_pika.Message(event.model_dump_json().encode(), content_type="application/cloudevents+json"),
            routing_key=event.type,
            mandatory=True,
        )
    finally:
        await connection.close()


async def dead_letters(amqp_url: str, *, settle: float = 0.5) -> list[dict[str, Any]]:
    """Drain the dead-letter queue: each message's body (parsed if JSON), queue and reason."""
    await asyncio.sleep(settle)
    connection = await aio_pika.connect_robust(amqp_url)
    out = []
    try:
        channel = await connection.channel()
        queue = await channel.get_queue("wmsj.dead-letters", ensure=True)
        while message := await queue.get(fail=False, timeout=5):
            death = (message.headers.get("x-death") or [{}])[0]
            try:
                body: Any = json.loads(message.body)
            except ValueError:
                body = message.body
            out.append({"body": body, "queue": death.get("queue"), "reason": death.get("reason")})
            await message.ack()
    finally:
        await connection.close()
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"nothing listens on {port} after {timeout}s")


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Stop a server this test started, by its PID (never by name), and reap it."""
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class PrivateMongo:
    """A MongoDB-wire server of the test's own, which it may stop and start again.

    Locally: a SecantusDB process (the binary ``scripts/services.sh`` installs), stopped by
    its PID. With Docker: a ``mongo:8.0`` container, stopped and started again.
    """

    BIN = (
        Path(os.environ.get("SVC_HOME", "/var/tmp/project-services")) / "venv-mongo" / "bin" / "secantusd-py"
    )

    def __init__(self, data_dir: Path, use_docker: bool) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.use_docker = use_docker
        self._process: subprocess.Popen[bytes] | None = None
        self._container: Any = None

    @property
    def url(self) -> str:
        extra = "&directConnection=true" if self.use_docker else ""
        return f"mongodb://127.0.0.1:{self.port}/?retryWrites=false&serverSelectionTimeoutMS=2000{extra}"

    def start(self) -> None:
        if self.use_docker:
            self._start_container()
        else:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            log = (self.data_dir.parent / "mongo.log").open("ab")
            self._process = subprocess.Popen(
                [
                    str(self.BIN),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--storage-path",
                    str(self.data_dir),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        wait_port(self.port)

    def stop(self) -> None:
        if self.use_docker:
            self._container.stop()
            return
        assert self._process is not None
        stop_process(self._process)
        self._process = None

    def _start_container(self) -> None:
        import docker

        client = docker.from_env()
        if self._container is None:
            self._container = client.containers.run(
                "mongo:8.0",
                command=["--replSet", "rs0", "--bind_ip_all"],
                ports={"27017/tcp": ("127.0.0.1", self.port)},
                detach=True,
                remove=False,
            )
            wait_port(self.port)
            time.sleep(2)
            self._container.exec_run(
                [
                    "mongosh",
                    "--quiet",
                    "--eval",
                    "rs.initiate({_id:'rs0',members:[{_id:0,host:'localhost:27017'}]})",
                ]
            )
        else:
            self._container.start()

    def close(self) -> None:
        if self._process is not None:
            self.stop()
        if self._container is not None:
            self._container.remove(force=True)


class PrivateS3:
    """An S3 server of the test's own (SeaweedFS ``weed mini`` on ports of its own), which it
    may stop (by its PID) and start again on the same data. It runs the binary that
    ``scripts/services.sh`` installs, with or without a Docker engine."""

    BIN = Path(os.environ.get("SVC_HOME", "/var/tmp/project-services")) / "venv-s3" / "bin" / "weed"

    def __init__(self, folder: Path, access_key: str, secret_key: str) -> None:
        self.folder = folder
        self.port = free_port()
        self._ports = {name: free_port() for name in ("master", "volume", "filer", "admin")}
        self.access_key, self.secret_key = access_key, secret_key
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        (self.folder / "data").mkdir(parents=True, exist_ok=True)
        identities = self.folder / "identities.json"
        identities.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "admin",
                            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                        }
                    ]
                }
            )
        )
        log = (self.folder / "s3.log").open("ab")
        self._process = subprocess.Popen(
            [
                str(self.BIN),
                "mini",
                f"-dir={self.folder / 'data'}",
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                f"-s3.port={self.port}",
                f"-s3.config={identities}",
                *(f"-{name}.port={port}" for name, port in self._ports.items()),
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
                "-webdav=false",
                "-admin.ui=false",
                "-master.telemetry=false",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://{self.endpoint}/", timeout=2):
                    return
            except urllib.error.HTTPError:
                return  # 403 without a signature: the server is answering
            except OSError:
                time.sleep(0.25)
        raise AssertionError("the private S3 server did not start")

    def stop(self) -> None:
        assert self._process is not None
        stop_process(self._process)
        self._process = None

    def close(self) -> None:
        if self._process is not None:
            self.stop()


async def declare_reply_queue(amqp_url: str, township_id: str) -> str:
    """A township's reply queue as onboarding declares it (shared.onboarding), for tests that
    read what reaches a township without making its broker user."""
    from shared.identity import reply_queue, township_user
    from shared.onboarding import REPLY_QUEUE_ARGUMENTS

    name = reply_queue(township_user(township_id))
    connection = await aio_pika.connect_robust(amqp_url)
    try:
        channel = await connection.channel()
        await channel.declare_queue(name, durable=True, arguments=REPLY_QUEUE_ARGUMENTS)
    finally:
        await connection.close()
    return name
