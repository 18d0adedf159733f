"""Settings from environment variables; the defaults point at the local servers that
``scripts/services.sh`` starts, so a developer needs no configuration at all."""

from __future__ import annotations

import json
import os
import re
from collections.abc import MutableMapping
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def read_secret_files(environ: MutableMapping[str, str] = os.environ) -> list[str]:
    """Secrets from files: for every ``WMSJ_<NAME>_FILE`` (e.g. ``/run/secrets/pii_key``, a
    compose or Kubernetes secret), set ``WMSJ_<NAME>`` to the file's content, unless it is
    set already. Done once, when this module is imported, before any settings are read:
    every settings class then sees the secret as if it were in the environment, and nothing
    secret needs to be in the container's environment (``docker inspect`` shows it)."""
    read = []
    for name, path in list(environ.items()):
        if not (name.upper().startswith("WMSJ_") and name.upper().endswith("_FILE")):
            continue
        target = name[: -len("_FILE")]
        if target in environ:
            continue
        try:
            with open(path, encoding="utf-8") as f:
                environ[target] = f.read().removesuffix("\n")
        except OSError as error:
            raise InsecureSettings(f"{name}: cannot read {path}: {error.strerror}") from None
        read.append(target)
    return read


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
    # "production" (what deploy/docker-compose.yml sets) refuses to start with any of the
    # public development secrets or an unreplaced placeholder (``insecure_settings``).
    mode: Literal["development", "production"] = "development"
    # Whether this service declares the whole bus topology at start (shared/topology.py). In
    # compose the broker loads it from its definitions file and a service's broker user may
    # configure only its own queues, so there it is off.
    declare_topology: bool = True
    # Where spans go, by OTLP over HTTP (shared/tracing.py), e.g.
    # http://otel-collector:4318/v1/traces. Empty: traces are not exported.
    otlp_endpoint: str | None = None
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


# ---------------------------------------------------------------- refusing development secrets

# What deploy/.env.example puts where a secret belongs (tests/unit/test_compose.py checks that
# every placeholder there is caught by this).
_PLACEHOLDER = re.compile(r"change-?me", re.IGNORECASE)
# Credentials that are public: the local servers' defaults (scripts/services.sh).
_PUBLIC_CREDENTIALS = frozenset({"guest", "minioadmin"})


class InsecureSettings(RuntimeError):
    """A service was started outside development mode with a secret anyone can know."""


def _public(value: str) -> bool:
    return bool(_PLACEHOLDER.search(value)) or value in _PUBLIC_CREDENTIALS


def insecure_settings(environ: dict[str, str] | None = None, *, pii: bool = True) -> list[str]:
    """What is wrong with the secrets in ``environ`` (default: the process environment) for a
    service outside development mode: the development API key, the public PII key (``pii``:
    the service encrypts personal data), the local servers' default credentials or a
    placeholder from deploy/.env.example. Empty in development mode, where those are what
    make a local run work with no configuration."""
    from shared.auth import DEV_OFFICE_KEY, AuthSettings
    from shared.pii import DEV_PII_KEY, PiiSettings

    env = dict(os.environ if environ is None else environ)
    names = {key.upper(): value for key, value in env.items()}
    if names.get("WMSJ_MODE", "development") == "development":
        return []
    problems: list[str] = []
    api_keys = names.get("WMSJ_API_KEYS", AuthSettings.model_fields["api_keys"].default)
    try:
        keys = list(json.loads(api_keys))
    except (ValueError, TypeError):
        keys = []
    if DEV_OFFICE_KEY in keys:
        problems.append(f"WMSJ_API_KEYS holds the development key {DEV_OFFICE_KEY!r}")
    if any(_public(key) for key in keys):
        problems.append("WMSJ_API_KEYS holds a placeholder key from deploy/.env.example")
    if "WMSJ_API_KEYS" not in names:
        problems.append("WMSJ_API_KEYS is not set (the default is the development key)")
    pii_key = names.get("WMSJ_PII_KEY", PiiSettings.model_fields["pii_key"].default if pii else "")
    if pii_key == DEV_PII_KEY:
        problems.append("WMSJ_PII_KEY is the public development key (shared/pii.py)")
    elif _public(pii_key):
        problems.append("WMSJ_PII_KEY is a placeholder from deploy/.env.example")
    for name in ("WMSJ_AMQP_URL", "WMSJ_MONGO_URL"):
        url = urlsplit(names.get(name, ""))
        for part in (url.username, url.password):
            if part and _public(unquote(part)):
                problems.append(f"{name} uses a public or placeholder user or password")
                break
    for name in ("WMSJ_S3_ACCESS_KEY", "WMSJ_S3_SECRET_KEY"):
        if name in names and _public(names[name]):
            problems.append(f"{name} is a public or placeholder credential")
    for name, value in names.items():
        if name.startswith("WMSJ_") and name.endswith(("_PASSWORD", "_SECRET", "_TOKEN")) and _public(value):
            problems.append(f"{name} is a placeholder")
    return problems


def refuse_insecure_settings(settings: BaseSettings, environ: dict[str, str] | None = None) -> None:
    """Raise ``InsecureSettings`` naming every problem (never a secret's value); the PII key
    is checked for a service whose ``settings`` carry one."""
    if problems := insecure_settings(environ, pii="pii" in type(settings).model_fields):
        raise InsecureSettings(
            "refusing to start outside development mode (WMSJ_MODE=production): "
            + "; ".join(problems)
            + ". Set real secrets in deploy/.env (see deploy/.env.example), "
            "or WMSJ_MODE=development on a developer's machine."
        )


read_secret_files()
