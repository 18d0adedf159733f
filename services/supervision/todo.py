"""A township's to-do for the month (本月待办), pure: what its units still have to do.

From what supervision knows (the units, their activities of the month with their evidence,
the flagged pairs, the key projects) and the time now: the units without a completed
activity, the activities whose evidence does not count as complete and what they lack, the
flagged evidence awaiting the office (a flag concerns a pair: both units see it), and the
reports that came, or are still missing, after their deadline. No I/O here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from services.supervision.domain import Activity, Project, RuleSet, evidence_counts_complete


@dataclass(frozen=True)
class FlaggedPair:
    """A flagged piece of evidence and the other occurrence it was flagged against."""

    evidence_id: str
    unit_id: str
    activity_id: str
    review: str | None  # the office's verdict on the flagged piece, None while it awaits one
    other_evidence_id: str | None
    other_unit_id: str | None
    other_activity_id: str | None


def township_todo(
    units: Mapping[str, Mapping[str, Any]],
    activities: Sequence[Activity],
    pairs: Sequence[FlaggedPair],
    projects: Mapping[str, Project],
    rules: RuleSet,
    now: datetime,
) -> dict[str, list[dict[str, Any]]]:
    """``units``: the township's units by id (name, kind); ``activities``: theirs completed in
    the month; ``pairs``: every flagged pair (those touching ``units`` are kept)."""

    def named(unit_id: str) -> dict[str, Any]:
        return {"unit_id": unit_id, "name": units[unit_id].get("name") or unit_id}

    done = {a.unit_id for a in activities}
    incomplete, flagged, late = [], [], []
    for activity in sorted(activities, key=lambda a: a.activity_id):
        project = projects.get(activity.project_id or "")
        need = project.min_photos if project else 1
        days = project.report_within_days if project else rules.late_after_days
        counted = [e for e in activity.evidence if e.counts]
        photos = [e for e in counted if e.content_type.startswith("image/")]
        reports = [e for e in counted if not e.content_type.startswith("image/")]
        if not evidence_counts_complete(activity):
            missing = [f"还差 {need - len(photos)} 张照片"] if len(photos) < need else []
            missing += [] if reports else ["缺文字报告"]
            incomplete.append(
                {
                    **named(activity.unit_id),
                    "activity_id": activity.activity_id,
                    "photos": len(photos),
                    "min_photos": need,
                    "missing": missing or ["等待图文资料核验"],
                }
            )
        if activity.ended_at:
            # As the timeliness item counts it: the needed pieces, in time.
            deadline = activity.ended_at + timedelta(days=days)
            reported = sorted(e.reported for e in counted)
            enough = max(need, 1)
            if (len(reported) < enough and now > deadline) or (
                len(reported) >= enough and reported[enough - 1] > deadline
            ):
                late.append(
                    {**named(activity.unit_id), "activity_id": activity.activity_id, "deadline": deadline}
                )
    for pair in sorted(pairs, key=lambda p: p.evidence_id):
        if pair.review is not None:
            continue
        if pair.unit_id in units:
            flagged.append(
                {**named(pair.unit_id), "activity_id": pair.activity_id, "evidence_id": pair.evidence_id}
            )
        other = pair.other_unit_id
        if other is not None and other in units and pair.other_evidence_id:
            flagged.append(
                {
                    **named(other),
                    "activity_id": pair.other_activity_id,
                    "evidence_id": pair.other_evidence_id,
                    "paired_with": pair.evidence_id,
                }
            )
    return {
        "without_activity": [
            {**named(k), "kind": u.get("kind")} for k, u in sorted(units.items()) if k not in done
        ],
        "incomplete_evidence": incomplete,
        "flagged_evidence": flagged,
        "late_reports": late,
    }
