"""Ownership, hours and uploads, attacked (issue 10, items 1, 2 and 5), against the real
servers with the services in process: township B tries to state things about what township A
owns — its activities (one the office scheduled for it too), rosters, orders, evidence,
volunteers and uploads — and to credit hours it has no right to. Every case asserts that B
is refused with a reason on its own reply queue (or by the S3 server, for an upload) that
names nothing of A, that nothing the services keep changed, and that no service logged an
error (``ownership_support.World.attempt``)."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import pytest

from shared.events import (
    ActivityCompleted,
    ActivityCompletedEvent,
    ActivityScheduled,
    ActivityScheduledEvent,
    CloudEvent,
    EvidenceStoredEvent,
    EvidenceSubmittedEvent,
)
from shared.events import activities as A
from shared.events.units import VolunteerRegistered, VolunteerRegisteredEvent
from tests.conftest import Infra
from tests.security.ownership_support import (
    World,
    build_world,
    card,
    event,
    post_to_s3,
    request_policy,
    submitted,
    tear_down,
)
from tests.support import Tap
from wmsj.demo import png

pytestmark = pytest.mark.integration

NOT_YOURS = "is another township's: choose an id of your own"


@pytest.fixture(scope="module")
async def world(apps: dict[str, ModuleType], infra: Infra, s3: Any) -> AsyncIterator[World]:
    built = await build_world(apps, infra, s3)
    yield built
    await tear_down(built)


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[World], CloudEvent[Any]]
    expected: str  # in the reason
    field: str | None = None  # among the errors' locations


def b_src(w: World) -> str:
    return f"/townships/{w.b}"


def now() -> datetime:
    return datetime.now(UTC)


# ----------------------------------------------------------------------------- activities


def schedule_as_b(target: str, *, unit: str = "b", back: timedelta = timedelta(0)) -> Callable[[World], Any]:
    def build(w: World) -> Any:
        unit_id = f"{w.b}201" if unit == "b" else f"{w.a}201"
        start = now() + timedelta(days=2)
        data = ActivityScheduled(
            activity_id=w.ids[target],
            unit_id=unit_id,
            title="乙的活动",
            starts_at=start,
            ends_at=start + timedelta(hours=1),
        )
        return event(
            ActivityScheduledEvent, data, b_src(w), w.t0 - timedelta(days=2) - back if back else now()
        )

    return build


def lifecycle_as_b(kind: str, target: str) -> Callable[[World], Any]:
    def build(w: World) -> Any:
        ids = {"activity_id": w.ids[target], "unit_id": f"{w.b}201"}
        if kind == "published":
            return event(
                A.ActivityPublishedEvent,
                A.ActivityPublished(**ids, capacity=5),
                b_src(w),
                w.t0 - timedelta(days=1),
            )
        if kind == "cancelled":
            return event(A.ActivityCancelledEvent, A.ActivityCancelled(**ids, reason="雨"), b_src(w), now())
        done = ActivityCompleted(**ids, ended_at=w.t0 + timedelta(hours=2), volunteers=3, service_hours=6)
        return event(ActivityCompletedEvent, done, b_src(w), now())

    return build


def attendance_as_b(kind: str, target: str) -> Callable[[World], Any]:
    models = {
        "signed-up": A.VolunteerSignedUpEvent,
        "withdrawn": A.VolunteerWithdrewEvent,
        "checked-in": A.VolunteerCheckedInEvent,
        "checked-out": A.VolunteerCheckedOutEvent,
    }

    def build(w: World) -> Any:
        if kind == "supplemented":
            data = A.HoursSupplemented(
                volunteer_id=w.ids["vol_a"],
                activity_id=w.ids[target],
                unit_id=f"{w.b}201",
                hours=3,
                approver_id="approver-b",
                evidence_id=w.ids["ev_a"],
                reason="补录",
            )
            return event(A.HoursSupplementedEvent, data, b_src(w), now())
        who = A.VolunteerAttendance(
            activity_id=w.ids[target], unit_id=f"{w.b}201", volunteer_id=w.ids["vol_a"]
        )
        return event(models[kind], who, b_src(w), w.t0 + timedelta(minutes=30))

    return build


ACTIVITY_CASES = [
    Case("schedule A's activity id, now", schedule_as_b("act_a"), NOT_YOURS, "data.activity_id"),
    Case("schedule A's activity id, back-dated", schedule_as_b("act_a", back=timedelta(days=30)), NOT_YOURS),
    Case("schedule A's activity id naming A's unit", schedule_as_b("act_a", unit="a"), NOT_YOURS),
    Case("schedule the office's activity for A, now", schedule_as_b("act_ao"), NOT_YOURS),
    Case(
        "schedule the office's activity for A, back-dated",
        schedule_as_b("act_ao", back=timedelta(days=9)),
        NOT_YOURS,
    ),
    *(
        Case(f"{kind} A's {label} activity", lifecycle_as_b(kind, target), NOT_YOURS, "data.activity_id")
        for kind in ("published", "cancelled", "completed")
        for target, label in (("act_a", "own"), ("act_ao", "office-made"))
    ),
    *(
        Case(f"{kind} at A's {label} activity", attendance_as_b(kind, target), NOT_YOURS, "data.activity_id")
        for kind in ("signed-up", "withdrawn", "checked-in", "checked-out", "supplemented")
        for target, label in (("act_a", "own"), ("act_ao", "office-made"))
    ),
]


# ----------------------------------------------------------------------------- orders


def order_as_b(kind: str, back: timedelta = timedelta(0)) -> Callable[[World], Any]:
    def build(w: World) -> Any:
        order_id, mine = w.ids["order_a"], f"{w.b}201"
        if kind == "placed":
            data: Any = A.OrderPlaced(
                order_id=order_id, requester_id="r-b", requester_kind="resident", unit_id=mine, need="接管"
            )
            return event(
                A.OrderPlacedEvent, data, b_src(w), w.t0 - timedelta(hours=1) - back if back else now()
            )
        if kind == "placed-as-village":
            data = A.OrderPlaced(
                order_id=order_id, requester_id=mine, requester_kind="village", unit_id=mine, need="接管"
            )
            return event(A.OrderPlacedEvent, data, b_src(w), w.t0 - timedelta(days=1))
        if kind == "dispatched":
            return event(
                A.OrderDispatchedEvent,
                A.OrderDispatched(order_id=order_id, dispatcher_id=mine, team_id=mine),
                b_src(w),
                now(),
            )
        if kind in ("accepted", "declined"):
            data = A.OrderAnswered(
                order_id=order_id,
                team_id=mine,
                accepted=kind == "accepted",
                activity_id=w.ids["act_b"] if kind == "accepted" else None,
            )
            return event(A.OrderAnsweredEvent, data, b_src(w), now())
        return event(
            A.OrderRatedEvent, A.OrderRated(order_id=order_id, requester_id="r-1", rating=1), b_src(w), now()
        )

    return build


ORDER_CASES = [
    Case(
        "place A's order id back-dated a day",
        order_as_b("placed", timedelta(days=1)),
        NOT_YOURS,
        "data.order_id",
    ),
    Case("place A's order id back-dated a year", order_as_b("placed", timedelta(days=365)), NOT_YOURS),
    Case("place A's order id, now", order_as_b("placed"), NOT_YOURS),
    Case("place A's order id as a village", order_as_b("placed-as-village"), NOT_YOURS),
    Case("dispatch A's order", order_as_b("dispatched"), NOT_YOURS),
    Case("accept A's order", order_as_b("accepted"), NOT_YOURS),
    Case("decline A's order", order_as_b("declined"), NOT_YOURS),
    Case("rate A's order", order_as_b("rated"), NOT_YOURS),
]


# ----------------------------------------------------------------------------- volunteers


def volunteer_as_b(
    volunteer: str, *, card_of: str = "new", unit: str = "b", active: bool = True, back: bool = False
) -> Callable[[World], Any]:
    def build(w: World) -> Any:
        data = VolunteerRegistered(
            volunteer_id=w.ids[volunteer] if volunteer in w.ids else w.new_id("vol"),
            name="乙冒名",
            id_card=w.ids["card_a"] if card_of == "a" else card(),
            phone="13900001111",
            unit_id=f"{w.b}201" if unit == "b" else f"{w.a}201",
            active=active,
        )
        return event(VolunteerRegisteredEvent, data, b_src(w), w.t0 - timedelta(days=400) if back else now())

    return build


VOLUNTEER_CASES = [
    Case("re-register A's volunteer under B's unit", volunteer_as_b("vol_a"), NOT_YOURS, "data.volunteer_id"),
    Case("re-register A's volunteer, back-dated", volunteer_as_b("vol_a", back=True), NOT_YOURS),
    Case("re-register A's volunteer with its card", volunteer_as_b("vol_a", card_of="a"), NOT_YOURS),
    Case("re-register A's volunteer as inactive", volunteer_as_b("vol_a", active=False), NOT_YOURS),
    Case("re-register A's volunteer under A's own unit", volunteer_as_b("vol_a", unit="a"), NOT_YOURS),
    Case(
        "register A's volunteer's ID card under a new id",
        volunteer_as_b("fresh", card_of="a"),
        "this ID-card number is already registered",
        "data.id_card",
    ),
    Case(
        "register A's volunteer's ID card under a new id, back-dated and inactive",
        volunteer_as_b("fresh", card_of="a", active=False, back=True),
        "this ID-card number is already registered",
    ),
]


# ----------------------------------------------------------------------------- evidence


def evidence_as_b(evidence: str, activity: str, upload: str, *, unit: str = "b") -> Callable[[World], Any]:
    def build(w: World) -> Any:
        key, content = {"a": w.upload_a, "a2": w.upload_a2, "b": w.upload_b}.get(upload, (None, b""))
        if key is None:  # a key B was never issued
            content = w.upload_b[1]
            key = {"office": f"office/{secrets.token_hex(8)}", "lookalike": f"{w.b}0/{secrets.token_hex(8)}"}[
                upload
            ]
        evidence_id = w.ids[evidence] if evidence in w.ids else w.new_id("ev")
        unit_id = f"{w.b}201" if unit == "b" else f"{w.a}201"
        data = submitted(evidence_id, w.ids[activity], unit_id, key, content)
        return event(EvidenceSubmittedEvent, data, b_src(w), now())

    return build


UPLOAD_NOT_YOURS = "object_key is not one of your uploads"
EVIDENCE_CASES = [
    Case(
        "submit under A's evidence id for B's activity",
        evidence_as_b("ev_a", "act_b", "b"),
        NOT_YOURS,
        "data.evidence_id",
    ),
    Case("submit under A's evidence id for A's activity", evidence_as_b("ev_a", "act_a", "b"), NOT_YOURS),
    Case(
        "submit under A's evidence id naming A's upload",
        evidence_as_b("ev_a", "act_a", "a", unit="a"),
        UPLOAD_NOT_YOURS,
    ),
    Case(
        "claim A's stored upload for B's activity",
        evidence_as_b("new", "act_b", "a"),
        UPLOAD_NOT_YOURS,
        "data.object_key",
    ),
    Case(
        "claim A's unsubmitted upload for B's activity", evidence_as_b("new", "act_b", "a2"), UPLOAD_NOT_YOURS
    ),
    Case("name an office upload key", evidence_as_b("new", "act_b", "office"), UPLOAD_NOT_YOURS),
    Case(
        "name a key that only begins like B's", evidence_as_b("new", "act_b", "lookalike"), UPLOAD_NOT_YOURS
    ),
    Case(
        "attach own upload to A's activity", evidence_as_b("new", "act_a", "b"), NOT_YOURS, "data.activity_id"
    ),
    Case("attach own upload to the office's activity for A", evidence_as_b("new", "act_ao", "b"), NOT_YOURS),
]


# ----------------------------------------------------------------------------- hours


def hours_as_b(kind: str) -> Callable[[World], Any]:
    def build(w: World) -> Any:
        mine, own = f"{w.b}201", w.ids["act_b"]
        volunteer = w.ids["vol_a"] if kind.endswith("a-volunteer") else w.ids["vol_b"]
        if kind.startswith("supplement"):
            activity = own if kind != "supplement-no-activity" else w.new_id("act")
            evidence_id = w.ids["ev_a"] if kind == "supplement-others-evidence" else w.new_id("ev")
            data = A.HoursSupplemented(
                volunteer_id=volunteer,
                activity_id=activity,
                unit_id=mine,
                hours=2,
                approver_id="approver-b",
                evidence_id=evidence_id,
                reason="补录",
            )
            return event(A.HoursSupplementedEvent, data, b_src(w), now())
        activity = w.new_id("act") if kind == "check-out-no-activity" else own
        who = A.VolunteerAttendance(activity_id=activity, unit_id=mine, volunteer_id=volunteer)
        at = {
            "check-out-a-volunteer": w.t0 + timedelta(hours=1),
            "zero": w.t0,
            "negative": w.t0 - timedelta(hours=1),
            "ten-seconds": w.t0 + timedelta(seconds=10),
            "check-out-no-activity": w.t0 + timedelta(hours=1),
        }[kind]
        return event(A.VolunteerCheckedOutEvent, who, b_src(w), at)

    return build


HOURS_CASES = [
    Case("check out at the check-in instant (0 h)", hours_as_b("zero"), "credits no hours", "time"),
    Case("check out before the check-in (negative)", hours_as_b("negative"), "credits no hours", "time"),
    Case(
        "check out ten seconds after checking in (0.00 h)",
        hours_as_b("ten-seconds"),
        "that is 0 hours",
        "time",
    ),
    Case(
        "check out at an activity that does not exist",
        hours_as_b("check-out-no-activity"),
        "is not scheduled",
    ),
    Case("补录 at an activity that does not exist", hours_as_b("supplement-no-activity"), "is not scheduled"),
    Case(
        "补录 citing A's evidence of another activity",
        hours_as_b("supplement-others-evidence"),
        "is not stored evidence of activity",
        "data.evidence_id",
    ),
    Case(
        "补录 citing evidence never stored",
        hours_as_b("supplement-unknown-evidence"),
        "is not stored evidence",
    ),
    Case(
        "check A's volunteer out at B's own activity",
        hours_as_b("check-out-a-volunteer"),
        "is not one of your township's registered volunteers",
        "data.volunteer_id",
    ),
    Case(
        "补录 for A's volunteer at B's own activity",
        hours_as_b("supplement-a-volunteer"),
        "is not one of your township's registered volunteers",
    ),
]

CASES = ACTIVITY_CASES + ORDER_CASES + VOLUNTEER_CASES + EVIDENCE_CASES + HOURS_CASES


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
async def test_a_township_cannot_state_anything_about_what_another_owns(world: World, case: Case) -> None:
    await world.attempt(case.build(world), case.expected, case.field)


# ----------------------------------------------------------------------------- the upload route


@pytest.mark.parametrize(
    "wrong", ["A's uploaded key", "a key under A's prefix", "another size", "another type"]
)
async def test_a_township_cannot_upload_outside_the_policy_it_was_issued(world: World, wrong: str) -> None:
    """B's policy is bound to a key under B's prefix, a size and a type: the S3 server
    refuses any other, A's upload included, and nothing changes."""
    content = png(secrets.randbits(32))
    policy = await request_policy(world.http_b, len(content))
    assert policy["object_key"].startswith(f"{world.b}/")  # issued under B's own prefix
    before = await world.snapshot()
    mark = len(world.errors.records)
    if wrong == "A's uploaded key":
        response = await post_to_s3(policy, content, key=world.upload_a[0])
    elif wrong == "a key under A's prefix":
        response = await post_to_s3(policy, content, key=f"{world.a}/{secrets.token_hex(8)}")
    elif wrong == "another size":
        response = await post_to_s3(policy, content + b"\x00")
    else:
        response = await post_to_s3(policy, content, **{"Content-Type": "text/plain"})
    assert response.status_code in (400, 403), f"{wrong}: S3 answered {response.status_code}"
    assert response.text  # the S3 server says why
    world.assert_names_nothing_of_a(response.text)
    assert await world.snapshot() == before
    assert world.errors.since(mark) == []


