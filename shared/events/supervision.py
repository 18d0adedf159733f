"""Supervision scores (owned by the supervision service)."""

from __future__ import annotations

from typing import Literal

from shared.events.envelope import CloudEvent, Data, Id, Period


class ScoreItem(Data):
    rule: str
    points: float
    max_points: float
    reason: str


class ScoreUpdated(Data):
    """A unit's supervision score for a month changed."""

    unit_id: Id
    period: Period
    score: float
    max_score: float
    rules_version: str
    breakdown: list[ScoreItem]


class ScoreUpdatedEvent(CloudEvent[ScoreUpdated]):
    """A unit's supervision score for a month changed."""

    type: Literal["wmsj.score.updated.v1"] = "wmsj.score.updated.v1"
