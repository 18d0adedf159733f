"""The registry HTTP API's response models (its OpenAPI document types every answer).
Extra fields are kept, so a model never hides what a route answers."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class UnitView(_Open):
    """A unit as the registry holds it; contacts' phones masked."""

    unit_id: str
    name: str
    kind: str
    parent_id: str | None = None
    township_id: str | None = None
    ancestors: list[str] = []
    stated_at: datetime | None = None
    category: str | None = None
    title_held_since: date | None = None
    title_review_due: date | None = None
    contacts: list[dict[str, Any]] = []
    active: bool = True


class UnitNode(UnitView):
    children: list[UnitNode] = []


class UnitChange(_Open):
    """One accepted statement about a unit, or a move of its subtree."""

    unit_id: str
    change: str
    stated_at: datetime
    recorded_at: datetime
    by: str
    event: str
    name: str | None = None
    kind: str | None = None
    parent_id: str | None = None
    township_id: str | None = None
    active: bool | None = None
    category: str | None = None


class VolunteerView(_Open):
    """A volunteer, its ID-card number and phone masked."""

    volunteer_id: str
    name: str
    id_card: str
    phone: str
    unit_id: str
    township_id: str | None = None
    team_ids: list[str] = []
    active: bool = True
    service_hours: float | None = None


class VolunteerDetail(VolunteerView):
    ledger: list[dict[str, Any]] = []  # hours credited, one entry per activity and basis


class RowErrorView(_Open):
    row: int
    column: str
    reason: str


class ImportReportView(_Open):
    imported: int
    unchanged: int
    held: int
    errors: list[RowErrorView]


class TownshipView(_Open):
    """A township system's identity on the bus, without any secret."""

    township_id: str
    user: str
    amqp_url: str  # without a password
    reply_queue: str
    refusals_waiting: int | None = None  # messages in its reply queue (null: no queue)
    may_publish: str  # the event types it may publish (a regular expression)
    upload_prefix: str
    api_key_role: str


class TownshipAccessView(_Open):
    """Everything a township system needs, secrets included: shown this once."""

    township_id: str
    user: str
    password: str
    amqp_url: str
    reply_queue: str
    api_key: str
    upload_prefix: str
    api_key_entry: dict[str, str]  # what to add to WMSJ_API_KEYS
