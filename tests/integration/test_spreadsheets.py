"""Spreadsheets in and out, through the registry's HTTP API on the real database: a 5,000-row
volunteer sheet with 50 bad rows, units with the hierarchy rules, and export."""

from __future__ import annotations

import asyncio
import csv
import io
import random
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from openpyxl import Workbook, load_workbook

from shared.auth import DEV_OFFICE_KEY
from shared.events import UnitKind, UnitRegistered, UnitRegisteredEvent, new_event
from shared.pii import id_card_checksum
from tests.support import Tap
from wmsj.client import TownshipClient

OFFICE = {"Authorization": f"Bearer {DEV_OFFICE_KEY}"}
COLUMNS = ["volunteer_id", "name", "id_card", "phone", "unit_id", "team_ids", "active"]


@pytest.fixture
async def http(apps: dict[str, ModuleType]) -> AsyncIterator[httpx.AsyncClient]:
    registry = apps["registry"]
    app = FastAPI()
    app.include_router(registry.api.router(registry.units, registry.import_units, registry.import_volunteers))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://registry"
    ) as client:
        yield client


def card(rng: random.Random) -> str:
    first = f"431381{rng.randint(1960, 2005)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}{rng.randint(0, 999):03d}"
    return first + id_card_checksum(first)


def xlsx(rows: list[list[Any]]) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(COLUMNS)
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


async def register_units(township: TownshipClient, tap: Tap, *units: UnitRegistered) -> None:
    for data in units:
        await township.publish(
            new_event(
                UnitRegisteredEvent, data, source="/townships/test", time=datetime(2020, 6, 1, tzinfo=UTC)
            )
        )
    # Handled concurrently: the last one sent may be accepted first, so wait for every one.
    for data in units:
        await tap.wait_for(
            lambda e, u=data.unit_id: e.subject == u and e.type == UnitRegisteredEvent.TYPE, timeout=60
        )


