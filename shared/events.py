"""The event contract: every message on the bus is one of these.

Envelope: CloudEvents 1.0, structured JSON mode (content type ``application/cloudevents+json``).
``(source, id)`` identifies an event everywhere; handlers de-duplicate on it.

Versioning: the version is part of the type (``wmsj.unit.registered.v1``) and so of the
routing key. A published version never changes incompatibly; a breaking change is a new
``.v2`` model added next to the old one, and consumers keep accepting both.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Generic, Literal, TypeVar
from zoneinfo import ZoneInfo

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)

CONTENT_TYPE = "application/cloudevents+json"

# Months are the city's months: an activity at 23:30 on 30 June in Hunan belongs to June.
CITY_TZ = ZoneInfo("Asia/Shanghai")

Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")]
Period = Annotated[str, Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", examples=["2020-06"])]


def period_of(moment: datetime) -> str:
    """The month (YYYY-MM, city time) a moment falls in."""
    return moment.astimezone(CITY_TZ).strftime("%Y-%m")


class Data(BaseModel):
    """Base of every event payload: unknown fields are refused, so a township's typo is
    reported instead of silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------------------- payloads


class UnitKind(StrEnum):
    CITY = "city"
    TOWNSHIP = "township"  # 乡
    TOWN = "town"  # 镇
    STREET = "street"  # 街道
    VILLAGE = "village"  # 村
    COMMUNITY = "community"  # 社区
    DEPARTMENT = "department"  # 市直单位
    ENTERPRISE = "enterprise"
    SCHOOL = "school"
    INSTITUTION = "institution"  # 事业单位
    PRACTICE_CENTRE = "practice_centre"  # 新时代文明实践中心
    PRACTICE_INSTITUTE = "practice_institute"  # 文明实践所
    PRACTICE_STATION = "practice_station"  # 文明实践站
    GENERAL_TEAM = "general_team"  # 志愿服务总队
    BRIGADE = "brigade"  # 大队
    SQUAD = "squad"  # 分队


class UnitRegistered(Data):
    """A unit joins the programme (or its details are re-stated)."""

    unit_id: Id
    name: str = Field(min_length=1, max_length=200)
    kind: UnitKind
    parent_id: Id | None = None
    township_id: Id | None = Field(
        default=None, description="The township (乡镇/街道) the unit belongs to; None for city level."
    )


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


Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class EvidenceSubmitted(Data):
    """Picture-and-text material (图文资料) uploaded to the object store, now claimed."""

    evidence_id: Id
    activity_id: Id
    unit_id: Id
    object_key: str = Field(min_length=1, max_length=512, description="Key in the upload bucket.")
    sha256: Sha256
    size: int = Field(gt=0)
    content_type: str = Field(min_length=3, max_length=100)
    caption: str = Field(default="", max_length=5000)


class EvidenceStored(Data):
    """Evidence checked and kept under its permanent key."""

    evidence_id: Id
    activity_id: Id
    unit_id: Id
    object_key: str = Field(description="Permanent key in the evidence bucket.")
    sha256: Sha256
    size: int
    content_type: str
    stored_at: AwareDatetime


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


class FieldError(Data):
    location: str
    message: str


class EventRejected(Data):
    """An incoming event was refused; its publisher can act on ``reason`` and ``errors``.
    The original message is in the dead-letter queue."""

    rejected_source: str | None
    rejected_id: str | None
    rejected_type: str | None
    reason: str
    errors: list[FieldError] = []
    rejected_by: str


# ---------------------------------------------------------------------------- envelope

DataT = TypeVar("DataT", bound=Data)


def _required_by_cloudevents(schema: dict[str, Any]) -> None:
    # ``specversion`` and ``type`` have defaults for building events in code, but a sender
    # must state them: CloudEvents requires them, and the parser needs ``type`` to choose
    # the model.
    schema["required"] = sorted({*schema.get("required", []), "specversion", "type"})


class CloudEvent(BaseModel, Generic[DataT]):
    """CloudEvents 1.0 envelope (structured mode)."""

    model_config = ConfigDict(frozen=True, extra="allow", json_schema_extra=_required_by_cloudevents)

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(min_length=1, max_length=128)
    source: str = Field(min_length=1, max_length=256, description="URI-reference of the producer.")
    type: str
    time: AwareDatetime
    subject: str | None = None
    datacontenttype: Literal["application/json"] = "application/json"
    data: DataT

    TYPE: ClassVar[str]  # the routing key; set from the subclass's ``type`` literal

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        default = cls.model_fields["type"].default
        if isinstance(default, str):
            cls.TYPE = default

    @property
    def key(self) -> str:
        """The de-duplication key: the same (source, id) is the same event."""
        return f"{self.source}|{self.id}"


