"""The activities service's workflows through the real broker and database: a township's
month arriving shuffled and duplicated, the key project list, 四单 escalation by the timer,
hours credited, and the monthly early warning (as an event and through the API)."""

from __future__ import annotations

import asyncio
import json
import random
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import httpx

from shared.auth import DEV_OFFICE_KEY
from shared.events import (
    ActivityCompleted,
    ActivityCompletedEvent,
    ActivityScheduled,
    ActivityScheduledEvent,
    CloudEvent,
    Data,
    EventRejectedEvent,
    HoursCreditedEvent,
    KeyProject,
    ProjectListPublished,
    ProjectListPublishedEvent,
    UnitKind,
    UnitRegistered,
    UnitRegisteredEvent,
    new_event,
)
from shared.events import activities as A
from tests.support import Tap
from tests.unit.test_activity_month_property import fold
from wmsj.client import TownshipClient

MONTH = datetime(2020, 6, 1, 0, 0, tzinfo=UTC)

EVENT_OF_KIND: dict[str, type[CloudEvent[Any]]] = {
    "scheduled": ActivityScheduledEvent,
    "published": A.ActivityPublishedEvent,
    "cancelled": A.ActivityCancelledEvent,
    "completed": ActivityCompletedEvent,
    "signed-up": A.VolunteerSignedUpEvent,
    "withdrawn": A.VolunteerWithdrewEvent,
    "checked-in": A.VolunteerCheckedInEvent,
    "checked-out": A.VolunteerCheckedOutEvent,
    "placed": A.OrderPlacedEvent,
    "dispatched": A.OrderDispatchedEvent,
    "answered": A.OrderAnsweredEvent,
    "rated": A.OrderRatedEvent,
}


def township_month(rng: random.Random, tag: str) -> list[tuple[str, Data, datetime]]:
    """A plausible month for one township (as in the unit property test), ids tagged."""
    events: list[tuple[str, Data, datetime]] = []
    units = [f"{tag}-village-1", f"{tag}-village-2", f"{tag}-station-1"]
    for i in range(5):
        aid, unit = f"{tag}-a{i}", rng.choice(units)
        starts = MONTH + timedelta(days=rng.randint(3, 25), hours=rng.randint(0, 10))
        hours = rng.randint(1, 4)
        planned = starts - timedelta(days=rng.randint(2, 3))

        def schedule(start: datetime, title: str) -> ActivityScheduled:
            return ActivityScheduled(
                activity_id=aid,  # noqa: B023
                unit_id=unit,  # noqa: B023
                project_id="2020-P01",
                title=title,
                starts_at=start,
                ends_at=start + timedelta(hours=hours),  # noqa: B023
            )

        events.append(("scheduled", schedule(starts, "理论宣讲"), planned))
        if rng.random() < 0.5:
            starts += timedelta(hours=rng.randint(-24, 24))
            events.append(("scheduled", schedule(starts, "改期"), planned + timedelta(hours=1)))
        ends = starts + timedelta(hours=hours)
        events.append(
            (
                "published",
                A.ActivityPublished(activity_id=aid, unit_id=unit, capacity=2),
                planned + timedelta(hours=2),
            )
        )
        for n in range(4):
            who = A.VolunteerAttendance(activity_id=aid, unit_id=unit, volunteer_id=f"{tag}-v{n}")
            signed = planned + timedelta(hours=3, minutes=rng.randint(0, 600))
            events.append(("signed-up", who, signed))
            if n == 3:
                events.append(("withdrawn", who, signed + timedelta(minutes=5)))
            else:
                events.append(("checked-in", who, starts + timedelta(minutes=rng.randint(0, 30))))
                events.append(("checked-out", who, ends - timedelta(minutes=rng.randint(0, 30))))
        if i == 4:
            events.append(
                (
                    "cancelled",
                    A.ActivityCancelled(activity_id=aid, unit_id=unit, reason="雨"),
                    planned + timedelta(hours=4),
                )
            )
        else:
            done = ActivityCompleted(
                activity_id=aid, unit_id=unit, ended_at=ends, volunteers=3, service_hours=3 * hours
            )
            events.append(("completed", done, ends + timedelta(hours=1)))
    order, placed = f"{tag}-o1", MONTH + timedelta(days=1)
    events += [
        (
            "placed",
            A.OrderPlaced(
                order_id=order, requester_id="r1", requester_kind="resident", unit_id=units[2], need="助老"
            ),
            placed,
        ),
        (
            "dispatched",
            A.OrderDispatched(order_id=order, dispatcher_id=units[2], team_id="t1"),
            placed + timedelta(hours=1),
        ),
        (
            "answered",
            A.OrderAnswered(order_id=order, team_id="t1", accepted=False),
            placed + timedelta(hours=2),
        ),
        (
            "dispatched",
            A.OrderDispatched(order_id=order, dispatcher_id=units[2], team_id="t2"),
            placed + timedelta(hours=3),
        ),
        (
            "answered",
            A.OrderAnswered(order_id=order, team_id="t2", accepted=True, activity_id=f"{tag}-a0"),
            placed + timedelta(hours=4),
        ),
        ("rated", A.OrderRated(order_id=order, requester_id="r1", rating=4), MONTH + timedelta(days=29)),
    ]
    return events


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 120) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not reached within {timeout}s")
        await asyncio.sleep(0.2)


