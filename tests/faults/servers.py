"""Servers the fault suite starts for itself and stops by their PIDs: RabbitMQ nodes (a
single node, or a 3-node cluster) beside the system's broker. The MongoDB-wire and S3
servers are ``tests.support.PrivateMongo`` / ``PrivateS3``.

Debian's ``rabbitmq-env.conf`` pins the node name and its ``rabbitmq.conf`` the 5672
listener, so each node gets files of its own (``RABBITMQ_CONF_ENV_FILE``,
``RABBITMQ_CONFIG_FILE``), its own name, ports and data directories, and a ``HOME`` holding
an Erlang cookie of the suite's own: ``rabbitmqctl`` and the cluster's nodes share it, and
neither the system's cookie (readable only by its owner) nor the system's node is needed.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
from pathlib import Path

from tests.support import wait_port

RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")
COOKIE = secrets.token_hex(20)  # the suite's nodes', for this test process


def rabbitmq_available() -> bool:
    return (RABBIT_BIN / "rabbitmq-server").exists()


class RabbitNode:
    """One RabbitMQ node on ``port`` (AMQP) and ``dist_port`` (Erlang distribution)."""

    def __init__(self, folder: Path, name: str, port: int, dist_port: int) -> None:
        self.folder, self.port, self.dist_port = folder, port, dist_port
        self.node = f"{name}@localhost"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def _env(self) -> dict[str, str]:
        home = self.folder / "home"
        if not (home / ".erlang.cookie").exists():
            home.mkdir(parents=True, exist_ok=True)
            (home / ".erlang.cookie").write_text(COOKIE)
            os.chmod(home / ".erlang.cookie", 0o400)
        (self.folder / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = 127.0.0.1:{self.port}\nloopback_users = none\n"
            "cluster_partition_handling = pause_minority\n"
        )
        (self.folder / "rabbitmq-env.conf").write_text("")
        (self.folder / "enabled_plugins").write_text("[].\n")
        return {
            **os.environ,
            "HOME": str(home),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.folder / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.folder / "log"),
            "RABBITMQ_CONF_ENV_FILE": str(self.folder / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(self.folder / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.folder / "enabled_plugins"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }

    def start(self) -> None:
        for sub in ("mnesia", "log"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        env = self._env()
        log = (self.folder / "server.log").open("ab")
        self._process = subprocess.Popen(
            [str(RABBIT_BIN / "rabbitmq-server")],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_port(self.port, timeout=120)
        self.ctl(["await_startup"])

    def stop(self) -> None:
        """Stop the node by its PID (the script's SIGTERM handler stops the Erlang VM)."""
        if self._process is None:
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self._process.pid, signal.SIGKILL)  # its own session: only this node
            self._process.wait()
        self._process = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self._listening():
            time.sleep(0.2)

    def _listening(self) -> bool:
        import socket

        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def ctl(self, args: list[str], check: bool = True) -> str:
        done = subprocess.run(
            [str(RABBIT_BIN / "rabbitmqctl"), "-n", self.node, "-q", *args],
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} on {self.node}: {done.stderr or done.stdout}")
        return done.stdout

    def join(self, other: RabbitNode) -> None:
        """Join ``other``'s cluster (this node must be fresh)."""
        self.ctl(["stop_app"])
        self.ctl(["join_cluster", other.node])
        self.ctl(["start_app"])
        self.ctl(["await_startup"])
