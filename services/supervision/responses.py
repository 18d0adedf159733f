"""The supervision HTTP API's response models (its OpenAPI document types every answer).
Extra fields are kept, so a model never hides what a route answers."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ScoreItemView(_Open):
    rule: str
    label: str
    points: float
    max_points: float
    reason: str
    facts: list[str] = []  # the activities, evidence and inspections it counted
    bonus: bool = False
    veto: bool = False


class ScoreFields(_Open):
    unit_id: str
    period: str
    score: float
    max_score: float
    bonus: float
    vetoed: bool
    rules_version: str


class ScoreHistoryEntry(ScoreFields):
    items: list[ScoreItemView]


class ScoreRow(ScoreFields):
    """A unit's score for a period, its items and its list (red/black); in a table also its
    ranks (``rank``, ``rank_in_kind``, ``rank_in_township_id``)."""

    name: str | None = None
    kind: str | None = None
    township_id: str | None = None
    breakdown: list[ScoreItemView]
    on_list: Literal["red", "black"] | None = Field(default=None, alias="list")  # 红榜/黑榜


class CompletedActivity(_Open):
    activity_id: str
    unit_id: str
    month: str | None = None
    evidence: list[dict[str, Any]] = []


class Lists(_Open):
    thresholds: dict[str, float]
    red: list[ScoreRow]
    black: list[ScoreRow]


class EligibilityRow(_Open):
    unit_id: str
    name: str | None = None
    eligible: bool
    annual: float | None = None
    three_year_mean: float
    reasons: list[str]


class Heatmap(_Open):
    months: list[str]
    units: dict[str, list[int]]


class Rules(_Open):
    name: str
    version: str
    items: list[dict[str, Any]]
    thresholds: dict[str, float]
    bonus_cap: float
    late_after_days: int


class InspectionAccepted(_Open):
    recorded: bool
    event_id: str


class Recomputed(_Open):
    changed: int
    rules_version: str
