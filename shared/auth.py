"""Who is calling an HTTP API: API keys with roles.

Keys come from ``WMSJ_API_KEYS``, a JSON object mapping each key to a role:
``"office"`` (sees everything) or ``"township:<unit id>"`` (sees that township and what is
under it). Callers send ``Authorization: Bearer <key>`` (or ``X-API-Key: <key>``).

The default holds one development key for the office, ``dev-office-key``, so a local run
works out of the box; a deployment sets its own keys (deploy/.env).

Every route of every service takes ``Who`` (a ``current_caller()`` dependency) except the
few listed in ``PUBLIC_ROUTES`` (health probes, the API description, the dashboard's
sign-in page); tests/security/test_http.py enumerates the routes and fails on any other
that answers without a key. What a caller may see is one rule, ``Caller.sees``: the office
everything, a township what is in its own subtree (each service knows a unit's owning
township: ``shared.identity.owning_township``). What a township may not see is "not
found" (404), as if it did not exist, never "forbidden": the answer says nothing of another
township's ids.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass
from functools import lru_cache
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

    def sees(self, owner: str | None) -> bool:
        """Whether this caller may see what belongs to township ``owner`` (None: city level,
        or not known here): the office always, a township only its own."""
        return self.is_office or (owner is not None and owner == self.township_id)


# Routes that answer without a key, and why each may: they say nothing about any unit.
PUBLIC_ROUTES = frozenset(
    {
        "/health/live",  # liveness probe (compose, orchestrators): the service's name only
        "/health/ready",  # readiness probe: ready or not, and the failing dependency's reason
        "/openapi.json",  # the API's description, the same as docs/ publishes
        "/docs",
        "/docs/oauth2-redirect",
        "/redoc",
        "/",  # redirects to the dashboard's page
        "/dashboard",  # the dashboard's page and scripts: static, it signs in to read anything
        "/dashboard/config.json",  # where the evidence API is, for the page: no unit's data
        # Signing in (POST takes the key in its form and answers with a session cookie, or
        # 401) and out (DELETE clears the cookie): neither reads anything.
        "/dashboard/session",
    }
)


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
        raise HTTPException(
            401,
            "this API key is not known" if key else "an API key is required: Authorization: Bearer <key>",
            headers={"WWW-Authenticate": "Bearer"},
        )

    return caller


@lru_cache(maxsize=4)
def _keys(raw: str) -> dict[str, Caller]:
    return parse_keys(raw)


async def caller_from_settings(
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> Caller:
    """The caller, with the keys of ``WMSJ_API_KEYS`` as it is now (read once per value)."""
    check = caller_dependency(_keys(AuthSettings().api_keys))
    return await check(authorization, x_api_key)  # type: ignore[no-any-return]


def current_caller() -> object:
    """``caller: Annotated[Caller, current_caller()]`` in a route, with the keys from settings
    (a malformed ``WMSJ_API_KEYS`` fails here, at start, not at the first request)."""
    _keys(AuthSettings().api_keys)
    return Depends(caller_from_settings)
