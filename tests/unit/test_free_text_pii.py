"""ID-card and phone numbers typed into free text are masked wherever free text is served
(``shared.pii.scrub`` and ``scrub_free_text``), and identifiers are left alone."""

from __future__ import annotations

import pytest

from shared.pii import id_card_checksum, scrub, scrub_free_text

FIRST17 = "43138119900101123"
CARD = FIRST17 + id_card_checksum(FIRST17)


@pytest.mark.parametrize(
    ("typed", "shown"),
    [
        ("电话13812345678", "电话138****5678"),
        ("电话 138 1234 5678", "电话 138****5678"),
        ("电话 138-1234-5678", "电话 138****5678"),
        ("+86 13812345678", "138****5678"),
        ("+8613812345678。", "138****5678。"),
        ("8613812345678", "138****5678"),
        (f"身份证{CARD}", f"身份证431381********{CARD[-4:]}"),
        (f"身份证 {CARD[:6]} {CARD[6:14]} {CARD[14:]}", f"身份证 431381********{CARD[-4:]}"),
        ("43138119900101123x", "431381********123x"),
        (f"两个：{CARD}、13912345678", f"两个：431381********{CARD[-4:]}、139****5678"),
    ],
)
def test_numbers_as_people_type_them_are_masked(typed: str, shown: str) -> None:
    assert scrub(typed) == shown


@pytest.mark.parametrize(
    "kept",
    [
        "431381101201",  # a unit code (12 digits)
        "12812345678",  # not a mobile prefix
        "138123456789",  # 12 digits: not a phone
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",  # a sha256
        "a-13812345678x",  # part of a longer code
        "2026-11-29T19:53:53+08:00",
        "第3季度得分 87.5",
    ],
)
def test_what_is_no_personal_number_is_left_alone(kept: str) -> None:
    assert scrub(kept) == kept


def test_every_text_of_a_response_is_masked_except_identifiers() -> None:
    served = {
        "unit_id": "13812345678",  # an id is never rewritten, even if it looks like a phone
        "activity_id": "a-1",
        "object_key": f"t/{CARD}",
        "reported_at": "13812345678",
        "title": "宣讲 联系13812345678",
        "schedule": {"place": f"礼堂，身份证{CARD}", "starts_at": None},
        "problems": [{"reason": "电话13812345678不对", "field": "x"}],
        "evidence": [{"evidence_id": "13812345678", "caption": "13812345678"}],
        "volunteer_ids": ["13812345678"],
        "hours": 3.5,
        "counts": True,
    }
    masked = scrub_free_text(served)
    assert masked["unit_id"] == "13812345678"
    assert masked["object_key"] == f"t/{CARD}"
    assert masked["reported_at"] == "13812345678"
    assert masked["volunteer_ids"] == ["13812345678"]
    assert masked["title"] == "宣讲 联系138****5678"
    assert masked["schedule"] == {"place": f"礼堂，身份证431381********{CARD[-4:]}", "starts_at": None}
    assert masked["problems"] == [{"reason": "电话138****5678不对", "field": "x"}]
    assert masked["evidence"] == [{"evidence_id": "13812345678", "caption": "138****5678"}]
    assert (masked["hours"], masked["counts"]) == (3.5, True)
    assert served["title"] == "宣讲 联系13812345678"  # the original is not changed


def test_a_list_of_texts_and_a_bare_text_are_masked_too() -> None:
    assert scrub_free_text(["13812345678", 5, None]) == ["138****5678", 5, None]
    assert scrub_free_text("13812345678") == "138****5678"
