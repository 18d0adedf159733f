"""The activities service's HTTP API (read-only for now)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, HTTPException

from services.activities.domain import Activity
from services.activities.store import ActivityStore


def _view(activity: Activity) -> dict[str, Any]:
    return {**asdict(activity), "status": activity.status}


def router(activities: ActivityStore) -> APIRouter:
    api = APIRouter(tags=["activities"])

    @api.get("/activities")
    async def list_activities(unit_id: str | None = None) -> list[dict[str, Any]]:
        return [_view(a) for a in await activities.list(unit_id=unit_id)]

    @api.get("/activities/{activity_id}")
    async def get_activity(activity_id: str) -> dict[str, Any]:
        activity = await activities.get(activity_id)
        if activity is None:
            raise HTTPException(404, f"no activity {activity_id}")
        return _view(activity)

    return api
