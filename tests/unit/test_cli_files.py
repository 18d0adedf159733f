"""Event files the CLI reads and checks offline, and the demo month it publishes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from bench.recompute import default_rules
from services.evidence.domain import sniff
from services.supervision.domain import MonthFacts, Unit, score_month
from shared.events import (
    ActivityCompletedEvent,
    EvidenceSubmittedEvent,
    UnitRegisteredEvent,
    parse_event,
    period_of,
)
from wmsj.cli import main, read_events, validate
from wmsj.demo import demo_month, png

UNIT = {
    "specversion": "1.0",
    "id": "e1",
    "source": "/townships/431381101",
    "type": "wmsj.unit.registered.v1",
    "time": "2020-06-01T01:00:00Z",
    "data": {"unit_id": "431381101201", "name": "禾青镇第一村", "kind": "village", "parent_id": "431381101"},
}
SCORE = {
    **UNIT,
    "id": "e2",
    "type": "wmsj.score.updated.v1",
    "data": {
        "unit_id": "431381101201",
        "period": "2020-06",
        "score": 100.0,
        "max_score": 100.0,
        "rules_version": "2020.1-basic",
        "breakdown": [],
    },
}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "events.jsonl"
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- read_events


def test_a_json_lines_file_gives_each_event_with_its_line_number(tmp_path: Path):
    path = write(tmp_path, f"{json.dumps(UNIT, ensure_ascii=False)}\n{json.dumps(SCORE)}\n")
    assert read_events(path) == [(1, UNIT), (2, SCORE)]


def test_blank_lines_are_skipped_but_keep_the_numbering(tmp_path: Path):
    path = write(tmp_path, f"{json.dumps(UNIT)}\n\n   \n{json.dumps(SCORE)}\n")
    assert [number for number, _ in read_events(path)] == [1, 4]


def test_a_line_that_is_not_json_is_kept_as_its_text(tmp_path: Path):
    path = write(tmp_path, f'{json.dumps(UNIT)}\n\n{{"id": "half an event"\n{json.dumps(SCORE)}\n')
    assert read_events(path) == [(1, UNIT), (3, '{"id": "half an event"'), (4, SCORE)]


def test_a_json_array_gives_each_event_with_its_position(tmp_path: Path):
    path = write(tmp_path, "  \n" + json.dumps([UNIT, SCORE], indent=2))
    assert read_events(path) == [(1, UNIT), (2, SCORE)]


def test_an_empty_file_has_no_events(tmp_path: Path):
    assert read_events(write(tmp_path, "")) == []


# ------------------------------------------------------------------------------ validate


def test_a_township_event_is_valid():
    event = validate(UNIT)
    assert isinstance(event, UnitRegisteredEvent)


def test_a_township_event_given_as_text_is_valid():
    assert isinstance(validate(json.dumps(UNIT)), UnitRegisteredEvent)


def test_an_event_only_the_platform_publishes_is_refused():
    with pytest.raises(
        ValueError, match=r"^wmsj\.score\.updated\.v1 is published by the platform, not by townships$"
    ):
        validate(SCORE)


def test_a_line_that_is_not_json_is_refused_as_invalid():
    with pytest.raises(ValidationError):
        validate('{"id": "half an event"')


@pytest.mark.parametrize("value", [42, [UNIT]], ids=["number", "list"])
def test_a_json_value_that_is_not_an_object_is_refused_not_crashed_on(value: Any):
    # `wmsj validate` reports ValueError (ValidationError is one) per line; anything else
    # escapes _check_file and ends the command with a traceback.
    with pytest.raises(ValueError):
        validate(value)


def test_wmsj_validate_reports_each_bad_line_with_its_location(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    bad = {**UNIT, "id": "e3", "data": {**UNIT["data"], "kind": "planet"}}
    path = write(tmp_path, "\n".join([json.dumps(UNIT), "not json", json.dumps(bad), json.dumps(SCORE)]))
    assert main(["validate", str(path)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "1 valid, 3 invalid"
    assert f"{path}:3: data.kind: " in "\n".join(lines)
    assert f"{path}:4: wmsj.score.updated.v1 is published by the platform, not by townships" in lines


def test_wmsj_validate_reports_a_line_that_is_not_a_json_object(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    path = write(tmp_path, f"{json.dumps(UNIT)}\n42\n")
    assert main(["validate", str(path)]) == 1
    assert capsys.readouterr().out.splitlines()[-1] == "1 valid, 1 invalid"


# ---------------------------------------------------------------------------------- demo


def test_the_demo_month_is_the_same_for_the_same_seed():
    assert demo_month(seed=7) == demo_month(seed=7)


def test_the_demo_month_differs_for_another_seed():
    assert demo_month(seed=7).events != demo_month(seed=8).events


def test_a_demo_photo_is_a_png():
    photo = png(1)
    assert photo.startswith(b"\x89PNG\r\n\x1a\n")
    assert sniff(photo) == "image/png"


def test_demo_photos_differ_by_seed():
    assert png(1) != png(2)


def test_every_demo_event_parses_after_a_json_round_trip():
    for event in demo_month().events:
        assert parse_event(json.loads(event.model_dump_json())) == event


def test_every_demo_event_is_one_a_township_may_send():
    for event in demo_month().events:
        validate(json.loads(event.model_dump_json()))


def test_demo_event_ids_are_unique():
    ids = [(e.source, e.id) for e in demo_month().events]
    assert len(ids) == len(set(ids))


def test_exactly_one_demo_unit_has_no_activity():
    demo = demo_month()
    idle = {unit.unit_id for unit in demo.units} - demo.active_units
    assert len(idle) == 1
    [unit_id] = idle
    assert score_month(MonthFacts(Unit(unit_id), demo.period), default_rules()).score == 0.0


def test_every_demo_activity_falls_in_the_demo_month():
    demo = demo_month(2020, 6)
    completed = [e for e in demo.events if isinstance(e, ActivityCompletedEvent)]
    assert completed
    assert {period_of(e.data.ended_at) for e in completed} == {"2020-06"}


def test_every_demo_evidence_matches_its_upload():
    demo = demo_month()
    uploads = {u.key: u for u in demo.uploads}
    for event in demo.events:
        if isinstance(event, EvidenceSubmittedEvent):
            upload = uploads[event.data.object_key]
            assert event.data.sha256 == hashlib.sha256(upload.content).hexdigest()
            assert event.data.size == len(upload.content)
            assert sniff(upload.content) == event.data.content_type
