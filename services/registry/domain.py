"""Registry rules, pure: no I/O, so they are tested without servers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shared.events import UnitRegistered, statement


@dataclass(frozen=True)
class Unit:
    """A unit in the programme: township, village, school, practice station, volunteer team…"""

    unit_id: str
    name: str
    kind: str
    parent_id: str | None
    township_id: str | None
    stated_at: datetime  # time of the event that last stated these details
    stated: str  # its canonical content, the tie-break between statements made at one time


class RefusedUnit(ValueError):
    pass


def check_registration(data: UnitRegistered) -> None:
    """Refuse what can never be right, whatever else the registry holds."""
    if data.parent_id == data.unit_id:
        raise RefusedUnit(f"unit {data.unit_id} cannot be its own parent")


def apply_registration(current: Unit | None, data: UnitRegistered, stated_at: datetime) -> Unit | None:
    """The unit after this registration, or None if nothing changes.

    Townships retry and re-order: the latest statement wins (``shared.events.statement``),
    so the result does not depend on the order the events arrive in.
    """
    check_registration(data)
    at, content = statement(stated_at, data)
    if current is not None and (at, content) <= (current.stated_at, current.stated):
        return None
    return Unit(
        unit_id=data.unit_id,
        name=data.name,
        kind=data.kind.value,
        parent_id=data.parent_id,
        township_id=data.township_id,
        stated_at=at,
        stated=content,
    )
