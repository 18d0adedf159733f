from pydantic import Field

from shared.settings import HoldSettings, S3Settings


class EvidenceSettings(HoldSettings):  # hold_s, hold_sweep_interval_s: submissions held early
    http_port: int = 8003
    s3: S3Settings = Field(default_factory=S3Settings)
    # Evidence is the audit trail: kept under object-lock retention this long.
    retention_days: int = 5 * 365
    # How long a view link (presigned GET) or an upload policy (presigned POST) is valid.
    link_expiry_s: int = 15 * 60
    # Web pages allowed to call this API from a browser (CORS), comma-separated: the
    # supervision dashboard, which shows the evidence photos of a unit's activities.
    dashboard_origins: str = "http://127.0.0.1:8004,http://localhost:8004"
    # Processes that read photos (hash, EXIF, thumbnail) beside the event loop; 0: as many
    # as the machine has cores.
    image_workers: int = Field(default=0, ge=0)
