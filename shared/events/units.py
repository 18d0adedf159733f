"""Units: who takes part in the programme (owned by the registry)."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from shared.events.envelope import CloudEvent, Data, Id


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


class UnitRegisteredEvent(CloudEvent[UnitRegistered]):
    """A unit joins the programme (or its details are re-stated)."""

    type: Literal["wmsj.unit.registered.v1"] = "wmsj.unit.registered.v1"
    PUBLISHED_BY = "township"


# ----------------------------------------------------------------- v2: titles, contacts, active


class CivilizedCategory(StrEnum):
    """The civilized-unit category a unit is selected and re-reviewed in."""

    CIVILIZED_UNIT = "civilized_unit"  # 文明单位
    CIVILIZED_VILLAGE_TOWN = "civilized_village_town"  # 文明村镇
    CIVILIZED_COMMUNITY = "civilized_community"  # 文明社区
    CIVILIZED_CAMPUS = "civilized_campus"  # 文明校园


class UnitContact(Data):
    name: str = Field(min_length=1, max_length=50)
    role: str = Field(default="", max_length=50, description="e.g. 联络员")
    phone: str = Field(
        default="", pattern=r"^[0-9+\-() ]{0,20}$", description="Work phone; masked in every API response."
    )


class UnitRegisteredV2(Data):
    """A unit joins the programme or re-states its details, with its civilized-unit title.

    v1's fields mean the same; ``township_id`` may be left out below a township (the
    registry derives it from the parent)."""

    unit_id: Id
    name: str = Field(min_length=1, max_length=200)
    kind: UnitKind
    parent_id: Id | None = None
    township_id: Id | None = None
    category: CivilizedCategory | None = Field(default=None, description="Civilized-unit category, if any.")
    title_held_since: date | None = Field(default=None, description="Since when it holds the title.")
    title_review_due: date | None = Field(default=None, description="When the title is due for re-review.")
    contacts: list[UnitContact] = Field(default_factory=list, max_length=20)
    active: bool = True

    @model_validator(mode="after")
    def _title_is_coherent(self) -> UnitRegisteredV2:
        if (self.title_held_since or self.title_review_due) and self.category is None:
            raise ValueError("title dates need a category")
        if self.title_held_since and self.title_review_due and self.title_review_due <= self.title_held_since:
            raise ValueError("title_review_due must be after title_held_since")
        return self


class UnitRegisteredV2Event(CloudEvent[UnitRegisteredV2]):
    """A unit joins the programme or re-states its details, title and contacts (v2).

    The registry accepts v1 and v2 and re-publishes every accepted unit as v1 (what
    supervision reads)."""

    type: Literal["wmsj.unit.registered.v2"] = "wmsj.unit.registered.v2"
    PUBLISHED_BY = "township"


# ----------------------------------------------------------------- volunteers


class VolunteerRegistered(Data):
    """A volunteer registers under their real name (实名注册), or re-states their details.

    ``id_card`` and ``phone`` are personal data: encrypted at rest, masked in every response,
    never logged, never re-published."""

    # Errors about this model never echo what was sent (they reach logs and rejections).
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    volunteer_id: Id
    name: str = Field(min_length=1, max_length=50, description="Real name (实名).")
    id_card: str = Field(description="18-character resident ID-card number, with its check character.")
    phone: str = Field(description="11-digit mainland mobile number.")
    unit_id: Id = Field(description="The unit the volunteer registered with.")
    team_ids: list[Id] = Field(
        default_factory=list, max_length=20, description="Volunteer teams (总队/大队/分队) they belong to."
    )
    active: bool = True

    @field_validator("id_card")
    @classmethod
    def _id_card(cls, value: str) -> str:
        from shared.pii import id_card_problem

        value = value.strip().upper()
        if problem := id_card_problem(value):
            raise ValueError(problem)
        return value

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str) -> str:
        from shared.pii import phone_problem

        value = value.strip()
        if problem := phone_problem(value):
            raise ValueError(problem)
        return value


class VolunteerRegisteredEvent(CloudEvent[VolunteerRegistered]):
    """A volunteer registers under their real name (实名注册) with a unit and its teams."""

    type: Literal["wmsj.volunteer.registered.v1"] = "wmsj.volunteer.registered.v1"
    PUBLISHED_BY = "township"


class Enrolment(Data):
    """One volunteer the registry accepted, without personal data: who registered them."""

    volunteer_id: Id
    unit_id: Id = Field(description="The unit the volunteer is registered with.")
    township_id: Id | None = Field(
        description="The township that registered the volunteer (its owner); None: the city level."
    )
    active: bool = True


class VolunteerEnrolled(Data):
    """Volunteers the registry accepted (one registration, or a batch of a spreadsheet import),
    without personal data. The activities service credits hours only to a township's own
    volunteers (补录 and check-out), and learns whose a volunteer is from this."""

    enrolled: list[Enrolment] = Field(min_length=1, max_length=500)


class VolunteerEnrolledEvent(CloudEvent[VolunteerEnrolled]):
    """The registry accepted volunteers' registrations (no personal data: ids only)."""

    type: Literal["wmsj.volunteer.enrolled.v1"] = "wmsj.volunteer.enrolled.v1"