# ----------------------------------------------------------------------------- beyond refusals


async def test_a_claimed_upload_does_not_make_the_owners_own_submission_a_reuse(
    world: World, tap: Tap
) -> None:
    key, content = world.upload_a2
    claim = evidence_as_b("new", "act_b", "a2")(world)
    await world.town_b.publish(claim)
    await world.rejection_of(world.town_b, claim.id)
    # A then submits its own upload, for its own activity: stored, and not flagged.
    own = event(
        EvidenceSubmittedEvent,
        submitted(world.new_id("ev"), world.ids["act_a"], f"{world.a}201", key, content),
        f"/townships/{world.a}",
        now(),
    )
    await world.town_a.publish(own)
    await tap.wait_for(
        lambda e: isinstance(e, EvidenceStoredEvent) and e.subject == own.data.evidence_id, timeout=60
    )
    record = await world.apps["evidence"].evidence.get(own.data.evidence_id)
    assert record is not None and record["flags"] == [] and record["owner"] == world.a
    assert [r for r in world.town_a.rejections if r.rejected_id == own.id] == []


async def test_the_office_keeps_its_powers_over_a_townships_activity(world: World, tap: Tap) -> None:
    activities = world.apps["activities"]
    start = now() + timedelta(days=5)
    restated = event(
        ActivityScheduledEvent,
        ActivityScheduled(
            activity_id=world.ids["act_ao"],
            unit_id=f"{world.a}201",
            title="市文明办更正",
            starts_at=start,
            ends_at=start + timedelta(hours=1),
        ),
        "/office",
        now(),
    )
    await world.office.publish(restated)
    await tap.wait_for(
        lambda e: (
            e.type == restated.type
            and e.id != restated.id
            and e.subject == world.ids["act_ao"]
            and e.data.title == "市文明办更正"
        ),
        timeout=60,
    )
    kept = await activities.activities.get(world.ids["act_ao"])
    assert kept is not None and kept.schedule is not None and kept.schedule.title == "市文明办更正"
    assert kept.owner == world.a  # the office's correction does not take it from A


