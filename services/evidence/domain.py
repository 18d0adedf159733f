"""Evidence rules, pure: what makes submitted picture-and-text material (图文资料) acceptable.

Ownership (``shared.ownership``): a township submits evidence only under the upload keys it
was issued (its own key prefix, ``check_upload_key``), only for its own township's
activities (``check_activity``), and a piece of evidence, once stored, is never replaced by
another township (``check_owner``). Each refusal names nothing of the other township."""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from shared.events import EvidenceRequirement, EvidenceSubmitted
from shared.ownership import Owner, foreign, not_yours

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


# How many first bytes tell the type.
HEAD_SAMPLE = 64

HEIC_BRANDS = {b"heic", b"heix", b"mif1", b"msf1", b"hevc", b"hevx"}
MP4_BRANDS = {b"isom", b"iso2", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"avc1", b"M4V ", b"dash"}


class RefusedEvidence(ValueError):
    def __init__(self, reason: str, field: str = "data") -> None:
        super().__init__(reason)
        self.field = field  # the field at fault, for the refusal's ``errors``


def upload_prefix(sender_township: str | None) -> str:
    """The key prefix uploads are issued under for a sender (the upload routes use it)."""
    return f"{sender_township}/" if sender_township is not None else "office/"


def check_upload_key(object_key: str, sender_township: str | None) -> None:
    """A township names only an upload issued to it (under its own prefix): another
    township's upload is not its evidence, and claiming it would make the owner's own
    submission look like a reuse. The office may name any."""
    if sender_township is not None and not object_key.startswith(upload_prefix(sender_township)):
        raise RefusedEvidence(
            # The key is not echoed: it may name another township (its prefix).
            "object_key is not one of your uploads: upload under the key an upload policy gives "
            f"you (POST /uploads/policy; your keys begin {upload_prefix(sender_township)!r})",
            "data.object_key",
        )


def check_owner(
    stored_owner: Owner | None, exists: bool, evidence_id: str, sender_township: str | None
) -> None:
    """A stored piece of evidence is the township's that first stated it: another township's
    submission under its id is refused (the record is never replaced by another owner)."""
    if exists and foreign(stored_owner, sender_township):
        raise RefusedEvidence(not_yours("evidence", evidence_id), "data.evidence_id")


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
            f"content type {data.content_type!r} is not accepted; use one of: {', '.join(MAX_SIZE)}",
            "data.content_type",
        )
    if data.size > limit:
        raise RefusedEvidence(
            f"{data.size} bytes is over the {limit}-byte limit for {data.content_type}", "data.size"
        )


def check_object(data: EvidenceSubmitted, found: StoredObject | None) -> None:
    """Does the uploaded object match what the township declared?"""
    if found is None:
        raise RefusedEvidence(
            f"no object {data.object_key!r} in the upload bucket: upload it first", "data.object_key"
        )
    if found.size != data.size:
        raise RefusedEvidence(
            f"size mismatch: declared {data.size} bytes, the object has {found.size}", "data.size"
        )
    if found.sha256 != data.sha256:
        raise RefusedEvidence(
            f"sha256 mismatch: declared {data.sha256}, the object has {found.sha256}", "data.sha256"
        )
    actual = sniff(found.head)
    if actual != data.content_type:
        raise RefusedEvidence(
            f"declared {data.content_type} but the bytes are {actual or 'of no accepted type'}",
            "data.content_type",
        )


def permanent_key(data: EvidenceSubmitted) -> str:
    """Content-addressed, so storing the same file again is a no-op."""
    return f"{data.unit_id}/{data.activity_id}/{data.sha256}"


# ----------------------------------------------------------------------------- the activity


@dataclass(frozen=True)
class KnownActivity:
    """What evidence needs to know of an activity (from its accepted schedule)."""

    activity_id: str
    unit_id: str
    project_id: str | None
    starts_at: datetime
    ends_at: datetime


def check_activity(
    data: EvidenceSubmitted,
    activity: KnownActivity | None,
    activity_owner: Owner = None,
    sender_township: str | None = None,
) -> None:
    """Evidence belongs to a scheduled activity of the unit that reports it, in the sender's
    own township (``activity_owner``: the township of the activity's unit).

    Townships schedule an activity before they report its photos; a submission that arrives
    before the schedule has reached this service is held until it does (see the app), and
    refused late if it never does — the township then schedules the activity and resubmits."""
    if activity is None:
        raise RefusedEvidence(
            f"unknown activity {data.activity_id!r}: schedule it first (wmsj.activity.scheduled.v1), "
            "then submit the evidence again",
            "data.activity_id",
        )
    if foreign(activity_owner, sender_township):
        raise RefusedEvidence(not_yours("activity", data.activity_id), "data.activity_id")
    if activity.unit_id != data.unit_id:
        raise RefusedEvidence(
            f"activity {data.activity_id!r} is run by unit {activity.unit_id!r}, not {data.unit_id!r}",
            "data.unit_id",
        )


# ----------------------------------------------------------------------------- fraud signals

PHOTO_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "image/heic"})
REPORT_TYPES = frozenset({"text/plain", "application/pdf"})

# Perceptual hashes (64-bit dHash) of a resized or recompressed copy differ by a few bits;
# different photos by about half of them.
NEAR_DUPLICATE_BITS = 6
# A photo taken more than this before its activity started is not a photo of it.
TAKEN_BEFORE_TOLERANCE = timedelta(days=1)
BANDS = 8