async def test_a_5000_row_sheet_with_50_bad_rows_reports_exactly_those_and_imports_the_rest(
    apps: dict[str, ModuleType], http: httpx.AsyncClient, township: TownshipClient, tap: Tap
) -> None:
    town = f"4313817{secrets.randbelow(100):02d}"
    village, squad = f"{town}201", f"{town}-FD1"
    await register_units(
        township,
        tap,
        UnitRegistered(unit_id=town, name="镇", kind=UnitKind.TOWN),
        UnitRegistered(unit_id=village, name="村", kind=UnitKind.VILLAGE, parent_id=town),
        UnitRegistered(unit_id=squad, name="分队", kind=UnitKind.SQUAD, parent_id=village),
    )
    rng = random.Random(7)
    run = secrets.token_hex(3)
    rows: list[list[Any]] = []
    cards: set[str] = set()
    while len(rows) < 5000:
        c = card(rng)
        if c in cards:
            continue
        cards.add(c)
        n = len(rows)
        rows.append(
            [
                f"v{run}-{n:05d}",
                f"志愿者{n}",
                c,
                f"1{rng.choice('3589')}{rng.randint(0, 10**9 - 1):09d}",
                village,
                squad,
                "是",
            ]
        )
    # 50 bad rows, each with one fault, spread through the sheet; (sheet row, column) expected.
    faults = [
        ("id_card", lambda r: r.__setitem__(2, r[2][:17] + ("0" if r[2][17] != "0" else "1"))),
        ("phone", lambda r: r.__setitem__(3, "12345")),
        ("unit_id", lambda r: r.__setitem__(4, f"{town}999")),
        ("team_ids", lambda r: r.__setitem__(5, village)),
        ("name", lambda r: r.__setitem__(1, None)),
    ]
    expected = set()
    for i, index in enumerate(sorted(rng.sample(range(5000), 50))):
        column, spoil = faults[i % len(faults)]
        spoil(rows[index])
        expected.add((index + 2, column))  # row 1 is the header
    sheet = xlsx(rows)

    first = (
        await http.post("/import/volunteers", files={"file": ("v.xlsx", sheet)}, headers=OFFICE, timeout=600)
    ).json()
    assert {(e["row"], e["column"]) for e in first["errors"]} == expected
    assert len(first["errors"]) == 50
    assert (first["imported"], first["unchanged"]) == (4950, 0)
    volunteers = apps["registry"].units.volunteers
    assert await volunteers.count_documents({"_id": {"$regex": f"^v{run}-"}}) == 4950
    # Announced without personal data, in batches, to the activities service (hours are
    # credited only to a township's own volunteers): it learns them all.
    learned = apps["activities"].volunteers.volunteers
    for _ in range(1200):
        if await learned.count_documents({"_id": {"$regex": f"^v{run}-"}}) == 4950:
            break
        await asyncio.sleep(0.1)
    assert (
        await learned.count_documents({"_id": {"$regex": f"^v{run}-"}, "id_card": {"$exists": False}}) == 4950
    )
    before = await volunteers.find({"_id": {"$regex": f"^v{run}-"}}).sort("_id", 1).to_list(None)

    again = (
        await http.post("/import/volunteers", files={"file": ("v.xlsx", sheet)}, headers=OFFICE, timeout=600)
    ).json()
    assert again["errors"] == first["errors"]
    assert (again["imported"], again["unchanged"]) == (0, 4950)
    assert await volunteers.find({"_id": {"$regex": f"^v{run}-"}}).sort("_id", 1).to_list(None) == before

    # Stored sealed; shown masked.
    good = rows[0] if (2, "id_card") not in expected else rows[1]
    stored = await volunteers.find_one({"_id": good[0]})
    assert stored is not None and good[2] not in str(stored) and good[3] not in str(stored)
    shown = (await http.get(f"/volunteers/{good[0]}", headers=OFFICE)).json()
    assert shown["id_card"] == good[2][:4] + "*" * 10 + good[2][-4:]
    assert shown["phone"] == good[3][:3] + "****" + good[3][-4:]


async def test_units_import_with_the_hierarchy_rules_and_a_reimport_changes_nothing(
    apps: dict[str, ModuleType], http: httpx.AsyncClient, tap: Tap
) -> None:
    town = f"4313818{secrets.randbelow(100):02d}"
    text = "\n".join(
        [
            "unit_id,name,kind,parent_id,township_id,category,title_held_since,title_review_due,active",
            # children before parents: the import orders them
            f"{town}201-Z,第一村文明实践站,practice_station,{town}201,,,,,yes",
            f"{town}201,第一村,village,{town},,civilized_village_town,2018-01-01,2021-01-01,yes",
            f"{town},镇,town,,,,,,yes",
            f"{town}-S,所,practice_institute,{town},,,,,yes",
            f"{town}202,村在所下,village,{town}-S,,,,,yes",  # row 6: kind rule
            f"{town}203,坏类,planet,{town},,,,,yes",  # row 7: not a kind
            "4313819,短码,town,,,,,,yes",  # row 8: division code format
            f"{town}204,有称号没类别,village,{town},,,2018-01-01,,yes",  # row 9: title without category
        ]
    ).encode()
    report = (await http.post("/import/units", files={"file": ("u.csv", text)}, headers=OFFICE)).json()
    assert [(e["row"], e["column"]) for e in report["errors"]] == [
        (6, "parent_id"),
        (7, "kind"),
        (8, "unit_id"),
        (9, "(row)"),
    ]
    assert "a village cannot be under a practice_institute" in report["errors"][0]["reason"]
    assert report["imported"] == 4
    registry = apps["registry"].units
    village = await registry.get(f"{town}201")
    assert village is not None and village.category == "civilized_village_town"
    station = await registry.get(f"{town}201-Z")
    assert station is not None and station.township_id == town
    # Accepted units reach the bus, as v1, like any registration.
    await tap.wait_for(
        lambda e: e.subject == f"{town}201-Z" and e.type == UnitRegisteredEvent.TYPE, timeout=30
    )
    before = await registry.units.find({"_id": {"$regex": f"^{town}"}}).sort("_id", 1).to_list(None)

    again = (await http.post("/import/units", files={"file": ("u.csv", text)}, headers=OFFICE)).json()
    assert (again["imported"], again["unchanged"], again["errors"]) == (0, 4, report["errors"])
    assert await registry.units.find({"_id": {"$regex": f"^{town}"}}).sort("_id", 1).to_list(None) == before

    # Export: CSV and XLSX carry the same units, and the CSV imports again unchanged.
    exported = await http.get("/export/units?format=csv", headers=OFFICE)
    lines = list(csv.DictReader(io.StringIO(exported.content.decode("utf-8-sig"))))
    mine = {r["unit_id"]: r for r in lines if r["unit_id"].startswith(town)}
    assert set(mine) == {town, f"{town}-S", f"{town}201", f"{town}201-Z"}
    book = load_workbook(io.BytesIO((await http.get("/export/units?format=xlsx", headers=OFFICE)).content))
    sheet = book.worksheets[0]
    assert {r[0] for r in sheet.iter_rows(min_row=2, values_only=True) if str(r[0]).startswith(town)} == set(
        mine
    )


