"""Who is calling an HTTP API: API keys with roles.

Keys come from ``WMSJ_API_KEYS``, a JSON object mapping each key to a role:
``"office"`` (sees everything) or ``"township:<unit id>"`` (sees that township and what is
under it). Callers send ``Authorization: Bearer <key>`` (or ``X-API-Key: <key>``).

The default holds one development key for the office, ``dev-office-key``, so a local run
works out of the box; a deployment sets its own keys (deploy/.env).
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, Header, HTTPException
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_OFFICE_KEY = "dev-office-key"


@dataclass(frozen=True)
class Caller:
    role: Literal["office", "township"]
    township_id: str | None = None  # set for a township

    @property
    def is_office(self) -> bool:
        return self.role == "office"


class AuthSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WMSJ_", extra="ignore")

    api_keys: str = Field(default=json.dumps({DEV_OFFICE_KEY: "office"}), description="JSON: key -> role")


def parse_keys(raw: str) -> dict[str, Caller]:
    """``{"key": "office" | "township:<id>"}`` → callers; a malformed entry is a start-up error."""
    callers = {}
    for key, role in json.loads(raw).items():
        if role == "office":
            callers[key] = Caller("office")
        elif isinstance(role, str) and role.startswith("township:") and len(role) > len("township:"):
            callers[key] = Caller("township", role.removeprefix("township:"))
        else:
            raise ValueError(f"API key role must be 'office' or 'township:<unit id>', not {role!r}")
    return callers


def caller_dependency(callers: dict[str, Caller]):  # type: ignore[no-untyped-def]
    """A FastAPI dependency giving the ``Caller``, or 401 for a missing or unknown key."""

    async def caller(
        authorization: Annotated[str | None, Header()] = None,
        x_api_key: Annotated[str | None, Header()] = None,
    ) -> Caller:
        key = x_api_key or (authorization.removeprefix("Bearer ").strip() if authorization else None)
        if key:
            for known, who in callers.items():
                if hmac.compare_digest(known.encode(), key.encode()):  # constant time
                    return who
        raise HTTPException(401, "an API key is required: Authorization: Bearer <key>")

    return caller


def current_caller() -> object:
    """``caller: Annotated[Caller, current_caller()]`` in a route, with the keys from settings."""
    return Depends(caller_dependency(parse_keys(AuthSettings().api_keys)))
