"""The event contract: envelope, payloads, errors a township is told, and v1 compatibility."""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

import shared.events.activities as A
from shared.events import (
    ALL_EVENTS,
    CITY_TZ,
    EVENT_TYPES,
    ActivityCompleted,
    ActivityCompletedEvent,
    ActivityScheduled,
    ActivityScheduledEvent,
    AnyEvent,
    CloudEvent,
    EventRejected,
    EventRejectedEvent,
    EvidenceRequirement,
    EvidenceStored,
    EvidenceStoredEvent,
    EvidenceSubmitted,
    EvidenceSubmittedEvent,
    FieldError,
    HoursCredited,
    HoursCreditedEvent,
    KeyProject,
    ProjectListPublished,
    ProjectListPublishedEvent,
    ScoreItem,
    ScoreUpdated,
    ScoreUpdatedEvent,
    UnitKind,
    UnitRegistered,
    UnitRegisteredEvent,
    derived_id,
    describe_errors,
    parse_event,
    period_of,
)
from shared.events.evidence import (
    EvidenceComplete,
    EvidenceCompleteEvent,
    EvidenceFlagged,
    EvidenceFlaggedEvent,
    EvidenceReviewed,
    EvidenceReviewedEvent,
    EvidenceStoredV2,
    EvidenceStoredV2Event,
)
from shared.events.supervision import (
    InspectionAssessment,
    InspectionFinding,
    InspectionRecorded,
    InspectionRecordedEvent,
    ScoreUpdatedV2,
    ScoreUpdatedV2Event,
)
from shared.events.units import (
    CivilizedCategory,
    Enrolment,
    UnitContact,
    UnitRegisteredV2,
    UnitRegisteredV2Event,
    VolunteerEnrolled,
    VolunteerEnrolledEvent,
    VolunteerRegistered,
    VolunteerRegisteredEvent,
)

CONTRACT = Path(__file__).with_name("contract_v1.json")
AT = datetime(2020, 6, 12, 9, 30, tzinfo=CITY_TZ)
SHA = "ab" * 32


def _envelope(model: type[CloudEvent[Any]], data: Any, **extra: Any) -> CloudEvent[Any]:
    return model(
        id=f"e-{model.TYPE}", source="/townships/431381101", time=AT, subject="s", data=data, **extra
    )


