"""The world the ownership cases attack: two real townships (A, the owner; B, the attacker),
each connected as its own RabbitMQ user with its own reply queue and its own API key, and
everything A owns — an activity it scheduled, one the office scheduled for it, a roster with
credited hours, an order, a stored piece of evidence from an upload issued to it, a
volunteer — plus what B needs to attack from its own side (its own activity, a check-in, an
upload of its own).

What a case checks (``World.attempt``): B hears the refusal on its own reply queue, with a
reason and the field at fault, naming nothing of A; nothing the services keep about any of
these ids changed; no service logged an ERROR or a traceback.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx

from shared.auth import DEV_OFFICE_KEY
from shared.events import (
    ActivityScheduled,
    ActivityScheduledEvent,
    CloudEvent,
    EventRejected,
    EvidenceSubmitted,
    EvidenceSubmittedEvent,
    UnitKind,
    UnitRegistered,
    UnitRegisteredEvent,
    new_event,
)
from shared.events import activities as A
from shared.events.units import VolunteerRegistered, VolunteerRegisteredEvent
from shared.identity import township_user
from shared.onboarding import BrokerAdmin
from shared.pii import id_card_checksum
from tests.conftest import Infra
from tests.support import town_code
from wmsj.client import TownshipClient
from wmsj.demo import png

K = UnitKind


def as_user(amqp_url: str, user: str, password: str) -> str:
    parts = urlsplit(amqp_url)
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{parts.hostname}:{parts.port or 5672}"
    return urlunsplit(parts._replace(netloc=netloc))


async def eventually(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not reached within {timeout}s: {what}")
        await asyncio.sleep(0.1)


def card() -> str:
    first17 = "43138119900101" + f"{secrets.randbelow(1000):03d}"
    return first17 + id_card_checksum(first17)


class ServiceErrors(logging.Handler):
    """Every ERROR (or worse) and every traceback any in-process service logs."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or record.exc_info:
            self.records.append(record)

    def since(self, mark: int) -> list[str]:
        return [f"{r.name}: {r.getMessage()}" for r in self.records[mark:]]


@dataclass
class World:
    apps: dict[str, ModuleType]
    infra: Infra
    s3: Any  # (S3Settings, Minio)
    tag: str
    a: str  # A's township (division code)
    b: str
    office: TownshipClient
    town_a: TownshipClient
    town_b: TownshipClient
    http_a: httpx.AsyncClient
    http_b: httpx.AsyncClient
    errors: ServiceErrors
    t0: datetime  # A's statements are dated from here
    ids: dict[str, str] = field(default_factory=dict)  # what A (and B) own, by role
    upload_a: tuple[str, bytes] = ("", b"")  # A's stored evidence's upload: key, bytes
    upload_a2: tuple[str, bytes] = ("", b"")  # A's second upload, not submitted yet
    upload_b: tuple[str, bytes] = ("", b"")  # B's own upload

    # ------------------------------------------------------------------ what names A

    @property
    def secrets_of_a(self) -> list[str]:
        """What a refusal to B must never contain: A's township id, units, names, user."""
        return [self.a, f"{self.a}201", "甲镇", "甲镇第一村", township_user(self.a), "甲志愿者"]

    def new_id(self, what: str) -> str:
        return f"{what}-{self.tag}-{secrets.token_hex(3)}"

    # ------------------------------------------------------------------ the state compared

    async def snapshot(self) -> dict[str, Any]:
        """What the services keep about every id of this world (database views), and A's
        uploaded object."""
        ids = sorted(set(self.ids.values()) | self.attempted)
        registry, activities, evidence = (self.apps[n] for n in ("registry", "activities", "evidence"))
        out: dict[str, Any] = {}

        async def docs(collection: Any, key: str = "_id") -> list[Any]:
            return await collection.find({key: {"$in": ids}}).sort("_id", 1).to_list(None)

        out["registry.volunteers"] = await docs(registry.units.volunteers)
        out["registry.hours"] = await docs(registry.units.hours, "volunteer_id")
        out["activities.activities"] = await docs(activities.activities.activities)
        out["activities.rosters"] = await docs(activities.rosters.rosters)
        out["activities.orders"] = await docs(activities.orders.orders)
        out["evidence.evidence"] = await docs(evidence.evidence.evidence)
        out["evidence.by_activity"] = await docs(evidence.evidence.evidence, "activity_id")
        out["evidence.activities"] = await docs(evidence.evidence.activities)
        settings, client = self.s3
        for key in (self.upload_a[0], self.upload_a2[0]):
            response = client.get_object(settings.upload_bucket, key)
            try:
                out[f"s3:{key}"] = bytes(response.read())
            finally:
                response.close()
                response.release_conn()
        return out

    attempted: set[str] = field(default_factory=set)  # ids B tried to introduce
    saved_keys: str | None = None  # WMSJ_API_KEYS before the world set its own

    # ------------------------------------------------------------------ one attack

    async def rejection_of(self, client: TownshipClient, event_id: str, timeout: float = 30) -> EventRejected:
        async def arrived() -> bool:
            return any(r.rejected_id == event_id for r in client.rejections)

        await eventually(arrived, f"the refusal of {event_id} on {client.user_id}'s reply queue", timeout)
        return next(r for r in client.rejections if r.rejected_id == event_id)

    def assert_names_nothing_of_a(self, text: str) -> None:
        leaked = [s for s in self.secrets_of_a if s in text]
        assert not leaked, f"the refusal names {leaked} of the other township: {text}"

    async def attempt(self, event: CloudEvent[Any], expected: str, field_at_fault: str | None = None) -> None:
        """B sends ``event``: refused to B with a reason naming nothing of A, nothing kept
        changed, nothing logged as an error."""
        for name in ("activity_id", "order_id", "evidence_id", "volunteer_id"):
            if (value := getattr(event.data, name, None)) is not None:
                self.attempted.add(value)
        before = await self.snapshot()
        mark = len(self.errors.records)
        await self.town_b.publish(event)
        rejection = await self.rejection_of(self.town_b, event.id)
        assert expected in rejection.reason, rejection.reason
        assert rejection.errors, f"no field named: {rejection}"
        if field_at_fault is not None:
            assert field_at_fault in [e.location for e in rejection.errors], rejection.errors
        self.assert_names_nothing_of_a(rejection.model_dump_json())
        assert [r for r in self.town_a.rejections if r.rejected_id == event.id] == []  # only B hears
        assert await self.snapshot() == before
        assert self.errors.since(mark) == []


