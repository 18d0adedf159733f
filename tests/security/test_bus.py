"""The bus door under attack, over AMQP against the real servers, as two real township users
and the office (issue 10: identity in the key, reply_to, conflicting duplicates, bounds,
decode failures, control characters).

Every refused case asserts the three things: (a) the refusal reaches the *sender's own*
reply queue, naming the field it concerns; (b) no service's database changed; (c) no
service logged an ERROR or a traceback.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.events import derived_id
from tests.security.conftest import MAX_MESSAGE_BYTES, Attackers
from tests.security.harness import Sender, deep_text

pytestmark = pytest.mark.integration

UNIT = "wmsj.unit.registered.v1"
SCHEDULED = "wmsj.activity.scheduled.v1"
EVIDENCE = "wmsj.evidence.submitted.v1"
ORDER = "wmsj.order.placed.v1"
RATED = "wmsj.order.rated.v1"
SUPPLEMENTED = "wmsj.attendance.hours-supplemented.v1"
VOLUNTEER = "wmsj.volunteer.registered.v1"
T = "2020-06-02T09:00:00+08:00"


def envelope(att: Attackers, who: Sender, event_id: str, kind: str, **overrides: Any) -> dict[str, Any]:
    """A valid event of ``kind`` from ``who`` about its own village, then ``overrides``
    (``data`` overrides are merged into the payload)."""
    village = att.village(who) if who is not att.office else att.village(att.a)
    data: dict[str, Any] = {
        UNIT: {"unit_id": village, "name": "第一村", "kind": "village", "parent_id": village[:9]},
        SCHEDULED: {
            "activity_id": f"act-{event_id}",
            "unit_id": village,
            "title": "宣讲",
            "starts_at": "2020-06-03T09:00:00+08:00",
            "ends_at": "2020-06-03T11:00:00+08:00",
        },
        EVIDENCE: {
            "evidence_id": f"ev-{event_id}",
            "activity_id": f"act-{event_id}",
            "unit_id": village,
            "object_key": f"{village[:9]}/photo.png",
            "sha256": "ab" * 32,
            "size": 10,
            "content_type": "image/png",
        },
        ORDER: {
            "order_id": f"o-{event_id}",
            "requester_id": village,
            "requester_kind": "village",
            "unit_id": village,
            "need": "宣讲",
        },
        RATED: {"order_id": f"o-{event_id}", "requester_id": village, "rating": 5},
        SUPPLEMENTED: {
            "volunteer_id": f"v-{event_id}",
            "activity_id": f"act-{event_id}",
            "unit_id": village,
            "hours": 2,
            "approver_id": "approver",
            "evidence_id": f"ev-{event_id}",
            "reason": "补录",
        },
    }[kind]
    data = {**data, **overrides.pop("data", {})}
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": who.source,
        "type": kind,
        "time": T,
        "data": data,
        **overrides,
    }


@dataclass(frozen=True)
class Case:
    """One attack: what ``sender`` sends (``build`` gives ``Sender.send``'s arguments), and
    the field its refusal must name."""

    name: str
    location: str
    build: Callable[[Attackers, Sender, str], dict[str, Any]]
    sender: str = "a"
    reason: str = ""  # a part of the reason, when it matters
    extra: dict[str, Any] = field(default_factory=dict)


def event(kind: str, **overrides: Any) -> Callable[[Attackers, Sender, str], dict[str, Any]]:
    def build(att: Attackers, who: Sender, case_id: str) -> dict[str, Any]:
        over = {k: (v(att) if callable(v) else v) for k, v in overrides.items()}
        return {"body": envelope(att, who, case_id, kind, **over), "routing_key": kind}

    return build


def raw(content: bytes, routing_key: str = UNIT, **properties: Any) -> Callable[..., dict[str, Any]]:
    def build(att: Attackers, who: Sender, case_id: str) -> dict[str, Any]:
        return {"body": content, "routing_key": routing_key, **properties}

    return build


def with_properties(kind: str, **properties: Any) -> Callable[..., dict[str, Any]]:
    def build(att: Attackers, who: Sender, case_id: str) -> dict[str, Any]:
        return {"body": envelope(att, who, case_id, kind), "routing_key": kind, **properties}

    return build


def data(**fields: Any) -> dict[str, Any]:
    return fields


FUTURE = (datetime.now(UTC) + timedelta(days=1)).isoformat()
NUL, ESC, DEL, CSI = "\x00", "\x1b", "\x7f", "\x9b"

CASES = [
    # --- identity: a township's events carry its own source (the de-duplication key's)
    Case("source-of-the-other-township", "source", event(UNIT, source=lambda att: att.b.source)),
    Case("source-of-a-service", "source", event(UNIT, source="/wmsj/registry")),
    Case("source-of-the-office", "source", event(UNIT, source="/office")),
    Case("source-below-own", "source", event(UNIT, source=lambda att: att.a.source + "/sub")),
    Case(
        "source-dotted-to-other",
        "source",
        event(UNIT, source=lambda att: f"{att.a.source}/../{att.b.township_id}"),
    ),
    Case("source-with-trailing-space", "source", event(UNIT, source=lambda att: att.a.source + " ")),
    Case("source-with-nul", "source", event(UNIT, source=lambda att: att.a.source + NUL)),
    Case("source-empty", "source", event(UNIT, source="")),
    Case("source-of-the-other-on-activities", "source", event(SCHEDULED, source=lambda att: att.b.source)),
    Case("source-of-the-other-on-evidence", "source", event(EVIDENCE, source=lambda att: att.b.source)),
    Case("b-source-of-a", "source", event(UNIT, source=lambda att: att.a.source), sender="b"),
    # --- time bounds
    Case("time-year-9999", "time", event(UNIT, time="9999-12-30T00:00:00Z")),
    Case("time-tomorrow", "time", event(UNIT, time=FUTURE)),
    Case("time-before-2000", "time", event(UNIT, time="1999-12-31T23:59:59Z")),
    Case("time-epoch", "time", event(UNIT, time="1970-01-01T00:00:00Z")),
    Case("time-year-9999-activity", "time", event(SCHEDULED, time="9999-12-30T00:00:00Z")),
    Case("time-year-9999-evidence", "time", event(EVIDENCE, time="9999-12-30T00:00:00Z")),
    Case("time-future-from-office", "time", event(UNIT, time="9999-12-30T00:00:00Z"), sender="office"),
    Case("time-without-zone", "time", event(UNIT, time="2020-06-02T09:00:00")),
    # --- size and nesting
    Case("oversized", "(event)", event(UNIT, data=data(name="长" * MAX_MESSAGE_BYTES)), reason="too large"),
    Case("oversized-garbage", "(event)", raw(b"x" * (MAX_MESSAGE_BYTES + 1)), reason="too large"),
    Case(
        "nested-100-in-extension",
        "(event)",
        lambda att, who, cid: {"body": _with_extension(att, who, cid, 100), "routing_key": UNIT},
        reason="nested too deeply",
    ),
    Case("nested-5000-bare", "(event)", raw(deep_text(5000).encode()), reason="nested too deeply"),
    Case(
        "nested-5000-objects",
        "(event)",
        raw(('{"a":' * 5000 + "1" + "}" * 5000).encode()),
        reason="nested too deeply",
    ),
    Case(
        "nested-in-data",
        "(event)",
        lambda att, who, cid: {"body": _nested_data(att, who, cid, 200), "routing_key": UNIT},
        reason="nested too deeply",
    ),
    # --- decode failures of every kind
    Case("not-json", "(event)", raw(b"\x00garbage")),
    Case("empty-body", "(event)", raw(b"")),
    Case("json-null", "(event)", raw(b"null")),
    Case("json-array", "(event)", raw(b"[]")),
    Case("json-number", "(event)", raw(b"123")),
    Case("json-string", "(event)", raw(b'"wmsj"')),
    Case("truncated-json", "(event)", raw(b'{"specversion": "1.0", "id": ')),
    Case("not-utf8", "(event)", raw(b'{"id": "\xff\xfe"}'), reason="not UTF-8"),
    Case("utf16", "(event)", raw('{"a": 1}'.encode("utf-16")), reason="not UTF-8"),
    Case(
        "lone-surrogate",
        "(event)",  # pydantic refuses it as invalid JSON
        lambda att, who, cid: {
            "body": json.dumps(envelope(att, who, cid, UNIT, data={"name": "SURROGATE"}))
            .replace("SURROGATE", "\\ud800")
            .encode(),
            "routing_key": UNIT,
        },
    ),
    Case("gzip-encoded", "amqp.content_encoding", with_properties(UNIT, content_encoding="gzip")),
    Case("xml-content-type", "amqp.content_type", with_properties(UNIT, content_type="application/xml")),
    Case("text-content-type", "amqp.content_type", with_properties(UNIT, content_type="text/plain")),
    Case(
        "type-other-than-routing-key",
        "type",
        lambda att, who, cid: {"body": envelope(att, who, cid, SCHEDULED), "routing_key": UNIT},
    ),
    Case("unknown-type", "type", event(UNIT, type="wmsj.unit.demolished.v1")),
    Case(
        "unknown-routing-key",
        "type",
        raw(b'{"a": 1}', routing_key="wmsj.unit.demolished.v1"),
        sender="office",
    ),
    Case(
        "missing-time",
        "time",
        lambda att, who, cid: {
            "body": {k: v for k, v in envelope(att, who, cid, UNIT).items() if k != "time"},
            "routing_key": UNIT,
        },
    ),
    Case("extra-data-field", "data.castle", event(UNIT, data=data(castle=True))),
    Case(
        "malformed-unit-code",
        "data.unit_id",
        event(UNIT, data=data(unit_id="43138", kind="town", parent_id=None)),
    ),
    Case("negative-hours", "data.hours", event(SUPPLEMENTED, data=data(hours=-2))),
    Case("zero-size-evidence", "data.size", event(EVIDENCE, data=data(size=0))),
    Case(
        "id-card-malformed",
        "data.id_card",
        lambda att, who, cid: {
            "body": {
                **envelope(att, who, cid, UNIT),
                "type": VOLUNTEER,
                "data": {
                    "volunteer_id": f"v-{cid}",
                    "name": "王芳",
                    "id_card": "43138119900101123",
                    "phone": "13812345678",
                    "unit_id": att.village(who),
                },
            },
            "routing_key": VOLUNTEER,
        },
    ),
    # --- control characters in the contract's text
    Case("nul-in-unit-name", "data.name", event(UNIT, data=data(name=f"村{NUL}"))),
    Case("escape-in-unit-name", "data.name", event(UNIT, data=data(name=f"{ESC}[31m村"))),
    Case("del-in-unit-name", "data.name", event(UNIT, data=data(name=f"村{DEL}"))),
    Case("c1-in-unit-name", "data.name", event(UNIT, data=data(name=f"村{CSI}2J"))),
    Case("newline-in-unit-name", "data.name", event(UNIT, data=data(name="村\n村"))),
    Case("tab-in-activity-title", "data.title", event(SCHEDULED, data=data(title="宣\t讲"))),
    Case("nul-in-activity-place", "data.place", event(SCHEDULED, data=data(place=f"礼堂{NUL}"))),
    Case("nul-in-caption", "data.caption", event(EVIDENCE, data=data(caption=f"照片{NUL}"))),
    Case("bell-in-caption", "data.caption", event(EVIDENCE, data=data(caption="照片\x07"))),
    Case(
        "nul-in-object-key",
        "data.object_key",
        lambda att, who, cid: {
            "body": envelope(
                att, who, cid, EVIDENCE, data={"object_key": f"{who.township_id}/..{NUL}/x.png"}
            ),
            "routing_key": EVIDENCE,
        },
    ),
    Case("nul-in-order-need", "data.need", event(ORDER, data=data(need=f"需要{NUL}"))),
    Case("c1-in-rating-comment", "data.comment", event(RATED, data=data(comment="好\x85"))),
    Case("escape-in-supplement-reason", "data.reason", event(SUPPLEMENTED, data=data(reason=f"补录{ESC}"))),
    Case(
        "nul-in-id",
        "id",
        lambda att, who, cid: {
            "body": {**envelope(att, who, cid, UNIT), "id": cid + NUL},
            "routing_key": UNIT,
        },
        extra={"refused_id": "\\x00"},
    ),
    Case("nul-in-subject", "subject", event(UNIT, subject=f"s{NUL}")),
    Case("nul-in-name-from-office", "data.name", event(UNIT, data=data(name=f"村{NUL}")), sender="office"),
    Case("nul-in-name-from-b", "data.name", event(UNIT, data=data(name=f"村{NUL}")), sender="b"),
]


def _with_extension(att: Attackers, who: Sender, cid: str, depth: int) -> bytes:
    text = json.dumps(envelope(att, who, cid, UNIT), ensure_ascii=False)
    return (text[:-1] + f', "ext": {deep_text(depth)}}}').encode()


def _nested_data(att: Attackers, who: Sender, cid: str, depth: int) -> bytes:
    text = json.dumps(envelope(att, who, cid, UNIT), ensure_ascii=False)
    return text.replace('"name": "第一村"', f'"name": {deep_text(depth)}').encode()


def _sender(att: Attackers, name: str) -> Sender:
    return {"a": att.a, "b": att.b, "office": att.office}[name]


async def refused_only_to_the_sender(
    att: Attackers, who: Sender, case_id: str, refused_id: str | None = None, **sent: Any
) -> Any:
    """Send, then check (a), (b) and (c); returns the refusal."""
    before = await att.snapshot()
    mark = att.logs.mark()
    sent.setdefault("message_id", case_id)
    await who.send(**sent)
    refusal = await who.refusal(refused_id or case_id)
    case_id = refused_id or case_id
    assert refusal.errors, "a refusal names the field it concerns"
    assert await att.snapshot() == before, "a refused message changed nothing"
    assert att.logs.troubles(mark) == []
    others = [s for s in (att.a, att.b, att.office) if s is not who]
    assert [case_id in s.refusals for s in others] == [False, False], "only the sender hears"
    return refusal


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
async def test_a_bad_message_is_refused_to_its_sender_naming_the_field(
    attackers: Attackers, case: Case
) -> None:
    who = _sender(attackers, case.sender)
    case_id = f"{case.name}-{secrets.token_hex(4)}"
    sent = case.build(attackers, who, case_id)
    refused_id = case_id + case.extra.get("refused_id", "")  # what the body says its id is
    refusal = await refused_only_to_the_sender(attackers, who, case_id, refused_id=refused_id, **sent)
    assert case.location in [e.location for e in refusal.errors], refusal
    assert case.reason in refusal.reason


# ----------------------------------------------------------------------------- reply_to


@pytest.mark.parametrize(
    "aim",
    [
        "other-township",
        "registry.ingress",
        "activities.ingress",
        "evidence.ingress",
        "office.rejections",
        "wmsj.dead-letters",
        "amq.gen-forged",
        "none",
    ],
)
async def test_a_township_cannot_aim_its_refusals_at_another_queue(attackers: Attackers, aim: str) -> None:
    """Whatever ``reply_to`` a township names, its refusal comes to its own reply queue only."""
    from shared.identity import reply_queue

    reply_to = {"other-township": reply_queue(attackers.b.user), "none": None}.get(aim, aim)
    case_id = f"aim-{aim}-{secrets.token_hex(4)}"
    body = envelope(attackers, attackers.a, case_id, UNIT, data={"name": f"村{NUL}"})
    refusal = await refused_only_to_the_sender(
        attackers, attackers.a, case_id, body=body, routing_key=UNIT, reply_to=reply_to
    )
    assert [e.location for e in refusal.errors] == ["data.name"]


async def test_the_office_cannot_aim_refusals_at_a_township_or_a_service(attackers: Attackers) -> None:
    """The office's own private queue is answered; a township's or a service's queue is not."""
    from shared.identity import reply_queue

    for aim in (reply_queue(attackers.a.user), "registry.ingress"):
        case_id = f"office-aim-{secrets.token_hex(4)}"
        body = envelope(attackers, attackers.office, case_id, UNIT, data={"name": f"村{NUL}"})
        mark = attackers.logs.mark()
        await attackers.office.send(body, routing_key=UNIT, message_id=case_id, reply_to=aim)
        await _logged_refusal(attackers, case_id, mark)
        assert case_id not in attackers.a.refusals and case_id not in attackers.office.refusals


async def _logged_refusal(attackers: Attackers, case_id: str, mark: int) -> None:
    for _ in range(300):
        if any(getattr(r, "event_id", None) == case_id for r in attackers.logs.since(mark)):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{case_id} was never refused")


async def test_a_message_without_user_id_is_answered_to_no_queue(attackers: Attackers) -> None:
    """Unidentified, a message has no queue of its own: it is refused (the office sees it in
    the logs and on the bus) and its ``reply_to`` — its own or any — hears nothing."""
    case_id = f"anon-{secrets.token_hex(4)}"
    before = await attackers.snapshot()
    mark = attackers.logs.mark()
    body = envelope(attackers, attackers.a, case_id, UNIT)
    await attackers.a.send(body, routing_key=UNIT, message_id=case_id, user_id=None)
    await _logged_refusal(attackers, case_id, mark)
    assert await attackers.snapshot() == before
    assert attackers.logs.troubles(mark) == []
    assert all(case_id not in s.refusals for s in (attackers.a, attackers.b, attackers.office))


# ----------------------------------------------------------------------------- the key


async def test_a_township_cannot_take_another_townships_next_id(attackers: Attackers) -> None:
    """A states B's source with B's next id: refused; B's real event with that id is handled."""
    a, b = attackers.a, attackers.b
    next_id = f"b-next-{secrets.token_hex(4)}"
    forged = envelope(attackers, a, next_id, UNIT, source=b.source, data={"name": "A冒名"})
    refusal = await refused_only_to_the_sender(attackers, a, next_id, body=forged, routing_key=UNIT)
    assert [e.location for e in refusal.errors] == ["source"]

    real = envelope(attackers, b, next_id, UNIT, data={"name": "B的新名"}, time="2020-06-05T09:00:00+08:00")
    await _handled(attackers, b, real, UNIT, downstream=("activities", "evidence", "supervision"))
    unit = await attackers.apps["registry"].units.get(attackers.village(b))
    assert unit is not None and unit.name == "B的新名"
    assert next_id not in b.refusals


# ----------------------------------------------------------------------------- duplicates


CONFLICTS = [
    ("name", {"data": {"name": "改名"}}),
    ("type", {"type": "wmsj.unit.registered.v2"}),
    ("subject", {"subject": "other"}),
    ("kind", {"data": {"kind": "community"}}),
]


@pytest.mark.parametrize("change", CONFLICTS, ids=[c[0] for c in CONFLICTS])
async def test_the_same_id_with_another_body_is_a_conflicting_duplicate(
    attackers: Attackers, change: tuple[str, dict[str, Any]]
) -> None:
    a = attackers.a
    case_id = f"dup-{change[0]}-{secrets.token_hex(4)}"
    # Newer than anything stated so far, and a name of its own: applied, and re-published.
    stated_at = datetime.now(UTC) - timedelta(minutes=1)
    first = envelope(attackers, a, case_id, UNIT, time=stated_at.isoformat(), data={"name": f"村{case_id}"})
    await _handled(attackers, a, first, UNIT, downstream=("activities", "evidence", "supervision"))
    # The same statement again, even re-stamped (a retry): a silent duplicate.
    for again in (first, {**first, "time": (stated_at + timedelta(seconds=1)).isoformat()}):
        mark = attackers.logs.mark()
        await a.send(again, routing_key=UNIT, message_id=case_id)
        await _logged(attackers, mark, case_id, "duplicate ignored")
    assert case_id not in a.refusals

    other = {**first, **change[1], "data": {**first["data"], **change[1].get("data", {})}}
    refusal = await refused_only_to_the_sender(attackers, a, case_id, body=other, routing_key=UNIT)
    assert refusal.reason.startswith(f"event {case_id} from {a.source} was already received with a different")
    assert [e.location for e in refusal.errors] == ["id"]


async def test_a_conflicting_duplicate_is_refused_by_activities_too(attackers: Attackers) -> None:
    a = attackers.a
    case_id = f"dup-act-{secrets.token_hex(4)}"
    first = envelope(attackers, a, case_id, SCHEDULED)
    await _handled(attackers, a, first, SCHEDULED, downstream=("evidence", "supervision"))
    other = {**first, "data": {**first["data"], "title": "另一个活动"}}
    refusal = await refused_only_to_the_sender(attackers, a, case_id, body=other, routing_key=SCHEDULED)
    assert [e.location for e in refusal.errors] == ["id"]


async def _handled(
    attackers: Attackers, who: Sender, body: dict[str, Any], kind: str, downstream: tuple[str, ...]
) -> None:
    """Send an acceptable event; return once it and the accepted fact it becomes have been
    handled everywhere (the services named in ``downstream`` consume that fact), so that
    the databases are settled before the case's "before" snapshot."""
    mark = attackers.logs.mark()
    await who.send(body, routing_key=kind, message_id=body["id"])
    await _logged(attackers, mark, body["id"], "handled")
    accepted = derived_id(f"{body['source']}|{body['id']}", "accepted")
    for service in downstream:
        await _logged(attackers, mark, accepted, "handled", logger=f"wmsj.{service}")


async def _logged(
    attackers: Attackers, mark: int, event_id: str, message: str, logger: str | None = None
) -> None:
    for _ in range(300):
        if any(
            getattr(r, "event_id", None) == event_id
            and r.getMessage() == message
            and (logger is None or r.name == logger)
            for r in attackers.logs.since(mark)
        ):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{event_id}: never {message!r}")