EXAMPLES: dict[str, CloudEvent[Any]] = {
    e.TYPE: e
    for e in (
        _envelope(
            InspectionRecordedEvent,
            InspectionRecorded(
                inspection_id="i-2020-06-1",
                unit_id="431381101201",
                period="2020-06",
                inspected_at=AT,
                inspector="市文明办督查组",
                findings=[InspectionFinding(note="台账不全", occurrences=2)],
                assessments=[InspectionAssessment(rule="office_assessment", points=3)],
            ),
        ),
        _envelope(
            ProjectListPublishedEvent,
            ProjectListPublished(
                year=2020,
                version=1,
                projects=[
                    KeyProject(
                        project_id="2020-P03",
                        theme="理论宣讲",
                        months=[6, 7],
                        participant_kinds=[UnitKind.PRACTICE_STATION],
                        evidence=EvidenceRequirement(min_photos=3, text_report=True, report_within_days=5),
                        points=5,
                    )
                ],
            ),
        ),
        _envelope(
            VolunteerEnrolledEvent,
            VolunteerEnrolled(
                enrolled=[Enrolment(volunteer_id="v1", unit_id="431381101201", township_id="431381101")]
            ),
        ),
        _envelope(
            HoursCreditedEvent,
            HoursCredited(
                volunteer_id="v1",
                activity_id="a1",
                unit_id="431381101",
                hours=2.5,
                credited_at=AT,
                basis="attendance",
            ),
        ),
        _envelope(
            UnitRegisteredEvent,
            UnitRegistered(
                unit_id="431381101-S",
                name="禾青镇新时代文明实践所",
                kind=UnitKind.PRACTICE_INSTITUTE,
                parent_id="431381101",
                township_id="431381101",
            ),
        ),
        _envelope(
            UnitRegisteredV2Event,
            UnitRegisteredV2(
                unit_id="431381101",
                name="禾青镇",
                kind=UnitKind.TOWN,
                category=CivilizedCategory.CIVILIZED_VILLAGE_TOWN,
                title_held_since=date(2018, 1, 1),
                title_review_due=date(2021, 1, 1),
                contacts=[UnitContact(name="李明", role="联络员", phone="0738-5212345")],
            ),
        ),
        _envelope(
            VolunteerRegisteredEvent,
            VolunteerRegistered(
                volunteer_id="v1",
                name="王芳",
                id_card="11010519491231002X",
                phone="13812345678",
                unit_id="431381101201",
                team_ids=["431381101-FD1"],
            ),
        ),
        _envelope(
            ActivityScheduledEvent,
            ActivityScheduled(
                activity_id="a1",
                unit_id="431381101",
                project_id="2020-P03",
                title="理论宣讲志愿服务活动",
                starts_at=AT,
                ends_at=AT + timedelta(hours=2),
                place="禾青镇",
            ),
        ),
        _envelope(
            ActivityCompletedEvent,
            ActivityCompleted(
                activity_id="a1",
                unit_id="431381101",
                ended_at=AT + timedelta(hours=2),
                volunteers=12,
                service_hours=24.5,
                people_served=80,
            ),
        ),
        _envelope(
            EvidenceSubmittedEvent,
            EvidenceSubmitted(
                evidence_id="a1-E1",
                activity_id="a1",
                unit_id="431381101",
                object_key="431381101/a1/photo-1.png",
                sha256=SHA,
                size=1234,
                content_type="image/png",
                caption="活动现场",
            ),
        ),
        _envelope(
            EvidenceStoredEvent,
            EvidenceStored(
                evidence_id="a1-E1",
                activity_id="a1",
                unit_id="431381101",
                object_key=f"431381101/a1/{SHA}",
                sha256=SHA,
                size=1234,
                content_type="image/png",
                stored_at=AT + timedelta(hours=4),
            ),
        ),
        _envelope(
            EvidenceStoredV2Event,
            EvidenceStoredV2(
                evidence_id="a1-E1",
                activity_id="a1",
                unit_id="431381101",
                object_key=f"431381101/a1/{SHA}",
                sha256=SHA,
                size=1234,
                content_type="image/png",
                stored_at=AT + timedelta(hours=4),
                reported_at=AT + timedelta(hours=1),
            ),
        ),
        _envelope(
            EvidenceFlaggedEvent,
            EvidenceFlagged(
                evidence_id="a2-E1",
                activity_id="a2",
                unit_id="431381102",
                signal="near-duplicate",
                detail="a near-duplicate (3 of 64 bits differ) of evidence 'a1-E1' of activity 'a1'",
                other_evidence_id="a1-E1",
                other_activity_id="a1",
                other_unit_id="431381101",
                distance=3,
                flagged_at=AT + timedelta(hours=4),
            ),
        ),
        _envelope(
            EvidenceCompleteEvent,
            EvidenceComplete(
                activity_id="a1",
                unit_id="431381101",
                project_id="2020-P03",
                min_photos=1,
                text_report_required=True,
                photos=1,
                text_reports=1,
                evidence_ids=["a1-E1", "a1-E2"],
                completed_at=AT + timedelta(hours=4),
            ),
        ),
        _envelope(
            EvidenceReviewedEvent,
            EvidenceReviewed(
                evidence_id="a2-E1",
                verdict="rejected",
                reason="同一照片用于两次活动",
                reviewer="office-zhang",
            ),
        ),
        _envelope(
            ScoreUpdatedEvent,
            ScoreUpdated(
                unit_id="431381101",
                period="2020-06",
                score=75.0,
                max_score=100.0,
                rules_version="2020.1-basic",
                breakdown=[ScoreItem(rule="evidence", points=15.0, max_points=30.0, reason="1 of 2")],
            ),
        ),
        _envelope(
            ScoreUpdatedV2Event,
            ScoreUpdatedV2(
                unit_id="431381101",
                period="2020-Q2",
                period_kind="quarter",
                score=75.0,
                max_score=100.0,
                bonus=1.0,
                vetoed=False,
                rules_version="2020.1-basic",
                breakdown=[ScoreItem(rule="evidence", points=15.0, max_points=30.0, reason="mean of …")],
            ),
        ),
        _envelope(
            EventRejectedEvent,
            EventRejected(
                rejected_source="/townships/431381101",
                rejected_id="x",
                rejected_type="wmsj.activity.completed.v1",
                reason="the event does not match the contract",
                errors=[FieldError(location="data.volunteers", message="Field required")],
                rejected_by="activities",
            ),
        ),
        _envelope(A.ActivityPublishedEvent, A.ActivityPublished(activity_id="a1", unit_id="u1", capacity=20)),
        _envelope(
            A.ActivityCancelledEvent, A.ActivityCancelled(activity_id="a1", unit_id="u1", reason="暴雨")
        ),
        _envelope(
            A.OrderPlacedEvent,
            A.OrderPlaced(
                order_id="o1", requester_id="r1", requester_kind="resident", unit_id="s1", need="老人助餐"
            ),
        ),
        _envelope(A.OrderDispatchedEvent, A.OrderDispatched(order_id="o1", dispatcher_id="s1", team_id="t1")),
        _envelope(
            A.OrderAnsweredEvent,
            A.OrderAnswered(order_id="o1", team_id="t1", accepted=True, activity_id="a1"),
        ),
        _envelope(A.OrderRatedEvent, A.OrderRated(order_id="o1", requester_id="r1", rating=5)),
        _envelope(
            A.OrderRatingCountedEvent,
            A.OrderRatingCounted(order_id="o1", activity_id="a1", rating=5, rated_at=AT),
        ),
        _envelope(
            A.OrderEscalatedEvent,
            A.OrderEscalated(order_id="o1", from_unit_id="s1", to_unit_id="c1", level=1),
        ),
        _envelope(
            A.VolunteerSignedUpEvent, A.VolunteerAttendance(activity_id="a1", unit_id="u1", volunteer_id="v1")
        ),
        _envelope(
            A.VolunteerWithdrewEvent, A.VolunteerAttendance(activity_id="a1", unit_id="u1", volunteer_id="v1")
        ),
        _envelope(
            A.VolunteerCheckedInEvent,
            A.VolunteerAttendance(activity_id="a1", unit_id="u1", volunteer_id="v1"),
        ),
        _envelope(
            A.VolunteerCheckedOutEvent,
            A.VolunteerAttendance(activity_id="a1", unit_id="u1", volunteer_id="v1"),
        ),
        _envelope(
            A.HoursSupplementedEvent,
            A.HoursSupplemented(
                volunteer_id="v1",
                activity_id="a1",
                unit_id="u1",
                hours=2,
                approver_id="admin1",
                evidence_id="e1",
                reason="签到设备故障",
            ),
        ),
        _envelope(
            A.MonthlyWarningEvent,
            A.MonthlyWarning(period="2020-06", as_of=AT, unit_ids=["u2"], units_known=3),
        ),
    )
}

