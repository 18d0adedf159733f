"""Township identity and isolation, against the real broker: each township system connects
as its own RabbitMQ user (made by ``wmsj township add``'s commands), the services learn
who published from the broker-validated ``user_id``, and a township may only publish about
its own subtree — to the registry, activities and evidence alike. Also: units and volunteers
that arrive before what they belong to, late refusals on the sender's reply queue, moves."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import aiormq
import pytest

from shared.events import (
    ActivityScheduled,
    ActivityScheduledEvent,
    EvidenceSubmitted,
    EvidenceSubmittedEvent,
    KeyProject,
    ProjectListPublished,
    ProjectListPublishedEvent,
    UnitKind,
    UnitRegistered,
    UnitRegisteredEvent,
    new_event,
)
from shared.events.activities import VolunteerAttendance, VolunteerSignedUpEvent
from shared.events.evidence import EvidenceReviewed, EvidenceReviewedEvent
from shared.events.supervision import InspectionRecorded, InspectionRecordedEvent
from shared.identity import township_user
from shared.onboarding import BrokerAdmin
from tests.conftest import Infra
from tests.support import Tap, town_code
from wmsj.client import TownshipClient

T0 = datetime(2020, 6, 1, tzinfo=UTC)
K = UnitKind


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
    """Makes township users in the test's virtual host exactly as ``wmsj township add`` does
    (the broker's management API); revokes them afterwards (users are broker-wide)."""
    made: dict[str, str] = {}
    clients: list[TownshipClient] = []
    vhost = urlsplit(infra.amqp_url).path[1:].replace("%2F", "/")

    async def make(township_id: str, any_type: bool = False) -> TownshipClient:
        """A connection as the township's user (made on first use). ``any_type``: the broker
        lets it publish every routing key, as a user made by hand might, so that what the
        services themselves refuse can be seen."""
        if township_id not in made:
            async with BrokerAdmin(infra.amqp_url) as admin:
                made[township_id] = (await admin.add(township_id)).password
        if any_type:
            user = township_user(township_id)
            infra.rabbitmqctl(["set_topic_permissions", "-p", vhost, user, "wmsj.ingress", ".*", "^$"])
        password = made[township_id]
        client = TownshipClient(as_user(infra.amqp_url, township_user(township_id), password))
        clients.append(await client.__aenter__())
        return client

    yield make
    for client in clients:
        await client.__aexit__()
    async with BrokerAdmin(infra.amqp_url) as admin:
        for township_id in made:
            await admin.revoke(township_id)


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
        f"township {a} may only publish about units in its own subtree; unit {village_b} is not in it"
    )
    assert by_id[intruder.id].reason == (
        f"township {a} may only publish about units in its own subtree; unit {b}-S is not in it"
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
    own = registered(
        UnitRegistered(unit_id=f"{a}201", name="A镇第一村", kind=K.VILLAGE, parent_id=a),
        source=f"/townships/{a}",
    )
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
        f"township {a} may only publish about units in its own subtree; unit {b}201 is not in it"
    )
    assert await apps["registry"].units.volunteer(volunteer.data.volunteer_id) is None


