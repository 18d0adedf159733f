"""Evidence against the real broker, database and S3 store."""

from __future__ import annotations

import asyncio
import hashlib
import io
import random
import secrets
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import pytest
from faststream.rabbit import RabbitExchange
from PIL import Image, ImageDraw

from shared.events import (
    CITY_TZ,
    ActivityScheduled,
    ActivityScheduledEvent,
    EvidenceRequirement,
    EvidenceStoredEvent,
    EvidenceSubmitted,
    EvidenceSubmittedEvent,
    KeyProject,
    ProjectListPublished,
    ProjectListPublishedEvent,
    new_event,
)
from shared.events.evidence import (
    EvidenceCompleteEvent,
    EvidenceFlaggedEvent,
    EvidenceReviewed,
    EvidenceReviewedEvent,
)
from shared.topology import EVIDENCE_EVENTS
from tests.conftest import Infra
from tests.support import Tap, dead_letters
from wmsj.client import TownshipClient, upload
from wmsj.demo import png

UNIT = "431381101"


def schedule(
    unit_id: str = UNIT, *, starts_at: datetime | None = None, project_id: str | None = None
) -> ActivityScheduledEvent:
    starts = starts_at or datetime.now(UTC) - timedelta(hours=3)
    data = ActivityScheduled(
        activity_id="a-" + secrets.token_hex(4),
        unit_id=unit_id,
        project_id=project_id,
        title="理论宣讲志愿服务活动",
        starts_at=starts,
        ends_at=starts + timedelta(hours=2),
    )
    return new_event(ActivityScheduledEvent, data, source="/townships/t", time=datetime.now(UTC))  # type: ignore[return-value]


async def known_to_evidence(apps: dict[str, ModuleType], activity_id: str, timeout: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while await apps["evidence"].evidence.known_activity(activity_id) is None:
        assert asyncio.get_running_loop().time() < deadline, f"evidence never learned {activity_id}"
        await asyncio.sleep(0.1)


async def scheduled(apps: dict[str, ModuleType], township: TownshipClient, **how: Any) -> str:
    """An activity the township scheduled, once the evidence service has learned it."""
    event = schedule(**how)
    await township.publish(event)
    await known_to_evidence(apps, event.data.activity_id)
    return event.data.activity_id


@pytest.fixture
async def activity(apps: dict[str, ModuleType], township: TownshipClient) -> str:
    return await scheduled(apps, township)


def submitted(key: str, content: bytes, **override: Any) -> EvidenceSubmittedEvent:
    fields: dict[str, Any] = {
        "evidence_id": "e-" + secrets.token_hex(4),
        "activity_id": "a-1",
        "unit_id": "431381101",
        "object_key": key,
        "sha256": hashlib.sha256(content).hexdigest(),
        "size": len(content),
        "content_type": "image/png",
    }
    fields.update(override)
    return new_event(  # type: ignore[return-value]
        EvidenceSubmittedEvent, EvidenceSubmitted(**fields), source="/townships/t", time=datetime.now(UTC)
    )


@pytest.fixture
def photo(s3: Any) -> tuple[str, bytes]:
    settings, client = s3
    content = png(secrets.randbits(32))
    key = f"431381101/{secrets.token_hex(4)}.png"
    upload(client, settings.upload_bucket, key, content, "image/png")
    return key, content


async def test_a_verified_photo_is_kept_under_retention_and_announced(
    apps: dict[str, ModuleType],
    s3: Any,
    township: TownshipClient,
    tap: Tap,
    photo: tuple[str, bytes],
    activity: str,
) -> None:
    settings, client = s3
    key, content = photo
    event = submitted(key, content, activity_id=activity)
    await township.publish(event)

    [stored] = await tap.wait_for(
        lambda e: e.type == EvidenceStoredEvent.TYPE and e.subject == event.data.evidence_id
    )
    permanent = stored.data.object_key
    assert permanent == f"431381101/{activity}/{event.data.sha256}"
    kept = client.get_object(settings.evidence_bucket, permanent)
    try:
        assert kept.read() == content
    finally:
        kept.close()
        kept.release_conn()
    retention = client.get_object_retention(settings.evidence_bucket, permanent)
    assert retention is not None and retention.mode == "GOVERNANCE"
    record = await apps["evidence"].evidence.get(event.data.evidence_id)
    assert record["submitted_by"] == "/townships/t" and record["sha256"] == event.data.sha256


async def test_submitting_the_same_file_twice_is_idempotent(
    apps: dict[str, ModuleType], township: TownshipClient, tap: Tap, photo: tuple[str, bytes], activity: str
) -> None:
    key, content = photo
    event = submitted(key, content, activity_id=activity)
    await township.publish(event)
    await township.publish(event)
    await tap.wait_for(lambda e: e.subject == event.data.evidence_id, count=2)
    await asyncio.sleep(1.5)
    # Stored once: announced once as v1 and once as v2.
    announced = tap.matching(lambda e: e.subject == event.data.evidence_id)
    assert sorted(e.type for e in announced) == ["wmsj.evidence.stored.v1", "wmsj.evidence.stored.v2"]
    assert township.rejections == []


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"sha256": "0" * 64}, "sha256 mismatch: declared 000"),
        ({"size_delta": 1}, "size mismatch: declared"),
        ({"content_type": "image/jpeg"}, "declared image/jpeg but the bytes are image/png"),
        ({"object_key": "nowhere/none.png"}, "no object 'nowhere/none.png' in the upload bucket"),
        ({"content_type": "application/zip"}, "content type 'application/zip' is not accepted"),
        ({"size": 10 * 2**30}, "bytes is over the 52428800-byte limit for image/png"),
    ],
    ids=[
        "wrong-hash",
        "wrong-size",
        "wrong-type-by-magic-bytes",
        "missing-object",
        "unaccepted-type",
        "too-big",
    ],
)
async def test_evidence_that_does_not_match_is_refused_with_the_reason(
    infra: Infra,
    apps: dict[str, ModuleType],
    township: TownshipClient,
    photo: tuple[str, bytes],
    activity: str,
    override: dict[str, Any],
    reason: str,
) -> None:
    await dead_letters(infra.amqp_url)
    key, content = photo
    if "size_delta" in override:
        override = {"size": len(content) + override.pop("size_delta")}
    event = submitted(key, content, **{"activity_id": activity, **override})
    await township.publish(event)

    [rejection] = await township.wait_for_rejections(1, timeout=20)
    assert reason in rejection.reason
    assert rejection.rejected_id == event.id and rejection.rejected_by == "evidence"
    assert await apps["evidence"].evidence.get(event.data.evidence_id) is None
    assert await dead_letters(infra.amqp_url) == []  # refused and answered: not kept


