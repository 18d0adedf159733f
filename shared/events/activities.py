"""The key project list, activities and volunteer hours (owned by the activities service)."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, Field, model_validator

from shared.events.envelope import CloudEvent, Data, Id
from shared.events.units import UnitKind

# ----------------------------------------------------------------- the key project list


class EvidenceRequirement(Data):
    """What each activity of a project must report (图文资料)."""

    min_photos: int = Field(default=1, ge=0, le=100)
    text_report: bool = Field(default=True, description="A written report (plain text or PDF) is required.")
    report_within_days: int = Field(
        default=7, ge=0, le=366, description="Evidence is due this many days after the activity ends."
    )


class KeyProject(Data):
    """One project of the year's key project list (重点项目)."""

    project_id: Id
    theme: str = Field(min_length=1, max_length=200)
    months: list[int] = Field(min_length=1, description="Months (1-12) in which activities are due.")
    lead_unit_ids: list[Id] = Field(
        default_factory=list, description="Units that lead the project (牵头单位)."
    )
    participant_kinds: list[UnitKind] = Field(
        default_factory=list, description="Every unit of these kinds takes part (参与单位)."
    )
    participant_unit_ids: list[Id] = Field(default_factory=list)
    evidence: EvidenceRequirement = Field(default_factory=EvidenceRequirement)
    points: float = Field(default=0, ge=0, le=1000, description="Points an activity of the project carries.")

    @model_validator(mode="after")
    def _months_in_range(self) -> KeyProject:
        if any(not 1 <= m <= 12 for m in self.months):
            raise ValueError("months must be between 1 and 12")
        return self


class ProjectListPublished(Data):
    """The city office publishes the year's key project list (重点项目清单), or revises it.

    Each revision has a higher ``version``; activities keep pointing at the version they
    were planned under."""

    year: int = Field(ge=2000, le=2100)
    version: int = Field(ge=1)
    projects: list[KeyProject] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_projects(self) -> ProjectListPublished:
        ids = [p.project_id for p in self.projects]
        if len(ids) != len(set(ids)):
            raise ValueError("project_id must be unique within the list")
        return self


class ProjectListPublishedEvent(CloudEvent[ProjectListPublished]):
    """The office publishes or revises the year's key project list (重点项目清单)."""

    type: Literal["wmsj.projects.published.v1"] = "wmsj.projects.published.v1"
    PUBLISHED_BY = "office"


# ----------------------------------------------------------------- activities


class ActivityScheduled(Data):
    """A unit plans a volunteer activity against the key project list (重点项目清单)."""

    activity_id: Id
    unit_id: Id
    project_id: Id | None = None
    title: str = Field(min_length=1, max_length=200)
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    place: str = Field(default="", max_length=200)

    @model_validator(mode="after")
    def _ends_after_start(self) -> ActivityScheduled:
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


class ActivityCompleted(Data):
    """The activity took place; carries what happened so it can be scored even if it
    arrives before its ``scheduled`` event."""

    activity_id: Id
    unit_id: Id
    ended_at: AwareDatetime
    volunteers: int = Field(ge=0, le=100_000)
    service_hours: float = Field(ge=0, le=1_000_000)
    people_served: int = Field(default=0, ge=0, le=10_000_000)


class ActivityScheduledEvent(CloudEvent[ActivityScheduled]):
    """A unit plans a volunteer activity against the key project list (重点项目清单)."""

    type: Literal["wmsj.activity.scheduled.v1"] = "wmsj.activity.scheduled.v1"
    PUBLISHED_BY = "township"


class ActivityCompletedEvent(CloudEvent[ActivityCompleted]):
    """An activity took place, with its volunteers, hours and people served."""

    type: Literal["wmsj.activity.completed.v1"] = "wmsj.activity.completed.v1"
    PUBLISHED_BY = "township"


# ----------------------------------------------------------------- volunteer hours


class HoursCredited(Data):
    """Service hours credited to a volunteer: from check-in/check-out at an activity, or
    added after the fact (补录) once approved."""

    volunteer_id: Id
    activity_id: Id
    unit_id: Id
    hours: float = Field(gt=0, le=24)
    credited_at: AwareDatetime
    basis: Literal["attendance", "supplement"]


class HoursCreditedEvent(CloudEvent[HoursCredited]):
    """Service hours credited to a volunteer (feeds the registry's service-hours ledger)."""

    type: Literal["wmsj.volunteer.hours-credited.v1"] = "wmsj.volunteer.hours-credited.v1"