async def test_a_message_without_user_id_is_refused(
    infra: Infra, apps: dict[str, ModuleType], township: TownshipClient, tap: Tap
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
    # An unidentified sender has no reply queue of its own: whatever its reply_to names
    # hears nothing; the office sees the refusal on the bus.
    [rejected] = await tap.wait_for(lambda e: e.type == "wmsj.event.rejected.v1" and e.subject == event.id)
    assert rejected.data.reason.startswith("the message has no user_id property")
    assert [(e.location) for e in rejected.data.errors] == ["amqp.user_id"]
    assert township.rejections == []
    assert await apps["registry"].units.get(event.data.unit_id) is None


# ----------------------------------------------------------------------------- beyond the registry


def two_towns() -> tuple[str, str]:
    return town_code(), town_code()


async def eventually(check: Callable[[], Any], timeout: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not reached within {timeout}s")
        await asyncio.sleep(0.2)


async def office_registers(township: TownshipClient, apps: dict[str, ModuleType], *units: Any) -> None:
    """The office registers ``units``; returns once activities and evidence know them all."""
    for data in units:
        await township.publish(registered(data))
    ids = [u.unit_id for u in units]

    async def known() -> bool:
        return all(
            [await apps["activities"].units.get(i) is not None for i in ids]
            + [await apps["evidence"].evidence.unit(i) is not None for i in ids]
        )

    await eventually(known)


def scheduled(activity_id: str, unit_id: str, source: str) -> ActivityScheduledEvent:
    start = datetime.now(UTC) + timedelta(days=3)
    return new_event(  # type: ignore[return-value]
        ActivityScheduledEvent,
        ActivityScheduled(
            activity_id=activity_id,
            unit_id=unit_id,
            title="宣讲",
            starts_at=start,
            ends_at=start + timedelta(hours=2),
        ),
        source=source,
        time=datetime.now(UTC),
    )


async def test_township_a_cannot_write_activities_attendance_or_evidence_about_township_b(
    apps: dict[str, ModuleType], townships: Callable[..., Any], township: TownshipClient, tap: Tap
) -> None:
    activities, evidence = apps["activities"], apps["evidence"]
    a, b = two_towns()
    await office_registers(
        township,
        apps,
        UnitRegistered(unit_id=a, name="A镇", kind=K.TOWN),
        UnitRegistered(unit_id=b, name="B镇", kind=K.TOWN),
        UnitRegistered(unit_id=f"{a}201", name="A村", kind=K.VILLAGE, parent_id=a),
        UnitRegistered(unit_id=f"{b}201", name="B村", kind=K.VILLAGE, parent_id=b),
    )
    # B's village has an activity (the office states it).
    b_activity = f"act-{secrets.token_hex(4)}"
    await township.publish(scheduled(b_activity, f"{b}201", source="/office"))
    await tap.wait_for(
        lambda e: e.subject == b_activity and e.type == ActivityScheduledEvent.TYPE, timeout=30
    )
    b_before = await activities.activities.get(b_activity)
    town_a: TownshipClient = await townships(a)

    # A schedules an activity for B's village, signs a volunteer up to B's activity, and
    # reports evidence for it (no upload needed: the scope is checked before the object).
    intruding = scheduled(f"act-{secrets.token_hex(4)}", f"{b}201", source=f"/townships/{a}")
    signup = new_event(
        VolunteerSignedUpEvent,
        VolunteerAttendance(activity_id=b_activity, unit_id=f"{b}201", volunteer_id="v-a"),
        source=f"/townships/{a}",
        time=datetime.now(UTC),
    )
    photo = new_event(
        EvidenceSubmittedEvent,
        EvidenceSubmitted(
            evidence_id=f"e-{secrets.token_hex(4)}",
            activity_id=b_activity,
            unit_id=f"{b}201",
            object_key=f"{a}/x.png",
            sha256="0" * 64,
            size=10,
            content_type="image/png",
        ),
        source=f"/townships/{a}",
        time=datetime.now(UTC),
    )
    for event in (intruding, signup, photo):
        await town_a.publish(event)

    by_id = {r.rejected_id: r for r in await town_a.wait_for_rejections(3, timeout=60)}
    scope = f"township {a} may only publish about units in its own subtree; unit {b}201 is not in it"
    # An id B's township owns (its activity, though the office stated it) is refused before the
    # unit scope, naming nothing of B.
    not_yours = f"activity {b_activity} is another township's: choose an id of your own"
    assert {i: (r.reason, r.rejected_by) for i, r in by_id.items()} == {
        intruding.id: (scope, "activities"),
        signup.id: (not_yours, "activities"),
        photo.id: (scope, "evidence"),
    }
    # Nothing of it was stored, and only A heard about it.
    assert await activities.activities.get(intruding.data.activity_id) is None
    assert await activities.activities.get(b_activity) == b_before
    assert await activities.rosters.get(b_activity) is None
    assert await evidence.evidence.get(photo.data.evidence_id) is None
    assert [r for r in township.rejections if r.rejected_id in by_id] == []

    # Its own village is fine.
    own = scheduled(f"act-{secrets.token_hex(4)}", f"{a}201", source=f"/townships/{a}")
    await town_a.publish(own)
    await tap.wait_for(
        lambda e: e.subject == own.data.activity_id and e.type == ActivityScheduledEvent.TYPE, timeout=30
    )
    assert len(town_a.rejections) == 3


async def test_the_services_refuse_office_only_events_from_a_township_the_broker_lets_through(
    apps: dict[str, ModuleType], townships: Callable[..., Any]
) -> None:
    a = town_code()
    town_a: TownshipClient = await townships(a, any_type=True)
    version = 1000 + secrets.randbelow(100_000)
    projects = new_event(
        ProjectListPublishedEvent,
        ProjectListPublished(
            year=2020, version=version, projects=[KeyProject(project_id="P1", theme="宣讲", months=[6])]
        ),
        source=f"/townships/{a}",
        time=T0,
    )
    review = new_event(
        EvidenceReviewedEvent,
        EvidenceReviewed(evidence_id="e-any", verdict="accepted", reviewer="A镇"),
        source=f"/townships/{a}",
        time=T0,
    )
    inspection = new_event(
        InspectionRecordedEvent,
        InspectionRecorded(
            inspection_id=f"i-{secrets.token_hex(4)}",
            unit_id=a,
            period="2020-06",
            inspected_at=T0,
            inspector="A镇自查",
        ),
        source=f"/townships/{a}",
        time=T0,
    )
    await town_a.publish(projects)  # the broker lets it through this time
    await town_a.publish(review)
    await town_a.publish(inspection)

    by_type = {r.rejected_type: r for r in await town_a.wait_for_rejections(3, timeout=30)}
    user = township_user(a)
    assert by_type[projects.type].reason == (
        f"only the city office may publish {projects.type}; {user} is township {a}'s system"
    )
    assert by_type[projects.type].rejected_by == "activities"
    assert (
        by_type[review.type].reason
        == f"only the city office may publish {review.type}; {user} is township {a}'s system"
    )
    assert by_type[review.type].rejected_by == "evidence"
    assert (by_type[inspection.type].reason, by_type[inspection.type].rejected_by) == (
        f"only the city office may publish {inspection.type}; {user} is township {a}'s system",
        "supervision",
    )
    assert await apps["supervision"].facts.inspections_in(a, ["2020-06"]) == []
    assert version not in [v.version for v in await apps["activities"].project_lists.of_year(2020)]


def vhost_of(infra: Infra) -> str:
    return unquote(urlsplit(infra.amqp_url).path[1:])


def unacknowledged(infra: Infra, queue: str) -> Callable[[], Any]:
    """Whether no message of ``queue`` is left unacknowledged: ready, or delivered and still
    being handled (for ``eventually``: a duplicate may be a moment in a conflict's retry)."""

    async def empty() -> bool:
        args = ["list_queues", "-p", vhost_of(infra), "--no-table-headers", "name", "messages"]
        listed = dict(line.split("\t") for line in infra.rabbitmqctl(args).splitlines() if "\t" in line)
        return int(listed[queue]) == 0

    return empty


def held_for(apps: dict[str, ModuleType], service: str, awaiting: str) -> Any:
    return apps[service].holds.held.count_documents({"awaiting": awaiting})


async def test_a_township_event_about_a_unit_not_registered_yet_is_held_then_applied_when_it_arrives(
    infra: Infra,
    apps: dict[str, ModuleType],
    townships: Callable[..., Any],
    township: TownshipClient,
    tap: Tap,
) -> None:
    activities = apps["activities"]
    a, b = two_towns()
    await office_registers(
        township,
        apps,
        UnitRegistered(unit_id=b, name="B镇", kind=K.TOWN),
        UnitRegistered(unit_id=f"{b}201", name="B村", kind=K.VILLAGE, parent_id=b),
    )
    town_a: TownshipClient = await townships(a)
    town_b: TownshipClient = await townships(b)
    # Early: the activity is sent before its village is registered…
    early = scheduled(f"act-{secrets.token_hex(4)}", f"{a}201", source=f"/townships/{a}")
    await town_a.publish(early)
    await town_a.publish(early)  # …twice, as a township that retries does

    async def held() -> bool:
        return await held_for(apps, "activities", f"unit:{a}201") == 1

    await eventually(held)
    # Held in the database, its message acknowledged: nothing waits in the queue, and other
    # townships' events are handled meanwhile.
    await eventually(unacknowledged(infra, "activities.ingress"))
    other = scheduled(f"act-{secrets.token_hex(4)}", f"{b}201", source=f"/townships/{b}")
    await town_b.publish(other)
    await tap.wait_for(lambda e: e.subject == other.data.activity_id and e.type == other.type, timeout=30)
    # Minutes later is still early, not wrong: the sweep leaves it held within the hold.
    hold = timedelta(seconds=activities.settings.hold_s)
    assert await activities.holds.sweep(datetime.now(UTC) + hold - timedelta(minutes=1)) == []
    assert await held_for(apps, "activities", f"unit:{a}201") == 1
    assert await activities.activities.get(early.data.activity_id) is None

    # The village arrives: the held event is handled as if it had just arrived, once.
    await township.publish(registered(UnitRegistered(unit_id=a, name="A镇", kind=K.TOWN)))
    await township.publish(
        registered(UnitRegistered(unit_id=f"{a}201", name="A村", kind=K.VILLAGE, parent_id=a))
    )
    await tap.wait_for(
        lambda e: e.subject == early.data.activity_id and e.type == ActivityScheduledEvent.TYPE, timeout=60
    )
    stored = await activities.activities.get(early.data.activity_id)
    assert stored is not None and stored.unit_id == f"{a}201"
    assert await held_for(apps, "activities", f"unit:{a}201") == 0
    await town_a.publish(early)  # a duplicate after the release changes nothing either
    await asyncio.sleep(1)
    assert len(tap.matching(lambda e: e.subject == early.data.activity_id)) == 1
    assert town_a.rejections == [] and town_b.rejections == []


async def test_a_held_event_that_outstays_the_hold_is_refused_late_on_the_senders_reply_queue_once(
    apps: dict[str, ModuleType],
    townships: Callable[..., Any],
    township: TownshipClient,
    tap: Tap,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    activities = apps["activities"]
    monkeypatch.setattr(activities.settings, "hold_s", 60.0)  # a short hold, to see it run out
    a = town_code()
    town_a: TownshipClient = await townships(a)
    never = scheduled(f"act-{secrets.token_hex(4)}", f"{a}299", source=f"/townships/{a}")
    await town_a.publish(never)

    async def held() -> bool:
        return await held_for(apps, "activities", f"unit:{a}299") == 1

    await eventually(held)
    [doc] = await activities.holds.held.find({"awaiting": f"unit:{a}299"}).to_list(None)
    assert (doc["user"], doc["township_id"]) == (township_user(a), a)  # the broker-checked sender
    assert doc["reply_to"] == f"wmsj.replies.{township_user(a)}"
    # The sweep's clock: within the hold, nothing; once it has run out, refused.
    assert await activities.holds.sweep(doc["held_at"] + timedelta(seconds=59)) == []
    later = doc["held_at"] + timedelta(seconds=60)
    assert await activities.holds.sweep(later) == [never.id]
    assert await activities.holds.sweep(later) == []  # refused once

    [refused] = await town_a.wait_for_rejections(1, timeout=30)
    assert (refused.rejected_id, refused.rejected_by, refused.reason) == (
        never.id,
        "activities",
        f"unit {a}299 was not registered within 1 min; register it first, then send the event again",
    )
    await tap.wait_for(lambda e: e.type == "wmsj.event.rejected.v1" and e.subject == never.id, timeout=30)
    assert await activities.activities.get(never.data.activity_id) is None
    assert await held_for(apps, "activities", f"unit:{a}299") == 0

    # As the refusal says: register the unit, then send the event again — the same event.
    await office_registers(
        township,
        apps,
        UnitRegistered(unit_id=a, name="A镇", kind=K.TOWN),
        UnitRegistered(unit_id=f"{a}299", name="A村", kind=K.VILLAGE, parent_id=a),
    )
    await town_a.publish(never)
    await tap.wait_for(lambda e: e.subject == never.data.activity_id and e.type == never.type, timeout=30)
    assert len(town_a.rejections) == 1


async def test_a_flood_of_held_events_does_not_hold_up_other_townships(
    infra: Infra,
    apps: dict[str, ModuleType],
    townships: Callable[..., Any],
    township: TownshipClient,
    tap: Tap,
) -> None:
    activities = apps["activities"]
    a, b = two_towns()
    await office_registers(
        township,
        apps,
        UnitRegistered(unit_id=b, name="B镇", kind=K.TOWN),
        UnitRegistered(unit_id=f"{b}201", name="B村", kind=K.VILLAGE, parent_id=b),
    )
    town_a: TownshipClient = await townships(a)
    town_b: TownshipClient = await townships(b)
    # More early events than the consumer takes at once (its prefetch)…
    flood = [scheduled(f"act-{secrets.token_hex(4)}", f"{a}201", f"/townships/{a}") for _ in range(40)]
    assert len(flood) > activities.settings.prefetch
    for event in flood:
        await town_a.publish(event)
    # …and then another township's event, which is handled while all of them are held.
    other = scheduled(f"act-{secrets.token_hex(4)}", f"{b}201", source=f"/townships/{b}")
    await town_b.publish(other)
    await tap.wait_for(lambda e: e.subject == other.data.activity_id and e.type == other.type, timeout=60)
    # Accepted while every one of the forty is still unresolved: none refused, none applied
    # (waiting in the handler, they would have had to be refused to free the consumer).
    assert town_a.rejections == []
    assert not tap.matching(lambda e: e.subject in {f.data.activity_id for f in flood})

    async def all_held() -> bool:
        return await held_for(apps, "activities", f"unit:{a}201") == 40

    await eventually(all_held)
    await eventually(unacknowledged(infra, "activities.ingress"))

    # The unit arrives: all forty are applied.
    await township.publish(registered(UnitRegistered(unit_id=a, name="A镇", kind=K.TOWN)))
    await township.publish(
        registered(UnitRegistered(unit_id=f"{a}201", name="A村", kind=K.VILLAGE, parent_id=a))
    )
    ids = {e.data.activity_id for e in flood}
    await tap.wait_for(
        lambda e: e.subject in ids and e.type == ActivityScheduledEvent.TYPE, count=40, timeout=120
    )
    assert await held_for(apps, "activities", f"unit:{a}201") == 0
    assert town_a.rejections == []


async def test_a_rating_that_overtakes_its_order_is_held_until_the_order_is_placed(
    apps: dict[str, ModuleType], townships: Callable[..., Any], township: TownshipClient
) -> None:
    from shared.events.activities import OrderPlaced, OrderPlacedEvent, OrderRated, OrderRatedEvent

    activities = apps["activities"]
    a = town_code()
    await office_registers(
        township,
        apps,
        UnitRegistered(unit_id=a, name="A镇", kind=K.TOWN),
        UnitRegistered(unit_id=f"{a}-S", name="A所", kind=K.PRACTICE_INSTITUTE, parent_id=a),
    )
    town_a: TownshipClient = await townships(a)
    order_id = f"o-{secrets.token_hex(4)}"
    now = datetime.now(UTC)
    rating = new_event(
        OrderRatedEvent,
        OrderRated(order_id=order_id, requester_id="r1", rating=5),
        source=f"/townships/{a}",
        time=now,
    )
    await town_a.publish(rating)

    async def held() -> bool:
        return await held_for(apps, "activities", f"order:{order_id}") == 1

    await eventually(held)
    await town_a.publish(
        new_event(
            OrderPlacedEvent,
            OrderPlaced(
                order_id=order_id, requester_id="r1", requester_kind="resident", unit_id=f"{a}-S", need="助老"
            ),
            source=f"/townships/{a}",
            time=now - timedelta(hours=1),
        )
    )

    async def rated() -> bool:
        order = await activities.orders.get(order_id)
        return order is not None and [s.kind for s in order.statements] == ["placed", "rated"]

    await eventually(rated)
    assert await held_for(apps, "activities", f"order:{order_id}") == 0
    assert town_a.rejections == []


async def test_a_hold_written_just_after_its_unit_arrived_is_released_at_once(
    apps: dict[str, ModuleType], townships: Callable[..., Any], township: TownshipClient, tap: Tap
) -> None:
    """The race: the handler saw the unit unknown, the unit arrived (and released nothing),
    then the hold was written. The hold looks again once it is stored."""
    from shared.holds import Awaited
    from shared.identity import Publisher

    activities = apps["activities"]
    a = town_code()
    await office_registers(
        township,
        apps,
        UnitRegistered(unit_id=a, name="A镇", kind=K.TOWN),
        UnitRegistered(unit_id=f"{a}201", name="A村", kind=K.VILLAGE, parent_id=a),
    )
    late = scheduled(f"act-{secrets.token_hex(4)}", f"{a}201", source=f"/townships/{a}")
    await activities.holds.hold(late, Publisher(township_user(a), a), None, Awaited("unit", f"{a}201"))
    await tap.wait_for(lambda e: e.subject == late.data.activity_id and e.type == late.type, timeout=30)
    assert await held_for(apps, "activities", f"unit:{a}201") == 0


async def test_a_held_childs_late_refusal_reaches_the_senders_reply_queue(
    apps: dict[str, ModuleType], townships: Callable[..., Any], tap: Tap
) -> None:
    a = town_code()
    town_a: TownshipClient = await townships(a)
    source = f"/townships/{a}"
    wrong = registered(
        UnitRegistered(unit_id=f"{a}999", name="村", kind=K.VILLAGE, parent_id=f"{a}-S"), source=source
    )
    await town_a.publish(wrong)  # held: its parent is not known; the message is acknowledged
    await town_a.publish(registered(UnitRegistered(unit_id=a, name="A镇", kind=K.TOWN), source=source))
    await town_a.publish(
        registered(
            UnitRegistered(unit_id=f"{a}-S", name="所", kind=K.PRACTICE_INSTITUTE, parent_id=a), source=source
        )
    )
    [refused] = await town_a.wait_for_rejections(1, timeout=30)
    assert refused.rejected_id == wrong.id and refused.rejected_by == "registry"
    assert "a village cannot be under a practice_institute" in refused.reason
    # The office hears of it too.
    await tap.wait_for(lambda e: e.type == "wmsj.event.rejected.v1" and e.subject == wrong.id, timeout=30)
    assert await apps["registry"].units.get(f"{a}999") is None


def volunteer_of(unit_id: str, source: str) -> Any:
    from shared.events.units import VolunteerRegistered, VolunteerRegisteredEvent
    from shared.pii import id_card_checksum

    first17 = "43138119900101" + f"{secrets.randbelow(1000):03d}"
    return new_event(
        VolunteerRegisteredEvent,
        VolunteerRegistered(
            volunteer_id=f"v-{secrets.token_hex(4)}",
            name="王芳",
            id_card=first17 + id_card_checksum(first17),
            phone="13812345678",
            unit_id=unit_id,
        ),
        source=source,
        time=T0,
    )


async def test_a_volunteer_sent_before_its_unit_is_held_until_the_unit_arrives(
    apps: dict[str, ModuleType], townships: Callable[..., Any]
) -> None:
    registry = apps["registry"].units
    a = town_code()
    town_a: TownshipClient = await townships(a)
    source = f"/townships/{a}"
    volunteer = volunteer_of(f"{a}201", source)
    await town_a.publish(volunteer)

    async def held() -> bool:
        doc = await registry.units.find_one({"_id": f"{a}201"})
        return doc is not None and [e["id"] for e in doc.get("waiting", [])] == [volunteer.id]

    await eventually(held)
    waiting = (await registry.units.find_one({"_id": f"{a}201"}))["waiting"][0]
    assert volunteer.data.id_card not in str(waiting) and volunteer.data.phone not in str(waiting)  # sealed

    await town_a.publish(registered(UnitRegistered(unit_id=a, name="A镇", kind=K.TOWN), source=source))
    await town_a.publish(
        registered(UnitRegistered(unit_id=f"{a}201", name="A村", kind=K.VILLAGE, parent_id=a), source=source)
    )

    async def stored() -> bool:
        return await registry.volunteer(volunteer.data.volunteer_id) is not None

    await eventually(stored)
    found = await registry.volunteer(volunteer.data.volunteer_id)
    assert found is not None and (found.unit_id, found.township_id) == (f"{a}201", a)
    assert town_a.rejections == []


async def test_a_volunteer_whose_unit_never_comes_is_refused_late_on_the_reply_queue(
    apps: dict[str, ModuleType], townships: Callable[..., Any], tap: Tap
) -> None:
    registry = apps["registry"]
    a = town_code()
    town_a: TownshipClient = await townships(a)
    volunteer = volunteer_of(f"{a}298", f"/townships/{a}")
    await town_a.publish(volunteer)

    async def held() -> bool:
        doc = await registry.units.units.find_one({"_id": f"{a}298"})
        return doc is not None and bool(doc.get("waiting"))

    await eventually(held)
    assert volunteer.id not in await registry.expire_held(datetime.now(UTC))  # still within the hold
    # The sweep's clock, once the hold has run out:
    later = datetime.now(UTC) + timedelta(seconds=registry.settings.hold_s)
    assert volunteer.id in await registry.expire_held(later)

    [refused] = await town_a.wait_for_rejections(1, timeout=30)
    assert (refused.rejected_id, refused.rejected_by) == (volunteer.id, "registry")
    assert refused.reason.startswith(
        f"volunteer {volunteer.data.volunteer_id}: unit {a}298 is not registered; register it first"
    )
    assert volunteer.data.id_card not in refused.reason
    await tap.wait_for(lambda e: e.type == "wmsj.event.rejected.v1" and e.subject == volunteer.id, timeout=30)
    assert await registry.units.volunteer(volunteer.data.volunteer_id) is None
    assert await registry.units.units.find_one({"_id": f"{a}298"}) is None  # nothing left waiting
    assert volunteer.id not in await registry.expire_held(later)  # refused once


async def test_a_township_key_reads_only_its_own_subtrees_activities(
    apps: dict[str, ModuleType], township: TownshipClient, tap: Tap
) -> None:
    import httpx

    from shared.auth import DEV_OFFICE_KEY, caller_dependency, parse_keys

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
    ours, theirs = (
        scheduled(f"act-{secrets.token_hex(4)}", f"{a}201", "/office"),
        scheduled(f"act-{secrets.token_hex(4)}", f"{b}201", "/office"),
    )
    for event in (ours, theirs):
        await township.publish(event)
    for event in (ours, theirs):
        await tap.wait_for(lambda e, event=event: e.subject == event.data.activity_id, timeout=30)

    keys = parse_keys(f'{{"{DEV_OFFICE_KEY}": "office", "k-a": "township:{a}"}}')
    app = activities.create_app()
    # The routes read their keys from WMSJ_API_KEYS at import; this app gets the test's keys.
    app.dependency_overrides[activities.api.CALLER.dependency] = caller_dependency(keys)
    as_a, as_office = {"Authorization": "Bearer k-a"}, {"Authorization": f"Bearer {DEV_OFFICE_KEY}"}
    period = ours.data.starts_at.strftime("%Y-%m")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a") as http:
        assert (await http.get("/activities")).status_code == 401
        listed = {x["activity_id"] for x in (await http.get("/activities", headers=as_a)).json()}
        assert ours.data.activity_id in listed and theirs.data.activity_id not in listed
        assert (await http.get(f"/activities/{ours.data.activity_id}", headers=as_a)).status_code == 200
        assert (await http.get(f"/activities/{theirs.data.activity_id}", headers=as_a)).status_code == 404
        assert (await http.get(f"/units/{b}201/calendar", headers=as_a)).status_code == 404
        city = (await http.get("/calendar", params={"period": period}, headers=as_a)).json()
        seen = {x["activity_id"] for p in city["projects"] for x in p["activities"]}
        assert ours.data.activity_id in seen and theirs.data.activity_id not in seen
        warned = (await http.get("/warnings/monthly", params={"period": "2019-01"}, headers=as_a)).json()
        assert set(warned["unit_ids"]) == {a, f"{a}201"}
        assert (await http.get("/projects/2020", headers=as_a)).status_code == 200  # the city's list

        both = {x["activity_id"] for x in (await http.get("/activities", headers=as_office)).json()}
        assert {ours.data.activity_id, theirs.data.activity_id} <= both
        assert (
            await http.get(f"/activities/{theirs.data.activity_id}", headers=as_office)
        ).status_code == 200
