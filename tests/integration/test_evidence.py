"""Evidence against the real broker, database and S3 store."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import pytest

from shared.events import (
    ActivityScheduled,
    ActivityScheduledEvent,
    EvidenceStoredEvent,
    EvidenceSubmitted,
    EvidenceSubmittedEvent,
    new_event,
)
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
    await tap.wait_for(lambda e: e.subject == event.data.evidence_id)
    await asyncio.sleep(1.5)
    assert len(tap.matching(lambda e: e.subject == event.data.evidence_id)) == 1
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
    [dead] = await dead_letters(infra.amqp_url)
    assert dead["body"]["id"] == event.id


# ----------------------------------------------------------------------------- the activity


@pytest.fixture
def short_wait(apps: dict[str, ModuleType], monkeypatch: pytest.MonkeyPatch) -> None:
    """Hold a submission for an unknown activity 2 s instead of 30 before refusing it."""
    monkeypatch.setattr(apps["evidence"].settings, "unknown_activity_wait_s", 2.0)


async def test_evidence_for_an_unknown_activity_is_refused_telling_to_schedule_it_first(
    infra: Infra,
    apps: dict[str, ModuleType],
    township: TownshipClient,
    photo: tuple[str, bytes],
    short_wait: None,
) -> None:
    await dead_letters(infra.amqp_url)
    key, content = photo
    event = submitted(key, content, activity_id="a-never-scheduled")
    await township.publish(event)

    [rejection] = await township.wait_for_rejections(1, timeout=30)
    assert rejection.reason == (
        "unknown activity 'a-never-scheduled': schedule it first (wmsj.activity.scheduled.v1), "
        "then submit the evidence again"
    )
    assert rejection.rejected_id == event.id and rejection.rejected_by == "evidence"
    assert await apps["evidence"].evidence.get(event.data.evidence_id) is None
    [dead] = await dead_letters(infra.amqp_url)
    assert dead["body"]["id"] == event.id


async def test_evidence_of_another_units_activity_is_refused(
    apps: dict[str, ModuleType], township: TownshipClient, photo: tuple[str, bytes], activity: str
) -> None:
    key, content = photo
    event = submitted(key, content, activity_id=activity, unit_id="431381102")
    await township.publish(event)
    [rejection] = await township.wait_for_rejections(1, timeout=30)
    assert rejection.reason == f"activity {activity!r} is run by unit '431381101', not '431381102'"


async def test_evidence_that_overtakes_its_schedule_waits_for_it_and_is_kept(
    apps: dict[str, ModuleType], township: TownshipClient, tap: Tap, photo: tuple[str, bytes]
) -> None:
    key, content = photo
    schedule_event = schedule()
    event = submitted(key, content, activity_id=schedule_event.data.activity_id)
    await township.publish(event)  # before the schedule: held, not refused
    await asyncio.sleep(1)
    await township.publish(schedule_event)
    await tap.wait_for(
        lambda e: e.type == EvidenceStoredEvent.TYPE and e.subject == event.data.evidence_id, timeout=60
    )
    assert township.rejections == []
