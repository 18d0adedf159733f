"""Volunteer teams as the notice organises them, against the real broker: the city's 志愿服务
总队, a 大队 per township under it that belongs to the township, 分队 under those. Each
township registers its own teams and publishes activities for them; the other township
cannot."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from types import ModuleType
from typing import Any

from shared.events import ActivityScheduledEvent, UnitKind, UnitRegistered, UnitRegisteredEvent
from tests.integration.test_townships import (  # noqa: F401  (townships: a fixture)
    eventually,
    office_registers,
    registered,
    scheduled,
    townships,
    two_towns,
)
from tests.support import Tap
from wmsj.client import TownshipClient

K = UnitKind


async def test_townships_register_their_brigades_under_the_citys_general_team_and_publish_for_them(
    apps: dict[str, ModuleType],
    townships: Callable[..., Any],  # noqa: F811  (the fixture imported above)
    township: TownshipClient,
    tap: Tap,
) -> None:
    a, b = two_towns()
    city_team = f"zd-{secrets.token_hex(4)}"  # 总队: a team may use any id
    # The office registers the townships and the city's 总队 (city level: no township).
    await office_registers(
        township,
        apps,
        UnitRegistered(unit_id=a, name="A镇", kind=K.TOWN),
        UnitRegistered(unit_id=b, name="B镇", kind=K.TOWN),
        UnitRegistered(unit_id=city_team, name="新时代文明实践志愿服务总队", kind=K.GENERAL_TEAM),
    )
    town_a: TownshipClient = await townships(a)
    town_b: TownshipClient = await townships(b)

    # Each township registers its 大队 under the city's 总队, stating that it is the
    # township's, and a 分队 under it (its township derived from the 大队).
    teams: dict[str, list[str]] = {}
    for town, client in ((a, town_a), (b, town_b)):
        brigade, squad = f"{town}-DD", f"{town}-FD1"
        teams[town] = [brigade, squad]
        for data in (
            UnitRegistered(
                unit_id=brigade, name="志愿服务大队", kind=K.BRIGADE, parent_id=city_team, township_id=town
            ),
            UnitRegistered(unit_id=squad, name="文艺志愿服务分队", kind=K.SQUAD, parent_id=brigade),
        ):
            await client.publish(registered(data, source=f"/townships/{town}"))

    async def known() -> bool:
        units = [await apps["activities"].units.get(u) for town in (a, b) for u in teams[town]]
        return all(u is not None for u in units)

    await eventually(known)
    registry = apps["registry"].units
    for town in (a, b):
        brigade_unit, squad_unit = [await registry.get(u) for u in teams[town]]
        assert brigade_unit is not None and squad_unit is not None
        assert (brigade_unit.township_id, brigade_unit.ancestors) == (town, (city_team,))
        assert (squad_unit.township_id, squad_unit.ancestors) == (town, (city_team, f"{town}-DD"))
    assert town_a.rejections == [] and town_b.rejections == []

    # A publishes activities for its 大队 and 分队: accepted, as for any unit of its subtree.
    own = [scheduled(f"act-{secrets.token_hex(4)}", unit, source=f"/townships/{a}") for unit in teams[a]]
    for event in own:
        await town_a.publish(event)
    for event in own:
        await tap.wait_for(
            lambda e, i=event.data.activity_id: e.subject == i and e.type == ActivityScheduledEvent.TYPE,
            timeout=30,
        )

    # A cannot publish for B's 分队, nor claim a team under the city's 总队 for B, nor hang
    # a city-level team (no township stated) under it.
    intruding = scheduled(f"act-{secrets.token_hex(4)}", f"{b}-FD1", source=f"/townships/{a}")
    claim = registered(
        UnitRegistered(unit_id=f"{a}-DD2", name="大队", kind=K.BRIGADE, parent_id=city_team, township_id=b),
        source=f"/townships/{a}",
    )
    city_level = registered(
        UnitRegistered(unit_id=f"{a}-DD3", name="大队", kind=K.BRIGADE, parent_id=city_team),
        source=f"/townships/{a}",
    )
    for event in (intruding, claim, city_level):
        await town_a.publish(event)
    by_id = {r.rejected_id: r for r in await town_a.wait_for_rejections(3, timeout=60)}
    scope = f"township {a} may only publish about units in its own subtree; unit"
    assert {i: (r.reason, r.rejected_by) for i, r in by_id.items()} == {
        intruding.id: (f"{scope} {b}-FD1 is not in it", "activities"),
        claim.id: (f"{scope} {a}-DD2 is not in it", "registry"),
        city_level.id: (f"{scope} {a}-DD3 is in no township (city level)", "registry"),
    }
    assert await apps["activities"].activities.get(intruding.data.activity_id) is None
    assert await registry.get(f"{a}-DD2") is None and await registry.get(f"{a}-DD3") is None
    assert tap.matching(lambda e: e.subject == f"{a}-DD2" and e.type == UnitRegisteredEvent.TYPE) == []
