"""``scripts/services.sh stop`` (and so ``wmsj down --infra``) stops only what ``start``
started, by the PID it recorded: never a broker it found running, never epmd."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_stop_stops_recorded_pids_only_and_never_calls_rabbitmqctl_or_epmd(tmp_path: Path) -> None:
    # Stand-ins for the tools: each records that it was called.
    tools = tmp_path / "bin"
    tools.mkdir()
    calls = tmp_path / "calls"
    for tool in ("rabbitmqctl", "rabbitmq-diagnostics", "epmd", "pkill", "killall"):
        (tools / tool).write_text(f'#!/bin/sh\necho {tool} "$@" >> {calls}\n', encoding="utf-8")
        (tools / tool).chmod(0o755)
    home = tmp_path / "svc"
    (home / "run").mkdir(parents=True)
    # Detached, as the script starts its servers (not our children: no zombie to outlive a kill).
    started, stranger = _detached(), _detached()  # stranger: e.g. the system's broker, no pid file
    try:
        (home / "run" / "mongo.pid").write_text(str(started), encoding="utf-8")
        env = {**os.environ, "SVC_HOME": str(home), "PATH": f"{tools}:{os.environ['PATH']}"}
        result = subprocess.run(
            ["bash", str(ROOT / "scripts" / "services.sh"), "stop"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        assert not _alive(started)
        assert _alive(stranger), "a process the script did not start was stopped"
        assert not calls.exists(), calls.read_text()
        assert not (home / "run" / "mongo.pid").exists()
        assert f"mongo: stopped (pid {started})" in result.stdout
    finally:
        for pid in (started, stranger):
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def _detached() -> int:
    out = subprocess.run(
        ["sh", "-c", "setsid sleep 300 >/dev/null 2>&1 < /dev/null & echo $!"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout.strip())


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"
