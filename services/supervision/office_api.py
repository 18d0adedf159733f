"""The office's actions in the dashboard over HTTP: the key project list from a spreadsheet,
and the review queue of flagged evidence pairs. Each becomes the event the bus already
accepts, published as the office (``services.supervision.office``); every refusal is
answered in Chinese with its reason."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, HTTPException, Query, Response, UploadFile
from pydantic import BaseModel, Field, ValidationError

from services.supervision.domain import RuleSet
from services.supervision.office import (
    OfficeDesk,
    ProjectListError,
    parse_project_list,
    project_list,
    project_template,
)
from services.supervision.responses import (
    KeptProjectList,
    Outcome,
    ProjectListPreview,
    ProjectListPublished,
    ReviewPair,
    ReviewsPublished,
)
from services.supervision.session import Sessions
from services.supervision.store import FactStore
from shared.auth import Caller
from shared.events.activities import ProjectListPublishedEvent
from shared.events.evidence import EvidenceReviewed, EvidenceReviewedEvent
from shared.openapi import XLSX, file_responses

OFFICE_SOURCE = "/office/dashboard"
MAX_UPLOAD = 2 * 1024 * 1024  # a key project list is a few dozen rows


class PairVerdict(BaseModel):
    """One verdict on a flagged pair (the flagged evidence and the other occurrence):
    ``both`` count, only ``this`` one or only the ``other`` (the original), or ``neither``."""

    evidence_id: str = Field(min_length=1, max_length=200)
    other_evidence_id: str | None = Field(default=None, max_length=200)
    verdict: Literal["both", "this", "other", "neither"]
    reason: str = Field(default="", max_length=2000)
    reviewer: str = Field(default="市文明办", min_length=1, max_length=100)


def router(facts: FactStore, rules: RuleSet, sessions: Sessions, desk: OfficeDesk | None) -> APIRouter:
    api = APIRouter(prefix="/office", tags=["office"])
    auth: Any = sessions.dependency()

    def office_only(caller: Caller) -> OfficeDesk:
        if not caller.is_office:
            raise HTTPException(403, "只有市文明办可以执行此操作")
        if desk is None:
            raise HTTPException(503, "未配置市文明办的消息总线账号，无法发布")
        return desk

    async def read_upload(file: UploadFile) -> bytes:
        content = await file.read(MAX_UPLOAD + 1)
        if len(content) > MAX_UPLOAD:
            raise HTTPException(413, "文件过大（上限 2 MB）")
        return content

    @api.get("/projects/template.xlsx", responses=file_responses(XLSX))
    async def template(*, caller: Caller = auth) -> Response:
        """The key project list's spreadsheet template, with one example row."""
        return Response(
            project_template(),
            media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            headers={"Content-Disposition": 'attachment; filename="key-projects-template.xlsx"'},
        )

    @api.get("/projects", response_model=KeptProjectList)
    async def kept(*, caller: Caller = auth, year: Annotated[int, Query(ge=2000, le=2100)]) -> dict[str, Any]:
        """The year's list as accepted on the bus (the version in force), if any."""
        doc = await facts.project_list(year)
        return {
            "year": year,
            "version": doc["version"] if doc else None,
            "projects": doc["projects"] if doc else [],
            "versions": doc.get("versions", []) if doc else [],
        }

    @api.post("/projects/preview", response_model=ProjectListPreview)
    async def preview(*, caller: Caller = auth, file: Annotated[UploadFile, File()]) -> dict[str, Any]:
        """What publishing this spreadsheet would publish, or every error in it."""
        office_only(caller)
        try:
            projects = parse_project_list(await read_upload(file))
        except ProjectListError as bad:
            raise HTTPException(422, {"reason": "清单有误，未发布", "errors": bad.errors}) from None
        return {"projects": [p.model_dump(mode="json") for p in projects]}

    @api.post("/projects", status_code=202, response_model=ProjectListPublished)
    async def publish(
        *,
        caller: Caller = auth,
        file: Annotated[UploadFile, File()],
        year: Annotated[int, Form(ge=2000, le=2100)],
    ) -> dict[str, Any]:
        """Publish the spreadsheet as the year's next version of the key project list
        (``wmsj.projects.published.v1``, as the office)."""
        publisher = office_only(caller)
        content = await read_upload(file)
        try:
            projects = parse_project_list(content)
        except ProjectListError as bad:
            raise HTTPException(422, {"reason": "清单有误，未发布", "errors": bad.errors}) from None
        doc = await facts.project_list(year)
        version = (doc["version"] if doc else 0) + 1
        try:
            data = project_list(year, version, projects)
        except ProjectListError as bad:
            raise HTTPException(422, {"reason": "清单有误，未发布", "errors": bad.errors}) from None
        digest = hashlib.sha256(content).hexdigest()[:12]
        event = ProjectListPublishedEvent(
            id=f"dashboard-projects-{year}-v{version}-{digest}",
            source=OFFICE_SOURCE,
            time=datetime.now(UTC),
            data=data,
        )
        await publisher.publish(event)
        return {"event_id": event.id, "year": year, "version": version, "projects": len(projects)}

    @api.get("/outcomes/{event_id}", response_model=Outcome)
    async def outcome(*, caller: Caller = auth, event_id: str) -> dict[str, Any]:
        """Whether an event the page published was refused (and why)."""
        publisher = office_only(caller)
        return {"event_id": event_id, "refused": publisher.refused.get(event_id)}

    @api.get("/reviews", response_model=list[ReviewPair])
    async def queue(*, caller: Caller = auth) -> list[dict[str, Any]]:
        """Flagged evidence awaiting the office, each as a pair: the flagged evidence and the
        other occurrence, with both units, both report times (EXIF times: the evidence API)."""
        if not caller.is_office:
            raise HTTPException(403, "只有市文明办可以审核图文资料")
        docs = await facts.activities_flagged()
        others = [
            f.get("other_activity_id") for d in docs for f in d.get("flags", []) if f.get("other_activity_id")
        ]
        activities = {d["_id"]: d for d in docs} | await facts.activities_by_id(sorted(set(others)))
        units = {u["_id"]: u for u in await facts.all_units()}

        def side(activity_id: str | None, evidence_id: str | None) -> dict[str, Any] | None:
            if not evidence_id:
                return None
            doc = activities.get(activity_id or "") or {}
            kept: dict[str, Any] = next(
                (e for e in doc.get("evidence", []) if e["evidence_id"] == evidence_id), {}
            )
            review = next(
                (r["verdict"] for r in doc.get("reviews", []) if r["evidence_id"] == evidence_id), None
            )
            unit_id = doc.get("unit_id")
            return {
                "evidence_id": evidence_id,
                "activity_id": activity_id,
                "unit_id": unit_id,
                "unit_name": (units.get(unit_id or "") or {}).get("name"),
                "township_id": (units.get(unit_id or "") or {}).get("township_id"),
                "content_type": kept.get("content_type"),
                "reported_at": kept.get("reported_at") or kept.get("stored_at"),
                "ended_at": (doc.get("completion") or {}).get("ended_at"),
                "flagged": evidence_id in doc.get("flagged", []),
                "review": review,
            }

        pairs: dict[tuple[str, ...], dict[str, Any]] = {}
        for doc in docs:
            details = {f["evidence_id"]: f for f in doc.get("flags", [])}
            for evidence_id in doc.get("flagged", []):
                flag = details.get(evidence_id, {})
                this = side(doc["_id"], evidence_id)
                other = side(flag.get("other_activity_id"), flag.get("other_evidence_id"))
                key = tuple(sorted(x for x in (evidence_id, flag.get("other_evidence_id")) if x))
                if key in pairs:
                    continue
                settled = (this or {}).get("review") is not None and (
                    other is None or other.get("review") is not None
                )
                pairs[key] = {
                    "signal": flag.get("signal"),
                    "detail": flag.get("detail"),
                    "flagged_at": flag.get("flagged_at"),
                    "this": this,
                    "other": other,
                    "settled": settled,
                }
        return sorted(pairs.values(), key=lambda p: (p["settled"], str(p["flagged_at"])))

    @api.post("/reviews", status_code=202, response_model=ReviewsPublished)
    async def review(*, caller: Caller = auth, verdict: PairVerdict) -> dict[str, Any]:
        """One verdict settles the pair: a ``wmsj.evidence.reviewed.v1`` for each of the two."""
        publisher = office_only(caller)
        accepted = {
            "both": (True, True),
            "this": (True, False),
            "other": (False, True),
            "neither": (False, False),
        }[verdict.verdict]
        if not all(accepted[: 1 + bool(verdict.other_evidence_id)]) and not verdict.reason.strip():
            raise HTTPException(
                422, {"reason": "驳回须写明理由", "errors": [{"location": "reason", "message": "必填"}]}
            )
        ids = [verdict.evidence_id] + ([verdict.other_evidence_id] if verdict.other_evidence_id else [])
        now = datetime.now(UTC)
        events = []
        for evidence_id, ok in zip(ids, accepted, strict=False):
            try:
                data = EvidenceReviewed(
                    evidence_id=evidence_id,
                    verdict="accepted" if ok else "rejected",
                    reason=verdict.reason,
                    reviewer=verdict.reviewer,
                )
            except ValidationError as invalid:
                raise HTTPException(
                    422,
                    {
                        "reason": "审核意见有误",
                        "errors": [
                            {"location": ".".join(map(str, e["loc"])), "message": e["msg"]}
                            for e in invalid.errors()
                        ],
                    },
                ) from None
            what = hashlib.sha256(f"{data.model_dump_json()}|{now.isoformat()}".encode()).hexdigest()[:12]
            events.append(
                EvidenceReviewedEvent(
                    id=f"dashboard-review-{what}",
                    source=OFFICE_SOURCE,
                    time=now,
                    subject=evidence_id,
                    data=data,
                )
            )
        for event in events:
            await publisher.publish(event)
        return {
            "event_ids": [e.id for e in events],
            "verdicts": {e.data.evidence_id: e.data.verdict for e in events},
        }

    return api
