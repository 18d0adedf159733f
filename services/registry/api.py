"""The registry's HTTP API: who is who, scoped by the caller (``shared.auth``): the office
sees everything; a township sees itself and what is under it. Personal data is only ever
shown masked, and so are ID-card and phone numbers typed into free text (a unit's name, a
statement's reason: ``shared.pii.scrub_free_text``). Spreadsheets in (import, with a per-row
error report; at most ``WMSJ_HTTP_MAX_FILE_BYTES``) and out (export: ``shared.sheets``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, HTTPException, UploadFile
from fastapi.responses import Response

from services.registry.domain import Unit
from services.registry.responses import (
    ImportReportView,
    UnitChange,
    UnitNode,
    UnitView,
    VolunteerDetail,
    VolunteerView,
)
from services.registry.sheets import (
    UNIT_COLUMNS,
    VOLUNTEER_COLUMNS,
    BadSheet,
    parse_units,
    parse_volunteers,
    write_table,
)
from services.registry.store import UnitStore
from shared.auth import Caller, current_caller
from shared.http import HttpSettings, Id, limit_body
from shared.identity import IdentitySettings, Publisher, township_user
from shared.openapi import CSV, XLSX, file_responses
from shared.paging import Paged
from shared.pii import scrub_free_text, vault

Importer = Callable[[list[Any], Publisher, list[Any]], Awaitable[Any]]
CALLER: Any = current_caller()  # keys from WMSJ_API_KEYS; tests override ``CALLER.dependency``
Who = Annotated[Caller, CALLER]
_MIME = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def _visible(caller: Caller, unit: Unit) -> bool:
    return caller.sees(unit.owner)


def _show(unit: Unit) -> dict[str, Any]:
    out = asdict(unit)
    out.pop("stated")
    out["ancestors"] = list(unit.ancestors)
    # Contacts' phones are masked like volunteers': only the last four digits show.
    out["contacts"] = [
        {**c, "phone": ("*" * max(len(c.get("phone", "")) - 4, 0)) + c.get("phone", "")[-4:]}
        for c in unit.contacts
    ]
    return scrub_free_text(out)  # type: ignore[no-any-return]


def _publisher(caller: Caller) -> Publisher:
    if caller.is_office:
        return Publisher(
            sorted(IdentitySettings().offices)[0] if IdentitySettings().offices else "office", None
        )
    assert caller.township_id is not None
    return Publisher(township_user(caller.township_id), caller.township_id)


def router(units: UnitStore, import_units: Importer, import_volunteers: Importer) -> APIRouter:
    api = APIRouter()

    async def visible_unit(unit_id: str, caller: Caller) -> Unit:
        unit = await units.get(unit_id)
        if unit is None or not _visible(caller, unit):
            raise HTTPException(404, f"no unit {unit_id}")
        return unit

    # ------------------------------------------------------------------ units

    @api.get("/units", tags=["units"], response_model=list[UnitView])
    async def list_units(
        caller: Who,
        page: Paged,
        response: Response,
        township_id: str | None = None,
        kind: str | None = None,
        name: str | None = None,
        code: str | None = None,
    ) -> list[dict[str, Any]]:
        """Search units by township, kind, name (contains) and code (prefix of the id)."""
        if not caller.is_office:
            if township_id not in (None, caller.township_id):
                return []
            township_id = caller.township_id
        found = await units.search(township_id=township_id, kind=kind, name=name, code=code)
        return [_show(u) for u in page.of(found, response)]

    @api.get("/units/tree", tags=["units"], response_model=list[UnitNode])
    async def tree(caller: Who, root: str | None = None) -> list[dict[str, Any]]:
        """The unit tree (nested ``children``): the whole city for the office, its own
        subtree for a township; ``root`` narrows it to one unit's subtree."""
        if root is not None:
            await visible_unit(root, caller)
            found = await units.search(under=root)
        else:
            found = await units.search(township_id=None if caller.is_office else caller.township_id)
        nodes = {u.unit_id: {**_show(u), "children": []} for u in found}
        roots = []
        for unit in found:
            parent = nodes.get(unit.parent_id or "")
            if parent is not None and unit.unit_id != root:
                parent["children"].append(nodes[unit.unit_id])
            else:
                roots.append(nodes[unit.unit_id])
        return roots

    @api.get("/units/{unit_id}", tags=["units"], response_model=UnitView)
    async def get_unit(unit_id: Id, caller: Who) -> dict[str, Any]:
        return _show(await visible_unit(unit_id, caller))

    @api.get("/units/{unit_id}/subtree", tags=["units"], response_model=list[UnitView])
    async def subtree(unit_id: Id, caller: Who) -> list[dict[str, Any]]:
        """The unit and everything under it (a township's subtree, for a township)."""
        await visible_unit(unit_id, caller)
        return [_show(u) for u in await units.search(under=unit_id)]

    @api.get("/units/{unit_id}/history", tags=["units"], response_model=list[UnitChange])
    async def history(unit_id: Id, caller: Who) -> list[dict[str, Any]]:
        """Every accepted statement about the unit, and every move of its subtree, oldest first."""
        await visible_unit(unit_id, caller)
        return scrub_free_text(await units.unit_history(unit_id))  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ volunteers

    @api.get("/volunteers", tags=["volunteers"], response_model=list[VolunteerView])
    async def list_volunteers(
        caller: Who,
        page: Paged,
        response: Response,
        township_id: str | None = None,
        unit_id: str | None = None,
    ) -> list[dict[str, Any]]:
        if not caller.is_office:
            if township_id not in (None, caller.township_id):
                return []
            township_id = caller.township_id
        found = await units.list_volunteers(township_id=township_id, unit_id=unit_id)
        hours = await units.total_hours()
        pii = vault()
        return [
            scrub_free_text(v.masked(pii, hours.get(v.volunteer_id, 0.0))) for v in page.of(found, response)
        ]

    @api.get("/volunteers/{volunteer_id}", tags=["volunteers"], response_model=VolunteerDetail)
    async def get_volunteer(volunteer_id: Id, caller: Who) -> dict[str, Any]:
        volunteer = await units.volunteer(volunteer_id)
        if volunteer is None or not caller.sees(volunteer.township_id):
            raise HTTPException(404, f"no volunteer {volunteer_id}")
        ledger = await units.ledger(volunteer_id)
        out = volunteer.masked(vault(), sum(e["hours"] for e in ledger))
        out["ledger"] = [{k: v for k, v in e.items() if k != "event"} for e in ledger]
        return scrub_free_text(out)  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ spreadsheets

    @api.post("/import/units", tags=["spreadsheets"], response_model=ImportReportView)
    async def import_unit_sheet(file: UploadFile, caller: Who) -> dict[str, Any]:
        """A CSV or XLSX of units (columns as ``GET /export/units``): imported row by row with
        the rules of ``wmsj.unit.registered.v2``; every refused row is reported."""
        content = await file.read()
        try:
            rows, errors = parse_units(content, file.filename or "")
        except BadSheet as problem:
            raise HTTPException(422, str(problem)) from problem
        return asdict(await import_units(rows, _publisher(caller), errors))

    @api.post("/import/volunteers", tags=["spreadsheets"], response_model=ImportReportView)
    async def import_volunteer_sheet(file: UploadFile, caller: Who) -> dict[str, Any]:
        """A CSV or XLSX of volunteers (``volunteer_id, name, id_card, phone, unit_id, team_ids,
        active``): rows that break a rule are reported (row, column, reason), the rest imported."""
        content = await file.read()
        try:
            rows, errors = parse_volunteers(content, file.filename or "")
        except BadSheet as problem:
            raise HTTPException(422, str(problem)) from problem
        return asdict(await import_volunteers(rows, _publisher(caller), errors))

    @api.get("/export/units", tags=["spreadsheets"], responses=file_responses(CSV, XLSX))
    async def export_units(caller: Who, format: Literal["csv", "xlsx"] = "csv") -> Response:
        found = await units.search(township_id=None if caller.is_office else caller.township_id)
        rows = [{**_show(u), "township_id": u.township_id} for u in found]  # _show masks free text
        return _file(write_table(UNIT_COLUMNS, rows, format), "units", format)

    @api.get("/export/volunteers", tags=["spreadsheets"], responses=file_responses(CSV, XLSX))
    async def export_volunteers(caller: Who, format: Literal["csv", "xlsx"] = "csv") -> Response:
        """Volunteers with their ID-card numbers and phones masked."""
        found = await units.list_volunteers(township_id=None if caller.is_office else caller.township_id)
        pii = vault()
        return _file(
            write_table(VOLUNTEER_COLUMNS, [scrub_free_text(v.masked(pii)) for v in found], format),
            "volunteers",
            format,
        )

    return api


def limit_imports(app: FastAPI) -> None:
    """Spreadsheets are bigger than the JSON bodies the door caps: their own cap."""
    limit = HttpSettings().max_file_bytes
    for path in ("/import/units", "/import/volunteers"):
        limit_body(app, path, limit)


def _file(content: bytes, name: str, fmt: str) -> Response:
    return Response(
        content,
        media_type=_MIME[fmt],
        headers={"Content-Disposition": f'attachment; filename="{name}.{fmt}"'},
    )