class UnitRegisteredEvent(CloudEvent[UnitRegistered]):
    """A unit joins the programme (or its details are re-stated)."""

    type: Literal["wmsj.unit.registered.v1"] = "wmsj.unit.registered.v1"


class ActivityScheduledEvent(CloudEvent[ActivityScheduled]):
    """A unit plans a volunteer activity against the key project list (重点项目清单)."""

    type: Literal["wmsj.activity.scheduled.v1"] = "wmsj.activity.scheduled.v1"


class ActivityCompletedEvent(CloudEvent[ActivityCompleted]):
    """An activity took place, with its volunteers, hours and people served."""

    type: Literal["wmsj.activity.completed.v1"] = "wmsj.activity.completed.v1"


class EvidenceSubmittedEvent(CloudEvent[EvidenceSubmitted]):
    """Picture-and-text material (图文资料) uploaded to the object store, now claimed."""

    type: Literal["wmsj.evidence.submitted.v1"] = "wmsj.evidence.submitted.v1"


class EvidenceStoredEvent(CloudEvent[EvidenceStored]):
    """Evidence checked and kept under its permanent key."""

    type: Literal["wmsj.evidence.stored.v1"] = "wmsj.evidence.stored.v1"


class ScoreUpdatedEvent(CloudEvent[ScoreUpdated]):
    """A unit's supervision score for a month changed."""

    type: Literal["wmsj.score.updated.v1"] = "wmsj.score.updated.v1"


class EventRejectedEvent(CloudEvent[EventRejected]):
    """An incoming event was refused, with the reason; the original is dead-lettered."""

    type: Literal["wmsj.event.rejected.v1"] = "wmsj.event.rejected.v1"


ALL_EVENTS: tuple[type[CloudEvent[Any]], ...] = (
    UnitRegisteredEvent,
    ActivityScheduledEvent,
    ActivityCompletedEvent,
    EvidenceSubmittedEvent,
    EvidenceStoredEvent,
    ScoreUpdatedEvent,
    EventRejectedEvent,
)
EVENT_TYPES: dict[str, type[CloudEvent[Any]]] = {e.TYPE: e for e in ALL_EVENTS}

# What township systems may send (the ingress exchange); the rest only services publish.
TOWNSHIP_EVENTS = (
    UnitRegisteredEvent,
    ActivityScheduledEvent,
    ActivityCompletedEvent,
    EvidenceSubmittedEvent,
)

AnyEvent = Annotated[
    UnitRegisteredEvent
    | ActivityScheduledEvent
    | ActivityCompletedEvent
    | EvidenceSubmittedEvent
    | EvidenceStoredEvent
    | ScoreUpdatedEvent
    | EventRejectedEvent,
    Field(discriminator="type"),
]
_ANY_EVENT: TypeAdapter[CloudEvent[Any]] = TypeAdapter(AnyEvent)


def parse_event(raw: bytes | str | dict[str, Any]) -> CloudEvent[Any]:
    """Validate any known event; raises ``pydantic.ValidationError``."""
    if isinstance(raw, dict):
        return _ANY_EVENT.validate_python(raw)
    return _ANY_EVENT.validate_json(raw)


def new_event(
    model: type[CloudEvent[DataT]],
    data: DataT,
    *,
    source: str,
    id: str | None = None,
    time: datetime,
    subject: str | None = None,
) -> CloudEvent[DataT]:
    # ``type`` comes from the concrete model's literal default, which mypy cannot see.
    return model(id=id or str(uuid.uuid4()), source=source, time=time, subject=subject, data=data)  # type: ignore[call-arg]


def statement(stated_at: datetime, data: Data) -> tuple[datetime, str]:
    """How two statements of the same fact are ordered: the later event time wins, and at
    the same time the canonical content decides, so the outcome never depends on which of
    two events arrives first."""
    return stated_at, data.model_dump_json()


def derived_id(cause_key: str, what: str) -> str:
    """A stable id for an event caused by another: re-handling the cause after a crash
    republishes the *same* event, which consumers then de-duplicate."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{cause_key}#{what}"))


def describe_errors(error: ValidationError) -> list[FieldError]:
    """Turn pydantic's errors into ``location: message`` pairs a township developer can act on."""
    out = []
    for e in error.errors(include_url=False):
        loc = ".".join(str(p) for p in e["loc"])
        # The discriminated union adds the tag to the path ("wmsj.unit.registered.v1.data.name");
        # the sender only cares about the field.
        loc = re.sub(r"^wmsj\.[a-z_.]+\.v\d+\.?", "", loc)
        if e["type"] in ("union_tag_invalid", "union_tag_not_found"):
            loc = "type"
        out.append(FieldError(location=loc or "(event)", message=e["msg"]))
    return out
