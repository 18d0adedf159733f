"""The evidence service's HTTP API: uploads for township tools, and what the office reads.

- ``POST /uploads/policy``: a presigned POST bound to a key, a size and a content type; the
  township uploads straight to S3 with it, then publishes ``evidence submitted``.
- ``POST /uploads``: a multipart/form-data upload for small tools, streamed to S3 as it
  arrives (memory stays flat for a 1 GB video); answers the claim check (key, sha256, size).
- ``GET /evidence?activity_id=``, ``GET /evidence/{id}``: what was kept, its flags and review.
- ``GET /evidence/{id}/links``: time-limited links to the original and its thumbnail.
- ``GET /activities/{id}/evidence``: the activity's evidence against its project's rule.

Every route needs a key (``shared.auth``). A township reads only the evidence of units in its
own subtree (another's is "not found"); free text (captions, review reasons) is served with
ID-card and phone numbers masked (``shared.pii.scrub_free_text``).
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, HTTPException, Query, Request
from fastapi.middleware.cors import CORSMiddleware
from pydantic import BaseModel, Field
from python_multipart.multipart import MultipartParser, parse_options_header

from services.evidence.domain import HEAD_SAMPLE, MAX_SIZE, sniff, upload_prefix
from services.evidence.objects import ObjectStore
from services.evidence.responses import (
    UPLOAD_ERRORS,
    ActivityEvidence,
    EvidenceView,
    UploadClaim,
    UploadPolicy,
    ViewLinks,
)
from services.evidence.settings import EvidenceSettings
from services.evidence.store import EvidenceStore
from shared.auth import Caller, current_caller
from shared.http import Id, limit_body
from shared.pii import scrub_free_text

HIDDEN = {"_id", "dhash_bands", "upload_key"}
Who = Annotated[Caller, current_caller()]


def _view(doc: dict[str, Any]) -> dict[str, Any]:
    view = {"evidence_id": doc["_id"], **{k: v for k, v in doc.items() if k not in HIDDEN}}
    return scrub_free_text(view)  # type: ignore[no-any-return]


class UploadRequest(BaseModel):
    content_type: str = Field(max_length=100, description="One of the accepted types, e.g. image/jpeg.")
    size: int = Field(gt=0, le=1 << 40, description="Exact size in bytes; S3 refuses any other.")


def _prefix(caller: Caller) -> str:
    # The sender's own prefix: a township's submission may name only keys under it.
    return upload_prefix(caller.township_id if not caller.is_office else None).rstrip("/")


def allow_dashboard(app: FastAPI, settings: EvidenceSettings) -> None:
    """Let the supervision dashboard's page read view links from the browser (CORS). Only
    GETs, only its origins; the office's key still decides (a township's key gets 403)."""
    origins = [o.strip() for o in settings.dashboard_origins.split(",") if o.strip()]
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET"],
            allow_headers=["Authorization", "X-API-Key"],
        )


def own_limits(app: FastAPI) -> None:
    """The streaming upload enforces its own per-type size limits as it streams
    (``MAX_SIZE``): the door's body cap (``shared.http``) does not apply to it."""
    limit_body(app, "/uploads", None)


