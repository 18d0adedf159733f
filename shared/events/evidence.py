"""Picture-and-text evidence (owned by the evidence service)."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, Field, model_validator

from shared.events.envelope import CloudEvent, Data, Id, Sha256


class EvidenceSubmitted(Data):
    """Picture-and-text material (图文资料) uploaded to the object store, now claimed."""

    FREE_TEXT = frozenset({"caption"})

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


class EvidenceStoredV2(EvidenceStored):
    """Evidence checked and kept under its permanent key, with when the township reported it."""

    reported_at: AwareDatetime = Field(
        description="The time of the township's evidence.submitted event: when it reported the evidence."
    )


class EvidenceSubmittedEvent(CloudEvent[EvidenceSubmitted]):
    """Picture-and-text material (图文资料) uploaded to the object store, now claimed."""

    type: Literal["wmsj.evidence.submitted.v1"] = "wmsj.evidence.submitted.v1"
    PUBLISHED_BY = "township"


class EvidenceStoredEvent(CloudEvent[EvidenceStored]):
    """Evidence checked and kept under its permanent key."""

    type: Literal["wmsj.evidence.stored.v1"] = "wmsj.evidence.stored.v1"


class EvidenceStoredV2Event(CloudEvent[EvidenceStoredV2]):
    """Evidence checked and kept, with the township's report time (v1 has only the storing time)."""

    type: Literal["wmsj.evidence.stored.v2"] = "wmsj.evidence.stored.v2"


# ----------------------------------------------------------------- fraud signals, completeness, review


class EvidenceFlagged(Data):
    """A fraud signal on stored evidence, for the office to review: it is kept, but it does
    not count towards its activity's requirement until the office accepts it."""

    FREE_TEXT = frozenset({"detail"})

    evidence_id: Id
    activity_id: Id
    unit_id: Id
    signal: Literal["same-file", "near-duplicate", "taken-before-activity"]
    detail: str = Field(max_length=1000, description="What was found, in words.")
    other_evidence_id: Id | None = Field(default=None, description="The other occurrence of the photo.")
    other_activity_id: Id | None = None
    other_unit_id: Id | None = None
    distance: int | None = Field(
        default=None, ge=0, le=64, description="Bits the perceptual hashes differ by (near-duplicate)."
    )
    flagged_at: AwareDatetime


class EvidenceComplete(Data):
    """An activity's evidence meets its project's requirement (图文资料齐全)."""

    activity_id: Id
    unit_id: Id
    project_id: Id | None
    min_photos: int = Field(ge=0)
    text_report_required: bool
    photos: int = Field(ge=0, description="Distinct photos counted (unflagged or accepted by the office).")
    text_reports: int = Field(ge=0)
    evidence_ids: list[Id]
    completed_at: AwareDatetime


class EvidenceReviewed(Data):
    """The city office's verdict on one piece of evidence (审核)."""

    FREE_TEXT = frozenset({"reason"})

    evidence_id: Id
    verdict: Literal["accepted", "rejected"]
    reason: str = Field(default="", max_length=2000, description="Required for a rejection.")
    reviewer: str = Field(min_length=1, max_length=100)

    @model_validator(mode="after")
    def _rejection_says_why(self) -> EvidenceReviewed:
        if self.verdict == "rejected" and not self.reason.strip():
            raise ValueError("a rejection needs a reason")
        return self


class EvidenceFlaggedEvent(CloudEvent[EvidenceFlagged]):
    """Stored evidence carries a fraud signal (reused or near-duplicate photo, photo taken long before)."""

    type: Literal["wmsj.evidence.flagged.v1"] = "wmsj.evidence.flagged.v1"


class EvidenceCompleteEvent(CloudEvent[EvidenceComplete]):
    """An activity's picture-and-text material meets its project's requirement."""

    type: Literal["wmsj.evidence.complete.v1"] = "wmsj.evidence.complete.v1"


class EvidenceReviewedEvent(CloudEvent[EvidenceReviewed]):
    """The office accepts or rejects a piece of evidence, with the reason."""

    type: Literal["wmsj.evidence.reviewed.v1"] = "wmsj.evidence.reviewed.v1"
    PUBLISHED_BY = "office"
