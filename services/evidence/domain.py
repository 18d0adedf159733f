"""Evidence rules, pure: what makes submitted picture-and-text material (图文资料) acceptable."""

from __future__ import annotations

import codecs
from dataclasses import dataclass

from shared.events import EvidenceSubmitted

# What the office accepts, and how big each may be.
MAX_SIZE = {
    "image/jpeg": 50 * 2**20,
    "image/png": 50 * 2**20,
    "image/webp": 50 * 2**20,
    "image/heic": 50 * 2**20,
    "video/mp4": 4 * 2**30,
    "application/pdf": 200 * 2**20,
    "text/plain": 2 * 2**20,
}


HEIC_BRANDS = {b"heic", b"heix", b"mif1", b"msf1", b"hevc", b"hevx"}
MP4_BRANDS = {b"isom", b"iso2", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"avc1", b"M4V ", b"dash"}


class RefusedEvidence(ValueError):
    pass


@dataclass(frozen=True)
class StoredObject:
    """What the object store says about an uploaded object."""

    size: int
    sha256: str
    head: bytes  # the first bytes, to tell the real type


def sniff(head: bytes) -> str | None:
    """The content type the bytes really are (magic numbers), or None if not one we accept."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in HEIC_BRANDS:
            return "image/heic"
        if brand in MP4_BRANDS:
            return "video/mp4"
        return None  # AVIF, audio-only M4A, QuickTime…: not what the office accepts
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head and b"\x00" not in head:
        try:
            # Incremental: a character cut by the end of the sample is held back, not an error.
            codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        except UnicodeDecodeError:
            return None
        return "text/plain"
    return None


def check_declared(data: EvidenceSubmitted) -> None:
    """What can be refused before looking at the object."""
    limit = MAX_SIZE.get(data.content_type)
    if limit is None:
        raise RefusedEvidence(
            f"content type {data.content_type!r} is not accepted; use one of: {', '.join(MAX_SIZE)}"
        )
    if data.size > limit:
        raise RefusedEvidence(f"{data.size} bytes is over the {limit}-byte limit for {data.content_type}")


def check_object(data: EvidenceSubmitted, found: StoredObject | None) -> None:
    """Does the uploaded object match what the township declared?"""
    if found is None:
        raise RefusedEvidence(f"no object {data.object_key!r} in the upload bucket: upload it first")
    if found.size != data.size:
        raise RefusedEvidence(f"size mismatch: declared {data.size} bytes, the object has {found.size}")
    if found.sha256 != data.sha256:
        raise RefusedEvidence(f"sha256 mismatch: declared {data.sha256}, the object has {found.sha256}")
    actual = sniff(found.head)
    if actual != data.content_type:
        raise RefusedEvidence(
            f"declared {data.content_type} but the bytes are {actual or 'of no accepted type'}"
        )


def permanent_key(data: EvidenceSubmitted) -> str:
    """Content-addressed, so storing the same file again is a no-op."""
    return f"{data.unit_id}/{data.activity_id}/{data.sha256}"