async def test_the_api_is_scoped_by_the_caller(
    apps: dict[str, ModuleType], township: TownshipClient, tap: Tap
) -> None:
    one, two = f"4313816{secrets.randbelow(50):02d}", f"4313816{50 + secrets.randbelow(50):02d}"
    await register_units(
        township,
        tap,
        UnitRegistered(unit_id=one, name="一镇", kind=UnitKind.TOWN),
        UnitRegistered(unit_id=two, name="二镇", kind=UnitKind.TOWN),
        UnitRegistered(unit_id=f"{one}201", name="一镇第一村", kind=UnitKind.VILLAGE, parent_id=one),
        UnitRegistered(unit_id=f"{two}201", name="二镇第一村", kind=UnitKind.VILLAGE, parent_id=two),
    )
    from shared.auth import caller_dependency, parse_keys

    registry = apps["registry"]
    keys = parse_keys(f'{{"{DEV_OFFICE_KEY}": "office", "k-one": "township:{one}"}}')
    app = FastAPI()
    app.include_router(registry.api.router(registry.units, registry.import_units, registry.import_volunteers))
    # The routes read their keys from WMSJ_API_KEYS at import; this app gets the test's keys.
    app.dependency_overrides[registry.api.CALLER.dependency] = caller_dependency(keys)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://r") as client:
        as_one = {"Authorization": "Bearer k-one"}
        assert (await client.get("/units")).status_code == 401
        mine = {u["unit_id"] for u in (await client.get("/units", headers=as_one)).json()}
        assert mine == {one, f"{one}201"}
        assert (await client.get(f"/units/{two}201", headers=as_one)).status_code == 404
        assert (await client.get(f"/units/{one}201/history", headers=as_one)).json()[0][
            "change"
        ] == "registered"
        tree = (await client.get("/units/tree", headers=as_one)).json()
        assert [(t["unit_id"], [c["unit_id"] for c in t["children"]]) for t in tree] == [(one, [f"{one}201"])]
        office = {u["unit_id"] for u in (await client.get("/units?name=第一村", headers=OFFICE)).json()}
        assert {f"{one}201", f"{two}201"} <= office
        by_code = (await client.get(f"/units?code={two}&kind=village", headers=OFFICE)).json()
        assert [u["unit_id"] for u in by_code] == [f"{two}201"]
        subtree = (await client.get(f"/units/{two}/subtree", headers=OFFICE)).json()
        assert {u["unit_id"] for u in subtree} == {two, f"{two}201"}
