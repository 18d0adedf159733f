"""Registry against the real broker and database: accepted, duplicated, refused."""

from __future__ import annotations

import asyncio
import json
import secrets
from datetime import UTC, datetime, timedelta
from types import ModuleType

from shared.events import UnitKind, UnitRegistered, UnitRegisteredEvent, new_event
from tests.conftest import Infra
from tests.support import Tap, dead_letters, town_code
from wmsj.client import TownshipClient

T0 = datetime(2020, 6, 1, tzinfo=UTC)


def unit_event(unit_id: str, name: str = "禾青镇", at: datetime = T0, **extra: object) -> UnitRegisteredEvent:
    data = UnitRegistered(unit_id=unit_id, name=name, kind=UnitKind.TOWN, **extra)  # type: ignore[arg-type]
    return new_event(UnitRegisteredEvent, data, source="/townships/test", time=at)  # type: ignore[return-value]


def fresh_id() -> str:
    """A township division code of its own for each test (9 digits, as the rules require)."""
    return town_code()


async def test_a_registered_unit_is_stored_and_republished_as_accepted(
    apps: dict[str, ModuleType], township: TownshipClient, tap: Tap
) -> None:
    unit_id = fresh_id()
    await township.publish(unit_event(unit_id))

    [accepted] = await tap.wait_for(lambda e: e.subject == unit_id and e.type == UnitRegisteredEvent.TYPE)
    assert accepted.source == "/wmsj/registry"
    stored = await apps["registry"].units.get(unit_id)
    assert stored is not None and stored.name == "禾青镇" and stored.kind == "town"


async def test_the_same_event_twice_changes_nothing(
    apps: dict[str, ModuleType], township: TownshipClient, tap: Tap
) -> None:
    unit_id = fresh_id()
    event = unit_event(unit_id)
    await township.publish(event)
    await tap.wait_for(lambda e: e.subject == unit_id)
    before = await apps["registry"].units.units.find_one({"_id": unit_id})

    await township.publish(event)
    await township.publish(event)
    await asyncio.sleep(1.5)

    assert len(tap.matching(lambda e: e.subject == unit_id)) == 1
    assert await apps["registry"].units.units.find_one({"_id": unit_id}) == before
    assert township.rejections == []


async def test_details_stated_later_win_whatever_the_arrival_order(
    apps: dict[str, ModuleType], township: TownshipClient, tap: Tap
) -> None:
    unit_id = fresh_id()
    newer = unit_event(unit_id, name="新名", at=T0 + timedelta(days=1))
    older = unit_event(unit_id, name="旧名", at=T0)
    await township.publish(newer)
    await tap.wait_for(lambda e: e.subject == unit_id)
    await township.publish(older)
    await asyncio.sleep(1.5)

    stored = await apps["registry"].units.get(unit_id)
    assert stored is not None and stored.name == "新名"


async def test_a_malformed_event_is_rejected_with_its_reason_and_not_kept(
    infra: Infra, apps: dict[str, ModuleType], township: TownshipClient, tap: Tap
) -> None:
    await dead_letters(infra.amqp_url)  # start from an empty dead-letter queue
    bad_id = "bad-" + secrets.token_hex(4)
    body = json.dumps(
        {
            "specversion": "1.0",
            "id": bad_id,
            "source": "/townships/test",
            "type": "wmsj.unit.registered.v1",
            "time": "2020-06-01T00:00:00Z",
            "data": {"unit_id": "431381999", "name": "x", "kind": "castle"},
        }
    )
    await township.publish_raw(body.encode(), routing_key="wmsj.unit.registered.v1")

    [rejection] = await township.wait_for_rejections(1, timeout=15)
    assert rejection.rejected_id == bad_id and rejection.rejected_by == "registry"
    assert [
        (e.location, "castle" in e.message or "Input should be" in e.message) for e in rejection.errors
    ] == [("data.kind", True)]
    # The office sees it on the bus too.
    await tap.wait_for(lambda e: e.type == "wmsj.event.rejected.v1" and e.subject == bad_id)
    # A refusal is final and answered: the message is acknowledged, not dead-lettered.
    assert await dead_letters(infra.amqp_url) == []
    assert await apps["registry"].units.get("431381999") is None


async def test_not_json_at_all_is_rejected(infra: Infra, township: TownshipClient) -> None:
    await dead_letters(infra.amqp_url)
    await township.publish_raw(b"\x00garbage", routing_key="wmsj.unit.registered.v1", message_id="m-garbage")

    [rejection] = await township.wait_for_rejections(1, timeout=15)
    assert rejection.rejected_id == "m-garbage"
    assert rejection.errors[0].message.startswith("Invalid JSON")
    assert await dead_letters(infra.amqp_url) == []


async def test_an_event_type_no_service_owns_is_rejected(infra: Infra, township: TownshipClient) -> None:
    await dead_letters(infra.amqp_url)
    await township.publish_raw(b'{"id": "x1"}', routing_key="wmsj.unit.demolished.v1")

    [rejection] = await township.wait_for_rejections(1, timeout=15)
    assert "no service accepts routing key 'wmsj.unit.demolished.v1'" in rejection.reason
    assert [e.location for e in rejection.errors] == ["type"]
    assert await dead_letters(infra.amqp_url) == []


async def test_a_unit_that_is_its_own_parent_is_refused(
    apps: dict[str, ModuleType], township: TownshipClient
) -> None:
    unit_id = fresh_id()
    await township.publish(unit_event(unit_id, parent_id=unit_id))

    [rejection] = await township.wait_for_rejections(1, timeout=15)
    assert rejection.reason == f"unit {unit_id} cannot be its own parent"
    assert await apps["registry"].units.get(unit_id) is None
