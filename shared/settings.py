"""Settings from environment variables; the defaults point at the local servers that
``scripts/services.sh`` starts, so a developer needs no configuration at all."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
    """What every service needs. Each service subclasses it with its own prefix-free fields."""

    model_config = SettingsConfigDict(env_prefix="WMSJ_", extra="ignore")

    amqp_url: str = Field(default="amqp://guest:guest@127.0.0.1:5672/", description="RabbitMQ URL")
    # retryWrites=false: the local Mongo-wire server slows down sharply after many retryable
    # writes; our handlers are idempotent, so the driver's own retry buys nothing.
    mongo_url: str = Field(default="mongodb://127.0.0.1:27017/?retryWrites=false", description="MongoDB URL")
    # Database names are f"{db_prefix}{service}": tests use their own prefix.
    db_prefix: str = "wmsj_"
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    log_level: str = "INFO"
    # How long a handler keeps retrying a transient failure (database or object store down)
    # before it gives the message back to the broker; the broker then redelivers it.
    retry_max_delay_s: float = 10.0
    prefetch: int = 32
    # Events handled in one transaction (shared.uow): up to ``batch_size`` of those the
    # prefetch window holds, gathered for at most ``batch_wait_ms``. 1: one per transaction.
    batch_size: int = Field(default=64, ge=1)
    batch_wait_ms: float = Field(default=5, ge=0)


class HoldSettings(CommonSettings):
    """The settings of a service that holds early events (``shared.holds``; the registry's
    unit placeholders too)."""

    # An event that arrives before what it needs (a unit's parent, the unit it is about, its
    # activity, its order) is held (it may only be early) this long, then refused on the
    # sender's reply queue: long enough for any re-ordering on the way and for a township
    # that registers the unit minutes later, short enough for it to act on a refusal the
    # same day.
    hold_s: float = 3600
    # How often held events are looked at: released if what they wait for is known by now,
    # refused if they have outstayed the hold.
    hold_sweep_interval_s: float = 60


class S3Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WMSJ_S3_", extra="ignore")

    endpoint: str = Field(default="127.0.0.1:9000", description="host:port of the S3 server")
    access_key: str = "minioadmin"
    secret_key: str = "minioadmin"
    secure: bool = False
    region: str | None = None
    # Presigned links (view links, upload policies) name the host they were signed for, and
    # the S3 server checks it. Inside compose the services reach S3 as ``s3:9000``, which no
    # township system or browser can resolve: they need the address published to them.
    public_endpoint: str | None = Field(
        default=None,
        description="host:port townships and browsers reach the S3 server at (default: endpoint)",
    )
    public_secure: bool | None = Field(
        default=None, description="TLS on the public address (default: secure)"
    )
    upload_bucket: str = "wmsj-uploads"
    evidence_bucket: str = "wmsj-evidence"