async def test_a_second_use_of_an_upload_policy_changes_nothing_kept(world: World, tap: Tap) -> None:
    """A uses its policy, its evidence is stored and kept; the same policy is then used again
    with other bytes of the same size: what was kept, and the record, stay as they were."""
    settings, client = world.s3
    first = png(secrets.randbits(32))
    policy = await request_policy(world.http_a, len(first))
    assert (await post_to_s3(policy, first)).status_code in (200, 204)
    stored = event(
        EvidenceSubmittedEvent,
        submitted(world.new_id("ev"), world.ids["act_a"], f"{world.a}201", policy["object_key"], first),
        f"/townships/{world.a}",
        now(),
    )
    await world.town_a.publish(stored)
    [kept] = await tap.wait_for(
        lambda e: isinstance(e, EvidenceStoredEvent) and e.subject == stored.data.evidence_id, timeout=60
    )
    record = await world.apps["evidence"].evidence.get(stored.data.evidence_id)

    second = bytearray(first)
    second[-5] ^= 0xFF  # same size, other bytes
    replaced = await post_to_s3(policy, bytes(second))
    if replaced.status_code in (200, 204):  # the S3 server allowed the second use
        await world.town_a.publish(stored)  # the same submission again: a duplicate
    response = client.get_object(settings.evidence_bucket, kept.data.object_key)
    try:
        assert hashlib.sha256(response.read()).hexdigest() == hashlib.sha256(first).hexdigest()
    finally:
        response.close()
        response.release_conn()
    assert await world.apps["evidence"].evidence.get(stored.data.evidence_id) == record


