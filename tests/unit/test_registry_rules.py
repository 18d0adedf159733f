"""Registry rules: the latest-stated details of a unit win, whatever order they arrive in;
the hierarchy rules, each refused with its own reason; volunteers' rules; scope."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from services.registry.domain import (
    ALLOWED_PARENTS,
    TOWNSHIP_LEVEL,
    RefusedUnit,
    Unit,
    apply_registration,
    check_registration,
    credit_code_problem,
    moved_subtree,
    outstayed,
    outstayed_reason,
)
from services.registry.volunteers import apply_volunteer
from shared.events import UnitKind, UnitRegistered
from shared.events.units import UnitRegisteredV2, VolunteerRegistered
from shared.identity import TOWNSHIP_KINDS, Publisher, Unidentified, identify, owning_township
from shared.pii import Vault, id_card_checksum

T0 = datetime(2020, 6, 1, 1, 0, tzinfo=UTC)
LATER = T0 + timedelta(hours=1)
K = UnitKind


def known(unit_id: str, kind: UnitKind, parent: Unit | None = None, township: str | None = None) -> Unit:
    """A unit as the registry holds it."""
    data = UnitRegisteredV2(
        unit_id=unit_id, name=unit_id, kind=kind, parent_id=parent.unit_id if parent else None
    )
    placed = apply_registration(None, data, T0, parent)
    assert placed is not None
    return placed


CITY = known("431381", K.CITY)
TOWN = known("431381101", K.TOWN, CITY)
OTHER_TOWN = known("431381103", K.TOWN, CITY)
VILLAGE = known("431381101201", K.VILLAGE, TOWN)
INSTITUTE = known("431381101-S", K.PRACTICE_INSTITUTE, TOWN)


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


def refusal(data: UnitRegistered | UnitRegisteredV2, parent: Unit | None, current: Unit | None = None) -> str:
    with pytest.raises(RefusedUnit) as refused:
        apply_registration(current, data, LATER, parent)
    return str(refused.value)


# ------------------------------------------------------------------ latest statement wins


def test_a_new_unit_is_registered_with_its_details_township_and_ancestors():
    registered = apply_registration(None, unit(), T0, TOWN)
    assert registered is not None
    assert (registered.unit_id, registered.name, registered.kind) == (
        "431381101201",
        "禾青镇第一村",
        "village",
    )
    assert registered.township_id == "431381101"
    assert registered.ancestors == ("431381", "431381101")
    assert (registered.stated_at, registered.stated) == (T0, unit().model_dump_json())


def test_the_unit_kind_is_kept_as_its_plain_value():
    registered = apply_registration(None, unit(), T0, TOWN)
    assert registered is not None
    assert type(registered.kind) is str


def test_an_identical_restatement_changes_nothing():
    current = apply_registration(None, unit(), T0, TOWN)
    assert apply_registration(current, unit(), T0, TOWN) is None


def test_a_later_statement_wins():
    current = apply_registration(None, unit(), T0, TOWN)
    updated = apply_registration(current, unit(name="禾青镇青山村"), LATER, TOWN)
    assert updated is not None
    assert (updated.name, updated.stated_at) == ("禾青镇青山村", LATER)


def test_an_earlier_statement_arriving_after_a_later_one_changes_nothing():
    current = apply_registration(None, unit(name="禾青镇青山村"), LATER, TOWN)
    assert apply_registration(current, unit(), T0, TOWN) is None


def test_a_later_statement_of_the_same_details_moves_the_statement_time_on():
    current = apply_registration(None, unit(), T0, TOWN)
    updated = apply_registration(current, unit(), LATER, TOWN)
    assert updated is not None
    assert updated.stated_at == LATER


def test_two_different_statements_made_at_the_same_time_give_the_same_unit_in_either_order():
    a, b = unit(name="禾青镇第一村"), unit(name="禾青镇青山村")

    def arrive(first: UnitRegistered, second: UnitRegistered) -> Unit:
        current = apply_registration(None, first, T0, TOWN)
        assert current is not None
        return apply_registration(current, second, T0, TOWN) or current

    assert arrive(a, b) == arrive(b, a)


def test_a_v1_restatement_keeps_the_title_and_contacts_a_v2_statement_gave():
    v2 = UnitRegisteredV2(
        unit_id="431381101",
        name="禾青镇",
        kind=K.TOWN,
        parent_id="431381",
        category="civilized_village_town",  # type: ignore[arg-type]
        title_held_since=date(2018, 1, 1),
        title_review_due=date(2021, 1, 1),
    )
    current = apply_registration(None, v2, T0, CITY)
    v1 = UnitRegistered(unit_id="431381101", name="禾青镇人民政府", kind=K.TOWN, parent_id="431381")
    updated = apply_registration(current, v1, LATER, CITY)
    assert updated is not None and updated.name == "禾青镇人民政府"
    assert (updated.category, updated.title_review_due) == ("civilized_village_town", date(2021, 1, 1))


# ------------------------------------------------------------------ rule 1: own parent


def test_a_unit_cannot_be_its_own_parent():
    assert refusal(unit(parent_id="431381101201"), None) == "unit 431381101201 cannot be its own parent"


def test_a_self_parent_is_refused_even_for_a_known_unit():
    current = apply_registration(None, unit(), T0, TOWN)
    with pytest.raises(RefusedUnit):
        apply_registration(current, unit(parent_id="431381101201"), LATER, None)


# ------------------------------------------------------------------ rule 2: id formats


@pytest.mark.parametrize(
    ("kind", "unit_id", "digits"),
    [
        (K.TOWN, "4313811", 9),
        (K.VILLAGE, "43138110120A", 12),
        (K.CITY, "43138", 6),
        (K.STREET, "x431381001", 9),
    ],
)
def test_an_administrative_units_id_is_its_division_code(kind: UnitKind, unit_id: str, digits: int):
    with pytest.raises(RefusedUnit) as refused:
        check_registration(UnitRegistered(unit_id=unit_id, name="x", kind=kind, parent_id="431381"))
    assert str(refused.value) == (
        f"unit {unit_id}: a {kind.value}'s id is its {digits}-digit division code (行政区划代码)"
    )


def _credit_code(first17: str) -> str:
    chars = "0123456789ABCDEFGHJKLMNPQRTUWXY"
    weights = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
    total = sum(chars.index(c) * w for c, w in zip(first17, weights, strict=True))
    return first17 + chars[(31 - total % 31) % 31]


def test_an_enterprises_id_is_a_unified_social_credit_code_with_its_check_character():
    good = _credit_code("91431381MA4L0XY81")
    assert credit_code_problem(good) is None
    check_registration(UnitRegistered(unit_id=good, name="冷水江钢铁", kind=K.ENTERPRISE))
    wrong_check = good[:17] + ("0" if good[17] != "0" else "1")
    with pytest.raises(RefusedUnit) as refused:
        check_registration(UnitRegistered(unit_id=wrong_check, name="x", kind=K.ENTERPRISE))
    assert str(refused.value).endswith("the unified social credit code's check character is wrong")
    with pytest.raises(RefusedUnit) as refused:
        check_registration(UnitRegistered(unit_id="ENT-1", name="x", kind=K.INSTITUTION))
    assert "must be an 18-character unified social credit code" in str(refused.value)


def test_practice_units_and_teams_may_use_any_id():
    check_registration(UnitRegistered(unit_id="431381101-FD1", name="分队", kind=K.SQUAD, parent_id="x"))


# ------------------------------------------------------------------ rule 3: parent kinds


def test_a_unit_that_must_have_a_parent_states_one():
    with pytest.raises(RefusedUnit) as refused:
        check_registration(UnitRegistered(unit_id="431381101-Z", name="站", kind=K.PRACTICE_STATION))
    assert str(refused.value) == "unit 431381101-Z: a practice_station must state its parent_id"


def test_a_village_cannot_be_under_a_practice_institute():
    data = unit(parent_id="431381101-S", township_id=None)
    assert refusal(data, INSTITUTE) == (
        "unit 431381101201: a village cannot be under a practice_institute (431381101-S); "
        "its parent may be: street, town, township"
    )


def test_a_township_cannot_be_under_a_village():
    data = UnitRegistered(unit_id="431381105", name="镇", kind=K.TOWN, parent_id="431381101201")
    assert "a town cannot be under a village (431381101201)" in refusal(data, VILLAGE)


def test_a_city_is_only_ever_a_root():
    assert ALLOWED_PARENTS[K.CITY] == frozenset({None})


@pytest.mark.parametrize(
    ("kind", "unit_id", "parent"),
    [
        (K.PRACTICE_INSTITUTE, "431381101-S2", TOWN),
        (K.PRACTICE_STATION, "431381101201-Z", VILLAGE),
        (K.SQUAD, "431381101-FD1", INSTITUTE),
        (K.COMMUNITY, "431381101001", TOWN),
    ],
)
def test_units_are_accepted_under_the_parents_the_notice_gives_them(
    kind: UnitKind, unit_id: str, parent: Unit
):
    data = UnitRegistered(unit_id=unit_id, name="x", kind=kind, parent_id=parent.unit_id)
    assert apply_registration(None, data, T0, parent) is not None


# ------------------------------------------------------------------ rule 4: no cycles


def test_the_kind_rules_alone_make_cycles_impossible_but_among_general_teams():
    # Every allowed parent kind is "higher" than its child's, except a 总队 under a 总队 (a
    # township's under the city's): the cycle check (next tests) stands guard there.
    order: dict[UnitKind, int] = {}

    def height(kind: UnitKind, seen: frozenset[UnitKind] = frozenset()) -> int:
        assert kind not in seen, f"kind cycle through {kind}"
        parents = [p for p in ALLOWED_PARENTS[kind] if p is not None and p != kind]
        return order.setdefault(kind, 1 + max((height(p, seen | {kind}) for p in parents), default=0))

    for kind in UnitKind:
        height(kind)


def test_a_general_team_cannot_move_under_its_own_sub_team():
    city_team = known("431381-ZD", K.GENERAL_TEAM, CITY)
    town_team = placed_team("431381101-ZD", K.GENERAL_TEAM, city_team, "431381101")
    moving = UnitRegistered(unit_id="431381-ZD", name="总队", kind=K.GENERAL_TEAM, parent_id="431381101-ZD")
    with pytest.raises(RefusedUnit, match="is in its own subtree"):
        apply_registration(city_team, moving, LATER, town_team)


def test_a_cycle_is_refused_with_its_reason():
    # A parent whose ancestors include the moving unit: moving there would close a loop.
    below = replace(CITY, unit_id="431382", ancestors=("431381", "431381101"))
    moving = UnitRegistered(unit_id="431381101", name="禾青镇", kind=K.TOWN, parent_id="431382")
    with pytest.raises(RefusedUnit) as refused:
        apply_registration(TOWN, moving, LATER, below)
    assert (
        str(refused.value)
        == "unit 431381101 cannot move under 431382: 431382 is in its own subtree (a cycle)"
    )


# ------------------------------------------------------------------ rule 5: division prefix


def test_a_villages_code_begins_with_its_townships():
    data = unit(unit_id="431381103201", township_id=None)
    assert refusal(data, TOWN) == (
        "unit 431381103201: a village's division code begins with its township's (431381101)"
    )


# ------------------------------------------------------------------ rule 6: owning township


def test_the_owning_township_is_derived_from_the_parent_when_left_out():
    station = UnitRegistered(
        unit_id="431381101201-Z", name="站", kind=K.PRACTICE_STATION, parent_id=VILLAGE.unit_id
    )
    placed = apply_registration(None, station, T0, VILLAGE)
    assert placed is not None and placed.township_id == "431381101" and placed.owner == "431381101"


def test_a_stated_township_that_disagrees_with_the_parent_is_refused():
    data = unit(township_id="431381103")
    assert refusal(data, TOWN) == (
        "unit 431381101201: township_id 431381103 does not match its parent 431381101, which is in "
        "township 431381101"
    )


def placed_team(unit_id: str, kind: UnitKind, parent: Unit, township: str | None) -> Unit:
    data = UnitRegistered(
        unit_id=unit_id, name=unit_id, kind=kind, parent_id=parent.unit_id, township_id=township
    )
    placed = apply_registration(None, data, T0, parent)
    assert placed is not None
    return placed


def test_a_townships_teams_sit_under_the_citys_general_team_and_belong_to_the_township():
    # The notice: the city's 志愿服务总队, a 大队 per township under it, 分队 under those.
    city_team = known("431381-ZD", K.GENERAL_TEAM, CITY)
    assert city_team.owner is None
    brigade = placed_team("431381101-DD", K.BRIGADE, city_team, "431381101")
    assert (brigade.owner, brigade.ancestors) == ("431381101", ("431381", "431381-ZD"))
    squad = placed_team("431381101-FD", K.SQUAD, brigade, None)  # derived from its 大队
    assert squad.owner == "431381101"
    general = placed_team("431381101-ZD", K.GENERAL_TEAM, city_team, "431381101")
    assert general.owner == "431381101"
    # Stating no township, a team under the city's is the city's.
    assert placed_team("431381-DD", K.BRIGADE, city_team, None).owner is None


def test_a_team_under_a_townships_team_cannot_claim_another_township():
    city_team = known("431381-ZD", K.GENERAL_TEAM, CITY)
    brigade = placed_team("431381101-DD", K.BRIGADE, city_team, "431381101")
    data = UnitRegistered(
        unit_id="431381101-FD", name="分队", kind=K.SQUAD, parent_id=brigade.unit_id, township_id="431381103"
    )
    assert refusal(data, brigade) == (
        "unit 431381101-FD: township_id 431381103 does not match its parent 431381101-DD, which is in "
        "township 431381101"
    )


def test_only_teams_under_a_city_team_take_the_township_they_state():
    # A practice station under a city department stays city level whatever it states.
    department = known("431381-WMB", K.DEPARTMENT, CITY)
    data = UnitRegistered(
        unit_id="431381-WMB-Z",
        name="站",
        kind=K.PRACTICE_STATION,
        parent_id=department.unit_id,
        township_id="431381101",
    )
    assert refusal(data, department) == (
        "unit 431381-WMB-Z: township_id 431381101 does not match its parent 431381-WMB, which is in no township (city level)"
    )


def test_a_township_team_under_the_city_team_keeps_its_township_when_the_city_team_moves():
    city_team = known("431381-ZD", K.GENERAL_TEAM, CITY)
    brigade = placed_team("431381101-DD", K.BRIGADE, city_team, "431381101")
    squad = placed_team("431381101-FD", K.SQUAD, brigade, None)
    centre = known("431381-C", K.PRACTICE_CENTRE, CITY)
    moved = apply_registration(
        city_team,
        UnitRegistered(unit_id="431381-ZD", name="总队", kind=K.GENERAL_TEAM, parent_id=centre.unit_id),
        LATER,
        centre,
    )
    assert moved is not None
    followed = {u.unit_id: u for u in moved_subtree(moved, [brigade, squad])}
    assert followed["431381101-DD"].township_id == "431381101"
    assert followed["431381101-FD"].township_id == "431381101"
    assert followed["431381101-FD"].ancestors == ("431381", "431381-C", "431381-ZD", "431381101-DD")


def test_a_townships_own_township_is_itself():
    with pytest.raises(RefusedUnit) as refused:
        check_registration(
            UnitRegistered(unit_id="431381101", name="镇", kind=K.TOWN, township_id="431381103")
        )
    assert str(refused.value) == "unit 431381101 is a town: its township_id is itself, not 431381103"


# ------------------------------------------------------------------ rule 7: moves


def test_a_move_takes_the_subtree_along():
    station = known("431381101201-Z", K.PRACTICE_STATION, VILLAGE)
    squad = known("431381101201-FD", K.SQUAD, station)
    # The institute's station tree moves: the station moves from the village to the other
    # town's institute; its squad follows with new ancestors and township.
    other_institute = known("431381103-S", K.PRACTICE_INSTITUTE, OTHER_TOWN)
    moved = apply_registration(
        station,
        UnitRegistered(unit_id=station.unit_id, name="站", kind=K.PRACTICE_STATION, parent_id="431381103-S"),
        LATER,
        other_institute,
    )
    assert moved is not None and moved.township_id == "431381103"
    [followed] = moved_subtree(moved, [squad])
    assert followed.unit_id == squad.unit_id
    assert followed.ancestors == ("431381", "431381103", "431381103-S", "431381101201-Z")
    assert followed.township_id == "431381103"


def test_a_rename_moves_nothing():
    station = known("431381101201-Z", K.PRACTICE_STATION, VILLAGE)
    squad = known("431381101201-FD", K.SQUAD, station)
    renamed = replace(station, name="新站名")
    assert moved_subtree(renamed, [squad]) == []


# ------------------------------------------------------------------ identity and scope


def test_the_publisher_is_the_broker_checked_user():
    assert identify("guest") == Publisher("guest", None)
    assert identify("township-431381101") == Publisher("township-431381101", "431381101")
    with pytest.raises(Unidentified, match="no user_id property"):
        identify(None)
    with pytest.raises(Unidentified, match="neither a township system nor the office"):
        identify("mallory")


def test_a_township_may_publish_only_about_its_own_subtree():
    township = Publisher("township-431381101", "431381101")
    assert township.may_not_publish_about("431381101201", "431381101") is None
    assert township.may_not_publish_about("431381103201", "431381103") == (
        "township 431381101 may only publish about units in its own subtree; unit 431381103201 is not in it"
    )
    assert "no township (city level)" in (township.may_not_publish_about("431381", None) or "")
    assert Publisher("guest", None).may_not_publish_about("431381103201", "431381103") is None


def test_a_units_owning_township_is_itself_at_township_level_else_its_township():
    for kind in TOWNSHIP_LEVEL:
        assert owning_township("431381101", kind, None) == "431381101"
        assert owning_township("431381101", kind.value, "431381101") == "431381101"
    assert owning_township("431381101201", "village", "431381101") == "431381101"
    assert owning_township("431381-ZX", "practice_centre", None) is None
    assert {k.value for k in TOWNSHIP_LEVEL} == TOWNSHIP_KINDS


def test_only_the_office_publishes_office_only_types():
    township = Publisher("township-431381101", "431381101")
    assert township.may_not_publish_type("wmsj.projects.published.v1", "office") == (
        "only the city office may publish wmsj.projects.published.v1; "
        "township-431381101 is township 431381101's system"
    )
    assert township.may_not_publish_type("wmsj.activity.scheduled.v1", "township") is None
    assert Publisher("guest", None).may_not_publish_type("wmsj.projects.published.v1", "office") is None


# ------------------------------------------------------------------ volunteers

VAULT = Vault("ZGV2LW9ubHktd21zai1waWkta2V5LW5vdC1zZWNyZXQ=")
CARD = "43138119900101123" + id_card_checksum("43138119900101123")


def volunteer(**changes: object) -> VolunteerRegistered:
    fields: dict[str, object] = {
        "volunteer_id": "v1",
        "name": "王芳",
        "id_card": CARD,
        "phone": "13812345678",
        "unit_id": VILLAGE.unit_id,
    }
    fields.update(changes)
    return VolunteerRegistered.model_validate(fields)


def test_a_volunteer_is_stored_sealed_and_shown_masked():
    v = apply_volunteer(None, volunteer(), T0, unit=VILLAGE, teams={}, holder_of_card=None, vault=VAULT)
    assert v is not None
    assert CARD not in repr(v) and "13812345678" not in repr(v)
    shown = v.masked(VAULT)
    assert shown["id_card"] == CARD[:4] + "*" * 10 + CARD[-4:]
    assert shown["phone"] == "138****5678"
    assert v.township_id == "431381101"


def test_a_volunteer_of_an_unknown_unit_is_refused():
    with pytest.raises(RefusedUnit) as refused:
        apply_volunteer(None, volunteer(), T0, unit=None, teams={}, holder_of_card=None, vault=VAULT)
    assert (refused.value.column, str(refused.value)) == (
        "unit_id",
        "volunteer v1: unit 431381101201 is not registered; register it first",
    )


def test_a_team_must_be_a_volunteer_team():
    with pytest.raises(RefusedUnit) as refused:
        apply_volunteer(
            None,
            volunteer(team_ids=[VILLAGE.unit_id]),
            T0,
            unit=VILLAGE,
            teams={VILLAGE.unit_id: VILLAGE},
            holder_of_card=None,
            vault=VAULT,
        )
    assert refused.value.column == "team_ids"


def test_one_id_card_is_one_volunteer():
    with pytest.raises(RefusedUnit) as refused:
        apply_volunteer(None, volunteer(), T0, unit=VILLAGE, teams={}, holder_of_card="v9", vault=VAULT)
    assert str(refused.value) == "volunteer v1: this ID-card number is already registered"  # names no one


def test_a_restated_volunteer_changes_nothing():
    v = apply_volunteer(None, volunteer(), T0, unit=VILLAGE, teams={}, holder_of_card=None, vault=VAULT)
    assert (
        apply_volunteer(v, volunteer(), T0, unit=VILLAGE, teams={}, holder_of_card="v1", vault=VAULT) is None
    )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("id_card", CARD[:17] + ("0" if CARD[17] != "0" else "1"), "check character is wrong"),
        ("id_card", "1234", "18-character resident ID-card number"),
        ("phone", "1381234567", "11-digit mainland mobile number"),
    ],
)
def test_id_cards_and_phones_are_checked_without_echoing_them(field: str, value: str, message: str):
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as caught:
        volunteer(**{field: value})
    [error] = caught.value.errors(include_input=False)
    assert message in error["msg"] and value not in error["msg"]


# ------------------------------------------------------------------ held statements


def test_a_held_statement_outstays_the_hold_once_it_has_waited_that_long():
    now = datetime(2020, 6, 1, 12, tzinfo=UTC)
    hold = timedelta(hours=1)
    fresh = {"key": "a", "held_at": now - timedelta(minutes=59)}
    due = {"key": "b", "held_at": now - hold}
    untimed = {"key": "c"}  # held before holds were timed
    assert outstayed([fresh, due, untimed], now, hold) == [due, untimed]
    assert outstayed([], now, hold) == []


def test_an_outstayed_statement_says_what_it_waited_for_and_what_to_do():
    unit = {"what": "unit", "statement": {"unit_id": "431381101201-Z"}}
    assert outstayed_reason(unit, "431381101201", timedelta(hours=1)) == (
        "unit 431381101201-Z: its parent 431381101201 is not registered; register the parent "
        "first, then send the unit again (held 1 h waiting for it)"
    )
    volunteer = {"what": "volunteer", "volunteer_id": "v1"}
    assert outstayed_reason(volunteer, "431381101201", timedelta(minutes=30)) == (
        "volunteer v1: unit 431381101201 is not registered; register it first, then send the "
        "volunteer again (held 30 min waiting for it)"
    )
    legacy = {"statement": {"unit_id": "u"}, "version": 1}  # held before entries said what they are
    assert outstayed_reason(legacy, "p", timedelta(seconds=90)).startswith("unit u: its parent p")
