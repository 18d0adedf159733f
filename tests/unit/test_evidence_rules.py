"""Evidence rules: the real type of the bytes, and whether the upload matches its declaration."""

from __future__ import annotations

import hashlib

import pytest

from services.evidence.domain import (
    MAX_SIZE,
    RefusedEvidence,
    StoredObject,
    check_declared,
    check_object,
    permanent_key,
    sniff,
)
from shared.events import EvidenceSubmitted
from wmsj.demo import png

PHOTO = png(1)
PHOTO_SHA = hashlib.sha256(PHOTO).hexdigest()


def submitted(**changes: object) -> EvidenceSubmitted:
    fields: dict[str, object] = {
        "evidence_id": "a1-E1",
        "activity_id": "a1",
        "unit_id": "431381101",
        "object_key": "431381101/a1/photo-1.png",
        "sha256": PHOTO_SHA,
        "size": len(PHOTO),
        "content_type": "image/png",
    }
    fields.update(changes)
    return EvidenceSubmitted.model_validate(fields)


def found(content: bytes = PHOTO, **changes: object) -> StoredObject:
    fields: dict[str, object] = {
        "size": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
        "head": content[:512],
    }
    fields.update(changes)
    return StoredObject(**fields)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- sniffing


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "image/jpeg"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "image/png"),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", "image/heic"),
        (b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00", "video/mp4"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3", "application/pdf"),
        ("禾青镇第一村开展理论宣讲志愿服务活动。\n".encode(), "text/plain"),
    ],
    ids=["jpeg", "png", "webp", "heic", "mp4", "pdf", "utf8-text"],
)
def test_the_magic_bytes_tell_the_type(head: bytes, expected: str):
    assert sniff(head) == expected


def test_a_generated_demo_photo_is_a_png():
    assert sniff(PHOTO) == "image/png"


@pytest.mark.parametrize("cut", [1, 2])
def test_chinese_text_cut_mid_character_at_the_end_of_the_sample_is_still_text(cut: int):
    text = "文明实践志愿服务".encode()
    assert sniff(text[:-cut]) == "text/plain"


def test_text_cut_inside_a_four_byte_character_is_still_text():
    assert sniff("志愿者 😀".encode()[:-1]) == "text/plain"


@pytest.mark.parametrize(
    "head",
    [
        bytes(range(256)),  # contains NUL
        b"\xde\xad\xbe\xef" * 64,  # no NUL, not UTF-8
        b"",
    ],
    ids=["with-nul", "invalid-utf8", "empty"],
)
def test_binary_garbage_is_of_no_accepted_type(head: bytes):
    assert sniff(head) is None


@pytest.mark.parametrize(
    "head",
    [b"\xff", "志愿服务".encode() + b"\xff", b"plain text\xe5AB"],
    ids=["one-invalid-byte", "text-then-invalid-byte", "broken-character-then-text"],
)
def test_bytes_that_can_never_be_utf8_are_not_text_even_at_the_end_of_the_sample(head: bytes):
    # Only a character *cut* by the sample's end is forgiven; 0xFF starts no UTF-8 character.
    assert sniff(head) is None


# ----------------------------------------------------------------------- the declaration


def test_an_accepted_type_of_an_accepted_size_passes():
    check_declared(submitted())


def test_a_type_that_is_not_accepted_is_refused_with_the_list_of_accepted_types():
    with pytest.raises(RefusedEvidence) as refused:
        check_declared(submitted(content_type="application/zip"))
    assert str(refused.value) == (
        "content type 'application/zip' is not accepted; use one of: image/jpeg, image/png, "
        "image/webp, image/heic, video/mp4, application/pdf, text/plain"
    )


def test_a_declared_size_over_the_limit_is_refused():
    limit = MAX_SIZE["image/png"]
    with pytest.raises(RefusedEvidence) as refused:
        check_declared(submitted(size=limit + 1))
    assert str(refused.value) == f"{limit + 1} bytes is over the 52428800-byte limit for image/png"


def test_a_declared_size_at_the_limit_passes():
    check_declared(submitted(content_type="text/plain", size=MAX_SIZE["text/plain"]))


# ---------------------------------------------------------------------------- the object


def test_an_object_matching_its_declaration_passes():
    check_object(submitted(), found())


def test_a_missing_object_is_refused():
    with pytest.raises(RefusedEvidence) as refused:
        check_object(submitted(), None)
    assert str(refused.value) == "no object '431381101/a1/photo-1.png' in the upload bucket: upload it first"


def test_an_object_of_another_size_is_refused():
    with pytest.raises(RefusedEvidence) as refused:
        check_object(submitted(size=len(PHOTO) + 1), found())
    assert (
        str(refused.value) == f"size mismatch: declared {len(PHOTO) + 1} bytes, the object has {len(PHOTO)}"
    )


def test_an_object_with_another_sha256_is_refused():
    other = "0" * 64
    with pytest.raises(RefusedEvidence) as refused:
        check_object(submitted(sha256=other), found())
    assert str(refused.value) == f"sha256 mismatch: declared {other}, the object has {PHOTO_SHA}"


def test_an_object_whose_bytes_are_another_type_than_declared_is_refused():
    with pytest.raises(RefusedEvidence) as refused:
        check_object(submitted(content_type="image/jpeg"), found())
    assert str(refused.value) == "declared image/jpeg but the bytes are image/png"


def test_an_object_whose_bytes_are_no_accepted_type_is_refused():
    garbage = b"\x00\x01\x02" * 100
    declared = submitted(sha256=hashlib.sha256(garbage).hexdigest(), size=len(garbage))
    with pytest.raises(RefusedEvidence) as refused:
        check_object(declared, found(garbage))
    assert str(refused.value) == "declared image/png but the bytes are of no accepted type"


# ---------------------------------------------------------------------- the permanent key


def test_the_permanent_key_is_addressed_by_unit_activity_and_content():
    assert permanent_key(submitted()) == f"431381101/a1/{PHOTO_SHA}"


def test_the_same_content_under_another_upload_name_has_the_same_permanent_key():
    assert permanent_key(submitted(object_key="again.png", evidence_id="a1-E2")) == permanent_key(submitted())


def test_other_content_has_another_permanent_key():
    assert permanent_key(submitted(sha256="0" * 64)) != permanent_key(submitted())
