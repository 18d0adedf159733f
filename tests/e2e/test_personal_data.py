"""Volunteers' personal data never leaks: a full run (the four services as processes, a demo
month, volunteers registered by events and by spreadsheet, bad ones refused, hours
credited), then every log line and every API response is scanned for ID-card numbers and
phone numbers: none appears unmasked."""

from __future__ import annotations

import asyncio
import io
import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import pytest
from openpyxl import load_workbook

from shared.auth import DEV_OFFICE_KEY
from shared.events import EvidenceSubmittedEvent, HoursCredited, HoursCreditedEvent, new_event
from shared.events.units import VolunteerRegistered, VolunteerRegisteredEvent
from shared.pii import id_card_checksum
from tests.conftest import Infra
from tests.e2e.test_pipeline import Pipeline, layout_for
from wmsj import processes
from wmsj.client import TownshipClient
from wmsj.demo import demo_month

pytestmark = pytest.mark.e2e
OFFICE = {"Authorization": f"Bearer {DEV_OFFICE_KEY}"}
ID_SHAPE = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])")
PHONE_SHAPE = re.compile(r"(?<![0-9A-Za-z])1[3-9]\d{9}(?![0-9A-Za-z])")


def card(n: int) -> str:
    first = f"4313811990{(n % 12) + 1:02d}{(n % 28) + 1:02d}{n:03d}"
    return first + id_card_checksum(first)


@pytest.fixture
def run(infra: Infra, tmp_path: Path) -> Iterator[Pipeline]:
    names = list(processes.SERVICES)
    # A volunteer of an unknown unit is held, then refused when its hold runs out: shortened
    # here (still far longer than the demo's units wait for their parents) so that its late
    # refusal, on the reply queue, is among the answers scanned.
    env = {**infra.env("pii"), "WMSJ_HOLD_S": "10", "WMSJ_HOLD_SWEEP_INTERVAL_S": "1"}
    with Pipeline(env, layout_for(tmp_path, names), names) as running:
        yield running


