"""The evidence service's HTTP API (read-only for now)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException

from services.evidence.store import EvidenceStore


def _view(doc: dict[str, Any]) -> dict[str, Any]:
    return {"evidence_id": doc["_id"], **{k: v for k, v in doc.items() if k != "_id"}}


def router(evidence: EvidenceStore) -> APIRouter:
    api = APIRouter(tags=["evidence"])

    @api.get("/evidence")
    async def list_evidence(activity_id: str) -> list[dict[str, Any]]:
        return [_view(d) for d in await evidence.for_activity(activity_id)]

    @api.get("/evidence/{evidence_id}")
    async def get_evidence(evidence_id: str) -> dict[str, Any]:
        doc = await evidence.get(evidence_id)
        if doc is None:
            raise HTTPException(404, f"no evidence {evidence_id}")
        return _view(doc)

    return api
