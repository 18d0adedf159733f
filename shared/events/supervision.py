"""Supervision scores (owned by the supervision service)."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, Field, model_validator

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


class ScoreUpdatedV2(Data):
    """A unit's supervision score for a month, a quarter or a year changed."""

    unit_id: Id
    period: str = Field(
        pattern=r"^\d{4}(-(0[1-9]|1[0-2])|-Q[1-4])?$",
        examples=["2020-06", "2020-Q2", "2020"],
        description="YYYY-MM, YYYY-Qn or YYYY.",
    )
    period_kind: Literal["month", "quarter", "year"]
    score: float
    max_score: float
    bonus: float = Field(description="Bonus points (加分) included in the score.")
    vetoed: bool = Field(description="A veto (一票否决) zeroed the period.")
    rules_version: str
    breakdown: list[ScoreItem]

    @model_validator(mode="after")
    def _kind_matches_period(self) -> ScoreUpdatedV2:
        kind = "year" if len(self.period) == 4 else "quarter" if "-Q" in self.period else "month"
        if kind != self.period_kind:
            raise ValueError(f"period {self.period} is a {kind}, not a {self.period_kind}")
        return self


class ScoreUpdatedV2Event(CloudEvent[ScoreUpdatedV2]):
    """A unit's supervision score for a month, quarter or year changed (v1 carries months only)."""

    type: Literal["wmsj.score.updated.v2"] = "wmsj.score.updated.v2"


# ----------------------------------------------------------------- office inspections


class InspectionFinding(Data):
    """A problem the inspector found, counted against a rule item (of mode ``deduction``,
    measure ``findings``), or a veto (一票否决)."""

    FREE_TEXT = frozenset({"note"})

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
