"""The object store (S3), through the minio SDK. The SDK is synchronous, so calls run in a
worker thread; files are streamed in chunks, never held whole in memory."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta

from minio import Minio
from minio.commonconfig import GOVERNANCE
from minio.error import S3Error
from minio.objectlockconfig import DAYS, ObjectLockConfig
from minio.retention import Retention

from services.evidence.domain import StoredObject
from shared.settings import S3Settings

CHUNK = 1024 * 1024
PART = 16 * 1024 * 1024
HEAD = 64


class ObjectStore:
    def __init__(self, settings: S3Settings, retention_days: int) -> None:
        self.settings = settings
        self.retention_days = retention_days
        self.client = Minio(
            settings.endpoint,
            access_key=settings.access_key,
            secret_key=settings.secret_key,
            secure=settings.secure,
            region=settings.region,
        )

    async def ensure_buckets(self) -> None:
        await asyncio.to_thread(self._ensure_buckets)

    def _ensure_buckets(self) -> None:
        if not self.client.bucket_exists(self.settings.upload_bucket):
            self.client.make_bucket(self.settings.upload_bucket)
        if not self.client.bucket_exists(self.settings.evidence_bucket):
            # Object lock can only be switched on when the bucket is made.
            self.client.make_bucket(self.settings.evidence_bucket, object_lock=True)
            self.client.set_object_lock_config(
                self.settings.evidence_bucket, ObjectLockConfig(GOVERNANCE, self.retention_days, DAYS)
            )

    async def ping(self) -> None:
        await asyncio.to_thread(self.client.bucket_exists, self.settings.evidence_bucket)

    async def inspect_upload(self, key: str) -> StoredObject | None:
        """Size, sha256 and first bytes of an uploaded object, or None if there is none."""
        return await asyncio.to_thread(self._inspect, self.settings.upload_bucket, key)

    def _inspect(self, bucket: str, key: str) -> StoredObject | None:
        try:
            response = self.client.get_object(bucket, key)
        except S3Error as error:
            if error.code in ("NoSuchKey", "NoSuchObject"):
                return None
            raise
        digest = hashlib.sha256()
        head = b""
        size = 0
        try:
            for chunk in response.stream(CHUNK):
                if len(head) < HEAD:
                    head += chunk[: HEAD - len(head)]
                digest.update(chunk)
                size += len(chunk)
        finally:
            response.close()
            response.release_conn()
        return StoredObject(size=size, sha256=digest.hexdigest(), head=head)

    async def keep(self, upload_key: str, permanent_key: str, content_type: str) -> None:
        """Copy the upload to the evidence bucket under retention (once: the key is content-addressed)."""
        await asyncio.to_thread(self._keep, upload_key, permanent_key, content_type)

    def _keep(self, upload_key: str, permanent_key: str, content_type: str) -> None:
        bucket = self.settings.evidence_bucket
        try:
            self.client.stat_object(bucket, permanent_key)
            return
        except S3Error as error:
            if error.code not in ("NoSuchKey", "NoSuchObject"):
                raise
        # Streamed through this process rather than copied server-side: S3 servers differ on
        # whether a server-side copy takes the retention (SeaweedFS's does not), a PUT always does.
        source = self.client.get_object(self.settings.upload_bucket, upload_key)
        try:
            size = int(source.headers["Content-Length"])
            self.client.put_object(
                bucket,
                permanent_key,
                source,  # type: ignore[arg-type]  # a readable stream is all put_object needs
                size,
                content_type=content_type,
                part_size=PART,
                retention=Retention(GOVERNANCE, datetime.now(UTC) + timedelta(days=self.retention_days)),
            )
        finally:
            source.close()
            source.release_conn()
