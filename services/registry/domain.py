"""Registry rules, pure: no I/O, so they are tested without servers.

A unit sits in one tree: the city at the top, townships (乡/镇/街道) under it, villages and
communities under those, practice institutes (所) and stations (站) and volunteer teams
(总队/大队/分队) where the notice puts them. The rules, each refused with its own reason:

1. a unit is not its own parent;
2. its id has the format of its kind (division codes for administrative units, unified social
   credit codes for enterprises and institutions);
3. its parent is of a kind allowed for it (``ALLOWED_PARENTS``); units that must have a
   parent (a village, a station…) state one;
4. no cycles: a unit cannot move under one of its own descendants;
5. a village's or community's division code begins with its township's;
6. the owning township is the parent's: a stated ``township_id`` that disagrees is refused
   (left out, it is derived). Volunteer teams cross the administrative hierarchy (the notice
   puts a township's 志愿服务大队 under the city's 总队): a team under a city-level team
   belongs to the township it states (``team_township``), and is that township's to publish
   about; stated nothing, it is city level like its parent;
7. a move takes the subtree along: every descendant gets the new ancestors and township.

Out of order: a child may arrive before its parent. It is then *held* (not refused: it is
only early) and applied, with every rule, when the parent arrives. So is a volunteer whose
unit is not known yet. A hold is bounded: a statement still waiting after the hold time is
refused (``outstayed``, from ``shared.hold_rules`` like the other services' holds, and
``outstayed_reason``), so that every statement gets an answer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

from shared.events import UnitKind, UnitRegistered, statement
from shared.events.units import UnitRegisteredV2
from shared.hold_rules import duration
from shared.hold_rules import outstayed as outstayed  # the registry's rule, shared with the other holds
from shared.identity import TOWNSHIP_KINDS, owning_township

K = UnitKind
TOWNSHIP_LEVEL = frozenset(UnitKind(k) for k in TOWNSHIP_KINDS)  # 乡镇/街道: they own a subtree
TEAMS = frozenset({K.GENERAL_TEAM, K.BRIGADE, K.SQUAD})
_HOSTS = frozenset({K.ENTERPRISE, K.SCHOOL, K.INSTITUTION, K.DEPARTMENT})  # units that host teams/stations

# child kind -> the kinds its parent may be; None in the set: it may be a root (no parent).
ALLOWED_PARENTS: dict[UnitKind, frozenset[UnitKind | None]] = {
    K.CITY: frozenset({None}),
    K.TOWNSHIP: frozenset({None, K.CITY}),
    K.TOWN: frozenset({None, K.CITY}),
    K.STREET: frozenset({None, K.CITY}),
    K.VILLAGE: TOWNSHIP_LEVEL,
    K.COMMUNITY: TOWNSHIP_LEVEL,
    K.DEPARTMENT: frozenset({None, K.CITY}),
    K.ENTERPRISE: frozenset({None, K.CITY, K.DEPARTMENT, *TOWNSHIP_LEVEL}),
    K.SCHOOL: frozenset({None, K.CITY, K.DEPARTMENT, *TOWNSHIP_LEVEL}),
    K.INSTITUTION: frozenset({None, K.CITY, K.DEPARTMENT, *TOWNSHIP_LEVEL}),
    K.PRACTICE_CENTRE: frozenset({None, K.CITY}),
    K.PRACTICE_INSTITUTE: frozenset({K.PRACTICE_CENTRE, *TOWNSHIP_LEVEL}),
    K.PRACTICE_STATION: frozenset({K.PRACTICE_INSTITUTE, K.VILLAGE, K.COMMUNITY, *_HOSTS}),
    K.GENERAL_TEAM: frozenset({None, K.CITY, K.PRACTICE_CENTRE, K.DEPARTMENT, K.GENERAL_TEAM}),
    K.BRIGADE: frozenset({K.GENERAL_TEAM, K.PRACTICE_INSTITUTE, K.DEPARTMENT, *TOWNSHIP_LEVEL}),
    K.SQUAD: frozenset(
        {K.BRIGADE, K.PRACTICE_INSTITUTE, K.PRACTICE_STATION, K.VILLAGE, K.COMMUNITY, *_HOSTS}
    ),
}

# Division codes (行政区划代码): 6 digits for a county-level city, 9 for a township, 12 for a
# village or community. Unified social credit codes (统一社会信用代码, GB 32100): 18 characters.
_DIVISION_DIGITS = {K.CITY: 6, K.TOWNSHIP: 9, K.TOWN: 9, K.STREET: 9, K.VILLAGE: 12, K.COMMUNITY: 12}
_CREDIT_CODE_KINDS = frozenset({K.ENTERPRISE, K.INSTITUTION})
_USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def credit_code_problem(code: str) -> str | None:
    if len(code) != 18 or any(c not in _USCC_CHARS for c in code):
        return "must be an 18-character unified social credit code (digits and capitals, no I/O/S/V/Z)"
    total = sum(_USCC_CHARS.index(c) * w for c, w in zip(code[:17], _USCC_WEIGHTS, strict=True))
    if _USCC_CHARS[(31 - total % 31) % 31] != code[17]:
        return "the unified social credit code's check character is wrong"
    return None


@dataclass(frozen=True)
class Unit:
    """A unit in the programme: township, village, school, practice station, volunteer team…"""

    unit_id: str
    name: str
    kind: str
    parent_id: str | None
    township_id: str | None  # the owning township (乡镇/街道); the unit itself if it is one
    stated_at: datetime  # time of the event that last stated these details
    stated: str  # its canonical content, the tie-break between statements made at one time
    ancestors: tuple[str, ...] = ()  # root first, up to the parent
    category: str | None = None
    title_held_since: date | None = None
    title_review_due: date | None = None
    contacts: tuple[dict[str, str], ...] = field(default=())
    active: bool = True

    @property
    def owner(self) -> str | None:
        """The township whose subtree the unit is in (itself for a township)."""
        return owning_township(self.unit_id, self.kind, self.township_id)


class RefusedUnit(ValueError):
    def __init__(self, reason: str, column: str = "unit_id") -> None:
        super().__init__(reason)
        self.column = column  # the field at fault, for a spreadsheet's error report


def as_v2(data: UnitRegistered | UnitRegisteredV2) -> UnitRegisteredV2:
    if isinstance(data, UnitRegisteredV2):
        return data
    return UnitRegisteredV2(**data.model_dump())


def check_registration(data: UnitRegistered | UnitRegisteredV2) -> None:
    """Refuse what can never be right, whatever else the registry holds (rules 1-3 in part).
    ``wmsj validate`` applies this offline."""
    if data.parent_id == data.unit_id:
        raise RefusedUnit(f"unit {data.unit_id} cannot be its own parent", "parent_id")
    kind = UnitKind(data.kind)
    digits = _DIVISION_DIGITS.get(kind)
    if digits and not (len(data.unit_id) == digits and data.unit_id.isdigit()):
        raise RefusedUnit(
            f"unit {data.unit_id}: a {kind.value}'s id is its {digits}-digit division code (行政区划代码)"
        )
    if kind in _CREDIT_CODE_KINDS and (problem := credit_code_problem(data.unit_id)):
        raise RefusedUnit(f"unit {data.unit_id}: a {kind.value}'s id {problem}")
    if data.parent_id is None and None not in ALLOWED_PARENTS[kind]:
        raise RefusedUnit(f"unit {data.unit_id}: a {kind.value} must state its parent_id", "parent_id")
    if kind in TOWNSHIP_LEVEL and data.township_id not in (None, data.unit_id):
        raise RefusedUnit(
            f"unit {data.unit_id} is a {kind.value}: its township_id is itself, not {data.township_id}",
            "township_id",
        )


def place(data: UnitRegisteredV2, parent: Unit | None) -> tuple[str | None, tuple[str, ...]]:
    """(owning township, ancestors) of a unit under ``parent``, or RefusedUnit (rules 3-6).
    ``parent`` is None only for a root."""
    kind = UnitKind(data.kind)
    if parent is None:
        township = data.unit_id if kind in TOWNSHIP_LEVEL else data.township_id
        return township, ()
    parent_kind = UnitKind(parent.kind)
    if parent_kind not in ALLOWED_PARENTS[kind]:
        allowed = ", ".join(sorted(k.value for k in ALLOWED_PARENTS[kind] if k is not None))
        raise RefusedUnit(
            f"unit {data.unit_id}: a {kind.value} cannot be under a {parent_kind.value} "
            f"({parent.unit_id}); its parent may be: {allowed}",
            "parent_id",
        )
    if data.unit_id == parent.unit_id or data.unit_id in parent.ancestors:
        raise RefusedUnit(
            f"unit {data.unit_id} cannot move under {parent.unit_id}: {parent.unit_id} is in its own "
            "subtree (a cycle)",
            "parent_id",
        )
    if kind in (K.VILLAGE, K.COMMUNITY) and not data.unit_id.startswith(parent.unit_id):
        raise RefusedUnit(
            f"unit {data.unit_id}: a {kind.value}'s division code begins with its township's "
            f"({parent.unit_id})"
        )
    township = data.unit_id if kind in TOWNSHIP_LEVEL else parent.owner
    township = team_township(kind, parent, data.township_id) or township
    if kind not in TOWNSHIP_LEVEL and data.township_id is not None and data.township_id != township:
        raise RefusedUnit(
            f"unit {data.unit_id}: township_id {data.township_id} does not match its parent "
            f"{parent.unit_id}, which is in {f'township {township}' if township else 'no township (city level)'}",
            "township_id",
        )
    return township, (*parent.ancestors, parent.unit_id)


def apply_registration(
    current: Unit | None,
    data: UnitRegistered | UnitRegisteredV2,
    stated_at: datetime,
    parent: Unit | None = None,
) -> Unit | None:
    """The unit after this registration, or None if nothing changes.

    Townships retry and re-order: the latest statement wins (``shared.events.statement``),
    so the result does not depend on the order the events arrive in. ``parent`` is the
    stated parent (the caller holds the statement while it is unknown).
    """
    check_registration(data)
    at, content = statement(stated_at, data)
    if current is not None and (at, content) <= (current.stated_at, current.stated):
        return None
    if data.parent_id is not None and (parent is None or parent.unit_id != data.parent_id):
        raise ValueError(f"the parent {data.parent_id} must be known before the unit is applied")
    full = as_v2(data)
    township, ancestors = place(full, parent)
    extra: dict[str, Any]
    if isinstance(data, UnitRegistered) and current is not None:
        # v1 says nothing about titles, contacts or being active: it keeps what v2 said.
        extra = {
            "category": current.category,
            "title_held_since": current.title_held_since,
            "title_review_due": current.title_review_due,
            "contacts": current.contacts,
            "active": current.active,
        }
    else:
        extra = {
            "category": full.category.value if full.category else None,
            "title_held_since": full.title_held_since,
            "title_review_due": full.title_review_due,
            "contacts": tuple(c.model_dump() for c in full.contacts),
            "active": full.active,
        }
    return Unit(
        unit_id=data.unit_id,
        name=data.name,
        kind=UnitKind(data.kind).value,
        parent_id=data.parent_id,
        township_id=township,
        stated_at=at,
        stated=content,
        ancestors=ancestors,
        **extra,
    )


def team_township(kind: UnitKind, parent: Unit, stated: str | None) -> str | None:
    """The township a team (总队/大队/分队) belongs to when it sits under a city-level team
    (the city's 总队 or 大队): the one it states. None: it takes its parent's, as every unit."""
    if kind in TEAMS and UnitKind(parent.kind) in TEAMS and parent.owner is None:
        return stated
    return None


def stated_township(unit: Unit) -> str | None:
    """The ``township_id`` the unit's latest statement gave (``Unit.stated`` is its content)."""
    try:
        return json.loads(unit.stated).get("township_id") if unit.stated else None
    except ValueError:
        return None


def moved_subtree(moved: Unit, descendants: list[Unit]) -> list[Unit]:
    """Rule 7: the descendants of ``moved`` with their new ancestors and township, parents
    before children; only those that changed."""
    by_id: dict[str, Unit] = {moved.unit_id: moved}
    out = []
    for unit in sorted(descendants, key=lambda u: len(u.ancestors)):
        parent = by_id.get(unit.parent_id or "")
        if parent is None:  # not really under ``moved`` any more
            continue
        township = unit.unit_id if unit.kind in TOWNSHIP_LEVEL else parent.owner
        township = team_township(UnitKind(unit.kind), parent, stated_township(unit)) or township
        updated = replace(unit, ancestors=(*parent.ancestors, parent.unit_id), township_id=township)
        by_id[unit.unit_id] = updated
        if updated != unit:
            out.append(updated)
    return out


def outstayed_reason(entry: dict[str, Any], waited_for: str, hold: timedelta) -> str:
    """Why a held statement is refused when its hold runs out: what it waited for, and what to do."""
    waited = f"(held {duration(hold)} waiting for it)"
    if entry.get("what") == "volunteer":
        return (
            f"volunteer {entry['volunteer_id']}: unit {waited_for} is not registered; "
            f"register it first, then send the volunteer again {waited}"
        )
    return (
        f"unit {entry['statement']['unit_id']}: its parent {waited_for} is not registered; "
        f"register the parent first, then send the unit again {waited}"
    )
