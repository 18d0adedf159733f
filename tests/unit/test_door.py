"""The bus door's pure rules (``shared.door``, ``shared.identity``, the inbox's duplicate
check): time bounds, nesting, control characters, sources, reply queues, sizes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from shared.door import (
    body_digest,
    content_problem,
    control_character_problem,
    depth_problem,
    field_named_in,
    json_depth,
    printable,
    size_problem,
    time_problem,
    utf8_problem,
)
from shared.events import EventRejected, UnitRegistered, UnitRegisteredEvent, describe_errors, parse_event
from shared.identity import Publisher, looks_like_reply_queue, reply_queue, reply_queue_for
from shared.messaging import InvalidEvent
from shared.mongo import inbox_entry, seen_before

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
SKEW = timedelta(minutes=5)
A = Publisher("township-431381101", "431381101")
B = Publisher("township-431381102", "431381102")
OFFICE = Publisher("guest", None)


# ----------------------------------------------------------------------------- time


@pytest.mark.parametrize(
    "time",
    [EARLIEST, NOW, NOW + SKEW, datetime(2020, 6, 1, tzinfo=UTC), NOW - timedelta(days=3650)],
)
def test_an_event_time_between_2000_and_now_plus_the_skew_passes(time: datetime) -> None:
    assert time_problem(time, NOW, EARLIEST, SKEW) is None


@pytest.mark.parametrize(
    "time",
    [
        datetime(9999, 12, 30, tzinfo=UTC),
        NOW + SKEW + timedelta(seconds=1),
        EARLIEST - timedelta(seconds=1),
        datetime(1970, 1, 1, tzinfo=UTC),
    ],
)
def test_an_event_time_out_of_bounds_is_refused_at_time(time: datetime) -> None:
    problem = time_problem(time, NOW, EARLIEST, SKEW)
    assert problem is not None and problem.location == "time"


# ----------------------------------------------------------------------------- form


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("{}", 1),
        ('{"a": [1, {"b": []}]}', 4),
        ('{"a": "[[[[[[["}', 1),  # brackets in strings do not count
        ('{"a": "\\"[[["}', 1),  # nor after an escaped quote
        ("[" * 10000 + "]" * 10000, 10000),
        ("1", 0),
    ],
)
def test_json_depth_is_measured_without_parsing(text: str, depth: int) -> None:
    assert json_depth(text.encode()) == depth


def test_a_body_nested_deeper_than_the_limit_is_refused_as_a_whole() -> None:
    assert depth_problem(b"[[[]]]", 3) is None
    problem = depth_problem(b"[[[[]]]]", 3)
    assert problem is not None and problem.location == "(event)" and "4 levels" in problem.reason


def test_a_message_over_the_size_limit_is_refused() -> None:
    assert size_problem(100, 100) is None
    problem = size_problem(101, 100)
    assert problem is not None and problem.location == "(event)" and "101 bytes" in problem.reason


@pytest.mark.parametrize(
    ("content_type", "encoding", "location"),
    [
        (None, None, None),
        ("application/cloudevents+json", None, None),
        ("application/json; charset=utf-8", "", None),
        ("text/plain", None, "amqp.content_type"),
        ("application/cloudevents+json", "gzip", "amqp.content_encoding"),
    ],
)
def test_content_type_and_encoding(
    content_type: str | None, encoding: str | None, location: str | None
) -> None:
    problem = content_problem(content_type, encoding)
    assert (problem.location if problem else None) == location


def test_a_body_that_is_not_utf8_is_refused() -> None:
    assert utf8_problem('{"name": "村"}'.encode()) is None
    problem = utf8_problem(b'{"a": "\xff"}')
    assert problem is not None and "byte 7" in problem.message


# ----------------------------------------------------------------------------- text


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\x7f", "\x85", "\x9b", "\ud800"])
def test_control_characters_are_refused_in_any_text(char: str) -> None:
    assert control_character_problem(f"a{char}b") is not None
    assert control_character_problem(f"a{char}b", free_text=True) is not None


@pytest.mark.parametrize("char", ["\n", "\r", "\t"])
def test_line_breaks_and_tabs_only_in_free_text(char: str) -> None:
    assert control_character_problem(f"a{char}b") is not None
    assert control_character_problem(f"a{char}b", free_text=True) is None


def test_ordinary_text_passes() -> None:
    assert control_character_problem("禾青镇第一村 (Hé) — “引号” \u2028 emoji 🎉") is None


def test_a_contract_text_field_with_a_control_character_names_the_field() -> None:
    with pytest.raises(ValidationError) as refused:
        UnitRegistered(unit_id="431381101", name="镇\x00", kind="town")  # type: ignore[arg-type]
    [error] = describe_errors(refused.value)
    assert error.location == "name" and "U+0000" in error.message


def test_the_envelope_refuses_control_characters_in_source_id_and_subject() -> None:
    body = {
        "specversion": "1.0",
        "id": "e\x001",
        "source": "/townships/431381101\x1b",
        "type": "wmsj.unit.registered.v1",
        "time": "2020-06-01T00:00:00Z",
        "subject": "s\x7f",
        "data": {"unit_id": "431381101", "name": "镇", "kind": "town"},
    }
    with pytest.raises(ValidationError) as refused:
        parse_event(json.dumps(body))
    assert sorted(e.location for e in describe_errors(refused.value)) == ["id", "source", "subject"]


def test_a_free_text_field_keeps_its_lines() -> None:
    from shared.events.evidence import EvidenceSubmitted

    caption = EvidenceSubmitted(
        evidence_id="e",
        activity_id="a",
        unit_id="u",
        object_key="k",
        sha256="ab" * 32,
        size=1,
        content_type="image/png",
        caption="第一行\n第二行\t完",
    ).caption
    assert caption == "第一行\n第二行\t完"


def test_printable_spells_control_characters_out() -> None:
    assert printable("a\x00b c\n") == "a\\x00b c\\n"


# ----------------------------------------------------------------------------- who


def test_a_township_must_use_its_canonical_source() -> None:
    assert A.may_not_use_source("/townships/431381101") is None
    for source in ("/townships/431381102", "/townships/431381101/x", "/office", "/wmsj/registry"):
        assert A.may_not_use_source(source) is not None


def test_the_office_may_use_any_source() -> None:
    assert OFFICE.may_not_use_source("/townships/431381101") is None
    assert OFFICE.may_not_use_source("/office") is None


@pytest.mark.parametrize(
    "reply_to",
    [
        None,
        "",
        "wmsj.replies.township-431381102",
        "registry.ingress",
        "amq.gen-x",
        "wmsj.replies.township-431381101",
    ],
)
def test_a_townships_refusals_go_to_its_own_reply_queue_whatever_it_names(reply_to: str | None) -> None:
    assert reply_queue_for(A, reply_to) == reply_queue(A.user) == "wmsj.replies.township-431381101"


@pytest.mark.parametrize(
    ("reply_to", "queue"),
    [
        ("amq.gen-JzTY20BRgKO", "amq.gen-JzTY20BRgKO"),
        ("amq_c1078da9eddf4b1eb4dfad1ef75394f4", "amq_c1078da9eddf4b1eb4dfad1ef75394f4"),
        ("wmsj.replies.guest", "wmsj.replies.guest"),
        ("wmsj.replies.township-431381101", None),
        ("registry.ingress", None),
        ("office.rejections", None),
        ("wmsj.dead-letters", None),
        (None, None),
    ],
)
def test_the_offices_refusals_go_to_a_private_queue_never_a_platform_or_township_one(
    reply_to: str | None, queue: str | None
) -> None:
    assert reply_queue_for(OFFICE, reply_to) == queue


def test_an_unidentified_sender_has_no_reply_queue() -> None:
    assert reply_queue_for(None, "wmsj.replies.township-431381101") is None


def test_the_outbox_never_replies_into_a_platform_queue() -> None:
    assert looks_like_reply_queue("wmsj.replies.township-431381101")
    assert not looks_like_reply_queue("activities.ingress")
    assert not looks_like_reply_queue("")


# ----------------------------------------------------------------------------- refusals


def test_a_refusal_without_errors_names_the_field_its_reason_names_first() -> None:
    body = {"data": {"unit_id": "43138", "kind": "town", "parent_id": "431381101"}}
    assert field_named_in("unit 43138: a town's id is its 9-digit division code", body) == "data.unit_id"
    assert field_named_in(
        "unit 431381101-S is in township 431381102", {"data": {"unit_id": "431381101-S"}}
    ) == ("data.unit_id")
    assert field_named_in("nothing to see", body) == "data"
    assert field_named_in("garbage", None) == "(event)"


def test_a_rejection_always_names_something() -> None:
    rejected = EventRejected(
        rejected_source=None, rejected_id="x", rejected_type=None, reason="no", rejected_by="r"
    )
    assert [(e.location, e.message) for e in rejected.errors] == [("(event)", "no")]


# ----------------------------------------------------------------------------- the inbox


def unit(name: str = "镇", event_id: str = "e1") -> UnitRegisteredEvent:
    return UnitRegisteredEvent(
        id=event_id,
        source="/townships/431381101",
        time=datetime(2020, 6, 1, tzinfo=UTC),
        data=UnitRegistered(unit_id="431381101", name=name, kind="town"),  # type: ignore[arg-type]
    )


def test_an_event_not_in_the_inbox_is_new() -> None:
    assert seen_before(None, unit()) is False


def test_the_same_event_again_is_a_duplicate() -> None:
    assert seen_before(inbox_entry(unit()), unit()) is True


def test_the_same_key_with_another_body_is_a_conflicting_duplicate() -> None:
    with pytest.raises(InvalidEvent) as refused:
        seen_before(inbox_entry(unit()), unit(name="改名"))
    assert [e.location for e in refused.value.errors] == ["id"]
    assert "already received with a different content" in refused.value.reason


def test_an_inbox_entry_from_before_digests_is_a_duplicate() -> None:
    entry: dict[str, Any] = {"_id": unit().key, "type": unit().type}
    assert seen_before(entry, unit(name="改名")) is True


def test_the_digest_is_of_the_canonical_body_but_its_time() -> None:
    event = unit()
    assert inbox_entry(event)["digest"] == body_digest(event.model_dump_json(exclude={"time"}))
    assert inbox_entry(parse_event(event.model_dump_json()))["digest"] == inbox_entry(event)["digest"]
    # Sent again with a re-stamped time (a retry, a re-import): the same statement.
    assert seen_before(inbox_entry(event), event.model_copy(update={"time": datetime.now(UTC)})) is True


def test_the_last_delivery_before_the_delivery_limit_is_recognised() -> None:
    from shared.messaging import last_delivery
    from shared.topology import DELIVERY_LIMIT

    assert last_delivery(None) is None
    assert last_delivery({}) is None
    assert last_delivery({"x-delivery-count": DELIVERY_LIMIT - 2}) is None
    assert last_delivery({"x-delivery-count": DELIVERY_LIMIT - 1}) == DELIVERY_LIMIT - 1
    assert last_delivery({"x-delivery-count": "20"}) is None