async def test_no_id_card_or_phone_number_appears_unmasked_in_any_log_or_response(run: Pipeline) -> None:
    env = run.env
    demo = demo_month(run="pii")
    village, squad = "431381101201", "431381101-FD1"
    people = [
        VolunteerRegistered(
            volunteer_id=f"pv{n}",
            name=f"志愿者{n}",
            id_card=card(n),
            phone=f"1390000{n:04d}",
            unit_id=village,
            team_ids=[squad],
        )
        for n in range(1, 6)
    ]
    secrets_seen = {p.id_card for p in people} | {p.phone for p in people}
    at = datetime(2020, 6, 1, tzinfo=UTC)

    def bad(n: int, **fields: Any) -> bytes:
        data = {
            "volunteer_id": f"bad{n}",
            "name": "坏",
            "id_card": card(100 + n),
            "phone": f"1370000{n:04d}",
            "unit_id": village,
            **fields,
        }
        secrets_seen.update(v for k, v in data.items() if k in ("id_card", "phone"))
        return json.dumps(
            {
                "specversion": "1.0",
                "id": f"pii-bad-{n}",
                "source": "/townships/431381101",
                "type": VolunteerRegisteredEvent.TYPE,
                "time": at.isoformat(),
                "data": data,
            }
        ).encode()

    wrong_check = card(200)[:17] + ("0" if card(200)[17] != "0" else "1")
    async with TownshipClient(env["WMSJ_AMQP_URL"]) as township:
        for event in demo.events:  # the month, without photos (no uploads here)
            if not isinstance(event, EvidenceSubmittedEvent):
                await township.publish(event)
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient(base_url=run.url("registry", ""), headers=OFFICE) as http:
            # The volunteers name both units, which are handled concurrently with the rest.
            for unit_id in (squad, village):
                while (await http.get(f"/units/{unit_id}")).status_code != 200:
                    assert time.monotonic() < deadline, run.logs()
                    await asyncio.sleep(0.5)
        for person in people[:3]:
            await township.publish(
                new_event(VolunteerRegisteredEvent, person, source="/townships/431381101", time=at)
            )
        async with httpx.AsyncClient(base_url=run.url("registry", ""), headers=OFFICE) as http:
            while len((await http.get("/volunteers")).json()) < 3:  # before the duplicate card below
                assert time.monotonic() < deadline + 60, run.logs()
                await asyncio.sleep(0.5)
        # Refused ones, each carrying numbers: bad check character (ID-shaped), unknown unit
        # (held, then refused late), an ID card already registered, an unknown field.
        await township.publish_raw(bad(1, id_card=wrong_check), routing_key=VolunteerRegisteredEvent.TYPE)
        secrets_seen.add(wrong_check)
        await township.publish_raw(bad(2, unit_id="431381999999"), routing_key=VolunteerRegisteredEvent.TYPE)
        await township.publish_raw(
            bad(3, id_card=people[0].id_card), routing_key=VolunteerRegisteredEvent.TYPE
        )
        await township.publish_raw(bad(4, mobile="13600001111"), routing_key=VolunteerRegisteredEvent.TYPE)
        secrets_seen.add("13600001111")
        rejections = await township.wait_for_rejections(4, timeout=60)
    assert len(rejections) == 4, rejections

    # The activities service's hours credits, on the bus.
    connection = await aio_pika.connect_robust(env["WMSJ_AMQP_URL"])
    async with connection:
        channel = await connection.channel()
        events = await channel.get_exchange("wmsj.events", ensure=True)
        credit = new_event(
            HoursCreditedEvent,
            HoursCredited(
                volunteer_id="pv1",
                activity_id="a1",
                unit_id=village,
                hours=2.5,
                credited_at=at,
                basis="attendance",
            ),
            source="/wmsj/activities",
            time=at,
        )
        for _ in range(2):  # twice: credited once
            await events.publish(aio_pika.Message(credit.model_dump_json().encode()), routing_key=credit.type)

    responses: list[str] = [json.dumps([r.model_dump() for r in rejections], ensure_ascii=False)]
    sheet = (
        "volunteer_id,name,id_card,phone,unit_id,team_ids,active\n"
        + "\n".join(f"{p.volunteer_id},{p.name},{p.id_card},{p.phone},{p.unit_id},{squad},是" for p in people)
        + f"\npv9,坏行,{wrong_check},13900009999,{village},,是\n"
    )
    secrets_seen.add("13900009999")
    async with httpx.AsyncClient(base_url=run.url("registry", ""), headers=OFFICE, timeout=60) as http:
        report = await http.post("/import/volunteers", files={"file": ("v.csv", sheet.encode())})
        responses.append(report.text)
        assert report.json()["imported"] == 2 and [e["row"] for e in report.json()["errors"]] == [7]
        deadline = time.monotonic() + 60
        while (await http.get("/volunteers/pv1")).json().get("service_hours") != 2.5:
            assert time.monotonic() < deadline, run.logs()
            await asyncio.sleep(0.5)
        for path in [
            "/units",
            "/units/tree",
            f"/units/{village}",
            f"/units/{village}/history",
            "/volunteers",
            "/volunteers/pv1",
            "/volunteers/pv5",
            "/export/units?format=csv",
            "/export/volunteers?format=csv",
            "/volunteers?township_id=431381101",
            "/openapi.json",
        ]:
            response = await http.get(path)
            assert response.status_code == 200, path
            responses.append(response.text)
        xlsx = await http.get("/export/volunteers?format=xlsx")
        book = load_workbook(io.BytesIO(xlsx.content))
        responses.append(
            json.dumps(
                [list(r) for r in book.worksheets[0].iter_rows(values_only=True)],
                ensure_ascii=False,
                default=str,
            )
        )
        listed = (await http.get("/volunteers")).json()
    async with httpx.AsyncClient(base_url=run.url("supervision", "")) as http:
        responses.append((await http.get("/scores?period=2020-06")).text)

    assert {v["volunteer_id"] for v in listed} == {"pv1", "pv2", "pv3", "pv4", "pv5"}
    assert next(v for v in listed if v["volunteer_id"] == "pv1")["service_hours"] == 2.5
    assert all("*" in v["id_card"] and "*" in v["phone"] for v in listed)

    logs = {name: run.layout.log_file(name).read_text(encoding="utf-8") for name in run.names}
    assert sum(len(text.splitlines()) for text in logs.values()) > 50  # there is something to scan
    # The refusals were logged (masked), so the scan looks at lines that had the numbers.
    assert "ID-card number's check character is wrong" in logs["registry"]
    for where, text in [*logs.items(), *(("response", r) for r in responses)]:
        leaked = [s for s in secrets_seen if s in text]
        assert leaked == [], f"{where} shows {len(leaked)} personal numbers unmasked"
        assert ID_SHAPE.findall(text) == [], where
        assert PHONE_SHAPE.findall(text) == [], where
