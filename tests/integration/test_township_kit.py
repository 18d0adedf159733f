"""The client kit (wmsj.township) against the real broker, as a real township user: it
publishes with confirms and hears refusals on the reply queue; the broker's own refusal (an
unknown type: 403) is raised and the publisher goes on; a system that crashed sends what
was not confirmed when it starts again; uploads go by POST policy and come back as a claim
that the evidence service keeps."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import pytest

from shared.events import ActivityScheduled, UnitKind
from shared.events.units import UnitRegistered, UnitRegisteredV2
from tests.integration.test_township_guide import township_env  # noqa: F401  (a fixture)
from tests.integration.test_townships import eventually
from wmsj.demo import png
from wmsj.township import BrokerRefused, Events, Outbox, Publisher, ReplyListener, Uploader
from wmsj.township.outbox import Entry

K = UnitKind


async def test_the_kit_publishes_as_the_township_and_hears_its_refusals(
    apps: dict[str, ModuleType],
    township_env: dict[str, str],  # noqa: F811
    tmp_path: Path,
) -> None:
    town, url = township_env["WMSJ_TOWNSHIP_ID"], township_env["WMSJ_TOWNSHIP_AMQP_URL"]
    events = Events(town)
    registry = apps["registry"].units
    village = events.unit_registered(
        UnitRegisteredV2(unit_id=f"{town}201", name="一村", kind=K.VILLAGE, parent_id=town)
    )
    wrong = events.unit_registered(
        UnitRegisteredV2(unit_id="431381999201", name="别村", kind=K.VILLAGE, parent_id=town)
    )
    async with ReplyListener(url) as replies, Publisher(url, outbox=tmp_path / "outbox.jsonl") as publisher:
        assert publisher.reply_to == f"wmsj.replies.township-{town}" == replies.queue_name
        await publisher.publish(village)
        await publisher.publish(wrong)
        found = await replies.wait_for({wrong.id}, timeout=60)
        assert found[wrong.id].reason == (
            f"unit 431381999201: a village's division code begins with its township's ({town})"
        )
        assert found[wrong.id].rejected_by == "registry"
        await eventually(lambda: registry.get(f"{town}201"))

        # A type the platform does not know: the broker refuses it (403), no reply comes.
        with pytest.raises(BrokerRefused, match="ACCESS_REFUSED"):
            await publisher.publish_json(
                {**village.model_dump(mode="json"), "id": "x-1", "type": "wmsj.unit.renamed.v1"}
            )
        # The publisher goes on (a new channel), and nothing waits in the outbox.
        again = events.unit_registered(
            UnitRegisteredV2(unit_id=f"{town}202", name="二村", kind=K.VILLAGE, parent_id=town)
        )
        await publisher.publish(again)
        await eventually(lambda: registry.get(f"{town}202"))
    assert Outbox(tmp_path / "outbox.jsonl").pending() == []
    assert set(replies.rejections) == {wrong.id}


async def test_a_township_system_that_crashed_sends_what_was_not_confirmed(
    apps: dict[str, ModuleType],
    township_env: dict[str, str],  # noqa: F811
    tmp_path: Path,
) -> None:
    town, url = township_env["WMSJ_TOWNSHIP_ID"], township_env["WMSJ_TOWNSHIP_AMQP_URL"]
    events = Events(town)
    confirmed = events.unit_registered_v1(
        UnitRegistered(unit_id=f"{town}203", name="三村", kind=K.VILLAGE, parent_id=town)
    )
    unconfirmed = events.unit_registered_v1(
        UnitRegistered(unit_id=f"{town}204", name="四村", kind=K.VILLAGE, parent_id=town)
    )
    # The outbox as a crash left it: both written, only the first confirmed.
    path = tmp_path / "outbox.jsonl"
    before = Outbox(path)
    for event in (confirmed, unconfirmed):
        before.add(
            Entry(key=event.key, routing_key=event.type, message_id=event.id, body=event.model_dump_json())
        )
    before.done(confirmed.key)

    async with Publisher(url, outbox=path):  # starting again sends what is pending
        pass
    registry = apps["registry"].units
    await eventually(lambda: registry.get(f"{town}204"))
    # Sent in the file's order, the confirmed one would have gone first: it was not sent.
    assert await registry.get(f"{town}203") is None
    assert Outbox(path).pending() == []


async def test_the_upload_helper_gets_a_policy_posts_the_file_and_returns_the_claim(
    apps: dict[str, ModuleType],
    township_env: dict[str, str],  # noqa: F811
    tmp_path: Path,
) -> None:
    town, url = township_env["WMSJ_TOWNSHIP_ID"], township_env["WMSJ_TOWNSHIP_AMQP_URL"]
    events = Events(town)
    activity = f"{town}-act-{secrets.token_hex(3)}"
    now = datetime.now(UTC)
    photo = tmp_path / "photo.png"
    photo.write_bytes(png(secrets.randbits(32)))
    uploader = Uploader(township_env["WMSJ_EVIDENCE_API"], township_env["WMSJ_TOWNSHIP_API_KEY"])
    claim = await uploader.upload(photo, "image/png")
    assert claim.object_key.startswith(f"{town}/") and claim.size == photo.stat().st_size

    async with Publisher(url) as publisher:
        await publisher.publish(
            events.activity_scheduled(
                ActivityScheduled(
                    activity_id=activity,
                    unit_id=town,
                    title="宣讲",
                    starts_at=now - timedelta(hours=2),
                    ends_at=now - timedelta(hours=1),
                )
            )
        )
        await publisher.publish(
            events.evidence_submitted(claim.submitted(f"{activity}-e1", activity_id=activity, unit_id=town))
        )
    evidence = apps["evidence"].evidence
    await eventually(lambda: evidence.get(f"{activity}-e1"))
    kept = await evidence.get(f"{activity}-e1")
    assert (kept["sha256"], kept["size"]) == (claim.sha256, claim.size)


async def test_wmsj_publish_sends_a_file_with_the_kit_and_prints_the_refusals(
    apps: dict[str, ModuleType], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse
    import asyncio

    from tests.support import town_code
    from wmsj.cli import cmd_publish

    town = town_code()
    office = Events(town, source="/office")
    good = office.unit_registered_v1(UnitRegistered(unit_id=town, name="镇", kind=K.TOWN))
    bad = office.unit_registered_v1(
        UnitRegistered(unit_id="431381999201", name="村", kind=K.VILLAGE, parent_id=town)
    )
    file = tmp_path / "events.jsonl"
    file.write_text(good.model_dump_json() + "\n" + bad.model_dump_json() + "\n")
    outbox = tmp_path / "outbox.jsonl"
    args = argparse.Namespace(file=str(file), wait=20.0, outbox=str(outbox))  # waits it all: one is accepted
    # The CLI runs its own event loop; the services run in this one.
    assert await asyncio.to_thread(cmd_publish, args) == 1
    out = capsys.readouterr().out
    assert "2 events published" in out
    assert f"a village's division code begins with its township's ({town})" in out
    assert Outbox(outbox).pending() == []
    assert await apps["registry"].units.get(town) is not None
