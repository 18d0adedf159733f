"""Uploads a 1 GB video through the evidence service's HTTP path and prints the service's
peak memory and the throughput.

    .venv/bin/python bench/evidence_upload.py [--mib 1024]

Starts an evidence service as a separate OS process (its own RabbitMQ virtual host,
database and buckets, on a free port), generates a valid-looking MP4 (an ``ftypisom``
header, then incompressible bytes) on the fly — the file is never on disk or whole in
memory on either side — posts it as multipart/form-data to ``POST /uploads``, and reads the
service's peak resident memory (``VmHWM`` in ``/proc/<pid>/status``) before and after.
The upload is streamed to S3 as a multipart upload, so the peak stays bounded by a few S3
parts, whatever the file size. Needs the servers (``scripts/services.sh start``).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared.auth import DEV_OFFICE_KEY
from shared.settings import S3Settings
from wmsj import processes
from wmsj.client import object_store

BASE_URL = os.environ.get("WMSJ_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
MIB = 2**20
MP4_HEADER = b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def video(mib: int, digest: hashlib._Hash) -> Iterator[bytes]:
    block = secrets.token_bytes(MIB)  # random, so nothing on the way can compress it
    first = MP4_HEADER + block[len(MP4_HEADER) :]
    for n in range(mib):
        chunk = first if n == 0 else block
        digest.update(chunk)
        yield chunk


def multipart(mib: int, boundary: str, digest: hashlib._Hash) -> tuple[int, Iterator[bytes]]:
    head = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="activity.mp4"\r\n'
        "Content-Type: video/mp4\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    def body() -> Iterator[bytes]:
        yield head
        yield from video(mib, digest)
        yield tail

    return len(head) + mib * MIB + len(tail), body()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mib", type=int, default=1024, help="file size in MiB (default 1024 = 1 GiB)")
    args = parser.parse_args()

    run = "bench" + secrets.token_hex(3)
    vhost = f"wmsj-{run}"
    user = urlsplit(BASE_URL).username or "guest"
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], check=True, capture_output=True)
    subprocess.run(["rabbitmqctl", "-q", "set_permissions", "-p", vhost, user, ".*", ".*", ".*"], check=True)
    env = {
        "WMSJ_AMQP_URL": urlunsplit(urlsplit(BASE_URL)._replace(path="/" + quote(vhost, safe=""))),
        "WMSJ_DB_PREFIX": f"{run}_",
        "WMSJ_S3_UPLOAD_BUCKET": f"{run}-uploads",
        "WMSJ_S3_EVIDENCE_BUCKET": f"{run}-evidence",
        "WMSJ_RETENTION_DAYS": "1",
        "WMSJ_LOG_LEVEL": "WARNING",
    }
    settings = S3Settings(
        upload_bucket=env["WMSJ_S3_UPLOAD_BUCKET"], evidence_bucket=env["WMSJ_S3_EVIDENCE_BUCKET"]
    )
    with tempfile.TemporaryDirectory() as state:
        layout = processes.Layout(Path(state), {"evidence": free_port()})
        pid = processes.start(layout, "evidence", env)
        key = None
        try:
            ready = processes.wait_ready(layout, ["evidence"], timeout=90)
            if ready["evidence"][0] != 200:
                raise SystemExit(
                    f"evidence service not ready: {ready}\n{layout.log_file('evidence').read_text()}"
                )
            before = status_kib(pid, "VmHWM")
            samples: list[int] = []
            uploading = threading.Event()
            uploading.set()

            def sample() -> None:
                while uploading.is_set():
                    samples.append(status_kib(pid, "VmRSS"))
                    time.sleep(0.2)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            boundary = secrets.token_hex(16)
            digest = hashlib.sha256()
            length, body = multipart(args.mib, boundary, digest)
            started = time.perf_counter()
            response = httpx.post(
                f"http://127.0.0.1:{layout.ports['evidence']}/uploads",
                content=body,
                headers={
                    "Authorization": f"Bearer {DEV_OFFICE_KEY}",
                    "Content-Type": f"multipart/form-data; boundary={boundary}",
                    "Content-Length": str(length),
                },
                timeout=httpx.Timeout(600),
            )
            elapsed = time.perf_counter() - started
            uploading.clear()
            sampler.join()
            response.raise_for_status()
            claim = response.json()
            key = claim["object_key"]
            after = status_kib(pid, "VmHWM")
            assert claim["size"] == args.mib * MIB and claim["sha256"] == digest.hexdigest(), claim
            assert claim["detected_type"] == "video/mp4", claim
            stat = object_store(settings).stat_object(settings.upload_bucket, key)
            assert stat.size == args.mib * MIB, stat.size
        finally:
            processes.stop(layout, "evidence")
            store = object_store(settings)
            if key:
                store.remove_object(settings.upload_bucket, key)
            for bucket in (settings.upload_bucket, settings.evidence_bucket):
                if store.bucket_exists(bucket):
                    store.remove_bucket(bucket)  # empty: nothing was kept as evidence
            subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], check=False, capture_output=True)

    size_mib = args.mib
    print(f"uploaded {size_mib} MiB through POST /uploads (multipart/form-data, streamed to S3)")
    print(f"  time                    {elapsed:8.1f} s")
    print(f"  throughput              {size_mib / elapsed:8.1f} MiB/s")
    print(f"  service peak RSS before {before / 1024:8.1f} MiB  (VmHWM after start-up)")
    print(f"  service peak RSS after  {after / 1024:8.1f} MiB  (VmHWM: the peak over the whole upload)")
    print(f"  RSS sampled meanwhile   {min(samples) / 1024:8.1f} .. {max(samples) / 1024:.1f} MiB")
    print(f"  peak / file size        {after / 1024 / size_mib:8.1%}")
    print(f"  sha256 {claim['sha256']} matches; stored object is {size_mib} MiB")


if __name__ == "__main__":
    main()