async def test_a_shuffled_duplicated_month_through_the_broker_ends_in_the_in_order_state(
    apps: dict[str, ModuleType], township: TownshipClient, tap: Tap
) -> None:
    tag = "m" + secrets.token_hex(3)
    month = township_month(random.Random(7), tag)
    expected = fold(sorted(month, key=lambda e: e[2]))
    assert expected.refused == []

    rng = random.Random(11)
    batch = [
        new_event(EVENT_OF_KIND[kind], data, source=f"/townships/{tag}", time=at, subject=tag)
        for kind, data, at in month
    ]
    redelivered = rng.sample(batch, 12)  # the same message again
    resent = [
        e.model_copy(update={"id": secrets.token_hex(8)}) for e in rng.sample(batch, 12)
    ]  # a retry, new id
    arrivals = batch + redelivered + resent
    rng.shuffle(arrivals)
    for event in arrivals:
        await township.publish(event)

    activities = apps["activities"]

    async def same_state() -> bool:
        got_activities = {aid: await activities.activities.get(aid) for aid in expected.activities}
        got_rosters = {aid: await activities.rosters.get(aid) for aid in expected.rosters}
        got_orders = {oid: await activities.orders.get(oid) for oid in expected.orders}
        return (got_activities, got_rosters, got_orders) == (
            expected.activities,
            expected.rosters,
            expected.orders,
        )

    await eventually(same_state)
    assert township.rejections == []
    # Hours were credited to the registry's ledger for everyone who checked in and out.
    credited = await tap.wait_for(
        lambda e: isinstance(e, HoursCreditedEvent) and e.data.activity_id.startswith(tag),
        count=15,
        timeout=60,
    )
    final = {
        (e.data.activity_id, e.data.volunteer_id): e for e in sorted(credited, key=lambda e: (e.time, e.id))
    }
    for aid, roster in expected.rosters.items():
        for volunteer in roster.volunteers:
            if volunteer.hours is not None:
                assert final[(aid, volunteer.volunteer_id)].data.hours == volunteer.hours

    async with api_client(activities) as http:
        a4 = (await http.get(f"/activities/{tag}-a4")).json()
        assert (a4["status"], a4["problems"]) == ("cancelled", [])
        a0 = (await http.get(f"/activities/{tag}-a0")).json()
        assert a0["status"] == "completed"
        assert a0["volunteers"]["capacity"] == 2 and len(a0["volunteers"]["confirmed"]) == 2
        assert f"{tag}-v3" not in a0["volunteers"]["confirmed"] + a0["volunteers"]["waitlist"]  # withdrew
        order = (await http.get(f"/orders/{tag}-o1")).json()
        assert (order["status"], order["rating"], order["declined_by"]) == ("rated", 4, ["t1"])


