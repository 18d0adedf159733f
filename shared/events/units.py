"""Units: who takes part in the programme (owned by the registry)."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field

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
