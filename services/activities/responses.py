"""The activities HTTP API's response models (its OpenAPI document types every answer).
Extra fields are kept, so a model never hides what a route answers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ActivityView(_Open):
    """An activity: its parts as stated (schedule, publication, cancellation, completion),
    the status they give now, and the parts that do not take effect, with the reason."""

    activity_id: str
    unit_id: str
    status: str
    rescheduled: bool
    problems: list[str]
    schedule: dict[str, Any] | None = None
    first_schedule: dict[str, Any] | None = None
    publication: dict[str, Any] | None = None
    cancellation: dict[str, Any] | None = None
    completion: dict[str, Any] | None = None
    plan: dict[str, Any] | None = None  # the key project it was planned under


class ActivityDetail(ActivityView):
    volunteers: dict[str, Any]  # capacity, confirmed, waitlist, attendance, supplements


class UnitCalendar(_Open):
    unit_id: str
    period: str
    activities: list[ActivityView]


class ProjectActivities(_Open):
    project_id: str
    theme: str | None = None
    activities: list[ActivityView]


class CityCalendar(_Open):
    period: str
    projects: list[ProjectActivities]


class MonthlyWarningView(_Open):
    period: str
    units_known: int
    unit_ids: list[str]


class ProjectListVersion(_Open):
    year: int
    version: int
    published_at: datetime | None = None
    projects: list[dict[str, Any]]


class OrderState(_Open):
    """A 四单 order replayed from its statements."""

    order_id: str
    status: str
    requester_id: str | None = None
    requester_kind: str | None = None
    need: str | None = None
    handler_id: str | None = None
    team_id: str | None = None
    activity_id: str | None = None
    rating: int | None = None
    comment: str | None = None
    rated_at: datetime | None = None
    accept_due_at: datetime | None = None
    escalations: list[Any] = []
    declined_by: list[str] = []
    ignored: list[Any] = []


class OpenOrder(OrderState):
    """An order nobody has accepted yet (``GET /orders``), and whether it is past its deadline."""

    overdue: bool = False