# ----------------------------------------------------------------------------- the activity


async def held(apps: dict[str, ModuleType], evidence_id: str, timeout: float = 60) -> dict[str, Any]:
    """The evidence's held document, once the evidence service has held it."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        for doc in await apps["evidence"].holds.held.find({}).to_list(None):
            if EvidenceSubmittedEvent.model_validate_json(doc["event"]).data.evidence_id == evidence_id:
                return doc
        assert asyncio.get_running_loop().time() < deadline, f"evidence never held {evidence_id}"
        await asyncio.sleep(0.1)


async def test_evidence_for_an_activity_never_scheduled_is_refused_late_telling_to_schedule_it_first(
    infra: Infra,
    apps: dict[str, ModuleType],
    township: TownshipClient,
    tap: Tap,
    photo: tuple[str, bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    holds = apps["evidence"].holds
    monkeypatch.setattr(apps["evidence"].settings, "hold_s", 120.0)  # a short hold, to see it run out
    await dead_letters(infra.amqp_url)
    key, content = photo
    event = submitted(key, content, activity_id="a-never-" + secrets.token_hex(4))
    await township.publish(event)
    doc = await held(apps, event.data.evidence_id)
    assert doc["awaiting"] == f"activity:{event.data.activity_id}"

    assert await holds.sweep(doc["held_at"] + timedelta(seconds=119)) == []
    assert await holds.sweep(doc["held_at"] + timedelta(seconds=120)) == [event.id]
    [rejection] = await township.wait_for_rejections(1, timeout=30)
    assert rejection.reason == (
        f"activity {event.data.activity_id} was not scheduled within 2 min; schedule it first "
        "(wmsj.activity.scheduled.v1), then submit the evidence again"
    )
    assert rejection.rejected_id == event.id and rejection.rejected_by == "evidence"
    await tap.wait_for(lambda e: e.type == "wmsj.event.rejected.v1" and e.subject == event.id, timeout=30)
    assert await apps["evidence"].evidence.get(event.data.evidence_id) is None
    # Its message was acknowledged when it was held: refused late, it is no dead letter.
    assert await dead_letters(infra.amqp_url) == []


async def test_evidence_of_another_units_activity_is_refused(
    apps: dict[str, ModuleType], township: TownshipClient, photo: tuple[str, bytes], activity: str
) -> None:
    key, content = photo
    event = submitted(key, content, activity_id=activity, unit_id="431381102")
    await township.publish(event)
    [rejection] = await township.wait_for_rejections(1, timeout=30)
    assert rejection.reason == f"activity {activity!r} is run by unit '431381101', not '431381102'"


async def test_evidence_that_overtakes_its_schedule_is_held_and_kept_when_the_schedule_arrives(
    apps: dict[str, ModuleType], s3: Any, township: TownshipClient, tap: Tap, photo: tuple[str, bytes]
) -> None:
    key, content = photo
    schedule_event = schedule()
    event = submitted(key, content, activity_id=schedule_event.data.activity_id)
    await township.publish(event)  # before the schedule: held, not refused
    doc = await held(apps, event.data.evidence_id)
    assert doc["awaiting"] == f"activity:{schedule_event.data.activity_id}"
    # Another unit's evidence for a scheduled activity is kept meanwhile.
    settings, client = s3
    other_key, other_content = f"431381102/{secrets.token_hex(4)}.png", png(secrets.randbits(32))
    upload(client, settings.upload_bucket, other_key, other_content, "image/png")
    other = submitted(
        other_key,
        other_content,
        unit_id="431381102",
        activity_id=await scheduled(apps, township, unit_id="431381102"),
    )
    await township.publish(other)
    await tap.wait_for(lambda e: e.type == EvidenceStoredEvent.TYPE and e.subject == other.data.evidence_id)
    assert await apps["evidence"].evidence.get(event.data.evidence_id) is None

    await township.publish(schedule_event)
    await tap.wait_for(
        lambda e: e.type == EvidenceStoredEvent.TYPE and e.subject == event.data.evidence_id, timeout=60
    )
    assert await apps["evidence"].holds.held.find_one({"_id": event.key}) is None
    assert township.rejections == []


# ----------------------------------------------------------------------------- fraud signals


def camera_photo(seed: int, *, taken_at: str | None = None, size: tuple[int, int] = (800, 600)) -> bytes:
    """A JPEG with shapes (so that it has a perceptual fingerprint), optionally with EXIF
    DateTimeOriginal and GPS as a phone writes them."""
    rng = random.Random(seed)
    image = Image.new("RGB", size, (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    draw = ImageDraw.Draw(image)
    for _ in range(25):
        x, y = rng.randrange(size[0]), rng.randrange(size[1])
        box = (x, y, x + rng.randrange(40, 300), y + rng.randrange(40, 300))
        colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
    exif = Image.Exif()
    if taken_at:
        exif.get_ifd(0x8769)[36867] = taken_at
        exif.get_ifd(0x8825).update({1: "N", 2: (27.0, 44.0, 30.0), 3: "E", 4: (111.0, 26.0, 15.0)})
    out = io.BytesIO()
    image.save(out, "JPEG", quality=92, exif=exif)
    return out.getvalue()


def resized_and_recompressed(jpeg: bytes) -> bytes:
    image = Image.open(io.BytesIO(jpeg))
    smaller = image.resize((image.width * 3 // 5, image.height * 3 // 5), Image.Resampling.BILINEAR)
    out = io.BytesIO()
    smaller.save(out, "JPEG", quality=55)
    return out.getvalue()


async def submit_jpeg(
    s3: Any, township: TownshipClient, tap: Tap, activity_id: str, content: bytes, unit_id: str = UNIT
) -> EvidenceSubmittedEvent:
    settings, client = s3
    key = f"{unit_id}/{secrets.token_hex(4)}.jpg"
    upload(client, settings.upload_bucket, key, content, "image/jpeg")
    event = submitted(key, content, activity_id=activity_id, unit_id=unit_id, content_type="image/jpeg")
    await township.publish(event)
    await tap.wait_for(
        lambda e: e.type == EvidenceStoredEvent.TYPE and e.subject == event.data.evidence_id, timeout=60
    )
    return event


def flags_of(tap: Tap, evidence_id: str) -> list[Any]:
    return tap.matching(lambda e: e.type == EvidenceFlaggedEvent.TYPE and e.subject == evidence_id)


async def test_a_resized_recompressed_copy_for_another_activity_is_flagged_naming_the_first(
    apps: dict[str, ModuleType], s3: Any, township: TownshipClient, tap: Tap
) -> None:
    first_activity = await scheduled(apps, township)
    other_unit = "431381102"
    second_activity = await scheduled(apps, township, unit_id=other_unit)
    original = camera_photo(secrets.randbits(32))
    copy = resized_and_recompressed(original)
    assert hashlib.sha256(copy).digest() != hashlib.sha256(original).digest()

    first = await submit_jpeg(s3, township, tap, first_activity, original)
    second = await submit_jpeg(s3, township, tap, second_activity, copy, unit_id=other_unit)

    [flag] = await tap.wait_for(
        lambda e: e.type == EvidenceFlaggedEvent.TYPE and e.subject == second.data.evidence_id
    )
    assert flag.data.signal == "near-duplicate"
    assert flag.data.other_evidence_id == first.data.evidence_id
    assert flag.data.other_activity_id == first_activity and flag.data.other_unit_id == UNIT
    assert flag.data.distance is not None and flag.data.distance <= 6
    assert f"evidence {first.data.evidence_id!r} of activity {first_activity!r}" in flag.data.detail
    assert flags_of(tap, first.data.evidence_id) == []  # the first use is not the suspect
    record = await apps["evidence"].evidence.get(second.data.evidence_id)
    assert [f["other_evidence_id"] for f in record["flags"]] == [first.data.evidence_id]


async def test_the_same_file_for_another_activity_is_flagged_but_again_for_the_same_is_not(
    apps: dict[str, ModuleType], s3: Any, township: TownshipClient, tap: Tap
) -> None:
    activity_a = await scheduled(apps, township)
    activity_b = await scheduled(apps, township)
    photo = camera_photo(secrets.randbits(32))
    first = await submit_jpeg(s3, township, tap, activity_a, photo)
    again = await submit_jpeg(s3, township, tap, activity_a, photo)
    reused = await submit_jpeg(s3, township, tap, activity_b, photo)

    [flag] = await tap.wait_for(
        lambda e: e.type == EvidenceFlaggedEvent.TYPE and e.subject == reused.data.evidence_id
    )
    assert flag.data.signal == "same-file"
    assert {flag.data.other_evidence_id} <= {first.data.evidence_id, again.data.evidence_id}
    await asyncio.sleep(1)
    assert flags_of(tap, again.data.evidence_id) == []


async def test_a_photo_taken_long_before_its_activity_is_flagged_and_its_exif_is_kept(
    apps: dict[str, ModuleType], s3: Any, township: TownshipClient, tap: Tap
) -> None:
    starts = datetime(2020, 6, 12, 9, 0, tzinfo=CITY_TZ)
    activity_id = await scheduled(apps, township, starts_at=starts)
    old = camera_photo(secrets.randbits(32), taken_at="2020:05:01 10:00:00")
    event = await submit_jpeg(s3, township, tap, activity_id, old)

    [flag] = await tap.wait_for(
        lambda e: e.type == EvidenceFlaggedEvent.TYPE and e.subject == event.data.evidence_id
    )
    assert flag.data.signal == "taken-before-activity"
    assert "41 days before the activity started" in flag.data.detail
    record = await apps["evidence"].evidence.get(event.data.evidence_id)
    assert record["taken_at"] == datetime(2020, 5, 1, 2, 0, tzinfo=UTC)
    assert record["gps"] == pytest.approx([27 + 44 / 60 + 30 / 3600, 111 + 26 / 60 + 15 / 3600])
    assert abs(record["reported_at"] - event.time) < timedelta(milliseconds=1)  # Mongo keeps ms


async def test_a_photo_gets_a_thumbnail_kept_beside_it(
    apps: dict[str, ModuleType], s3: Any, township: TownshipClient, tap: Tap, activity: str
) -> None:
    settings, client = s3
    event = await submit_jpeg(s3, township, tap, activity, camera_photo(secrets.randbits(32)))
    record = await apps["evidence"].evidence.get(event.data.evidence_id)
    assert record["thumbnail_key"] == record["object_key"] + ".thumb.jpg"
    kept = client.get_object(settings.evidence_bucket, record["thumbnail_key"])
    try:
        thumbnail = Image.open(io.BytesIO(kept.read()))
    finally:
        kept.close()
        kept.release_conn()
    assert thumbnail.format == "JPEG" and max(thumbnail.size) == 320


# ----------------------------------------------------------------------------- requirements and review


async def project_requires(apps: dict[str, ModuleType], **requirement: Any) -> str:
    """A key project list with one project, as the activities service re-publishes it,
    delivered to the evidence service's queue; returns the project id once it is known."""
    project_id = "P-" + secrets.token_hex(4)
    listed = new_event(
        ProjectListPublishedEvent,
        ProjectListPublished(
            year=2020,
            version=1,
            projects=[
                KeyProject(
                    project_id=project_id,
                    theme="理论宣讲",
                    months=[6],
                    evidence=EvidenceRequirement(**requirement),
                )
            ],
        ),
        source="/wmsj/activities",
        time=datetime.now(UTC),
    )
    await apps["registry"].service.bus.publish(
        listed, exchange=RabbitExchange(""), routing_key=EVIDENCE_EVENTS.name
    )
    deadline = asyncio.get_running_loop().time() + 60
    while not await apps["evidence"].evidence.projects.find_one({"_id": project_id}):
        assert asyncio.get_running_loop().time() < deadline, "the project list never arrived"
        await asyncio.sleep(0.1)
    return project_id


