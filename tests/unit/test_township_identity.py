"""What ``wmsj township add`` grants a township system, and ``wmsj validate --township``."""

from __future__ import annotations

import json
import re
from pathlib import Path

from shared.events import EVENT_TYPES, OFFICE_EVENTS, TOWNSHIP_EVENTS
from shared.onboarding import TownshipAccess
from wmsj.cli import main
from wmsj.townships import access_text, permissions


def test_a_township_may_publish_township_events_and_nothing_office_only():
    configure, _, _, topic = permissions("431381101")
    assert configure == "^$"
    for event in TOWNSHIP_EVENTS:
        assert re.fullmatch(topic, event.TYPE)
    for event in OFFICE_EVENTS:
        assert not re.fullmatch(topic, event.TYPE)
    platform = [t for t, e in EVENT_TYPES.items() if e.PUBLISHED_BY == "platform"]
    assert platform and not any(re.fullmatch(topic, t) for t in platform)
    assert not re.fullmatch(topic, "wmsj.unit.registered.v1x")


def test_a_township_writes_to_the_ingress_and_reads_only_its_own_reply_queue():
    _, write, read, _ = permissions("431381101")
    assert re.fullmatch(write, "wmsj.ingress")
    assert not re.fullmatch(write, "wmsj.events")
    assert re.fullmatch(read, "wmsj.replies.township-431381101")
    assert not re.fullmatch(read, "wmsj.replies.township-431381103")
    assert not re.fullmatch(read, "registry.ingress")


def test_what_a_township_is_handed_names_everything_it_needs() -> None:
    access = TownshipAccess(
        township_id="431381101",
        user="township-431381101",
        password="pw-1",
        amqp_url="amqp://township-431381101:pw-1@broker:5672/",
        reply_queue="wmsj.replies.township-431381101",
        api_key="key-1",
        upload_prefix="431381101/",
    )
    assert access.api_key_entry == {"key-1": "township:431381101"}
    text = access_text(access, None)
    for needed in (
        access.amqp_url,
        access.password,
        access.reply_queue,
        access.api_key,
        access.upload_prefix,
    ):
        assert needed in text
    assert '{"key-1": "township:431381101"}' in text


def _event(unit_id: str, **data: object) -> str:
    return json.dumps(
        {
            "specversion": "1.0",
            "id": f"e-{unit_id}",
            "source": "/townships/431381101",
            "type": "wmsj.unit.registered.v2",
            "time": "2020-06-01T00:00:00Z",
            "data": {"unit_id": unit_id, "name": "x", **data},
        }
    )


def test_validate_applies_the_registrys_rules_and_the_townships_scope(tmp_path: Path, capsys):  # type: ignore[no-untyped-def]
    path = tmp_path / "events.jsonl"
    path.write_text(
        "\n".join(
            [
                _event("431381101201", kind="village", parent_id="431381101"),  # fine
                _event("431381101201-Z", kind="practice_station"),  # no parent
                _event("4313811", kind="town"),  # not a division code
                _event("431381103201", kind="village", parent_id="431381103", township_id="431381103"),
            ]
        ),
        encoding="utf-8",
    )
    assert main(["validate", str(path), "--township", "431381101"]) == 1
    out = capsys.readouterr().out
    assert f"{path}:2: unit 431381101201-Z: a practice_station must state its parent_id" in out
    assert f"{path}:3: unit 4313811: a town's id is its 9-digit division code" in out
    assert f"{path}:4: township 431381101 may only publish about units in its own subtree" in out
    assert out.strip().endswith("1 valid, 3 invalid")
