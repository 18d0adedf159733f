"""Township identity and isolation, against the real broker: each township system connects
as its own RabbitMQ user (made by ``wmsj township add``'s commands), the registry learns
who published from the broker-validated ``user_id``, and a township may only publish about
its own subtree. Also: units that arrive before their parent, and moves."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import aiormq
import pytest

from shared.events import (
    KeyProject,
    ProjectListPublished,
    ProjectListPublishedEvent,
    UnitKind,
    UnitRegistered,
    UnitRegisteredEvent,
    new_event,
)
from shared.identity import township_user
from tests.conftest import Infra
from tests.support import Tap
from wmsj.client import TownshipClient
from wmsj.townships import declare_reply_queue, rabbitmqctl_commands

T0 = datetime(2020, 6, 1, tzinfo=UTC)
K = UnitKind


def town_code() -> str:
    return f"431381{secrets.randbelow(1000):03d}"


def registered(
    data: UnitRegistered, at: datetime = T0, source: str = "/townships/test"
) -> UnitRegisteredEvent:
    return new_event(UnitRegisteredEvent, data, source=source, time=at)  # type: ignore[return-value]


def as_user(amqp_url: str, user: str, password: str) -> str:
    parts = urlsplit(amqp_url)
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{parts.hostname}:{parts.port or 5672}"
    return urlunsplit(parts._replace(netloc=netloc))


@pytest.fixture
async def townships(infra: Infra, apps: dict[str, ModuleType]) -> AsyncIterator[Callable[[str], Any]]:
    """Makes township users in the test's virtual host exactly as ``wmsj township add`` does;
    deletes them afterwards (users are broker-wide)."""
    made: dict[str, str] = {}
    clients: list[TownshipClient] = []
    vhost = urlsplit(infra.amqp_url).path[1:]

    async def make(township_id: str) -> TownshipClient:
        """A connection as the township's user (made on first use)."""
        if township_id not in made:
            made[township_id] = password = secrets.token_urlsafe(12)
            for args in rabbitmqctl_commands(township_id, password, vhost=vhost.replace("%2F", "/")):
                infra.rabbitmqctl(args)
            await declare_reply_queue(infra.amqp_url, township_id)
        password = made[township_id]
        client = TownshipClient(as_user(infra.amqp_url, township_user(township_id), password))
        clients.append(await client.__aenter__())
        return client

    yield make
    for client in clients:
        await client.__aexit__()
    for township_id in made:
        infra.rabbitmqctl(["delete_user", township_user(township_id)])


async def test_township_a_cannot_publish_about_a_unit_of_township_b(
    apps: dict[str, ModuleType], townships: Callable[[str], Any], township: TownshipClient, tap: Tap
) -> None:
    registry = apps["registry"].units
    a, b = town_code(), town_code()
    while b == a:
        b = town_code()
    village_b = f"{b}201"
    # The office registers both townships and B's village.
    for data in (
        UnitRegistered(unit_id=a, name="A镇", kind=K.TOWN),
        UnitRegistered(unit_id=b, name="B镇", kind=K.TOWN),
        UnitRegistered(unit_id=village_b, name="B镇第一村", kind=K.VILLAGE, parent_id=b),
    ):
        await township.publish(registered(data))
    await tap.wait_for(lambda e: e.subject == village_b and e.type == UnitRegisteredEvent.TYPE, timeout=30)
    before = await registry.units.find_one({"_id": village_b})
    town_a: TownshipClient = await townships(a)

    # A renames B's village, claiming it in the body to be A's: the body is not believed.
    hijack = registered(
        UnitRegistered(unit_id=village_b, name="被A改名", kind=K.VILLAGE, parent_id=b, township_id=a),
        at=T0 + timedelta(days=1),
        source=f"/townships/{a}",
    )
    await town_a.publish(hijack)
    # …and registers a new unit under B's town.
    intruder = registered(
        UnitRegistered(unit_id=f"{b}-S", name="A的所", kind=K.PRACTICE_INSTITUTE, parent_id=b),
        source=f"/townships/{a}",
    )
    await town_a.publish(intruder)

    rejections = await town_a.wait_for_rejections(2, timeout=30)
    by_id = {r.rejected_id: r for r in rejections}
    assert by_id[hijack.id].reason == (
        f"township {a} may only publish about units in its own subtree; unit {village_b} is in township {b}"
    )
    assert by_id[intruder.id].reason == (
        f"township {a} may only publish about units in its own subtree; unit {b}-S is in township {b}"
    )
    assert by_id[hijack.id].rejected_by == "registry"
    # The registry is unchanged, and B's subtree has no intruder.
    await asyncio.sleep(1)
    assert await registry.units.find_one({"_id": village_b}) == before
    assert await registry.get(f"{b}-S") is None
    assert tap.matching(lambda e: e.subject == f"{b}-S" and e.type == UnitRegisteredEvent.TYPE) == []
    # Only A heard about it: the office's client (another reply queue) did not.
    assert [r for r in township.rejections if r.rejected_id in by_id] == []

    # Its own subtree is fine.
    own = registered(UnitRegistered(unit_id=f"{a}201", name="A镇第一村", kind=K.VILLAGE, parent_id=a))
    await town_a.publish(own)
    await tap.wait_for(lambda e: e.subject == f"{a}201" and e.type == UnitRegisteredEvent.TYPE, timeout=30)
    stored = await registry.get(f"{a}201")
    assert stored is not None and stored.township_id == a


