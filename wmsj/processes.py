"""Running the four services as background OS processes on one machine (no Docker):
what ``wmsj up`` / ``wmsj down`` and the end-to-end tests use."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVICES = {"registry": 8001, "activities": 8002, "evidence": 8003, "supervision": 8004}
# Replica k (from 2) of a service is the instance "<service>-k", on its port + 100·(k-1).
REPLICA_PORT_STEP = 100


def instance_name(service: str, replica: int) -> str:
    return service if replica == 1 else f"{service}-{replica}"


def service_of(instance: str) -> str:
    """The service an instance runs: ``activities-2`` runs ``activities``."""
    return instance.split("-", 1)[0]


def replica_ports(base: dict[str, int], replicas: int) -> dict[str, int]:
    """HTTP ports for ``replicas`` instances of each service (the APIs are stateless: any
    instance answers for the service)."""
    return {
        instance_name(name, k): port + REPLICA_PORT_STEP * (k - 1)
        for k in range(1, replicas + 1)
        for name, port in base.items()
    }


@dataclass(frozen=True)
class Layout:
    """Where pid files and logs go; tests use their own folder and ports."""

    state_dir: Path
    ports: dict[str, int]

    @classmethod
    def default(cls, replicas: int = 1) -> Layout:
        return cls(Path(os.environ.get("WMSJ_STATE_DIR", ROOT / "var")), replica_ports(SERVICES, replicas))

    def running(self) -> list[str]:
        """The instances with a pid file, whatever ``--replicas`` started them."""
        folder = self.state_dir / "run"
        return sorted(p.stem for p in folder.glob("*.pid")) if folder.exists() else []

    def pid_file(self, name: str) -> Path:
        return self.state_dir / "run" / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        return self.state_dir / "log" / f"{name}.log"


def _pid(layout: Layout, name: str) -> int | None:
    try:
        pid = int(layout.pid_file(name).read_text())
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
        return None
    return pid


def start(layout: Layout, name: str, env: dict[str, str] | None = None) -> int:
    """Start one service instance (``activities``, or replica ``activities-2``) unless it is
    already running; returns its pid."""
    if pid := _pid(layout, name):
        return pid
    for folder in ("run", "log"):
        (layout.state_dir / folder).mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, "WMSJ_HTTP_PORT": str(layout.ports[name]), **(env or {})}
    with layout.log_file(name).open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", f"services.{service_of(name)}"],
            cwd=ROOT,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # survives the terminal that ran ``wmsj up``
        )
    layout.pid_file(name).write_text(str(process.pid))
    return process.pid


def stop(layout: Layout, name: str, timeout: float = 20.0) -> bool:
    """Stop the service this layout started (by its recorded pid); True if one was running."""
    pid = _pid(layout, name)
    if pid is None:
        layout.pid_file(name).unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        _reap(pid)
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)
    _reap(pid)
    layout.pid_file(name).unlink(missing_ok=True)
    return True


def _reap(pid: int) -> None:
    """Collect the exit status if we are the parent (tests), so no zombie lingers."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def health(port: int) -> tuple[int, str]:
    """HTTP status and body of a service's readiness probe (0 if nothing answers)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=3) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError as error:
        return 0, str(error)


def wait_ready(layout: Layout, names: list[str], timeout: float = 90.0) -> dict[str, tuple[int, str]]:
    deadline = time.monotonic() + timeout
    states = {n: health(layout.ports[n]) for n in names}
    while time.monotonic() < deadline and any(status != 200 for status, _ in states.values()):
        time.sleep(0.5)
        states = {n: health(layout.ports[n]) for n in names}
    return states
