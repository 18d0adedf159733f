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


# ----------------------------------------------------------------- activity lifecycle
# planned (scheduled) → published → ongoing → completed, or cancelled. Rescheduling is a new
# ``wmsj.activity.scheduled.v1`` statement for the same activity: the latest statement wins.


class ActivityPublished(Data):
    """The unit publishes a planned activity and recruits volunteers for it (发布招募)."""

    activity_id: Id
    unit_id: Id
    capacity: int = Field(ge=1, le=100_000, description="Volunteers wanted; later sign-ups are waitlisted.")


class ActivityPublishedEvent(CloudEvent[ActivityPublished]):
    """A planned activity is published for volunteers to sign up; only future activities can be."""

    type: Literal["wmsj.activity.published.v1"] = "wmsj.activity.published.v1"
    PUBLISHED_BY = "township"


class ActivityCancelled(Data):
    """The unit calls the activity off (取消活动). A later ``scheduled`` revives it."""

    FREE_TEXT = frozenset({"reason"})

    activity_id: Id
    unit_id: Id
    reason: str = Field(default="", max_length=500)


class ActivityCancelledEvent(CloudEvent[ActivityCancelled]):
    """An activity is cancelled."""

    type: Literal["wmsj.activity.cancelled.v1"] = "wmsj.activity.cancelled.v1"
    PUBLISHED_BY = "township"


# ----------------------------------------------------------------- 四单: order, dispatch, accept, rate


class OrderPlaced(Data):
    """A resident or a village orders a service (点单) from a practice station, institute or
    the centre: ``unit_id`` is the first level that handles it."""

    FREE_TEXT = frozenset({"need"})

    order_id: Id
    requester_id: Id = Field(description="The resident's id, or the village's unit id.")
    requester_kind: Literal["resident", "village"]
    unit_id: Id = Field(description="The unit the order is placed with (站/所/中心).")
    need: str = Field(min_length=1, max_length=500)
    project_id: Id | None = None


class OrderPlacedEvent(CloudEvent[OrderPlaced]):
    """A service is ordered (点单)."""

    type: Literal["wmsj.order.placed.v1"] = "wmsj.order.placed.v1"
    PUBLISHED_BY = "township"


class OrderDispatched(Data):
    """The unit holding the order (the centre or an institute) dispatches it to a team (派单)."""

    order_id: Id
    dispatcher_id: Id
    team_id: Id


class OrderDispatchedEvent(CloudEvent[OrderDispatched]):
    """An order is dispatched to a volunteer team (派单)."""

    type: Literal["wmsj.order.dispatched.v1"] = "wmsj.order.dispatched.v1"
    PUBLISHED_BY = "township"


class OrderAnswered(Data):
    """The team accepts the order, naming the activity that will serve it, or declines (接单)."""

    FREE_TEXT = frozenset({"reason"})

    order_id: Id
    team_id: Id
    accepted: bool
    activity_id: Id | None = Field(default=None, description="Required when accepted.")
    reason: str = Field(default="", max_length=500)

    @model_validator(mode="after")
    def _activity_when_accepted(self) -> OrderAnswered:
        if self.accepted and self.activity_id is None:
            raise ValueError("an accepted order names the activity_id that will serve it")
        return self


class OrderAnsweredEvent(CloudEvent[OrderAnswered]):
    """A team accepts or declines a dispatched order (接单)."""

    type: Literal["wmsj.order.answered.v1"] = "wmsj.order.answered.v1"
    PUBLISHED_BY = "township"


class OrderRated(Data):
    """The requester rates the service once its activity is completed (评单)."""

    FREE_TEXT = frozenset({"comment"})

    order_id: Id
    requester_id: Id
    rating: int = Field(ge=1, le=5)
    comment: str = Field(default="", max_length=1000)


class OrderRatedEvent(CloudEvent[OrderRated]):
    """The requester rates a served order (评单)."""

    type: Literal["wmsj.order.rated.v1"] = "wmsj.order.rated.v1"
    PUBLISHED_BY = "township"