async def submit(
    s3: Any, township: TownshipClient, tap: Tap, activity_id: str, content: bytes, content_type: str
) -> EvidenceSubmittedEvent:
    settings, client = s3
    key = f"{UNIT}/{secrets.token_hex(4)}"
    upload(client, settings.upload_bucket, key, content, content_type)
    event = submitted(key, content, activity_id=activity_id, content_type=content_type)
    await township.publish(event)
    await tap.wait_for(
        lambda e: e.type == EvidenceStoredEvent.TYPE and e.subject == event.data.evidence_id, timeout=60
    )
    return event


def completions(tap: Tap, activity_id: str) -> list[Any]:
    return tap.matching(lambda e: e.type == EvidenceCompleteEvent.TYPE and e.subject == activity_id)


async def test_evidence_complete_is_announced_once_the_projects_rule_is_met(
    apps: dict[str, ModuleType], s3: Any, township: TownshipClient, tap: Tap
) -> None:
    project_id = await project_requires(apps, min_photos=2, text_report=True)
    activity_id = await scheduled(apps, township, project_id=project_id)
    photos = [
        await submit(s3, township, tap, activity_id, png(secrets.randbits(32)), "image/png") for _ in range(2)
    ]
    await asyncio.sleep(1)
    assert completions(tap, activity_id) == []
    state = await apps["evidence"].evidence.activity(activity_id)
    assert state["missing"] == ["a text report (plain text or PDF)"]

    report = await submit(
        s3, township, tap, activity_id, "活动总结：开展理论宣讲一次。".encode(), "text/plain"
    )
    [complete] = await tap.wait_for(
        lambda e: e.type == EvidenceCompleteEvent.TYPE and e.subject == activity_id
    )
    assert complete.data.project_id == project_id
    assert (complete.data.min_photos, complete.data.photos, complete.data.text_reports) == (2, 2, 1)
    assert sorted(complete.data.evidence_ids) == sorted(e.data.evidence_id for e in [*photos, report])
    await submit(s3, township, tap, activity_id, png(secrets.randbits(32)), "image/png")
    await asyncio.sleep(1)
    assert len(completions(tap, activity_id)) == 1  # announced once


