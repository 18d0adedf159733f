"""One example of every event type, as a township or the platform would send it: the message
examples of the AsyncAPI documents (``wmsj.docs``) and of the kit's tests. Each is checked
against its model (tests/unit/test_township_kit.py), so an example cannot go stale.

The ids follow the guide's running example: township 431381101 (禾青镇), its village
431381101201, activity 431381101-act-1. Personal data is made up (the ID card's check
character is valid, the number is nobody's).
"""

from __future__ import annotations

from typing import Any

T = "431381101"
VILLAGE = f"{T}201"
ACTIVITY = f"{T}-act-1"
SHA = "9f2c1e0b7a6d5c4b3a29180f7e6d5c4b3a29180f7e6d5c4b3a29180f7e6d5c4b"
AT = "2026-06-01T09:00:00+08:00"

DATA: dict[str, dict[str, Any]] = {
    "wmsj.unit.registered.v1": {
        "unit_id": VILLAGE,
        "name": "禾青镇第一村",
        "kind": "village",
        "parent_id": T,
    },
    "wmsj.unit.registered.v2": {
        "unit_id": VILLAGE,
        "name": "禾青镇第一村",
        "kind": "village",
        "parent_id": T,
        "category": "civilized_village_town",
        "title_held_since": "2018-01-01",
        "title_review_due": "2027-01-01",
        "contacts": [{"name": "李明", "role": "联络员", "phone": "0738-5212345"}],
    },
    "wmsj.volunteer.registered.v1": {
        "volunteer_id": f"{T}-v-0001",
        "name": "王芳",
        "id_card": "431381199001011235",
        "phone": "13812345678",
        "unit_id": VILLAGE,
        "team_ids": [f"{T}-DD"],
    },
    "wmsj.projects.published.v1": {
        "year": 2026,
        "version": 1,
        "projects": [
            {
                "project_id": "P-2026-01",
                "theme": "理论宣讲",
                "months": [6, 7],
                "participant_kinds": ["village", "community"],
                "evidence": {"min_photos": 2, "text_report": True, "report_within_days": 7},
            }
        ],
    },
    "wmsj.activity.scheduled.v1": {
        "activity_id": ACTIVITY,
        "unit_id": VILLAGE,
        "project_id": "P-2026-01",
        "title": "理论宣讲进村",
        "starts_at": "2026-06-03T09:00:00+08:00",
        "ends_at": "2026-06-03T11:00:00+08:00",
        "place": "村文化广场",
    },
    "wmsj.activity.completed.v1": {
        "activity_id": ACTIVITY,
        "unit_id": VILLAGE,
        "ended_at": "2026-06-03T11:10:00+08:00",
        "volunteers": 8,
        "service_hours": 16,
        "people_served": 60,
    },
    "wmsj.volunteer.hours-credited.v1": {
        "volunteer_id": f"{T}-v-0001",
        "activity_id": ACTIVITY,
        "unit_id": VILLAGE,
        "hours": 2,
        "credited_at": "2026-06-03T11:12:00+08:00",
        "basis": "attendance",
    },
    "wmsj.volunteer.enrolled.v1": {
        "enrolled": [{"volunteer_id": f"{T}-v-0001", "unit_id": VILLAGE, "township_id": T, "active": True}]
    },
    "wmsj.activity.published.v1": {"activity_id": ACTIVITY, "unit_id": VILLAGE, "capacity": 20},
    "wmsj.activity.cancelled.v1": {"activity_id": ACTIVITY, "unit_id": VILLAGE, "reason": "暴雨预警"},
    "wmsj.order.placed.v1": {
        "order_id": f"{T}-o-1",
        "requester_id": VILLAGE,
        "requester_kind": "village",
        "unit_id": f"{VILLAGE}-Z",
        "need": "为留守老人开展义诊",
    },
    "wmsj.order.dispatched.v1": {"order_id": f"{T}-o-1", "dispatcher_id": f"{T}-S", "team_id": f"{T}-FD1"},
    "wmsj.order.answered.v1": {
        "order_id": f"{T}-o-1",
        "team_id": f"{T}-FD1",
        "accepted": True,
        "activity_id": ACTIVITY,
    },
    "wmsj.order.rated.v1": {
        "order_id": f"{T}-o-1",
        "requester_id": VILLAGE,
        "rating": 5,
        "comment": "很及时",
    },
    "wmsj.order.rating-counted.v1": {
        "order_id": f"{T}-o-1",
        "activity_id": ACTIVITY,
        "rating": 5,
        "rated_at": "2026-06-04T10:00:00+08:00",
    },
    "wmsj.order.escalated.v1": {
        "order_id": f"{T}-o-1",
        "from_unit_id": f"{VILLAGE}-Z",
        "to_unit_id": f"{T}-S",
        "level": 1,
    },
    "wmsj.attendance.signed-up.v1": {
        "activity_id": ACTIVITY,
        "unit_id": VILLAGE,
        "volunteer_id": f"{T}-v-0001",
    },
    "wmsj.attendance.withdrawn.v1": {
        "activity_id": ACTIVITY,
        "unit_id": VILLAGE,
        "volunteer_id": f"{T}-v-0001",
    },
    "wmsj.attendance.checked-in.v1": {
        "activity_id": ACTIVITY,
        "unit_id": VILLAGE,
        "volunteer_id": f"{T}-v-0001",
    },
    "wmsj.attendance.checked-out.v1": {
        "activity_id": ACTIVITY,
        "unit_id": VILLAGE,
        "volunteer_id": f"{T}-v-0001",
    },
    "wmsj.attendance.hours-supplemented.v1": {
        "volunteer_id": f"{T}-v-0001",
        "activity_id": ACTIVITY,
        "unit_id": VILLAGE,
        "hours": 2,
        "approver_id": f"{T}-v-0002",
        "evidence_id": f"{ACTIVITY}-e1",
        "reason": "签到设备故障，补录",
    },
    "wmsj.monthly-warning.issued.v1": {
        "period": "2026-06",
        "as_of": "2026-06-20T08:00:00+08:00",
        "unit_ids": [f"{T}202"],
        "units_known": 40,
    },
    "wmsj.evidence.submitted.v1": {
        "evidence_id": f"{ACTIVITY}-e1",
        "activity_id": ACTIVITY,
        "unit_id": VILLAGE,
        "object_key": f"{T}/5f0c9a2e8b5d4e7f9a1b2c3d4e5f6a7b",
        "sha256": SHA,
        "size": 482113,
        "content_type": "image/jpeg",
        "caption": "宣讲现场",
    },
    "wmsj.evidence.stored.v1": {
        "evidence_id": f"{ACTIVITY}-e1",
        "activity_id": ACTIVITY,
        "unit_id": VILLAGE,
        "object_key": f"sha256/{SHA}",
        "sha256": SHA,
        "size": 482113,
        "content_type": "image/jpeg",
        "stored_at": "2026-06-03T12:00:05+08:00",
    },
    "wmsj.evidence.stored.v2": {
        "evidence_id": f"{ACTIVITY}-e1",
        "activity_id": ACTIVITY,
        "unit_id": VILLAGE,
        "object_key": f"sha256/{SHA}",
        "sha256": SHA,
        "size": 482113,
        "content_type": "image/jpeg",
        "stored_at": "2026-06-03T12:00:05+08:00",
        "reported_at": "2026-06-03T12:00:00+08:00",
    },
    "wmsj.evidence.flagged.v1": {
        "evidence_id": f"{ACTIVITY}-e1",
        "activity_id": ACTIVITY,
        "unit_id": VILLAGE,
        "signal": "near-duplicate",
        "detail": "4 of 64 hash bits differ from evidence 431381102-act-7-e2",
        "other_evidence_id": "431381102-act-7-e2",
        "other_activity_id": "431381102-act-7",
        "other_unit_id": "431381102201",
        "distance": 4,
        "flagged_at": "2026-06-03T12:00:06+08:00",
    },
    "wmsj.evidence.complete.v1": {
        "activity_id": ACTIVITY,
        "unit_id": VILLAGE,
        "project_id": "P-2026-01",
        "min_photos": 2,
        "text_report_required": True,
        "photos": 2,
        "text_reports": 1,
        "evidence_ids": [f"{ACTIVITY}-e1", f"{ACTIVITY}-e2", f"{ACTIVITY}-e3"],
        "completed_at": "2026-06-03T12:10:00+08:00",
    },
    "wmsj.evidence.reviewed.v1": {
        "evidence_id": f"{ACTIVITY}-e1",
        "verdict": "accepted",
        "reason": "同一场活动的两个角度",
        "reviewer": "市文明办",
    },
    "wmsj.event.rejected.v1": {
        "rejected_source": f"/townships/{T}",
        "rejected_id": "0f8e2b7c-9a41-4c55-8d3e-1b2a3c4d5e6f",
        "rejected_type": "wmsj.unit.registered.v2",
        "reason": f"unit {T}202: a village cannot be under a practice_institute ({T}-S); "
        "its parent may be: street, town, township",
        "errors": [],
        "rejected_by": "registry",
    },
    "wmsj.score.updated.v1": {
        "unit_id": VILLAGE,
        "period": "2026-06",
        "score": 80,
        "max_score": 100,
        "rules_version": "notice-2026+3f2a9c1b7d0e",
        "breakdown": [
            {
                "rule": "monthly_activity",
                "points": 30,
                "max_points": 30,
                "reason": "1 activities completed in 2026-06 (needs 1): met",
            }
        ],
    },
    "wmsj.score.updated.v2": {
        "unit_id": VILLAGE,
        "period": "2026-06",
        "period_kind": "month",
        "score": 80,
        "max_score": 100,
        "bonus": 0,
        "vetoed": False,
        "rules_version": "notice-2026+3f2a9c1b7d0e",
        "breakdown": [
            {
                "rule": "monthly_activity",
                "points": 30,
                "max_points": 30,
                "reason": "1 activities completed in 2026-06 (needs 1): met",
            }
        ],
    },
    "wmsj.inspection.recorded.v1": {
        "inspection_id": "insp-2026-06-001",
        "unit_id": VILLAGE,
        "period": "2026-06",
        "inspected_at": "2026-06-25T15:00:00+08:00",
        "inspector": "市文明办督查组",
        "findings": [{"rule": "inspection_findings", "note": "台账不全", "occurrences": 1}],
        "assessments": [],
    },
}

SOURCES = {"township": f"/townships/{T}", "office": "/office"}
# The platform's events come from the service that owns them (``/wmsj/<service>``).
OWNERS = {
    "wmsj.event.rejected.v1": "registry",
    "wmsj.volunteer.hours-credited.v1": "activities",
    "wmsj.volunteer.enrolled.v1": "registry",
    "wmsj.order": "activities",
    "wmsj.monthly-warning": "activities",
    "wmsj.evidence": "evidence",
    "wmsj.score": "supervision",
}


def example(event_type: str) -> dict[str, Any]:
    """The whole CloudEvent of ``event_type``, as JSON."""
    from shared.events import EVENT_TYPES

    model = EVENT_TYPES[event_type]
    return {
        "specversion": "1.0",
        "id": f"example-{event_type}",
        "source": SOURCES.get(model.PUBLISHED_BY)
        or f"/wmsj/{next(o for prefix, o in OWNERS.items() if event_type.startswith(prefix))}",
        "type": event_type,
        "time": AT,
        "data": DATA[event_type],
    }