# ----------------------------------------------------------------------------- building it


async def make_township(infra: Infra, township_id: str) -> tuple[TownshipClient, str]:
    """A township's user, exactly as ``wmsj township add`` makes it, and its connection."""
    async with BrokerAdmin(infra.amqp_url) as admin:
        password = (await admin.add(township_id)).password
    client = TownshipClient(as_user(infra.amqp_url, township_user(township_id), password))
    await client.__aenter__()
    return client, password


def evidence_http(apps: dict[str, ModuleType]) -> httpx.AsyncClient:
    """The evidence service's HTTP API (the running services' app, without its lifespan),
    with the keys in ``WMSJ_API_KEYS`` (the routes read them when first used: the caller
    keeps the variable set while it uses the client)."""
    app = apps["evidence"].create_app()
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://evidence")


async def upload_with_policy(http: httpx.AsyncClient, content: bytes, content_type: str = "image/png") -> str:
    """Ask for an upload policy and use it, as a township tool does; returns the key."""
    grant = await request_policy(http, len(content), content_type)
    response = await post_to_s3(grant, content)
    assert response.status_code in (200, 204), response.text
    return str(grant["object_key"])


async def request_policy(
    http: httpx.AsyncClient, size: int, content_type: str = "image/png"
) -> dict[str, Any]:
    response = await http.post("/uploads/policy", json={"content_type": content_type, "size": size})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def post_to_s3(grant: dict[str, Any], content: bytes, **change: str) -> httpx.Response:
    fields = {**grant["fields"], **change}
    async with httpx.AsyncClient() as client:
        return await client.post(
            grant["url"], data=fields, files={"file": ("f", content, fields["Content-Type"])}
        )


def event(model: type[CloudEvent[Any]], data: Any, source: str, at: datetime) -> CloudEvent[Any]:
    return new_event(model, data, source=source, time=at)


def submitted(
    evidence_id: str, activity_id: str, unit_id: str, key: str, content: bytes
) -> EvidenceSubmitted:
    import hashlib

    return EvidenceSubmitted(
        evidence_id=evidence_id,
        activity_id=activity_id,
        unit_id=unit_id,
        object_key=key,
        sha256=hashlib.sha256(content).hexdigest(),
        size=len(content),
        content_type="image/png",
        caption="现场",
    )