def review(evidence_id: str, verdict: str, reason: str = "") -> EvidenceReviewedEvent:
    data = EvidenceReviewed(evidence_id=evidence_id, verdict=verdict, reason=reason, reviewer="office-zhang")  # type: ignore[arg-type]
    return new_event(EvidenceReviewedEvent, data, source="/office", time=datetime.now(UTC))  # type: ignore[return-value]


async def test_flagged_evidence_counts_only_once_the_office_accepts_it(
    apps: dict[str, ModuleType], s3: Any, township: TownshipClient, tap: Tap
) -> None:
    project_id = await project_requires(apps, min_photos=1, text_report=False)
    first_activity = await scheduled(apps, township, project_id=project_id)
    second_activity = await scheduled(apps, township, project_id=project_id)
    photo = png(secrets.randbits(32))
    await submit(s3, township, tap, first_activity, photo, "image/png")
    await tap.wait_for(lambda e: e.type == EvidenceCompleteEvent.TYPE and e.subject == first_activity)
    reused = await submit(s3, township, tap, second_activity, photo, "image/png")
    await tap.wait_for(lambda e: e.type == EvidenceFlaggedEvent.TYPE and e.subject == reused.data.evidence_id)
    await asyncio.sleep(1)
    assert completions(tap, second_activity) == []  # flagged: not silently accepted

    accepted = review(reused.data.evidence_id, "accepted", "同一场活动的两个签到点")
    await township.publish(accepted)
    [echo] = await tap.wait_for(
        lambda e: e.type == EvidenceReviewedEvent.TYPE and e.subject == reused.data.evidence_id
    )
    assert echo.data == accepted.data
    await tap.wait_for(lambda e: e.type == EvidenceCompleteEvent.TYPE and e.subject == second_activity)
    record = await apps["evidence"].evidence.get(reused.data.evidence_id)
    assert record["review"]["verdict"] == "accepted" and record["flags"][0]["signal"] == "same-file"