async def test_the_bytes_kept_are_the_bytes_checked_even_if_the_upload_is_replaced_meanwhile(
    world: World,
) -> None:
    """The evidence service copies an upload once: replacing the object after the check
    (between the read and the keep) does not change what is kept."""
    import io

    from services.evidence.domain import permanent_key

    settings, client = world.s3
    objects = world.apps["evidence"].objects
    key = f"{world.a}/{secrets.token_hex(8)}"
    checked = png(secrets.randbits(32))
    client.put_object(
        settings.upload_bucket, key, io.BytesIO(checked), len(checked), content_type="image/png"
    )
    taken = await objects.take_upload(key)
    assert taken is not None and taken.found.sha256 == hashlib.sha256(checked).hexdigest()
    swapped = png(secrets.randbits(32))
    client.put_object(
        settings.upload_bucket, key, io.BytesIO(swapped), len(swapped), content_type="image/png"
    )
    data = submitted(world.new_id("ev"), world.ids["act_a"], f"{world.a}201", key, checked)
    try:
        await objects.keep(taken, permanent_key(data), "image/png")
    finally:
        taken.close()
    response = client.get_object(settings.evidence_bucket, permanent_key(data))
    try:
        assert bytes(response.read()) == checked
    finally:
        response.close()
        response.release_conn()


def test_there_are_enough_adversarial_cases() -> None:
    assert len(CASES) + 4 >= 45
