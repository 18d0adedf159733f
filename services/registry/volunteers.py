"""Volunteers (志愿者) and their service-hours ledger: the rules, pure.

Real-name registration: the ID-card number and phone are checked by the contract
(``VolunteerRegistered``), encrypted before they are stored (``shared.pii.Vault``) and only
ever shown masked. The statement tie-break is a keyed hash of the content, so not even the
ordering field holds the numbers in clear.

Ownership (``shared.ownership``): a volunteer id is the township's that first registered it;
another township cannot re-register (move, rename, re-card) that volunteer under its own
unit. An ID-card number belongs to one volunteer: registering it again under another id is
refused, and the refusal names no one (neither the volunteer nor a township).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.registry.domain import TEAMS, RefusedUnit, Unit
from shared.events import UnitKind
from shared.events.units import VolunteerRegistered
from shared.ownership import Owner, foreign, not_yours, owner_after
from shared.pii import Vault, mask_id_card, mask_phone


@dataclass(frozen=True)
class Volunteer:
    volunteer_id: str
    name: str
    id_card_sealed: str  # encrypted
    id_card_fingerprint: str  # keyed hash: finds the same person without decrypting
    phone_sealed: str
    unit_id: str
    township_id: str | None
    team_ids: tuple[str, ...]
    active: bool
    stated_at: datetime
    stated: str  # keyed hash of the statement's content (the tie-break)
    owner: Owner = None  # the township that first registered the volunteer id

    def masked(self, vault: Vault, hours: float | None = None) -> dict[str, Any]:
        """What any API response may show."""
        out: dict[str, Any] = {
            "volunteer_id": self.volunteer_id,
            "name": self.name,
            "id_card": mask_id_card(vault.open(self.id_card_sealed)),
            "phone": mask_phone(vault.open(self.phone_sealed)),
            "unit_id": self.unit_id,
            "township_id": self.township_id,
            "team_ids": list(self.team_ids),
            "active": self.active,
        }
        if hours is not None:
            out["service_hours"] = hours
        return out


def statement_key(vault: Vault, stated_at: datetime, data: VolunteerRegistered) -> tuple[datetime, str]:
    return stated_at, vault.fingerprint(data.model_dump_json())


def check_owner(current: Volunteer | None, volunteer_id: str, sender_township: str | None) -> None:
    """A volunteer id is the township's that first registered it: another township's
    statement about it is refused, naming nothing of the owner."""
    if current is not None and foreign(current.owner, sender_township):
        raise RefusedUnit(not_yours("volunteer", volunteer_id), "volunteer_id")


def apply_volunteer(
    current: Volunteer | None,
    data: VolunteerRegistered,
    stated_at: datetime,
    *,
    unit: Unit | None,
    teams: dict[str, Unit],
    holder_of_card: str | None,
    vault: Vault,
    sender_township: str | None = None,
) -> Volunteer | None:
    """The volunteer after this statement, or None if nothing changes; RefusedUnit (with the
    column at fault) if a rule is broken. ``teams`` are the known units among ``team_ids``;
    ``holder_of_card`` the volunteer already registered with this ID-card number, if any;
    ``sender_township`` the broker-checked sender's township (None: the office)."""
    check_owner(current, data.volunteer_id, sender_township)  # even an identical restatement
    at, content = statement_key(vault, stated_at, data)
    if current is not None and (at, content) <= (current.stated_at, current.stated):
        return None
    if unit is None:
        raise RefusedUnit(
            f"volunteer {data.volunteer_id}: unit {data.unit_id} is not registered; register it first",
            "unit_id",
        )
    for team_id in data.team_ids:
        team = teams.get(team_id)
        if team is None or UnitKind(team.kind) not in TEAMS:
            raise RefusedUnit(
                f"volunteer {data.volunteer_id}: {team_id} is not a registered volunteer team "
                "(general_team, brigade or squad)",
                "team_ids",
            )
    if holder_of_card is not None and holder_of_card != data.volunteer_id:
        # Personal data: whose card it is stays unsaid, whoever asks.
        raise RefusedUnit(
            f"volunteer {data.volunteer_id}: this ID-card number is already registered", "id_card"
        )
    return Volunteer(
        volunteer_id=data.volunteer_id,
        name=data.name,
        id_card_sealed=vault.seal(data.id_card),
        id_card_fingerprint=vault.fingerprint(data.id_card),
        phone_sealed=vault.seal(data.phone),
        unit_id=data.unit_id,
        township_id=unit.owner,
        team_ids=tuple(data.team_ids),
        active=data.active,
        stated_at=at,
        stated=content,
        owner=owner_after(current.owner if current else None, sender_township, unit.owner),
    )