# A valid event as JSON, to break one thing at a time.
VALID_UNIT = {
    "specversion": "1.0",
    "id": "e1",
    "source": "/townships/431381101",
    "type": "wmsj.unit.registered.v1",
    "time": "2020-06-01T01:00:00Z",
    "data": {"unit_id": "431381101201", "name": "第一村", "kind": "village"},
}


def _broken(change: Any, base: dict[str, Any] = VALID_UNIT) -> dict[str, Any]:
    raw = copy.deepcopy(base)
    change(raw)
    return raw


def _locations(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        parse_event(json.dumps(raw))
    return [problem.location for problem in describe_errors(caught.value)]


def _current_schemas() -> dict[str, Any]:
    # Through JSON, so it compares like the snapshot file.
    return json.loads(json.dumps({e.TYPE: e.model_json_schema() for e in ALL_EVENTS}))


# ------------------------------------------------------------------------- round trips


def test_there_is_an_example_of_every_event_type():
    assert set(EXAMPLES) == set(EVENT_TYPES)


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_every_event_survives_a_json_round_trip_as_the_same_class(event_type: str):
    event = EXAMPLES[event_type]
    parsed = parse_event(event.model_dump_json())
    assert type(parsed) is type(event)
    assert parsed == event


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_every_event_parses_from_a_dict_and_from_bytes_alike(event_type: str):
    event = EXAMPLES[event_type]
    as_json = event.model_dump_json()
    assert parse_event(json.loads(as_json)) == parse_event(as_json.encode()) == event


@pytest.mark.parametrize("model", ALL_EVENTS, ids=lambda m: m.TYPE)
def test_the_routing_key_is_the_type_literal(model: type[CloudEvent[Any]]):
    assert model.model_fields["type"].default == model.TYPE
    assert EXAMPLES[model.TYPE].type == model.TYPE
    # describe_errors strips tags of this shape from error locations.
    assert re.fullmatch(r"wmsj\.[a-z_.-]+\.v\d+", model.TYPE)


def test_event_types_are_unique_across_models():
    assert len(EVENT_TYPES) == len(ALL_EVENTS)


def test_cloudevents_extension_attributes_are_kept():
    raw = {**VALID_UNIT, "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    event = parse_event(raw)
    assert json.loads(event.model_dump_json())["traceparent"] == raw["traceparent"]


def test_the_deduplication_key_is_source_and_id():
    assert parse_event(VALID_UNIT).key == "/townships/431381101|e1"


# ------------------------------------------------------------------ what a sender is told


def test_a_wrong_type_tag_is_reported_at_type():
    assert _locations(_broken(lambda r: r.update(type="wmsj.unit.registered.v9"))) == ["type"]


def test_a_missing_type_tag_is_reported_at_type():
    assert _locations(_broken(lambda r: r.pop("type"))) == ["type"]


def test_a_missing_time_is_reported_at_time():
    assert _locations(_broken(lambda r: r.pop("time"))) == ["time"]


def test_a_time_without_timezone_is_reported_at_time():
    assert _locations(_broken(lambda r: r.update(time="2020-06-01T09:00:00"))) == ["time"]


def test_an_unknown_data_field_is_reported_by_its_name():
    assert _locations(_broken(lambda r: r["data"].update(zz=1))) == ["data.zz"]


def test_a_bad_enum_value_is_reported_at_its_field():
    assert _locations(_broken(lambda r: r["data"].update(kind="planet"))) == ["data.kind"]


def test_a_missing_data_field_is_reported_at_its_field():
    assert _locations(_broken(lambda r: r["data"].pop("name"))) == ["data.name"]


def test_an_invalid_sha256_is_reported_at_data_sha256():
    submitted = json.loads(EXAMPLES["wmsj.evidence.submitted.v1"].model_dump_json())
    assert _locations(_broken(lambda r: r["data"].update(sha256="AB" * 32), submitted)) == ["data.sha256"]


@pytest.mark.parametrize("hours", [0, -1])
def test_an_activity_ending_before_it_starts_is_reported_at_data(hours: int):
    scheduled = json.loads(EXAMPLES["wmsj.activity.scheduled.v1"].model_dump_json())

    def change(raw: dict[str, Any]) -> None:
        raw["data"]["ends_at"] = (AT + timedelta(hours=hours)).isoformat()

    with pytest.raises(ValidationError) as caught:
        parse_event(json.dumps(_broken(change, scheduled)))
    [problem] = describe_errors(caught.value)
    assert problem.location == "data"
    assert "ends_at must be after starts_at" in problem.message


def test_a_body_that_is_not_json_is_reported_for_the_whole_event():
    with pytest.raises(ValidationError) as caught:
        parse_event(b"not json")
    assert [p.location for p in describe_errors(caught.value)] == ["(event)"]


def test_every_problem_of_an_event_is_reported_at_once():
    def change(raw: dict[str, Any]) -> None:
        raw.pop("time")
        raw["data"].update(kind="planet", zz=1)

    assert sorted(_locations(_broken(change))) == ["data.kind", "data.zz", "time"]


# ----------------------------------------------------------------------- ids and months


@pytest.mark.parametrize(
    ("period", "kind"),
    [("2020-06", "quarter"), ("2020-Q2", "year"), ("2020", "month"), ("2020-Q5", "quarter")],
)
def test_a_v2_score_period_must_be_of_its_kind(period: str, kind: str):
    example = EXAMPLES["wmsj.score.updated.v2"].data.model_dump()
    with pytest.raises(ValidationError):
        ScoreUpdatedV2.model_validate({**example, "period": period, "period_kind": kind})


def test_a_derived_id_is_stable():
    assert derived_id("/townships/1|e1", "score") == derived_id("/townships/1|e1", "score")


def test_a_derived_id_differs_by_cause_and_by_what():
    ids = {
        derived_id("/townships/1|e1", "score"),
        derived_id("/townships/1|e2", "score"),
        derived_id("/townships/1|e1", "rejected"),
    }
    assert len(ids) == 3


def test_a_derived_id_is_a_valid_event_id():
    new_id = derived_id("/townships/1|e1", "again")
    assert parse_event({**VALID_UNIT, "id": new_id}).id == new_id


def test_half_past_midnight_on_1_july_in_the_city_is_july():
    assert period_of(datetime(2020, 6, 30, 16, 30, tzinfo=UTC)) == "2020-07"


def test_one_minute_before_midnight_on_30_june_in_the_city_is_june():
    assert period_of(datetime(2020, 6, 30, 15, 59, tzinfo=UTC)) == "2020-06"


# ------------------------------------------------------------------- schemas and compatibility


@pytest.mark.parametrize("model", ALL_EVENTS, ids=lambda m: m.TYPE)
def test_every_event_model_has_a_json_schema(model: type[CloudEvent[Any]]):
    schema = model.model_json_schema()
    json.dumps(schema)
    assert schema["properties"]["type"]["const"] == model.TYPE
    assert {"id", "source", "time", "data"} <= set(schema["required"])


def test_every_event_schema_requires_the_cloudevents_required_attributes():
    # CloudEvents 1.0: specversion, id, source and type are REQUIRED; a township developer
    # reads them off this schema.
    lacking = {
        model.TYPE: sorted(
            {"specversion", "id", "source", "type"} - set(model.model_json_schema()["required"])
        )
        for model in ALL_EVENTS
    }
    assert {t: missing for t, missing in lacking.items() if missing} == {}


def test_the_union_of_all_events_has_a_json_schema():
    schema = TypeAdapter(AnyEvent).json_schema()
    assert set(schema["discriminator"]["mapping"]) == set(EVENT_TYPES)


def test_every_event_type_is_in_the_published_contract():
    published = json.loads(CONTRACT.read_text(encoding="utf-8"))
    missing = sorted(set(EVENT_TYPES) - set(published))
    assert not missing, (
        f"publish {missing}: run `python -m tests.unit.test_events` to add them to {CONTRACT.name}"
    )


@pytest.mark.parametrize("event_type", sorted(json.loads(CONTRACT.read_text(encoding="utf-8"))))
def test_a_published_event_schema_never_changes(event_type: str):
    published = json.loads(CONTRACT.read_text(encoding="utf-8"))[event_type]
    current = _current_schemas().get(event_type)
    assert current is not None, f"event {event_type} was removed; consumers still send it"
    assert _shape(current) == _shape(published), f"event {event_type} changed; add a .v2 model instead"


def _shape(schema: Any) -> Any:
    """The schema without its prose: rewording a description is not a contract change."""
    if isinstance(schema, dict):
        return {k: _shape(v) for k, v in schema.items() if k not in ("description", "title", "examples")}
    if isinstance(schema, list):
        return [_shape(v) for v in schema]
    return schema


if __name__ == "__main__":
    # Add newly published event types to the snapshot; a published schema is never rewritten.
    snapshot = json.loads(CONTRACT.read_text(encoding="utf-8"))
    for name, schema in _current_schemas().items():
        snapshot.setdefault(name, schema)
    CONTRACT.write_text(
        json.dumps(snapshot, sort_keys=True, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
