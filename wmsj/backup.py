"""``wmsj backup DIR`` and ``wmsj restore DIR``: everything the platform keeps, online.

A backup is a directory:

- ``mongo/<database>/<collection>.bson``: every document of every service database, read in
  one snapshot transaction per database (consistent per database, no downtime). Indexes are
  not copied: each service makes its own at start.
- ``s3/<bucket>/<key>`` + ``<key>.meta.json``: the evidence bucket's objects with their
  content type and object-lock retention (mode, until), so a restore keeps the audit trail
  locked as long as the original would have been.
- ``broker.json``: the broker's definitions for the platform's virtual host (management
  API): exchanges, queues, bindings, policies, and the users with permissions there —
  township users with their password hashes, permissions, topic permissions.
- ``manifest.json``: what is in it, with a SHA-256 of every file (``restore`` checks them).

The directory holds password hashes and personal data (encrypted ID cards, masked phones):
it is made mode 700; keep it encrypted at rest. Restore onto an empty stack (or over the same
data: documents are replaced, locked objects already there are kept as they are).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import bson
import httpx
from minio import Minio
from minio.commonconfig import GOVERNANCE
from minio.error import S3Error
from minio.retention import Retention
from pymongo import AsyncMongoClient, ReplaceOne
from pymongo.read_concern import ReadConcern

from shared.onboarding import ManagementSettings

SERVICES = ("registry", "activities", "evidence", "supervision")
_BATCH = 500


@dataclass
class Plan:
    """What to back up and where it lives (from the usual WMSJ_* settings by default)."""

    mongo_url: str
    db_prefix: str
    amqp_url: str
    s3: Minio | None
    buckets: list[str]
    management: ManagementSettings = field(default_factory=ManagementSettings)
    object_prefix: str = ""  # only objects under this key prefix (tests)

    @property
    def databases(self) -> list[str]:
        return [f"{self.db_prefix}{service}" for service in SERVICES]

    @property
    def vhost(self) -> str:
        path = urlsplit(self.amqp_url).path
        return unquote(path[1:]) if len(path) > 1 else "/"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------- MongoDB


async def _dump_database(client: AsyncMongoClient[Any], name: str, out: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    db = client[name]
    # Listed outside the transaction (MongoDB refuses it inside); the services make their
    # collections at start, so none appears meanwhile that matters.
    collections = sorted(await db.list_collection_names())
    # One snapshot for the whole database: what a service wrote in one transaction is either
    # entirely in the backup or not at all.
    async with (
        client.start_session() as session,
        await session.start_transaction(read_concern=ReadConcern("snapshot")),
    ):
        for collection in collections:
            path = out / name / f"{collection}.bson"
            path.parent.mkdir(parents=True, exist_ok=True)
            count = 0
            with path.open("wb") as f:
                async for doc in db[collection].find({}, session=session).sort("_id", 1):
                    f.write(bson.encode(doc))
                    count += 1
            counts[collection] = count
    return counts


async def _restore_database(
    client: AsyncMongoClient[Any], source: Path, name: str, target: str
) -> dict[str, int]:
    """The documents of ``source/name`` into database ``target`` (replacing same ``_id``s)."""
    counts: dict[str, int] = {}
    for path in sorted((source / name).glob("*.bson")):
        docs = bson.decode_all(path.read_bytes())
        for start in range(0, len(docs), _BATCH):
            batch = docs[start : start + _BATCH]
            await client[target][path.stem].bulk_write(
                [ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in batch], ordered=False
            )
        counts[path.stem] = len(docs)
    return counts


# ---------------------------------------------------------------- S3


def _object_paths(root: Path, bucket: str, key: str) -> tuple[Path, Path]:
    data = root / bucket / key
    if ".." in Path(key).parts or key.startswith("/"):
        raise ValueError(f"refusing object key {key!r}")
    return data, data.with_name(data.name + ".meta.json")


def _dump_bucket(s3: Minio, bucket: str, prefix: str, out: Path) -> int:
    count = 0
    for item in s3.list_objects(bucket, prefix=prefix or None, recursive=True):
        key = item.object_name
        assert key is not None
        data, meta = _object_paths(out, bucket, key)
        data.parent.mkdir(parents=True, exist_ok=True)
        stat = s3.stat_object(bucket, key)
        s3.fget_object(bucket, key, str(data))
        retention: dict[str, str] | None = None
        try:
            found = s3.get_object_retention(bucket, key)
            if found is not None and found.retain_until_date is not None:
                retention = {"mode": found.mode, "until": found.retain_until_date.isoformat()}
        except S3Error as error:
            if error.code not in ("NoSuchObjectLockConfiguration", "ObjectLockConfigurationNotFoundError"):
                raise
        meta.write_text(
            json.dumps({"content_type": stat.content_type, "size": stat.size, "retention": retention}),
            encoding="utf-8",
        )
        count += 1
    return count


def _restore_bucket(s3: Minio, bucket: str, source: Path) -> int:
    root = source / bucket
    if not root.is_dir():
        return 0
    if not s3.bucket_exists(bucket):
        # Made as the evidence service makes it: with object lock (which only a new bucket can get).
        s3.make_bucket(bucket, object_lock=True)
    count = 0
    for meta in sorted(root.rglob("*.meta.json")):
        data = meta.with_name(meta.name.removesuffix(".meta.json"))
        key = data.relative_to(root).as_posix()
        info = json.loads(meta.read_text(encoding="utf-8"))
        try:
            s3.stat_object(bucket, key)
            continue  # already there (and perhaps locked): keep it
        except S3Error as error:
            if error.code not in ("NoSuchKey", "NoSuchObject"):
                raise
        retention = None
        if info.get("retention"):
            until = datetime.fromisoformat(info["retention"]["until"])
            if until > datetime.now(UTC):
                retention = Retention(info["retention"]["mode"] or GOVERNANCE, until)
        s3.fput_object(bucket, key, str(data), content_type=info["content_type"], retention=retention)
        count += 1
    return count


# ---------------------------------------------------------------- broker


def _management(plan: Plan) -> httpx.AsyncClient:
    parts = urlsplit(plan.amqp_url)
    user = plan.management.user or unquote(parts.username or "guest")
    password = plan.management.password or unquote(parts.password or "guest")
    return httpx.AsyncClient(base_url=plan.management.url.rstrip("/"), auth=(user, password), timeout=60)


def _only_vhost(definitions: dict[str, Any], vhost: str) -> dict[str, Any]:
    """The definitions of one virtual host, with the users that have permissions in it."""
    out: dict[str, Any] = {"vhosts": [v for v in definitions.get("vhosts", []) if v["name"] == vhost]}
    for kind in ("permissions", "topic_permissions", "queues", "exchanges", "bindings", "policies"):
        out[kind] = [item for item in definitions.get(kind, []) if item.get("vhost") == vhost]
    users = {p["user"] for p in out["permissions"]}
    out["users"] = [u for u in definitions.get("users", []) if u["name"] in users]
    for version in ("rabbit_version", "rabbitmq_version"):
        if version in definitions:
            out[version] = definitions[version]
    return out


async def _dump_broker(plan: Plan, out: Path) -> dict[str, int]:
    async with _management(plan) as api:
        response = await api.get("/api/definitions")
        response.raise_for_status()
    definitions = _only_vhost(response.json(), plan.vhost)
    out.write_text(json.dumps(definitions, indent=1, ensure_ascii=False), encoding="utf-8")
    return {kind: len(items) for kind, items in definitions.items() if isinstance(items, list)}


async def _restore_broker(plan: Plan, source: Path) -> None:
    definitions = json.loads(source.read_text(encoding="utf-8"))
    async with _management(plan) as api:
        response = await api.post("/api/definitions", json=definitions)
        if not response.is_success:
            raise RuntimeError(f"broker definitions refused: {response.status_code} {response.text[:300]}")


# ---------------------------------------------------------------- the whole


async def backup(directory: Path, plan: Plan) -> dict[str, Any]:
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    manifest: dict[str, Any] = {"made_at": datetime.now(UTC).isoformat(), "mongo": {}, "s3": {}, "broker": {}}
    client: AsyncMongoClient[Any] = AsyncMongoClient(plan.mongo_url)
    try:
        for name in plan.databases:
            manifest["mongo"][name] = await _dump_database(client, name, directory / "mongo")
    finally:
        await client.close()
    if plan.s3 is not None:
        for bucket in plan.buckets:
            manifest["s3"][bucket] = await asyncio.to_thread(
                _dump_bucket, plan.s3, bucket, plan.object_prefix, directory / "s3"
            )
    manifest["broker"] = await _dump_broker(plan, directory / "broker.json")
    manifest["files"] = {
        path.relative_to(directory).as_posix(): _sha256(path)
        for path in sorted(directory.rglob("*"))
        if path.is_file() and path.name != "manifest.json"
    }
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return manifest


async def restore(directory: Path, plan: Plan) -> dict[str, Any]:
    manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
    for relative, digest in manifest["files"].items():
        if _sha256(directory / relative) != digest:
            raise RuntimeError(f"{relative} differs from the manifest: the backup is damaged")
    # The broker first: the services' queues and the townships' users exist before anything
    # the restored outboxes may publish.
    await _restore_broker(plan, directory / "broker.json")
    restored: dict[str, Any] = {"mongo": {}, "s3": {}}
    client: AsyncMongoClient[Any] = AsyncMongoClient(plan.mongo_url)
    try:
        for name in manifest["mongo"]:
            target = plan.db_prefix + name.removeprefix(_prefix_of(name))
            restored["mongo"][target] = await _restore_database(client, directory / "mongo", name, target)
    finally:
        await client.close()
    if plan.s3 is not None:
        for bucket in manifest["s3"]:
            restored["s3"][bucket] = await asyncio.to_thread(
                _restore_bucket, plan.s3, bucket, directory / "s3"
            )
    return restored


def _prefix_of(database: str) -> str:
    for service in SERVICES:
        if database.endswith(service):
            return database.removesuffix(service)
    raise ValueError(f"{database} is not a service database")


def default_plan() -> Plan:
    from shared.settings import CommonSettings, S3Settings

    common = CommonSettings()
    s3 = S3Settings()
    client = Minio(
        s3.endpoint, access_key=s3.access_key, secret_key=s3.secret_key, secure=s3.secure, region=s3.region
    )
    return Plan(
        mongo_url=common.mongo_url,
        db_prefix=common.db_prefix,
        amqp_url=common.amqp_url,
        s3=client,
        buckets=[s3.evidence_bucket],
    )
