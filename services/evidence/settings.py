from pydantic import Field

from shared.settings import CommonSettings, S3Settings


class EvidenceSettings(CommonSettings):
    http_port: int = 8003
    s3: S3Settings = Field(default_factory=S3Settings)
    # Evidence is the audit trail: kept under object-lock retention this long.
    retention_days: int = 5 * 365
