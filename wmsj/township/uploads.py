"""Uploading evidence without S3 credentials: the evidence service issues a presigned POST
policy for your API key (exactly this size and content type, under your upload prefix); the
file goes straight to the object store; the claim check goes into the evidence event.

    uploader = Uploader(EVIDENCE_API, API_KEY)
    claim = await uploader.upload(Path("photo.jpg"), "image/jpeg")
    event = events.evidence_submitted(claim.submitted("e-1", activity_id="a-1", unit_id="431381101201"))
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

from shared.events import EvidenceSubmitted


class UploadRefused(Exception):
    """The evidence service or the object store refused the upload (status and reason)."""


@dataclass(frozen=True)
class Claim:
    """What the platform needs to find and check an upload."""

    object_key: str
    sha256: str
    size: int
    content_type: str

    def submitted(
        self, evidence_id: str, *, activity_id: str, unit_id: str, caption: str = ""
    ) -> EvidenceSubmitted:
        return EvidenceSubmitted(
            evidence_id=evidence_id,
            activity_id=activity_id,
            unit_id=unit_id,
            object_key=self.object_key,
            sha256=self.sha256,
            size=self.size,
            content_type=self.content_type,
            caption=caption,
        )


def _digest(source: bytes | Path) -> tuple[str, int]:
    if isinstance(source, bytes):
        return hashlib.sha256(source).hexdigest(), len(source)
    digest, size = hashlib.sha256(), 0
    with source.open("rb") as f:
        while chunk := f.read(2**20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


class Uploader:
    def __init__(self, evidence_api: str, api_key: str, *, timeout: float = 600) -> None:
        self.evidence_api = evidence_api.rstrip("/")
        self.headers = {"Authorization": f"Bearer {api_key}"}
        self.timeout = timeout

    async def upload(self, source: bytes | Path, content_type: str, filename: str | None = None) -> Claim:
        """Policy, then POST to the object store; a file is streamed from disk, not read whole."""
        sha256, size = _digest(source)
        async with httpx.AsyncClient(timeout=self.timeout) as http:
            answer = await http.post(
                f"{self.evidence_api}/uploads/policy",
                json={"content_type": content_type, "size": size},
                headers=self.headers,
            )
            if answer.status_code != 200:
                raise UploadRefused(f"upload policy: {answer.status_code} {answer.text}")
            policy = answer.json()
            name = filename or (source.name if isinstance(source, Path) else "upload")
            body: bytes | IO[bytes] = source if isinstance(source, bytes) else source.open("rb")
            try:
                stored = await http.post(
                    policy["url"], data=policy["fields"], files={"file": (name, body, content_type)}
                )
            finally:
                if not isinstance(body, bytes):
                    body.close()
            if stored.status_code not in (200, 201, 204):
                raise UploadRefused(f"object store: {stored.status_code} {stored.text}")
        return Claim(object_key=policy["object_key"], sha256=sha256, size=size, content_type=content_type)
