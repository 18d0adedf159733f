"""The open 四单 orders a township's to-do lists (activities' ``GET /orders?open=true``), and
the dashboard's origin let through by the APIs its page calls from the browser (activities'
orders, the registry's townships) and named in the page's connect-src."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from types import ModuleType

import httpx

from shared.auth import DEV_OFFICE_KEY, caller_dependency, parse_keys
from shared.events import Data, UnitRegistered, new_event
from shared.events import UnitKind as K
from shared.events import activities as A
from tests.integration.test_townships import eventually, office_registers, two_towns
from tests.support import Tap
from wmsj.client import TownshipClient

DASHBOARD = "http://127.0.0.1:8004"


async def test_a_township_lists_its_open_orders_with_when_they_escalate(
    apps: dict[str, ModuleType], township: TownshipClient, tap: Tap
) -> None:
    activities = apps["activities"]
    a, b = two_towns()
    await office_registers(
        township,
        apps,
        UnitRegistered(unit_id=a, name="A镇", kind=K.TOWN),
        UnitRegistered(unit_id=b, name="B镇", kind=K.TOWN),
        UnitRegistered(unit_id=f"{a}201", name="A村", kind=K.VILLAGE, parent_id=a),
        UnitRegistered(unit_id=f"{b}201", name="B村", kind=K.VILLAGE, parent_id=b),
    )
    tag = "oo" + secrets.token_hex(3)
    now = datetime.now(UTC).replace(microsecond=0)

    def placed(order_id: str, unit_id: str, at: datetime) -> tuple[type, Data, datetime]:
        data = A.OrderPlaced(
            order_id=order_id, requester_id="r1", requester_kind="resident", unit_id=unit_id, need="义诊"
        )
        return A.OrderPlacedEvent, data, at

    fresh, stuck, served, theirs = (f"{tag}-fresh", f"{tag}-stuck", f"{tag}-served", f"{tag}-theirs")
    statements = [
        placed(fresh, f"{a}201", now - timedelta(hours=1)),
        # At the town, the top of its tree: past its time, it stays there, overdue.
        placed(stuck, a, now - timedelta(hours=100)),
        placed(served, f"{a}201", now - timedelta(hours=2)),
        (
            A.OrderDispatchedEvent,
            A.OrderDispatched(order_id=served, dispatcher_id=f"{a}201", team_id="t1"),
            now,
        ),
        (
            A.OrderAnsweredEvent,
            A.OrderAnswered(order_id=served, team_id="t1", accepted=True, activity_id=f"{tag}-act"),
            now,
        ),
        placed(theirs, f"{b}201", now - timedelta(hours=3)),
    ]
    for kind, data, at in statements:
        await township.publish(new_event(kind, data, source="/office", time=at))

    async def settled() -> bool:
        got = [await activities.orders.get(o) for o in (fresh, stuck, served, theirs)]
        return all(got) and len(got[2].statements) == 3  # type: ignore[union-attr]

    await eventually(settled)

    keys = parse_keys(f'{{"{DEV_OFFICE_KEY}": "office", "k-a": "township:{a}"}}')
    app = activities.create_app()
    app.dependency_overrides[activities.api.CALLER.dependency] = caller_dependency(keys)
    as_a, as_office = {"Authorization": "Bearer k-a"}, {"Authorization": f"Bearer {DEV_OFFICE_KEY}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a") as http:
        assert (await http.get("/orders", params={"open": "true"})).status_code == 401
        answer = await http.get("/orders", params={"open": "true"}, headers=as_a)
        listed = {o["order_id"]: o for o in answer.json() if o["order_id"].startswith(tag)}
        assert set(listed) == {fresh, stuck}  # not the accepted one, not B's
        assert answer.headers["X-Total-Count"] == str(len(answer.json()))
        assert (listed[fresh]["status"], listed[fresh]["handler_id"], listed[fresh]["overdue"]) == (
            "placed",
            f"{a}201",
            False,
        )
        due = datetime.fromisoformat(listed[fresh]["accept_due_at"])
        assert due == now - timedelta(hours=1) + activities.ACCEPT_WITHIN
        assert (listed[stuck]["handler_id"], listed[stuck]["overdue"]) == (a, True)
        # The soonest to escalate first.
        order = [o["order_id"] for o in answer.json() if o["order_id"] in (fresh, stuck)]
        assert order == [stuck, fresh]

        office = (
            await http.get("/orders", params={"open": "true", "limit": 10_000}, headers=as_office)
        ).json()
        assert {fresh, stuck, theirs} <= {o["order_id"] for o in office}
        assert served not in {o["order_id"] for o in office}
        assert (await http.get("/orders", params={"open": "false"}, headers=as_a)).status_code == 422

        # The dashboard's page may read it from the browser; another page may not.
        cors = {"Origin": DASHBOARD, **as_a}
        assert (await http.get("/orders", headers=cors)).headers["access-control-allow-origin"] == DASHBOARD
        elsewhere = await http.get("/orders", headers={"Origin": "http://evil.example", **as_a})
        assert "access-control-allow-origin" not in elsewhere.headers


async def test_the_registry_lets_the_dashboard_manage_townships_and_the_page_may_call_it(
    apps: dict[str, ModuleType],
) -> None:
    preflight = {"Origin": DASHBOARD, "Access-Control-Request-Method": "POST"}
    registry = apps["registry"].create_app()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=registry), base_url="http://r") as http:
        allowed = await http.options(
            "/townships/t1/rotate", headers={**preflight, "Access-Control-Request-Headers": "authorization"}
        )
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == DASHBOARD
        assert "POST" in allowed.headers["access-control-allow-methods"]
        refused = await http.options("/townships/t1", headers={**preflight, "Origin": "http://evil.example"})
        assert refused.status_code == 400
        # Only the office's key manages townships, whatever the origin.
        assert (await http.get("/townships", headers={"Origin": DASHBOARD})).status_code == 401

    supervision = apps["supervision"].create_app()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=supervision), base_url="http://s") as http:
        answer = await http.get("/dashboard/config.json")
    config = answer.json()
    settings = apps["supervision"].settings
    assert config["activities_url"] == settings.activities_url.rstrip("/")
    assert config["registry_url"] == settings.registry_url.rstrip("/")
    connect = answer.headers["content-security-policy"].split("connect-src")[1]
    assert config["activities_url"] in connect and config["registry_url"] in connect
