"""The evidence HTTP API's response models (its OpenAPI document types every answer).
Extra fields are kept, so a model never hides what a route answers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class EvidenceView(_Open):
    """A piece of evidence as kept: where, what, when reported, its fraud flags and review."""

    evidence_id: str
    activity_id: str
    unit_id: str
    object_key: str
    sha256: str
    size: int
    content_type: str
    caption: str = ""
    submitted_by: str | None = None
    reported_at: datetime | None = None
    stored_at: datetime | None = None
    thumbnail_key: str | None = None
    taken_at: datetime | None = None
    gps: list[float] | None = None
    dhash: str | None = None
    flags: list[dict[str, Any]] = []
    review: dict[str, Any] | None = None


class ViewLinks(_Open):
    evidence_id: str
    original: str
    thumbnail: str | None = None
    expires_at: datetime


class ActivityEvidence(_Open):
    """An activity's evidence against its project's requirement."""

    activity_id: str
    unit_id: str
    project_id: str | None = None
    requirement: dict[str, Any]
    photos: int
    text_reports: int
    complete: bool
    missing: list[str]
    evidence: list[Any]


class UploadPolicy(_Open):
    """A presigned POST: send ``fields`` and then the file (part ``file``) to ``url``."""

    object_key: str
    url: str
    fields: dict[str, str]
    expires_at: datetime


class UploadClaim(_Open):
    """The claim check of an upload through the service: it goes into evidence.submitted."""

    object_key: str
    size: int
    sha256: str
    content_type: str
    detected_type: str | None = None


class ErrorBody(BaseModel):
    detail: Any


UPLOAD_ERRORS: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorBody, "description": "Over the size limit of every accepted type."},
    415: {"model": ErrorBody, "description": "Not multipart/form-data with a `file` part."},
}
