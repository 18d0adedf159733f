"""The object store (S3), through the minio SDK. The SDK is synchronous, so calls run in a
worker thread; files are streamed in chunks, never held whole in memory."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import queue
import tempfile
from datetime import UTC, datetime, timedelta
from typing import IO, Any

from minio import Minio
from minio.commonconfig import GOVERNANCE
from minio.datatypes import PostPolicy
from minio.error import S3Error
from minio.objectlockconfig import DAYS, ObjectLockConfig
from minio.retention import Retention

from services.evidence.domain import HEAD_SAMPLE, StoredObject
from shared.settings import S3Settings

CHUNK = 1024 * 1024
PART = 16 * 1024 * 1024
HEAD = HEAD_SAMPLE


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
        # Signs links for the public address. Signing is local, but the SDK asks the server
        # for a bucket's region unless it is given one, and the public address may not be
        # reachable from inside the deployment: hence a fixed region.
        self.signer = (
            Minio(
                settings.public_endpoint,
                access_key=settings.access_key,
                secret_key=settings.secret_key,
                secure=self.public_secure,
                region=settings.region or "us-east-1",
            )
            if settings.public_endpoint
            else self.client
        )

    @property
    def public_secure(self) -> bool:
        public = self.settings.public_secure
        return self.settings.secure if public is None else public

    @property
    def public_endpoint(self) -> str:
        return self.settings.public_endpoint or self.settings.endpoint

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

    async def take_upload(self, key: str) -> TakenUpload | None:
        """Copy the uploaded object here once (None if there is none): everything after —
        the size and hash, the type sniffed from its first bytes, the photo's analysis and
        the copy that is kept — reads this one copy. Reading the upload bucket several times
        would check one set of bytes and keep another, if the object were replaced in
        between (a second use of the upload policy)."""
        return await asyncio.to_thread(self._take, key)

    def _take(self, key: str) -> TakenUpload | None:
        try:
            response = self.client.get_object(self.settings.upload_bucket, key)
        except S3Error as error:
            if error.code in ("NoSuchKey", "NoSuchObject"):
                return None
            raise
        # In memory while small, on disk beyond: a 4 GB video is never held whole.
        copy = tempfile.SpooledTemporaryFile(max_size=8 * CHUNK)  # noqa: SIM115  # TakenUpload closes it
        digest = hashlib.sha256()
        head = b""
        size = 0
        try:
            for chunk in response.stream(CHUNK):
                if len(head) < HEAD:
                    head += chunk[: HEAD - len(head)]
                digest.update(chunk)
                size += len(chunk)
                copy.write(chunk)
        except BaseException:
            copy.close()
            raise
        finally:
            response.close()
            response.release_conn()
        copy.seek(0)
        return TakenUpload(StoredObject(size=size, sha256=digest.hexdigest(), head=head), copy)  # type: ignore[arg-type]

    async def keep(self, taken: TakenUpload, permanent_key: str, content_type: str) -> None:
        """Put the checked copy in the evidence bucket under retention (once: the key is
        content-addressed, so a kept object is never replaced)."""
        await asyncio.to_thread(self._keep, taken, permanent_key, content_type)

    def _keep(self, taken: TakenUpload, permanent_key: str, content_type: str) -> None:
        bucket = self.settings.evidence_bucket
        try:
            self.client.stat_object(bucket, permanent_key)
            return
        except S3Error as error:
            if error.code not in ("NoSuchKey", "NoSuchObject"):
                raise
        # A PUT rather than a server-side copy: S3 servers differ on whether a copy takes the
        # retention (SeaweedFS's does not), a PUT always does; and it is the checked bytes.
        self.client.put_object(
            bucket,
            permanent_key,
            taken.reader(),  # type: ignore[arg-type]  # a readable stream is all put_object needs
            taken.found.size,
            content_type=content_type,
            part_size=PART,
            retention=Retention(GOVERNANCE, datetime.now(UTC) + timedelta(days=self.retention_days)),
        )

    async def keep_thumbnail(self, key: str, jpeg: bytes) -> None:
        await asyncio.to_thread(self._keep_thumbnail, key, jpeg)

    def _keep_thumbnail(self, key: str, jpeg: bytes) -> None:
        bucket = self.settings.evidence_bucket
        try:
            self.client.stat_object(bucket, key)
            return  # the same photo again: its thumbnail is kept already
        except S3Error as error:
            if error.code not in ("NoSuchKey", "NoSuchObject"):
                raise
        self.client.put_object(
            bucket,
            key,
            io.BytesIO(jpeg),
            len(jpeg),
            content_type="image/jpeg",
            retention=Retention(GOVERNANCE, datetime.now(UTC) + timedelta(days=self.retention_days)),
        )

    # ------------------------------------------------------------------ for people and tools

    def view_link(self, key: str, expires: timedelta) -> str:
        """A time-limited link to read a kept object (presigned GET; signing is local)."""
        return self.signer.presigned_get_object(self.settings.evidence_bucket, key, expires=expires)

    def upload_policy(self, key: str, size: int, content_type: str, expires: timedelta) -> dict[str, Any]:
        """A presigned POST that lets a township upload exactly this key, size and type:
        the S3 server refuses any other (a presigned PUT would bind none of the three)."""
        policy = PostPolicy(self.settings.upload_bucket, datetime.now(UTC) + expires)
        policy.add_equals_condition("key", key)
        policy.add_equals_condition("Content-Type", content_type)
        policy.add_content_length_range_condition(size, size)
        fields = self.signer.presigned_post_policy(policy)
        scheme = "https" if self.public_secure else "http"
        return {
            "url": f"{scheme}://{self.public_endpoint}/{self.settings.upload_bucket}",
            "fields": {**fields, "key": key, "Content-Type": content_type},
        }

    def open_upload(self, key: str, content_type: str) -> StreamedUpload:
        return StreamedUpload(self, key, content_type)


class TakenUpload:
    """An upload copied here once (``ObjectStore.take_upload``): what it is, and the bytes."""

    def __init__(self, found: StoredObject, copy: IO[bytes]) -> None:
        self.found = found
        self._copy = copy

    def reader(self) -> IO[bytes]:
        """The copy from its first byte (each reader starts again; one at a time)."""
        self._copy.seek(0)
        return self._copy

    def close(self) -> None:
        self._copy.close()


class StreamedUpload:
    """An upload fed chunk by chunk from async code, sent to S3 as a multipart upload by a
    worker thread: at most ``BUFFERED`` chunks plus one S3 part are ever in memory."""

    BUFFERED = 8

    def __init__(self, store: ObjectStore, key: str, content_type: str) -> None:
        self.store, self.key, self.content_type = store, key, content_type
        self._chunks: queue.Queue[bytes | BaseException | None] = queue.Queue(self.BUFFERED)
        self._pending = bytearray()
        self._task: asyncio.Future[Any] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(asyncio.to_thread(self._send))

    async def write(self, chunk: bytes) -> None:
        await self._put(chunk)

    async def finish(self) -> None:
        await self._put(None)
        assert self._task is not None
        await self._task

    async def abort(self, error: BaseException) -> None:
        await self._put(error)
        if self._task is not None:
            # The upload fails as intended; the SDK aborts it, so S3 drops its parts.
            with contextlib.suppress(BaseException):
                await self._task

    async def _put(self, item: bytes | BaseException | None) -> None:
        try:
            self._chunks.put_nowait(item)
        except queue.Full:  # the S3 side is slower: wait for it without blocking the loop
            await asyncio.to_thread(self._chunks.put, item)

    def read(self, size: int = -1) -> bytes:
        """File-like ``read`` for the minio SDK, in the worker thread."""
        while size < 0 or len(self._pending) < size:
            item = self._chunks.get()
            if item is None:
                self._chunks.put(None)  # later reads see the end too
                break
            if isinstance(item, BaseException):
                raise item
            self._pending += item
        if size < 0:
            size = len(self._pending)
        with memoryview(self._pending) as view:
            out = bytes(view[:size])  # one copy, not two
        del self._pending[:size]
        return out

    def _send(self) -> None:
        self.store.client.put_object(
            self.store.settings.upload_bucket,
            self.key,
            self,  # type: ignore[arg-type]
            -1,
            content_type=self.content_type,
            part_size=PART,
        )
