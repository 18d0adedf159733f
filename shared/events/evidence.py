"""Picture-and-text evidence (owned by the evidence service)."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, Field

from shared.events.envelope import CloudEvent, Data, Id, Sha256


class EvidenceSubmitted(Data):
    """Picture-and-text material (图文资料) uploaded to the object store, now claimed."""

    evidence_id: Id
    activity_id: Id
    unit_id: Id
    object_key: str = Field(min_length=1, max_length=512, description="Key in the upload bucket.")
    sha256: Sha256
    size: int = Field(gt=0)
    content_type: str = Field(min_length=3, max_length=100)
    caption: str = Field(default="", max_length=5000)


class EvidenceStored(Data):
    """Evidence checked and kept under its permanent key."""

    evidence_id: Id
    activity_id: Id
    unit_id: Id
    object_key: str = Field(description="Permanent key in the evidence bucket.")
    sha256: Sha256
    size: int
    content_type: str
    stored_at: AwareDatetime


class EvidenceSubmittedEvent(CloudEvent[EvidenceSubmitted]):
    """Picture-and-text material (图文资料) uploaded to the object store, now claimed."""

    type: Literal["wmsj.evidence.submitted.v1"] = "wmsj.evidence.submitted.v1"
    PUBLISHED_BY = "township"


class EvidenceStoredEvent(CloudEvent[EvidenceStored]):
    """Evidence checked and kept under its permanent key."""

    type: Literal["wmsj.evidence.stored.v1"] = "wmsj.evidence.stored.v1"
