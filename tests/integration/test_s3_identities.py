"""The S3 identities of deploy/docker-compose.yml on a real SeaweedFS (a private `weed mini`
started for this test, with the compose file's identities config): the evidence service's
identity, scoped to its two buckets, can do all the evidence service does (make its buckets
with object lock, keep an upload under retention, sign upload policies) and nothing else."""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from minio import Minio
from minio.error import S3Error

from services.evidence.objects import ObjectStore
from shared.settings import S3Settings
from tests.unit.test_compose import (
    COMPOSE_FILE,
    ENV_EXAMPLE,
    interpolate_tree,
    read_env_file,
    with_secrets,
    write_secrets,
)

WEED = Path(os.environ.get("SVC_HOME", "/var/tmp/project-services")) / "venv-s3" / "bin" / "weed"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.fixture(scope="module")
def compose_s3(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, dict[str, Any], dict[str, str]]]:
    """A private SeaweedFS with the compose file's identities (placeholders from .env.example);
    stopped by its PID afterwards."""
    env = {
        **read_env_file(ENV_EXAMPLE),
        "WMSJ_S3_UPLOAD_BUCKET": "wmsj-uploads",
        "WMSJ_S3_EVIDENCE_BUCKET": "wmsj-evidence",
    }
    home = tmp_path_factory.mktemp("weed")
    # The evidence service's keys as it reads them: from its secret files (make-secrets.sh).
    compose = with_secrets(
        interpolate_tree(yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8")), env),
        write_secrets(env, home / "secrets"),
    )
    (home / "ids.json").write_text(compose["configs"]["s3-identities"]["content"], encoding="utf-8")
    # High, free ports (gRPC ports are the HTTP ones + 10000): no clash with the shared server.
    ports = {}
    while len(set(ports.values())) < 5 or any(p > 55000 for p in ports.values()):
        ports = {name: _free_port() for name in ("master", "volume", "filer", "s3", "admin")}
    weed = str(WEED if WEED.exists() else shutil.which("weed"))
    process = subprocess.Popen(
        [
            weed, "mini", f"-dir={home / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={ports['master']}", f"-volume.port={ports['volume']}", f"-filer.port={ports['filer']}",
            f"-s3.port={ports['s3']}", f"-admin.port={ports['admin']}", f"-debug.port={_free_port()}",
            f"-s3.config={home / 'ids.json'}", "-s3.autoCreateBucket=false", "-s3.port.iceberg=0",
            "-s3.port.lance=0", "-webdav=false", "-admin.ui=false", "-master.telemetry=false",
        ],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    endpoint = f"127.0.0.1:{ports['s3']}"
    operator = Minio(endpoint, env["S3_OPERATOR_ACCESS_KEY"], env["S3_OPERATOR_SECRET_KEY"], secure=False)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                operator.list_buckets()
                break
            except Exception:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.5)
        yield endpoint, compose, env
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_the_evidence_identity_does_what_evidence_does_and_nothing_else(
    compose_s3: tuple[str, dict[str, Any], dict[str, str]],
) -> None:
    endpoint, compose, env = compose_s3
    evidence_env = compose["services"]["evidence"]["environment"]
    settings = S3Settings(
        endpoint=endpoint,
        access_key=evidence_env["WMSJ_S3_ACCESS_KEY"],
        secret_key=evidence_env["WMSJ_S3_SECRET_KEY"],
        upload_bucket=evidence_env["WMSJ_S3_UPLOAD_BUCKET"],
        evidence_bucket=evidence_env["WMSJ_S3_EVIDENCE_BUCKET"],
    )
    store = ObjectStore(settings, 1)
    asyncio.run(store.ensure_buckets())  # with object lock on the evidence bucket
    client = store.client
    client.put_object(
        settings.upload_bucket, "431381101/a.jpg", io.BytesIO(b"jpeg"), 4, content_type="image/jpeg"
    )
    taken = asyncio.run(store.take_upload("431381101/a.jpg"))  # read once, as evidence does
    assert taken is not None
    asyncio.run(store.keep(taken, "kept/a.jpg", "image/jpeg"))
    taken.close()
    assert client.get_object_retention(settings.evidence_bucket, "kept/a.jpg").retain_until_date is not None
    assert {"url", "fields"} <= store.upload_policy(
        "431381101/b.jpg", 10, "image/jpeg", timedelta(minutes=5)
    ).keys()
    assert sorted(b.name for b in client.list_buckets()) == sorted(
        [settings.upload_bucket, settings.evidence_bucket]
    )

    operator = Minio(endpoint, env["S3_OPERATOR_ACCESS_KEY"], env["S3_OPERATOR_SECRET_KEY"], secure=False)
    operator.make_bucket("someone-elses")
    for attempt in (
        lambda: client.put_object("someone-elses", "x", io.BytesIO(b"x"), 1),
        lambda: client.make_bucket("another-bucket"),
        lambda: client.get_object("someone-elses", "x"),
    ):
        with pytest.raises(S3Error) as refused:
            attempt()
        assert refused.value.code == "AccessDenied"
    # The operators' identity (backups) reads the evidence.
    assert operator.get_object(settings.evidence_bucket, "kept/a.jpg").read() == b"jpeg"
    assert json.loads(compose["configs"]["s3-identities"]["content"])  # the file the server ran with
