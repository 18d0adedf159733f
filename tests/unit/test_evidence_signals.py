"""Evidence rules beyond the file itself: the activity, fraud signals, the project's requirement,
and what a photo's pixels and EXIF say."""

from __future__ import annotations

import io
import random
from datetime import UTC, datetime, timedelta

import pytest
from PIL import Image, ImageDraw

from services.evidence.domain import (
    NEAR_DUPLICATE_BITS,
    Counted,
    KnownActivity,
    Occurrence,
    Photo,
    RefusedEvidence,
    check_activity,
    fraud_signals,
    hamming,
    hash_bands,
    is_featureless,
    progress,
)
from services.evidence.photos import analyse
from shared.events import CITY_TZ, EvidenceRequirement, EvidenceSubmitted
from shared.events.evidence import EvidenceReviewed

STARTS = datetime(2020, 6, 12, 9, 0, tzinfo=CITY_TZ)
ACTIVITY = KnownActivity("a1", "431381101", "2020-P03", STARTS, STARTS + timedelta(hours=2))
SHA, OTHER_SHA = "ab" * 32, "cd" * 32


def submitted(**changes: object) -> EvidenceSubmitted:
    fields: dict[str, object] = {
        "evidence_id": "a1-E1",
        "activity_id": "a1",
        "unit_id": "431381101",
        "object_key": "k",
        "sha256": SHA,
        "size": 10,
        "content_type": "image/jpeg",
    }
    fields.update(changes)
    return EvidenceSubmitted.model_validate(fields)


def picture(seed: int, size: tuple[int, int] = (640, 480)) -> Image.Image:
    rng = random.Random(seed)
    image = Image.new("RGB", size, (rng.randrange(256), 90, 160))
    draw = ImageDraw.Draw(image)
    for _ in range(20):
        x, y = rng.randrange(size[0]), rng.randrange(size[1])
        draw.ellipse(
            (x, y, x + rng.randrange(30, 250), y + rng.randrange(30, 250)), fill=(rng.randrange(256),) * 3
        )
    return image


def jpeg(image: Image.Image, quality: int = 90, exif: Image.Exif | None = None) -> io.BytesIO:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality, exif=exif if exif is not None else Image.Exif())
    out.seek(0)
    return out


# ----------------------------------------------------------------------------- the activity


def test_evidence_for_an_unknown_activity_is_refused_telling_to_schedule_it_first():
    with pytest.raises(RefusedEvidence) as refused:
        check_activity(submitted(activity_id="a9"), None)
    assert str(refused.value) == (
        "unknown activity 'a9': schedule it first (wmsj.activity.scheduled.v1), then submit the evidence again"
    )


def test_evidence_from_another_unit_than_the_activitys_is_refused():
    with pytest.raises(RefusedEvidence, match="run by unit '431381101', not '431381102'"):
        check_activity(submitted(unit_id="431381102"), ACTIVITY)


def test_evidence_of_a_known_activity_of_the_same_unit_passes():
    check_activity(submitted(), ACTIVITY)


# ----------------------------------------------------------------------------- fraud signals


def test_the_same_file_for_another_activity_is_flagged_naming_it():
    other = Occurrence("a2-E1", "a2", "431381102", SHA)
    [flag] = fraud_signals(submitted(), None, ACTIVITY, [other])
    assert flag.signal == "same-file" and flag.other == other
    assert (
        flag.detail
        == "the same file was already reported as evidence 'a2-E1' of activity 'a2' (unit '431381102')"
    )


def test_the_same_file_again_for_the_same_activity_is_a_resubmission_not_a_flag():
    assert fraud_signals(submitted(), None, ACTIVITY, [Occurrence("a1-E0", "a1", "431381101", SHA)]) == []


def test_a_near_duplicate_within_the_threshold_is_flagged_and_one_beyond_is_not():
    base = 0x0F0F_3C3C_5A5A_A5A5
    near = base ^ ((1 << NEAR_DUPLICATE_BITS) - 1)  # NEAR_DUPLICATE_BITS bits flipped
    far = base ^ ((1 << (NEAR_DUPLICATE_BITS + 1)) - 1)
    others = [
        Occurrence("a2-E1", "a2", "u2", OTHER_SHA, near),
        Occurrence("a3-E1", "a3", "u3", OTHER_SHA, far),
    ]
    [flag] = fraud_signals(submitted(), Photo(dhash=base), ACTIVITY, others)
    assert (flag.signal, flag.other, flag.distance) == ("near-duplicate", others[0], NEAR_DUPLICATE_BITS)


def test_one_flag_per_other_activity_preferring_the_same_file():
    others = [Occurrence("a2-E1", "a2", "u2", OTHER_SHA, 0xFF00FF), Occurrence("a2-E2", "a2", "u2", SHA)]
    [flag] = fraud_signals(submitted(), Photo(dhash=0xFF00FF), ACTIVITY, others)
    assert flag.signal == "same-file" and flag.other == others[1]


def test_featureless_pictures_are_not_compared():
    assert is_featureless(0) and is_featureless(2**64 - 1)
    others = [Occurrence("a2-E1", "a2", "u2", OTHER_SHA, 0)]
    assert fraud_signals(submitted(), Photo(dhash=1), ACTIVITY, others) == []


