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


class HeatmapUnit(_Open):
    name: str | None = None
    kind: str | None = None
    township_id: str | None = None


class Heatmap(_Open):
    months: list[str]
    units: dict[str, list[int]]  # a unit's completed activities in each month
    info: dict[str, HeatmapUnit] = {}


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


# ------------------------------------------------------------------ charts


class Trend(_Open):
    """Per month of the year: the visible units' mean score, how many had an activity, how many."""

    months: list[str]
    mean: list[float]
    active: list[int]
    units: list[int]


class TownshipDistribution(_Open):
    township_id: str  # "" for the city's own units (市直)
    name: str | None = None
    scores: list[float]
    mean: float
    bands: dict[str, int]  # how many scores in each band (<60, 60-79, 80-89, ≥90)


class TownshipCompleteness(_Open):
    township_id: str
    name: str | None = None
    activities: int
    complete: int


# ------------------------------------------------------------------ a township's to-do


class ToDo(_Open):
    """What is still missing in the period (each list's entries name their unit)."""

    period: str
    due: bool
    without_activity: list[dict[str, Any]]
    incomplete_evidence: list[dict[str, Any]]
    flagged_evidence: list[dict[str, Any]]
    late_reports: list[dict[str, Any]]
    orders_near_escalation: Any = None


# ------------------------------------------------------------------ the office's page


class KeptProjectList(_Open):
    year: int
    version: int | None = None
    projects: list[dict[str, Any]]
    versions: list[Any] = []


class ProjectListPreview(_Open):
    projects: list[dict[str, Any]]


class ProjectListPublished(_Open):
    event_id: str
    year: int
    version: int
    projects: int  # how many projects the published version holds


class Outcome(_Open):
    event_id: str
    refused: Any = None  # why the event was refused, or null (not, or not yet)


class ReviewSide(_Open):
    evidence_id: str
    activity_id: str | None = None
    unit_id: str | None = None
    unit_name: str | None = None
    township_id: str | None = None
    content_type: str | None = None
    reported_at: Any = None
    ended_at: Any = None
    flagged: bool
    review: str | None = None


class ReviewPair(_Open):
    """Flagged evidence and the other occurrence it was flagged against (if any)."""

    signal: str | None = None
    detail: Any = None
    flagged_at: Any = None
    this: ReviewSide | None = None
    other: ReviewSide | None = None
    settled: bool


class ReviewsPublished(_Open):
    event_ids: list[str]
    verdicts: dict[str, str]  # evidence id → accepted/rejected


# ------------------------------------------------------------------ the dashboard's sign-in


class DashboardConfig(_Open):
    evidence_url: str


class SignedIn(_Open):
    role: str
    township_id: str | None = None


class SignedOut(_Open):
    signed_out: bool