async def build_world(apps: dict[str, ModuleType], infra: Infra, s3: Any) -> World:
    """The world, or nothing left behind: township users are broker-wide, so a world that
    cannot be built deletes the ones it made."""
    made: list[str] = []
    try:
        return await _build_world(apps, infra, s3, made)
    except BaseException:
        for township_id in made:
            infra.rabbitmqctl(["delete_user", township_user(township_id)])
        raise


async def _build_world(apps: dict[str, ModuleType], infra: Infra, s3: Any, made: list[str]) -> World:
    tag = secrets.token_hex(3)
    a, b = town_code(), town_code()
    office = TownshipClient(infra.amqp_url)
    await office.__aenter__()
    made.append(a)
    town_a, _ = await make_township(infra, a)
    made.append(b)
    town_b, _ = await make_township(infra, b)
    keys = {DEV_OFFICE_KEY: "office", "k-a-" + tag: f"township:{a}", "k-b-" + tag: f"township:{b}"}
    saved_keys = os.environ.get("WMSJ_API_KEYS")
    os.environ["WMSJ_API_KEYS"] = json.dumps(keys)  # restored by tear_down
    http_a = evidence_http(apps)
    http_a.headers["Authorization"] = f"Bearer k-a-{tag}"
    http_b = evidence_http(apps)
    http_b.headers["Authorization"] = f"Bearer k-b-{tag}"
    errors = ServiceErrors()
    logging.getLogger().addHandler(errors)
    now = datetime.now(UTC)
    world = World(
        apps,
        infra,
        s3,
        tag,
        a,
        b,
        office,
        town_a,
        town_b,
        http_a,
        http_b,
        errors,
        t0=now - timedelta(hours=3),
        saved_keys=saved_keys,
    )
    activities, evidence, registry = apps["activities"], apps["evidence"], apps["registry"]

    # The office registers both townships and a village of each.
    units = [
        UnitRegistered(unit_id=a, name="甲镇", kind=K.TOWN),
        UnitRegistered(unit_id=b, name="乙镇", kind=K.TOWN),
        UnitRegistered(unit_id=f"{a}201", name="甲镇第一村", kind=K.VILLAGE, parent_id=a),
        UnitRegistered(unit_id=f"{b}201", name="乙镇第一村", kind=K.VILLAGE, parent_id=b),
    ]
    for unit in units:
        await office.publish(event(UnitRegisteredEvent, unit, "/office", now - timedelta(days=30)))

    async def units_known() -> bool:
        return all(
            [await activities.units.get(u.unit_id) is not None for u in units]
            + [await evidence.evidence.unit(u.unit_id) is not None for u in units]
            + [await registry.units.get(u.unit_id) is not None for u in units]
        )

    await eventually(units_known, "the units known to every service")

    ids = world.ids
    ids.update(
        act_a=world.new_id("act"),
        act_ao=world.new_id("act"),
        act_b=world.new_id("act"),
        order_a=world.new_id("order"),
        ev_a=world.new_id("ev"),
        vol_a=world.new_id("vol"),
        vol_b=world.new_id("vol"),
    )
    src_a, src_b = f"/townships/{a}", f"/townships/{b}"
    t0 = world.t0
    starts, ends = t0, t0 + timedelta(hours=2)

    def schedule(activity_id: str, unit_id: str) -> ActivityScheduled:
        return ActivityScheduled(
            activity_id=activity_id, unit_id=unit_id, title="宣讲", starts_at=starts, ends_at=ends
        )

    # A schedules its activity; the office schedules one for A's village; B schedules its own.
    await town_a.publish(
        event(ActivityScheduledEvent, schedule(ids["act_a"], f"{a}201"), src_a, t0 - timedelta(days=2))
    )
    await office.publish(
        event(ActivityScheduledEvent, schedule(ids["act_ao"], f"{a}201"), "/office", t0 - timedelta(days=2))
    )
    await town_b.publish(
        event(ActivityScheduledEvent, schedule(ids["act_b"], f"{b}201"), src_b, t0 - timedelta(days=2))
    )

    async def scheduled() -> bool:
        return all(
            [await activities.activities.get(ids[k]) is not None for k in ("act_a", "act_ao", "act_b")]
            + [
                await evidence.evidence.known_activity(ids[k]) is not None
                for k in ("act_a", "act_ao", "act_b")
            ]
        )

    await eventually(scheduled, "the three activities scheduled")

    # A's volunteer, attendance with credited hours, its order.
    holder_card = card()
    world.ids["card_a"] = holder_card
    await town_a.publish(
        event(
            VolunteerRegisteredEvent,
            VolunteerRegistered(
                volunteer_id=ids["vol_a"],
                name="甲志愿者",
                id_card=holder_card,
                phone="13812345678",
                unit_id=f"{a}201",
            ),
            src_a,
            t0 - timedelta(days=1),
        )
    )
    who = A.VolunteerAttendance(activity_id=ids["act_a"], unit_id=f"{a}201", volunteer_id=ids["vol_a"])
    await town_a.publish(event(A.VolunteerSignedUpEvent, who, src_a, t0 - timedelta(days=1)))
    await town_a.publish(event(A.VolunteerCheckedInEvent, who, src_a, starts))
    await town_a.publish(event(A.VolunteerCheckedOutEvent, who, src_a, ends))
    placed = A.OrderPlaced(
        order_id=ids["order_a"], requester_id="r-1", requester_kind="resident", unit_id=f"{a}201", need="助老"
    )
    await town_a.publish(event(A.OrderPlacedEvent, placed, src_a, t0 - timedelta(hours=1)))
    # B registers its own volunteer and checks them in at its own activity (the hours cases
    # check out).
    await town_b.publish(
        event(
            VolunteerRegisteredEvent,
            VolunteerRegistered(
                volunteer_id=ids["vol_b"],
                name="乙志愿者",
                id_card=card(),
                phone="13900002222",
                unit_id=f"{b}201",
            ),
            src_b,
            t0 - timedelta(days=1),
        )
    )
    mine = A.VolunteerAttendance(activity_id=ids["act_b"], unit_id=f"{b}201", volunteer_id=ids["vol_b"])
    await town_b.publish(event(A.VolunteerCheckedInEvent, mine, src_b, starts))

    # Uploads issued to A (two) and to B (one); A's first becomes stored evidence.
    world.upload_a = (await upload_with_policy(http_a, png(secrets.randbits(32))), b"")
    world.upload_a2 = (await upload_with_policy(http_a, png(secrets.randbits(32))), b"")
    world.upload_b = (await upload_with_policy(http_b, png(secrets.randbits(32))), b"")
    settings, client = s3
    for name in ("upload_a", "upload_a2", "upload_b"):
        key = getattr(world, name)[0]
        response = client.get_object(settings.upload_bucket, key)
        try:
            setattr(world, name, (key, bytes(response.read())))
        finally:
            response.close()
            response.release_conn()
    key_a, bytes_a = world.upload_a
    await town_a.publish(
        event(
            EvidenceSubmittedEvent,
            submitted(ids["ev_a"], ids["act_a"], f"{a}201", key_a, bytes_a),
            src_a,
            ends,
        )
    )

    async def settled() -> bool:
        roster = await activities.rosters.get(ids["act_b"])
        return (
            await registry.units.volunteer(ids["vol_a"]) is not None
            and bool(await registry.units.ledger(ids["vol_a"]))
            and await activities.orders.get(ids["order_a"]) is not None
            and roster is not None
            and roster.of(ids["vol_b"]) is not None
            and await evidence.evidence.get(ids["ev_a"]) is not None
            and await activities.evidence_facts.activity_of(ids["ev_a"]) == ids["act_a"]
            and await activities.volunteers.get(ids["vol_b"]) is not None
        )

    await eventually(settled, "A's volunteer, hours, order and evidence, and B's check-in")
    assert town_a.rejections == [] and town_b.rejections == [], (town_a.rejections, town_b.rejections)
    return world


async def tear_down(world: World) -> None:
    logging.getLogger().removeHandler(world.errors)
    if world.saved_keys is None:
        os.environ.pop("WMSJ_API_KEYS", None)
    else:
        os.environ["WMSJ_API_KEYS"] = world.saved_keys
    for client in (world.office, world.town_a, world.town_b):
        await client.__aexit__()
    for http in (world.http_a, world.http_b):
        await http.aclose()
    for township_id in (world.a, world.b):
        world.infra.rabbitmqctl(["delete_user", township_user(township_id)])