async def test_the_broker_refuses_office_only_events_and_forged_user_ids(
    apps: dict[str, ModuleType], townships: Callable[[str], Any]
) -> None:
    a = town_code()
    town_a: TownshipClient = await townships(a)
    projects = new_event(
        ProjectListPublishedEvent,
        ProjectListPublished(
            year=2020, version=1, projects=[KeyProject(project_id="P1", theme="宣讲", months=[6])]
        ),
        source=f"/townships/{a}",
        time=T0,
    )
    with pytest.raises(aiormq.exceptions.ChannelAccessRefused):
        await town_a.publish(projects)

    town_a2: TownshipClient = await townships(a)  # a fresh channel: the refusal closed the last
    unit = registered(UnitRegistered(unit_id=a, name="A镇", kind=K.TOWN))
    with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed):
        await town_a2.publish_raw(
            unit.model_dump_json().encode(), routing_key=unit.type, message_id=unit.id, user_id="guest"
        )


async def test_a_child_that_arrives_before_its_parent_is_held_then_applied(
    apps: dict[str, ModuleType], township: TownshipClient, tap: Tap
) -> None:
    registry = apps["registry"].units
    town = town_code()
    station = registered(
        UnitRegistered(unit_id=f"{town}201-Z", name="站", kind=K.PRACTICE_STATION, parent_id=f"{town}201")
    )
    village = registered(UnitRegistered(unit_id=f"{town}201", name="村", kind=K.VILLAGE, parent_id=town))
    await township.publish(station)
    await township.publish(village)
    await asyncio.sleep(1.5)
    assert township.rejections == []  # early is not wrong
    assert await registry.get(f"{town}201-Z") is None

    await township.publish(registered(UnitRegistered(unit_id=town, name="镇", kind=K.TOWN)))
    await tap.wait_for(
        lambda e: e.subject == f"{town}201-Z" and e.type == UnitRegisteredEvent.TYPE, timeout=30
    )
    held = await registry.get(f"{town}201-Z")
    assert held is not None and held.township_id == town and held.ancestors == (town, f"{town}201")
    assert township.rejections == []


async def test_a_held_child_that_breaks_a_rule_is_refused_when_its_parent_arrives(
    apps: dict[str, ModuleType], township: TownshipClient, tap: Tap
) -> None:
    town = town_code()
    wrong = registered(UnitRegistered(unit_id=f"{town}999", name="村", kind=K.VILLAGE, parent_id=f"{town}-S"))
    await township.publish(wrong)
    await township.publish(registered(UnitRegistered(unit_id=town, name="镇", kind=K.TOWN)))
    await township.publish(
        registered(UnitRegistered(unit_id=f"{town}-S", name="所", kind=K.PRACTICE_INSTITUTE, parent_id=town))
    )
    [rejected] = await tap.wait_for(
        lambda e: e.type == "wmsj.event.rejected.v1" and e.subject == wrong.id, timeout=30
    )
    assert "a village cannot be under a practice_institute" in rejected.data.reason
    assert await apps["registry"].units.get(f"{town}999") is None