@dataclass(frozen=True)
class Photo:
    """What a photo's pixels and EXIF say (read by ``photos.analyse``)."""

    dhash: int
    taken_at: datetime | None = None
    gps: tuple[float, float] | None = None  # latitude, longitude
    width: int = 0
    height: int = 0


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def hash_bands(dhash: int) -> list[str]:
    """Index keys of the hash: every pair of its eight bytes, tagged with their places (28
    keys of 16 bits). Two hashes within NEAR_DUPLICATE_BITS (6) bits differ in at most six
    bytes, so they share at least two whole bytes and hence one pair key: an index on the
    keys finds every candidate without comparing against every photo ever stored.

    Pairs, not single bytes: a byte has 256 values, so among 100,000 photos each value is
    shared by ~400 of them and a lookup fetched thousands of candidates, growing with every
    photo; a pair has 65,536 values and a lookup among 100,000 photos fetches a few dozen."""
    octets = [(dhash >> (8 * i)) & 0xFF for i in range(BANDS)]
    return [f"{i}{j}:{octets[i]:02x}{octets[j]:02x}" for i in range(BANDS) for j in range(i + 1, BANDS)]


def is_featureless(dhash: int) -> bool:
    """A flat or nearly flat picture (a blank wall, a black frame) hashes to almost all
    zeros or ones: every such picture would look like every other, so it is not compared."""
    return not 4 <= dhash.bit_count() <= 60


@dataclass(frozen=True)
class Occurrence:
    """Evidence already stored, as a candidate for being the same photo."""

    evidence_id: str
    activity_id: str
    unit_id: str
    sha256: str
    dhash: int | None = None


Signal = Literal["same-file", "near-duplicate", "taken-before-activity"]


@dataclass(frozen=True)
class Flag:
    signal: Signal
    detail: str
    other: Occurrence | None = None
    distance: int | None = None


def fraud_signals(
    data: EvidenceSubmitted, photo: Photo | None, activity: KnownActivity, others: list[Occurrence]
) -> list[Flag]:
    """Why the office should look at this evidence before it counts (none: it counts).

    The same photo again for the *same* activity and unit is a resubmission, not a reuse."""
    flags: list[Flag] = []
    named: set[tuple[str, str]] = set()  # one flag per other activity: the same file first
    for other in sorted(others, key=lambda o: (o.sha256 != data.sha256, o.evidence_id)):
        if other.evidence_id == data.evidence_id:
            continue
        if other.activity_id == data.activity_id and other.unit_id == data.unit_id:
            continue
        if (other.activity_id, other.unit_id) in named:
            continue
        where = f"evidence {other.evidence_id!r} of activity {other.activity_id!r} (unit {other.unit_id!r})"
        if other.sha256 == data.sha256:
            flags.append(Flag("same-file", f"the same file was already reported as {where}", other))
            named.add((other.activity_id, other.unit_id))
        elif photo is not None and other.dhash is not None and not is_featureless(photo.dhash):
            distance = hamming(photo.dhash, other.dhash)
            if distance <= NEAR_DUPLICATE_BITS:
                flags.append(
                    Flag(
                        "near-duplicate",
                        f"a near-duplicate ({distance} of 64 bits differ) of {where}",
                        other,
                        distance,
                    )
                )
                named.add((other.activity_id, other.unit_id))
    taken = photo.taken_at if photo else None
    if taken is not None and taken < activity.starts_at - TAKEN_BEFORE_TOLERANCE:
        flags.append(
            Flag(
                "taken-before-activity",
                f"the photo was taken at {taken.isoformat()}, "
                f"{(activity.starts_at - taken).days} days before the activity started "
                f"({activity.starts_at.isoformat()})",
            )
        )
    return flags


# ----------------------------------------------------------------------------- requirements


def kind_of(content_type: str) -> Literal["photo", "report", "other"]:
    if content_type in PHOTO_TYPES:
        return "photo"
    if content_type in REPORT_TYPES:
        return "report"
    return "other"  # video: kept and shown, but the notice counts photos and a written report


@dataclass(frozen=True)
class Counted:
    """One piece of an activity's evidence, as the requirement sees it."""

    evidence_id: str
    kind: Literal["photo", "report", "other"]
    sha256: str
    counts: bool  # unflagged, or accepted by the office
    awaiting_review: bool = False  # flagged and not reviewed yet


@dataclass(frozen=True)
class Progress:
    photos: int
    text_reports: int
    missing: list[str] = field(default_factory=list)
    evidence_ids: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.missing


def progress(requirement: EvidenceRequirement, items: list[Counted]) -> Progress:
    """How far an activity's evidence meets its project's requirement. The same photo
    reported twice counts once; flagged evidence counts only once the office accepts it."""
    counting = [i for i in items if i.counts]
    photos = len({i.sha256 for i in counting if i.kind == "photo"})
    reports = len({i.sha256 for i in counting if i.kind == "report"})
    missing = []
    if photos < requirement.min_photos:
        missing.append(f"{requirement.min_photos - photos} more photo(s) (of {requirement.min_photos})")
    if requirement.text_report and reports == 0:
        missing.append("a text report (plain text or PDF)")
    flagged = [i.evidence_id for i in items if i.awaiting_review]
    if missing and flagged:
        missing.append(f"the office's review of {len(flagged)} flagged piece(s): {', '.join(flagged)}")
    return Progress(photos, reports, missing, sorted(i.evidence_id for i in counting))