def api_client(app_module: ModuleType) -> httpx.AsyncClient:
    """The activities API, as the office (the development key)."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app_module.create_app()),
        base_url="http://activities",
        headers={"Authorization": f"Bearer {DEV_OFFICE_KEY}"},
    )


def key_list(version: int, months: list[int], at: datetime) -> ProjectListPublishedEvent:
    data = ProjectListPublished(
        year=2020,
        version=version,
        projects=[
            KeyProject(
                project_id="2020-P01", theme="理论宣讲", months=months, participant_kinds=[UnitKind.VILLAGE]
            )
        ],
    )
    return new_event(ProjectListPublishedEvent, data, source="/office", time=at)  # type: ignore[return-value]


async def test_the_key_project_list_is_versioned_republished_and_checked_against(
    apps: dict[str, ModuleType], township: TownshipClient, tap: Tap
) -> None:
    jan = datetime(2020, 1, 6, tzinfo=UTC)
    v1, v2 = key_list(1, [6], jan), key_list(2, [7], jan + timedelta(days=100))
    for event in (v2, v1, v1):
        await township.publish(event)
    accepted = await tap.wait_for(
        lambda e: isinstance(e, ProjectListPublishedEvent) and e.source == "/wmsj/activities", count=2
    )
    assert sorted(e.data.version for e in accepted) == [1, 2]

    # The same version with other content is refused; the township is told why.
    await township.publish(key_list(1, [6, 7], jan + timedelta(days=1)))
    [rejection] = await township.wait_for_rejections(1, timeout=30)
    assert "a revision needs a new version number" in rejection.reason

    # An activity planned under version 1 keeps pointing at it after the revision.
    aid = "p-" + secrets.token_hex(4)
    starts = datetime(2020, 6, 10, 1, 0, tzinfo=UTC)
    plan = ActivityScheduled(
        activity_id=aid,
        unit_id="p-village",
        project_id="2020-P01",
        title="宣讲",
        starts_at=starts,
        ends_at=starts + timedelta(hours=2),
    )
    await township.publish(
        new_event(ActivityScheduledEvent, plan, source="/townships/p", time=jan + timedelta(days=10))
    )
    await tap.wait_for(lambda e: e.subject == aid)
    async with api_client(apps["activities"]) as http:
        view = (await http.get(f"/activities/{aid}")).json()
        assert view["plan"] == {
            "list_version": 1,  # planned before version 2 was published, which moved the project to July
            "theme": "理论宣讲",
            "points": 0.0,
            "flags": [
                "unit p-village is not among the lead or participating units of 2020-P01"
            ],  # not registered
        }
        versions = (await http.get("/projects/2020")).json()
        assert [v["version"] for v in versions] == [1, 2]
        calendar = (await http.get("/calendar", params={"period": "2020-06"})).json()
        project = next(p for p in calendar["projects"] if p["project_id"] == "2020-P01")
        assert aid in [a["activity_id"] for a in project["activities"]] and project["theme"] == "理论宣讲"


async def register(township: TownshipClient, tap: Tap, *units: UnitRegistered) -> None:
    for unit in units:
        await township.publish(
            new_event(UnitRegisteredEvent, unit, source="/townships/t", time=datetime(2020, 1, 1, tzinfo=UTC))
        )
    ids = {u.unit_id for u in units}
    await tap.wait_for(lambda e: isinstance(e, UnitRegisteredEvent) and e.data.unit_id in ids, count=len(ids))


async def test_an_order_nobody_accepts_escalates_to_the_parent_unit_by_the_timer(
    apps: dict[str, ModuleType], township: TownshipClient, tap: Tap
) -> None:
    tag = "e" + secrets.token_hex(3)
    centre, institute = f"{tag}-centre", f"{tag}-institute"
    await register(
        township,
        tap,
        UnitRegistered(unit_id=centre, name="中心", kind=UnitKind.PRACTICE_CENTRE),
        UnitRegistered(unit_id=institute, name="所", kind=UnitKind.PRACTICE_INSTITUTE, parent_id=centre),
    )
    activities = apps["activities"]
    await eventually(lambda: _known(activities, institute))

    placed_at = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    order = A.OrderPlaced(
        order_id=f"{tag}-o", requester_id="r1", requester_kind="village", unit_id=institute, need="义诊"
    )
    await township.publish(new_event(A.OrderPlacedEvent, order, source="/townships/t", time=placed_at))
    await eventually(lambda: _has_order(activities, order.order_id))

    # The timer escalates every due order in the database; other tests leave orders too.
    async def escalate_ours(now: datetime) -> list[Any]:
        return [e for e in await activities.escalate_due(now) if e.subject == order.order_id]

    assert await escalate_ours(placed_at + timedelta(hours=47)) == []  # not yet due
    [escalated] = await escalate_ours(placed_at + timedelta(hours=49))
    assert (escalated.data.from_unit_id, escalated.data.to_unit_id, escalated.time) == (
        institute,
        centre,
        placed_at + activities.ACCEPT_WITHIN,
    )
    seen = await tap.wait_for(lambda e: isinstance(e, A.OrderEscalatedEvent) and e.subject == order.order_id)
    assert seen[0].data.level == 1
    assert await escalate_ours(placed_at + timedelta(days=30)) == []  # the centre is the top

    async with api_client(activities) as http:
        view = (await http.get(f"/orders/{order.order_id}")).json()
    assert (view["status"], view["handler_id"]) == ("escalated", centre)


async def _known(activities: ModuleType, unit_id: str) -> bool:
    return await activities.units.get(unit_id) is not None


async def _has_order(activities: ModuleType, order_id: str) -> bool:
    return await activities.orders.get(order_id) is not None


async def test_the_monthly_warning_names_the_units_without_activity(
    apps: dict[str, ModuleType], township: TownshipClient, tap: Tap
) -> None:
    tag = "w" + secrets.token_hex(3)
    names = [f"{tag}-u{n}" for n in range(6)]
    await register(township, tap, *(UnitRegistered(unit_id=u, name=u, kind=UnitKind.SCHOOL) for u in names))
    activities = apps["activities"]
    for unit in names:  # handled concurrently: the last one sent is not always the last known
        await eventually(lambda unit=unit: _known(activities, unit))
    period, starts = "2019-03", datetime(2019, 3, 12, 2, 0, tzinfo=UTC)
    active = names[:3]
    for n, unit in enumerate(active):
        plan = ActivityScheduled(
            activity_id=f"{tag}-a{n}",
            unit_id=unit,
            title="t",
            starts_at=starts,
            ends_at=starts + timedelta(hours=2),
        )
        await township.publish(
            new_event(ActivityScheduledEvent, plan, source="/townships/t", time=starts - timedelta(days=3))
        )
    await tap.wait_for(
        lambda e: isinstance(e, ActivityScheduledEvent) and (e.subject or "").startswith(tag), count=3
    )

    warning = await activities.issue_monthly_warning(period, datetime(2019, 3, 25, tzinfo=UTC))
    assert warning is not None
    ours = [u for u in warning.data.unit_ids if u.startswith(tag)]
    assert ours == names[3:]
    published = await tap.wait_for(lambda e: isinstance(e, A.MonthlyWarningEvent) and e.id == warning.id)
    assert published[0].data.unit_ids == warning.data.unit_ids
    # Unchanged: not issued again.
    assert await activities.issue_monthly_warning(period, datetime(2019, 3, 26, tzinfo=UTC)) is None

    async with api_client(activities) as http:
        body = (await http.get("/warnings/monthly", params={"period": period})).json()
        assert [u for u in body["unit_ids"] if u.startswith(tag)] == names[3:]
        calendar = (await http.get(f"/units/{active[0]}/calendar", params={"period": period})).json()
        assert [a["activity_id"] for a in calendar["activities"]] == [f"{tag}-a0"]
    assert not tap.matching(lambda e: isinstance(e, EventRejectedEvent) and (e.subject or "").startswith(tag))


async def test_hours_added_after_the_fact_are_credited_only_with_another_approver(
    apps: dict[str, ModuleType], township: TownshipClient, tap: Tap
) -> None:
    tag = "s" + secrets.token_hex(3)
    at = datetime(2020, 6, 20, 8, 0, tzinfo=UTC)
    fields = {"volunteer_id": f"{tag}-v1", "activity_id": f"{tag}-a", "unit_id": f"{tag}-u", "hours": 3.5}
    approved = A.HoursSupplemented(**fields, approver_id="admin", evidence_id="e-123", reason="签到设备故障")  # type: ignore[arg-type]
    event = new_event(A.HoursSupplementedEvent, approved, source="/townships/t", time=at)
    await township.publish(event)
    [credited] = await tap.wait_for(lambda e: isinstance(e, HoursCreditedEvent) and e.subject == f"{tag}-v1")
    assert (credited.data.hours, credited.data.basis, credited.data.activity_id) == (
        3.5,
        "supplement",
        f"{tag}-a",
    )

    self_approved = {**approved.model_dump(), "approver_id": f"{tag}-v1"}
    body = {**event.model_dump(mode="json"), "id": secrets.token_hex(6), "data": self_approved}
    await township.publish_raw(
        json.dumps(body).encode(), routing_key=A.HoursSupplementedEvent.TYPE, message_id=body["id"]
    )
    [rejection] = await township.wait_for_rejections(1, timeout=30)
    assert rejection.errors[0].message.endswith("a volunteer cannot approve their own hours")
    async with api_client(apps["activities"]) as http:
        assert (await http.get(f"/activities/{tag}-a")).status_code == 404  # hours only: no activity yet
    roster = await apps["activities"].rosters.get(f"{tag}-a")
    assert [s.approver_id for s in roster.supplements] == ["admin"]


async def test_the_timer_issues_the_warning_only_from_the_configured_day(
    apps: dict[str, ModuleType], township: TownshipClient, tap: Tap
) -> None:
    activities = apps["activities"]
    tag = "d" + secrets.token_hex(3)
    await register(township, tap, UnitRegistered(unit_id=f"{tag}-u", name="村", kind=UnitKind.SCHOOL))
    await eventually(lambda: _known(activities, f"{tag}-u"))
    early = datetime(2018, 5, activities.settings.warning_from_day - 1, 4, tzinfo=UTC)
    await activities.tick(early)
    assert await activities.warnings.last("2018-05") is None
    await activities.tick(early + timedelta(days=1))
    issued = await activities.warnings.last("2018-05")
    assert issued is not None and f"{tag}-u" in issued


async def test_a_publication_after_the_start_does_not_take_effect_and_the_api_says_why(
    apps: dict[str, ModuleType], township: TownshipClient, tap: Tap
) -> None:
    aid = "l-" + secrets.token_hex(4)
    starts = datetime(2020, 6, 10, 1, 0, tzinfo=UTC)
    plan = ActivityScheduled(
        activity_id=aid, unit_id="l-u", title="宣讲", starts_at=starts, ends_at=starts + timedelta(hours=2)
    )
    late = A.ActivityPublished(activity_id=aid, unit_id="l-u", capacity=5)
    # The publication arrives first (held), the schedule after: reconciled, not refused.
    await township.publish(
        new_event(A.ActivityPublishedEvent, late, source="/townships/l", time=starts + timedelta(hours=1))
    )
    await township.publish(
        new_event(ActivityScheduledEvent, plan, source="/townships/l", time=starts - timedelta(days=2))
    )
    await tap.wait_for(lambda e: e.subject == aid)
    await eventually(lambda: _has_publication(apps["activities"], aid))
    async with api_client(apps["activities"]) as http:
        view = (await http.get(f"/activities/{aid}")).json()
    assert view["status"] == "planned"
    assert view["problems"] == [
        "only future activities can be published: published at 2020-06-10T02:00:00+00:00, "
        "the activity starts at 2020-06-10T01:00:00+00:00"
    ]
    assert township.rejections == []


async def _has_publication(activities: ModuleType, activity_id: str) -> bool:
    activity = await activities.activities.get(activity_id)
    return activity is not None and activity.publication is not None and activity.schedule is not None