def test_a_photo_taken_more_than_a_day_before_the_activity_is_flagged():
    taken = STARTS - timedelta(days=3)
    [flag] = fraud_signals(submitted(), Photo(dhash=0xF0F0F0F0, taken_at=taken), ACTIVITY, [])
    assert flag.signal == "taken-before-activity" and "3 days before" in flag.detail


def test_a_photo_taken_on_the_day_is_not_flagged():
    photo = Photo(dhash=0xF0F0F0F0, taken_at=STARTS - timedelta(hours=2))
    assert fraud_signals(submitted(), photo, ACTIVITY, []) == []


def test_hashes_within_the_near_duplicate_distance_always_share_a_band():
    rng = random.Random(7)
    for _ in range(500):
        h = rng.getrandbits(64)
        flipped = h
        for bit in rng.sample(range(64), NEAR_DUPLICATE_BITS):
            flipped ^= 1 << bit
        assert hamming(h, flipped) == NEAR_DUPLICATE_BITS
        assert set(hash_bands(h)) & set(hash_bands(flipped))


# ----------------------------------------------------------------------------- requirements


def item(n: int, kind: str = "photo", counts: bool = True, sha: str | None = None) -> Counted:
    return Counted(f"e{n}", kind, sha or f"{n:064x}", counts)  # type: ignore[arg-type]


def test_enough_photos_and_a_report_are_complete():
    reached = progress(
        EvidenceRequirement(min_photos=2, text_report=True), [item(1), item(2), item(3, "report")]
    )
    assert reached.complete and (reached.photos, reached.text_reports) == (2, 1)
    assert reached.evidence_ids == ["e1", "e2", "e3"]


def test_what_is_missing_is_said():
    reached = progress(EvidenceRequirement(min_photos=3, text_report=True), [item(1)])
    assert reached.missing == ["2 more photo(s) (of 3)", "a text report (plain text or PDF)"]


def test_the_same_photo_twice_counts_once():
    reached = progress(
        EvidenceRequirement(min_photos=2, text_report=False), [item(1, sha=SHA), item(2, sha=SHA)]
    )
    assert reached.photos == 1 and not reached.complete


def test_flagged_evidence_counts_only_after_review_and_is_named_while_missing():
    flagged = Counted("e1", "photo", SHA, counts=False, awaiting_review=True)
    reached = progress(EvidenceRequirement(min_photos=1, text_report=False), [flagged])
    assert reached.missing == ["1 more photo(s) (of 1)", "the office's review of 1 flagged piece(s): e1"]


def test_evidence_the_office_rejected_does_not_count_and_awaits_nothing():
    rejected = Counted("e1", "photo", SHA, counts=False)
    reached = progress(EvidenceRequirement(min_photos=1, text_report=False), [rejected])
    assert reached.missing == ["1 more photo(s) (of 1)"] and reached.photos == 0


def test_a_rejection_needs_a_reason():
    with pytest.raises(ValueError, match="a rejection needs a reason"):
        EvidenceReviewed(evidence_id="e1", verdict="rejected", reason=" ", reviewer="office")
    assert EvidenceReviewed(evidence_id="e1", verdict="accepted", reviewer="office").reason == ""


# ----------------------------------------------------------------------------- photos


def test_a_resized_recompressed_copy_hashes_within_the_threshold_and_another_picture_does_not():
    original = picture(1)
    photo, _ = analyse(jpeg(original))
    copy, _ = analyse(jpeg(original.resize((384, 288)), quality=50))
    other, _ = analyse(jpeg(picture(2)))
    assert hamming(photo.dhash, copy.dhash) <= NEAR_DUPLICATE_BITS
    assert hamming(photo.dhash, other.dhash) > NEAR_DUPLICATE_BITS


def test_exif_time_with_offset_and_gps_are_read():
    exif = Image.Exif()
    exif.get_ifd(0x8769).update({36867: "2020:06:12 10:30:00", 36881: "+08:00"})
    exif.get_ifd(0x8825).update({1: "N", 2: (27.0, 30.0, 0.0), 3: "E", 4: (111.0, 45.0, 0.0)})
    photo, _ = analyse(jpeg(picture(3), exif=exif))
    assert photo.taken_at == datetime(2020, 6, 12, 2, 30, tzinfo=UTC)
    assert photo.gps == (27.5, 111.75)


def test_a_photo_without_exif_has_no_time_or_place():
    photo, _ = analyse(jpeg(picture(4)))
    assert (photo.taken_at, photo.gps, photo.width, photo.height) == (None, None, 640, 480)


def test_the_thumbnail_is_a_small_jpeg():
    _, thumbnail = analyse(jpeg(picture(5, (4000, 3000))))
    image = Image.open(io.BytesIO(thumbnail))
    assert image.format == "JPEG" and image.size == (320, 240)


def test_bytes_that_only_start_like_a_jpeg_are_refused():
    with pytest.raises(RefusedEvidence, match="cannot be decoded"):
        analyse(io.BytesIO(b"\xff\xd8\xff\xe0" + b"\x00" * 100))
