"""Evidence against the real broker, database and S3 store."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

import pytest

from shared.events import EvidenceStoredEvent, EvidenceSubmitted, EvidenceSubmittedEvent, new_event
from tests.conftest import Infra
from tests.support import Tap, dead_letters
from wmsj.client import TownshipClient, upload
from wmsj.demo import png


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
    apps: dict[str, ModuleType], s3: Any, township: TownshipClient, tap: Tap, photo: tuple[str, bytes]
) -> None:
    settings, client = s3
    key, content = photo
    event = submitted(key, content)
    await township.publish(event)

    [stored] = await tap.wait_for(
        lambda e: e.type == EvidenceStoredEvent.TYPE and e.subject == event.data.evidence_id
    )
    permanent = stored.data.object_key
    assert permanent == f"431381101/a-1/{event.data.sha256}"
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
    apps: dict[str, ModuleType], township: TownshipClient, tap: Tap, photo: tuple[str, bytes]
) -> None:
    key, content = photo
    event = submitted(key, content)
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
    override: dict[str, Any],
    reason: str,
) -> None:
    await dead_letters(infra.amqp_url)
    key, content = photo
    if "size_delta" in override:
        override = {"size": len(content) + override.pop("size_delta")}
    event = submitted(key, content, **override)
    await township.publish(event)

    [rejection] = await township.wait_for_rejections(1, timeout=20)
    assert reason in rejection.reason
    assert rejection.rejected_id == event.id and rejection.rejected_by == "evidence"
    assert await apps["evidence"].evidence.get(event.data.evidence_id) is None
    [dead] = await dead_letters(infra.amqp_url)
    assert dead["body"]["id"] == event.id
