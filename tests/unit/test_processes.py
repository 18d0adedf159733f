"""``wmsj up --replicas N``: the instances and their HTTP ports."""

from __future__ import annotations

from pathlib import Path

from wmsj import processes
from wmsj.cli import main


def test_replicas_get_ports_of_their_own_and_run_their_service() -> None:
    ports = processes.replica_ports(processes.SERVICES, 3)
    assert len(ports) == 12 and len(set(ports.values())) == 12
    assert ports["activities"] == 8002 and ports["activities-2"] == 8102 and ports["activities-3"] == 8202
    assert {processes.service_of(name) for name in ports} == set(processes.SERVICES)
    assert processes.instance_name("evidence", 1) == "evidence"


def test_wmsj_down_finds_every_instance_started_by_its_pid_file(tmp_path: Path) -> None:
    layout = processes.Layout(tmp_path, {})
    (tmp_path / "run").mkdir()
    for name in ("registry", "registry-2", "supervision-3"):
        layout.pid_file(name).write_text("999999999")
    assert layout.running() == ["registry", "registry-2", "supervision-3"]


def test_up_takes_a_replica_count() -> None:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        main(["up", "--help"])
    assert "--replicas" in out.getvalue()