async def test_the_office_rejects_evidence_with_a_reason_and_nothing_is_deleted(
    apps: dict[str, ModuleType], s3: Any, township: TownshipClient, tap: Tap, activity: str
) -> None:
    settings, client = s3
    event = await submit(s3, township, tap, activity, png(secrets.randbits(32)), "image/png")
    await township.publish(review(event.data.evidence_id, "rejected", "照片与活动无关"))
    await tap.wait_for(lambda e: e.type == EvidenceReviewedEvent.TYPE and e.subject == event.data.evidence_id)
    record = await apps["evidence"].evidence.get(event.data.evidence_id)
    assert (record["review"]["verdict"], record["review"]["reason"]) == ("rejected", "照片与活动无关")
    client.stat_object(settings.evidence_bucket, record["object_key"])  # still kept
    state = await apps["evidence"].evidence.activity(activity)
    assert [i["counts"] for i in state["evidence"]] == [False]


async def test_a_review_of_unknown_evidence_is_refused(township: TownshipClient) -> None:
    await township.publish(review("e-nowhere", "accepted"))
    [rejection] = await township.wait_for_rejections(1, timeout=30)
    assert rejection.reason == "unknown evidence 'e-nowhere': only stored evidence can be reviewed"


async def test_near_duplicates_submitted_at_the_same_moment_do_not_miss_each_other(
    apps: dict[str, ModuleType], s3: Any, township: TownshipClient, tap: Tap
) -> None:
    settings, client = s3
    activities = [await scheduled(apps, township) for _ in range(2)]
    original = camera_photo(secrets.randbits(32))
    events = []
    for activity_id, content in zip(activities, [original, resized_and_recompressed(original)], strict=True):
        key = f"{UNIT}/{secrets.token_hex(4)}.jpg"
        upload(client, settings.upload_bucket, key, content, "image/jpeg")
        events.append(submitted(key, content, activity_id=activity_id, content_type="image/jpeg"))
    await asyncio.gather(*(township.publish(e) for e in events))  # handled concurrently
    ids = {e.data.evidence_id for e in events}
    await tap.wait_for(lambda e: e.type == EvidenceStoredEvent.TYPE and e.subject in ids, count=2, timeout=60)

    # Whichever was handled second names the first; never neither.
    [flag] = await tap.wait_for(lambda e: e.type == EvidenceFlaggedEvent.TYPE and e.subject in ids)
    assert flag.data.signal == "near-duplicate"
    assert {flag.subject, flag.data.other_evidence_id} == ids
