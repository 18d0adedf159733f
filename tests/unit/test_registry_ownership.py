"""Ownership rules of the registry (pure): a volunteer id is the township's that first
registered it; an ID-card number is one volunteer's, and refusals about it name no one."""

from __future__ import annotations

import pytest

from services.registry.domain import RefusedUnit
from services.registry.volunteers import apply_volunteer, check_owner
from shared.events import UnitKind
from tests.unit.test_registry_rules import LATER, T0, VAULT, VILLAGE, known, volunteer


def registered(sender: str | None):  # type: ignore[no-untyped-def]
    made = apply_volunteer(
        None,
        volunteer(),
        T0,
        unit=VILLAGE,
        teams={},
        holder_of_card=None,
        vault=VAULT,
        sender_township=sender,
    )
    assert made is not None
    return made


def test_a_volunteer_is_owned_by_the_township_that_registered_it_or_by_its_units_for_the_office() -> None:
    assert registered("431381101").owner == "431381101"
    assert registered(None).owner == VILLAGE.owner


def test_another_township_cannot_re_register_a_volunteer_even_identically() -> None:
    theirs = registered("431381101")
    other_village = known("431381102201", UnitKind.VILLAGE, known("431381102", UnitKind.TOWN))
    for data, unit in ((volunteer(unit_id=other_village.unit_id), other_village), (volunteer(), VILLAGE)):
        with pytest.raises(RefusedUnit) as refused:
            apply_volunteer(
                theirs,
                data,
                LATER,
                unit=unit,
                teams={},
                holder_of_card="v1",
                vault=VAULT,
                sender_township="431381102",
            )
        assert str(refused.value) == "volunteer v1 is another township's: choose an id of your own"
        assert refused.value.column == "volunteer_id"
    with pytest.raises(RefusedUnit):
        check_owner(theirs, "v1", "431381102")
    check_owner(theirs, "v1", None)  # the office keeps its powers
    check_owner(theirs, "v1", "431381101")


def test_an_id_card_registered_to_another_volunteer_names_no_one() -> None:
    with pytest.raises(RefusedUnit) as refused:
        apply_volunteer(
            None,
            volunteer(volunteer_id="v2"),
            T0,
            unit=VILLAGE,
            teams={},
            holder_of_card="v1",
            vault=VAULT,
            sender_township="431381102",
        )
    assert "v1" not in str(refused.value) and "431381101" not in str(refused.value)
    assert refused.value.column == "id_card"
