"""Supervision scores (owned by the supervision service)."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, Field

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


# ----------------------------------------------------------------- office inspections


class InspectionFinding(Data):
    """A problem the inspector found, counted against a rule item (of mode ``deduction``,
    measure ``findings``), or a veto (一票否决)."""

    rule: str = Field(default="inspection_findings", min_length=1, max_length=64)
    note: str = Field(default="", max_length=2000)
    occurrences: int = Field(default=1, ge=1, le=100)
    veto: bool = False


class InspectionAssessment(Data):
    """Points the inspector sets for a discretionary rule item (酌情打分)."""

    rule: str = Field(min_length=1, max_length=64)
    points: float = Field(ge=-1000, le=1000)


class InspectionRecorded(Data):
    """The city office inspected a unit (督查) for a month: its findings and assessments.
    Stating the same ``inspection_id`` again (later) replaces it."""

    inspection_id: Id
    unit_id: Id
    period: Period
    inspected_at: AwareDatetime
    inspector: str = Field(min_length=1, max_length=200)
    findings: list[InspectionFinding] = Field(default_factory=list, max_length=200)
    assessments: list[InspectionAssessment] = Field(default_factory=list, max_length=50)


class InspectionRecordedEvent(CloudEvent[InspectionRecorded]):
    """The city office records an inspection of a unit, with findings and deductions."""

    type: Literal["wmsj.inspection.recorded.v1"] = "wmsj.inspection.recorded.v1"
    PUBLISHED_BY = "office"
