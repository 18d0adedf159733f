"""Supervision scoring, pure: a unit's monthly score is a function of the facts about it.

This is the first, simple rule set (the versioned rule model comes later). It follows the
seed notice: activities every month (月月有活动), picture-and-text evidence reported for them
(图文资料), and volunteers taking part.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.events import ScoreItem

RULES_VERSION = "2020.1-basic"

MONTHLY_ACTIVITY_POINTS = 60.0
EVIDENCE_POINTS = 30.0
PARTICIPATION_POINTS = 10.0
VOLUNTEERS_FOR_FULL_PARTICIPATION = 10
MAX_SCORE = MONTHLY_ACTIVITY_POINTS + EVIDENCE_POINTS + PARTICIPATION_POINTS


@dataclass(frozen=True)
class CompletedActivity:
    """What supervision knows of one activity completed in the month."""

    activity_id: str
    volunteers: int
    evidence_count: int


@dataclass(frozen=True)
class MonthlyScore:
    unit_id: str
    period: str
    score: float
    max_score: float
    breakdown: tuple[ScoreItem, ...]
    rules_version: str = RULES_VERSION


def score_month(unit_id: str, period: str, activities: list[CompletedActivity]) -> MonthlyScore:
    done = len(activities)
    with_evidence = sum(1 for a in activities if a.evidence_count > 0)
    volunteers = sum(a.volunteers for a in activities)

    monthly = MONTHLY_ACTIVITY_POINTS if done else 0.0
    evidence = round(EVIDENCE_POINTS * with_evidence / done, 1) if done else 0.0
    participation = round(PARTICIPATION_POINTS * min(1.0, volunteers / VOLUNTEERS_FOR_FULL_PARTICIPATION), 1)
    breakdown = (
        ScoreItem(
            rule="monthly_activity",  # 月月有活动
            points=monthly,
            max_points=MONTHLY_ACTIVITY_POINTS,
            reason=f"{done} activities completed in {period}"
            if done
            else f"no activity completed in {period}",
        ),
        ScoreItem(
            rule="evidence",  # 图文资料
            points=evidence,
            max_points=EVIDENCE_POINTS,
            reason=f"{with_evidence} of {done} completed activities have stored evidence",
        ),
        ScoreItem(
            rule="participation",
            points=participation,
            max_points=PARTICIPATION_POINTS,
            reason=f"{volunteers} volunteer attendances (full points from {VOLUNTEERS_FOR_FULL_PARTICIPATION})",
        ),
    )
    return MonthlyScore(
        unit_id=unit_id,
        period=period,
        score=round(monthly + evidence + participation, 1),
        max_score=MAX_SCORE,
        breakdown=breakdown,
    )