class OrderRatingCounted(Data):
    """The rating that counts for an order, as the activities service's 四单 rules see it:
    the requester's latest rating of an order that a team accepted and serves with
    ``activity_id``. Restated whenever that changes; ``rating`` None means the order's rating
    no longer counts (a statement that arrived late showed it was not the requester's, or
    not of the accepted order). The township's ``order.rated`` carries neither the activity
    nor whether it counts: only the whole order history says that."""

    order_id: Id
    activity_id: Id = Field(description="The activity that served the order: its unit and month are rated.")
    rating: int | None = Field(ge=1, le=5, description="1-5 stars; None: no rating counts any more.")
    rated_at: AwareDatetime | None = Field(
        description="When the requester rated it (the rating's event time)."
    )


class OrderRatingCountedEvent(CloudEvent[OrderRatingCounted]):
    """The 四单 rating that counts for an order changed (for supervision's 四单 item)."""

    type: Literal["wmsj.order.rating-counted.v1"] = "wmsj.order.rating-counted.v1"


class OrderEscalated(Data):
    """Nobody accepted the order in time at ``from_unit_id``: it moves to the level above."""

    order_id: Id
    from_unit_id: Id
    to_unit_id: Id
    level: int = Field(ge=1, description="How many times the order has been escalated.")


class OrderEscalatedEvent(CloudEvent[OrderEscalated]):
    """An order nobody accepted in time escalates to the level above (time = its deadline)."""

    type: Literal["wmsj.order.escalated.v1"] = "wmsj.order.escalated.v1"


# ----------------------------------------------------------------- volunteers at activities
# Sign-up, check-in and check-out happen at the event's ``time``.


class VolunteerAttendance(Data):
    """A volunteer signs up for, withdraws from, checks in to or checks out of an activity."""

    activity_id: Id
    unit_id: Id
    volunteer_id: Id


class VolunteerSignedUpEvent(CloudEvent[VolunteerAttendance]):
    """A volunteer signs up (报名); beyond the capacity they are waitlisted, in sign-up order."""

    type: Literal["wmsj.attendance.signed-up.v1"] = "wmsj.attendance.signed-up.v1"
    PUBLISHED_BY = "township"


class VolunteerWithdrewEvent(CloudEvent[VolunteerAttendance]):
    """A volunteer withdraws a sign-up; the first on the waitlist moves up."""

    type: Literal["wmsj.attendance.withdrawn.v1"] = "wmsj.attendance.withdrawn.v1"
    PUBLISHED_BY = "township"


class VolunteerCheckedInEvent(CloudEvent[VolunteerAttendance]):
    """A volunteer checks in at the activity (签到)."""

    type: Literal["wmsj.attendance.checked-in.v1"] = "wmsj.attendance.checked-in.v1"
    PUBLISHED_BY = "township"


class VolunteerCheckedOutEvent(CloudEvent[VolunteerAttendance]):
    """A volunteer checks out (签退): the hours since check-in are credited."""

    type: Literal["wmsj.attendance.checked-out.v1"] = "wmsj.attendance.checked-out.v1"
    PUBLISHED_BY = "township"


class HoursSupplemented(Data):
    """Hours added after the fact (补录), approved by someone other than the volunteer, with
    evidence (an evidence id from the evidence service)."""

    FREE_TEXT = frozenset({"reason"})

    volunteer_id: Id
    activity_id: Id
    unit_id: Id
    hours: float = Field(gt=0, le=24)
    approver_id: Id
    evidence_id: Id
    reason: str = Field(min_length=1, max_length=500)

    @model_validator(mode="after")
    def _approved_by_another(self) -> HoursSupplemented:
        if self.approver_id == self.volunteer_id:
            raise ValueError("a volunteer cannot approve their own hours")
        return self


class HoursSupplementedEvent(CloudEvent[HoursSupplemented]):
    """Approved hours added after the fact (补录)."""

    type: Literal["wmsj.attendance.hours-supplemented.v1"] = "wmsj.attendance.hours-supplemented.v1"
    PUBLISHED_BY = "township"


# ----------------------------------------------------------------- monthly early warning


class MonthlyWarning(Data):
    """The units with nothing scheduled or completed in the month so far (月月有活动 at risk)."""

    period: str = Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", examples=["2020-06"])
    as_of: AwareDatetime
    unit_ids: list[Id]
    units_known: int = Field(ge=0)


class MonthlyWarningEvent(CloudEvent[MonthlyWarning]):
    """Early warning: units without any activity this month (re-issued when the list changes)."""

    type: Literal["wmsj.monthly-warning.issued.v1"] = "wmsj.monthly-warning.issued.v1"
