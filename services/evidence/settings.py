from pydantic import Field

from shared.settings import CommonSettings, S3Settings


class EvidenceSettings(CommonSettings):
    http_port: int = 8003
    s3: S3Settings = Field(default_factory=S3Settings)
    # Evidence is the audit trail: kept under object-lock retention this long.
    retention_days: int = 5 * 365
    # Evidence may overtake its activity's schedule (they come through different queues):
    # a submission for an activity not known yet is held this long before it is refused.
    unknown_activity_wait_s: float = 30.0
    # Likewise a township's submission about a unit not known here yet (the registry's
    # accepted unit travels a longer way): waited for this long, then refused.
    unknown_unit_wait_s: float = 30.0
    # How long a view link (presigned GET) or an upload policy (presigned POST) is valid.
    link_expiry_s: int = 15 * 60
    # Web pages allowed to call this API from a browser (CORS), comma-separated: the
    # supervision dashboard, which shows the evidence photos of a unit's activities.
    dashboard_origins: str = "http://127.0.0.1:8004,http://localhost:8004"
