"""What the city office reads: monthly scores and how each was made."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from services.supervision.domain import score_month
from services.supervision.store import FactStore, ScoreStore
from shared.events import Period


def router(facts: FactStore, scores: ScoreStore) -> APIRouter:
    api = APIRouter(tags=["scores"])

    @api.get("/scores")
    async def list_scores(
        period: Annotated[Period, Query(description="Month, YYYY-MM")],
        township_id: str | None = None,
        kind: str | None = None,
    ) -> list[dict[str, Any]]:
        """Every known unit's score for the month, best first. A unit with no completed
        activity has the score of an empty month (it is not left out of the table)."""
        units = {u["_id"]: u for u in await facts.all_units()}
        scored = {s.unit_id: s for s in await scores.for_period(period)}
        rows = []
        for unit_id in sorted(units.keys() | scored.keys()):
            unit = units.get(unit_id, {})
            if township_id and township_id not in (unit.get("township_id"), unit_id):
                continue
            if kind and unit.get("kind") != kind:
                continue
            score = scored.get(unit_id) or score_month(unit_id, period, [])
            rows.append(
                {
                    "name": unit.get("name"),
                    "kind": unit.get("kind"),
                    "township_id": unit.get("township_id"),
                    **asdict(score),
                }
            )
        rows.sort(key=lambda r: (-r["score"], r["unit_id"]))
        for rank, row in enumerate(rows, start=1):
            row["rank"] = rank
        return rows

    @api.get("/scores/{unit_id}")
    async def unit_score(unit_id: str, period: Annotated[Period, Query()]) -> dict[str, Any]:
        score = await scores.get(unit_id, period)
        if score is None:
            if unit_id not in {u["_id"] for u in await facts.all_units()}:
                raise HTTPException(404, f"no unit {unit_id}")
            score = score_month(unit_id, period, [])
        return asdict(score)

    return api