def router(evidence: EvidenceStore, objects: ObjectStore, settings: EvidenceSettings) -> APIRouter:
    api = APIRouter(tags=["evidence"])
    expiry = timedelta(seconds=settings.link_expiry_s)

    async def sees_unit(caller: Caller, unit_id: str | None) -> bool:
        """Whether the unit is in the caller's subtree (``Caller.sees``): the office always;
        a township if the unit, as learned from the registry, is in its own subtree."""
        if caller.is_office:
            return True
        unit = await evidence.unit(unit_id) if unit_id else None
        return caller.sees(unit.get("owner") if unit else None)

    async def visible_evidence(caller: Caller, evidence_id: str) -> dict[str, Any]:
        doc = await evidence.get(evidence_id)
        if doc is None or not await sees_unit(caller, doc.get("unit_id")):
            raise HTTPException(404, f"no evidence {evidence_id}")
        return doc

    @api.get("/evidence", response_model=list[EvidenceView])
    async def list_evidence(
        caller: Who, activity_id: Annotated[str, Query(min_length=1, max_length=128)]
    ) -> list[dict[str, Any]]:
        """The evidence kept for an activity (a township's own activities only)."""
        activity = await evidence.activity(activity_id)
        if not caller.is_office and (
            activity is None or not await sees_unit(caller, activity.get("unit_id"))
        ):
            return []
        return [_view(d) for d in await evidence.for_activity(activity_id)]

    @api.get("/evidence/{evidence_id}", response_model=EvidenceView)
    async def get_evidence(caller: Who, evidence_id: Id) -> dict[str, Any]:
        return _view(await visible_evidence(caller, evidence_id))

    @api.get("/evidence/{evidence_id}/links", response_model=ViewLinks)
    async def view_links(evidence_id: Id, caller: Who) -> dict[str, Any]:
        """Links valid for a while (presigned GETs): the office views, nothing is copied out."""
        if not caller.is_office:
            raise HTTPException(403, "only the office views evidence through links")
        doc = await visible_evidence(caller, evidence_id)
        return {
            "evidence_id": evidence_id,
            "original": objects.view_link(doc["object_key"], expiry),
            "thumbnail": objects.view_link(doc["thumbnail_key"], expiry)
            if doc.get("thumbnail_key")
            else None,
            "expires_at": datetime.now(UTC) + expiry,
        }

    @api.get("/activities/{activity_id}/evidence", response_model=ActivityEvidence)
    async def activity_progress(caller: Who, activity_id: Id) -> dict[str, Any]:
        doc = await evidence.activity(activity_id)
        if doc is None or "stated_at" not in doc or not await sees_unit(caller, doc.get("unit_id")):
            raise HTTPException(404, f"activity {activity_id} is not scheduled")
        requirement = (
            doc.get("requirement") or (await evidence.requirement(doc.get("project_id"))).model_dump()
        )
        return {  # the evidence list holds captions: masked like every response's free text
            "activity_id": activity_id,
            "unit_id": doc["unit_id"],
            "project_id": doc.get("project_id"),
            "requirement": requirement,
            "photos": doc.get("photos", 0),
            "text_reports": doc.get("text_reports", 0),
            "complete": doc.get("complete", False),
            "missing": doc.get("missing")
            if "missing" in doc
            else [f"{requirement['min_photos']} photo(s)", "a text report"][: 1 + requirement["text_report"]],
            "evidence": scrub_free_text(doc.get("evidence", [])),
        }

    @api.post("/uploads/policy", response_model=UploadPolicy)
    async def upload_policy(request: UploadRequest, caller: Who) -> dict[str, Any]:
        """A presigned POST for exactly one object: this key, this size, this type."""
        limit = MAX_SIZE.get(request.content_type)
        if limit is None:
            raise HTTPException(422, f"content type {request.content_type!r} is not accepted")
        if request.size > limit:
            raise HTTPException(422, f"{request.size} bytes is over the {limit}-byte limit")
        key = f"{_prefix(caller)}/{uuid.uuid4().hex}"
        policy = objects.upload_policy(key, request.size, request.content_type, expiry)
        return {"object_key": key, **policy, "expires_at": datetime.now(UTC) + expiry}

    @api.post("/uploads", status_code=201, response_model=UploadClaim, responses=UPLOAD_ERRORS)
    async def upload(request: Request, caller: Who) -> dict[str, Any]:
        """multipart/form-data with one ``file`` part; streamed to the upload bucket."""
        kind, options = parse_options_header(request.headers.get("content-type", ""))
        boundary = options.get(b"boundary")
        if kind != b"multipart/form-data" or not boundary:
            raise HTTPException(415, "send multipart/form-data with a 'file' part")
        return await _stream_upload(request, boundary, _prefix(caller), objects)

    return api


async def _stream_upload(
    request: Request, boundary: bytes, prefix: str, objects: ObjectStore
) -> dict[str, Any]:
    """Parse the multipart body as it arrives and pass the file's bytes on to S3.

    The parser calls back synchronously; the bytes it hands out are collected per network
    chunk and awaited into the S3 pipe right after, so at most one chunk is held here."""
    key = f"{prefix}/{uuid.uuid4().hex}"
    state: dict[str, Any] = {"field": b"", "value": b"", "headers": {}, "in_file": False, "done": False}
    out: list[bytes] = []
    digest = hashlib.sha256()
    head = bytearray()
    size = 0

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state["value"] += data[start:end]

    def on_header_end() -> None:
        state["headers"][state["field"].lower()] = state["value"]
        state["field"], state["value"] = b"", b""

    def on_headers_finished() -> None:
        _, disposition = parse_options_header(state["headers"].get(b"content-disposition", b""))
        state["in_file"] = disposition.get(b"name") == b"file" and not state["done"]
        state["content_type"] = state["headers"].get(b"content-type", b"application/octet-stream").decode()

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if state["in_file"]:
            out.append(data[start:end])

    def on_part_end() -> None:
        if state["in_file"]:
            state["done"], state["in_file"] = True, False
        state["headers"] = {}

    parser = MultipartParser(
        boundary,
        {  # type: ignore[arg-type]
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    upload = None
    limit = max(MAX_SIZE.values())
    try:
        async for chunk in request.stream():
            parser.write(chunk)
            if out and upload is None:
                upload = objects.open_upload(key, state["content_type"])
                upload.start()
            for piece in out:
                size += len(piece)
                if size > limit:
                    raise HTTPException(413, f"over the {limit}-byte limit of any accepted type")
                if len(head) < HEAD_SAMPLE:
                    head += piece[: HEAD_SAMPLE - len(head)]
                digest.update(piece)
                assert upload is not None
                await upload.write(piece)
            out.clear()
        parser.finalize()
        if upload is None or not state["done"]:
            raise HTTPException(422, "no complete 'file' part in the form")
        await upload.finish()
    except BaseException as error:
        if upload is not None:
            await upload.abort(error if isinstance(error, Exception) else RuntimeError("cancelled"))
        raise
    return {
        "object_key": key,
        "size": size,
        "sha256": digest.hexdigest(),
        "content_type": state["content_type"],
        "detected_type": sniff(bytes(head)),
    }
