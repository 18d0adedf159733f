"""Registry rules: the latest-stated details of a unit win, whatever order they arrive in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.registry.domain import RefusedUnit, Unit, apply_registration
from shared.events import UnitKind, UnitRegistered

T0 = datetime(2020, 6, 1, 1, 0, tzinfo=UTC)
LATER = T0 + timedelta(hours=1)


def unit(name: str = "禾青镇第一村", **changes: object) -> UnitRegistered:
    fields: dict[str, object] = {
        "unit_id": "431381101201",
        "name": name,
        "kind": UnitKind.VILLAGE,
        "parent_id": "431381101",
        "township_id": "431381101",
    }
    fields.update(changes)
    return UnitRegistered.model_validate(fields)


def test_a_new_unit_is_registered_with_its_details_and_statement_time():
    assert apply_registration(None, unit(), T0) == Unit(
        unit_id="431381101201",
        name="禾青镇第一村",
        kind="village",
        parent_id="431381101",
        township_id="431381101",
        stated_at=T0,
        stated=unit().model_dump_json(),
    )


def test_the_unit_kind_is_kept_as_its_plain_value():
    registered = apply_registration(None, unit(), T0)
    assert registered is not None
    assert type(registered.kind) is str


def test_an_identical_restatement_changes_nothing():
    current = apply_registration(None, unit(), T0)
    assert apply_registration(current, unit(), T0) is None


def test_a_later_statement_wins():
    current = apply_registration(None, unit(), T0)
    updated = apply_registration(current, unit(name="禾青镇青山村"), LATER)
    assert updated is not None
    assert (updated.name, updated.stated_at) == ("禾青镇青山村", LATER)


def test_an_earlier_statement_arriving_after_a_later_one_changes_nothing():
    current = apply_registration(None, unit(name="禾青镇青山村"), LATER)
    assert apply_registration(current, unit(), T0) is None


def test_a_later_statement_of_the_same_details_moves_the_statement_time_on():
    current = apply_registration(None, unit(), T0)
    updated = apply_registration(current, unit(), LATER)
    assert updated is not None
    assert updated.stated_at == LATER


def test_a_unit_cannot_be_its_own_parent():
    with pytest.raises(RefusedUnit) as refused:
        apply_registration(None, unit(parent_id="431381101201"), T0)
    assert str(refused.value) == "unit 431381101201 cannot be its own parent"


def test_a_self_parent_is_refused_even_for_a_known_unit():
    current = apply_registration(None, unit(), T0)
    with pytest.raises(RefusedUnit):
        apply_registration(current, unit(parent_id="431381101201"), LATER)


def test_two_different_statements_made_at_the_same_time_give_the_same_unit_in_either_order():
    # The docstring promises a result that does not depend on arrival order; a township
    # batch can stamp two statements with the same time.
    a, b = unit(name="禾青镇第一村"), unit(name="禾青镇青山村")

    def arrive(first: UnitRegistered, second: UnitRegistered) -> Unit:
        current = apply_registration(None, first, T0)
        assert current is not None
        return apply_registration(current, second, T0) or current

    assert arrive(a, b) == arrive(b, a)