async def test_a_move_takes_the_subtree_along_and_tells_the_bus(
    apps: dict[str, ModuleType], township: TownshipClient, tap: Tap
) -> None:
    registry = apps["registry"].units
    one, two = town_code(), town_code()
    while two == one:
        two = town_code()
    units = [
        UnitRegistered(unit_id=one, name="一镇", kind=K.TOWN),
        UnitRegistered(unit_id=two, name="二镇", kind=K.TOWN),
        UnitRegistered(unit_id=f"{one}-S", name="一所", kind=K.PRACTICE_INSTITUTE, parent_id=one),
        UnitRegistered(unit_id=f"{two}-S", name="二所", kind=K.PRACTICE_INSTITUTE, parent_id=two),
        UnitRegistered(unit_id=f"{one}-DD", name="大队", kind=K.BRIGADE, parent_id=f"{one}-S"),
        UnitRegistered(unit_id=f"{one}-FD", name="分队", kind=K.SQUAD, parent_id=f"{one}-DD"),
    ]
    for data in units:
        await township.publish(registered(data))
    await tap.wait_for(lambda e: e.subject == f"{one}-FD" and e.type == UnitRegisteredEvent.TYPE, timeout=30)

    await township.publish(
        registered(
            UnitRegistered(unit_id=f"{one}-DD", name="大队", kind=K.BRIGADE, parent_id=f"{two}-S"),
            at=T0 + timedelta(days=1),
        )
    )
    moved = await tap.wait_for(
        lambda e: (
            e.subject == f"{one}-FD" and e.type == UnitRegisteredEvent.TYPE and e.data.township_id == two
        ),
        timeout=30,
    )
    assert moved
    squad = await registry.get(f"{one}-FD")
    assert squad is not None
    assert (squad.township_id, squad.ancestors) == (two, (two, f"{two}-S", f"{one}-DD"))
    history = await registry.unit_history(f"{one}-FD")
    assert [h["change"] for h in history] == ["registered", f"moved with {one}-DD"]


async def test_a_township_cannot_register_a_volunteer_with_another_townships_unit(
    apps: dict[str, ModuleType], townships: Callable[[str], Any], township: TownshipClient, tap: Tap
) -> None:
    from shared.events.units import VolunteerRegistered, VolunteerRegisteredEvent
    from shared.pii import id_card_checksum

    a, b = town_code(), town_code()
    while b == a:
        b = town_code()
    for data in (
        UnitRegistered(unit_id=a, name="A镇", kind=K.TOWN),
        UnitRegistered(unit_id=b, name="B镇", kind=K.TOWN),
        UnitRegistered(unit_id=f"{b}201", name="B村", kind=K.VILLAGE, parent_id=b),
    ):
        await township.publish(registered(data))
    await tap.wait_for(lambda e: e.subject == f"{b}201" and e.type == UnitRegisteredEvent.TYPE, timeout=30)
    town_a: TownshipClient = await townships(a)
    first17 = "43138119900101" + f"{secrets.randbelow(1000):03d}"
    volunteer = new_event(
        VolunteerRegisteredEvent,
        VolunteerRegistered(
            volunteer_id=f"v-{secrets.token_hex(3)}",
            name="王芳",
            id_card=first17 + id_card_checksum(first17),
            phone="13812345678",
            unit_id=f"{b}201",
        ),
        source=f"/townships/{a}",
        time=T0,
    )
    await town_a.publish(volunteer)
    [rejection] = await town_a.wait_for_rejections(1, timeout=30)
    assert rejection.reason == (
        f"township {a} may only publish about units in its own subtree; unit {b}201 is in township {b}"
    )
    assert await apps["registry"].units.volunteer(volunteer.data.volunteer_id) is None


async def test_a_message_without_user_id_is_refused(
    infra: Infra, apps: dict[str, ModuleType], township: TownshipClient
) -> None:
    import aio_pika

    event = registered(UnitRegistered(unit_id=town_code(), name="镇", kind=K.TOWN))
    connection = await aio_pika.connect_robust(infra.amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        ingress = await channel.get_exchange("wmsj.ingress", ensure=True)
        assert township._reply_queue is not None
        await ingress.publish(
            aio_pika.Message(event.model_dump_json().encode(), reply_to=township._reply_queue.name),
            routing_key=event.type,
        )
    [rejection] = await township.wait_for_rejections(1, timeout=30)
    assert rejection.reason.startswith("the message has no user_id property")
    assert await apps["registry"].units.get(event.data.unit_id) is None
