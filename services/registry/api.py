"""The registry's HTTP API (read-only): who is who."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, HTTPException

from services.registry.store import UnitStore


def router(units: UnitStore) -> APIRouter:
    api = APIRouter(tags=["units"])

    @api.get("/units")
    async def list_units(township_id: str | None = None, kind: str | None = None) -> list[dict[str, Any]]:
        return [asdict(u) for u in await units.list(township_id=township_id, kind=kind)]

    @api.get("/units/{unit_id}")
    async def get_unit(unit_id: str) -> dict[str, Any]:
        unit = await units.get(unit_id)
        if unit is None:
            raise HTTPException(404, f"no unit {unit_id}")
        return asdict(unit)

    return api
