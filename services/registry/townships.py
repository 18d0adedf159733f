"""The office's route for township systems' identities: list, add, rotate, revoke.

The same operations as ``wmsj township`` (``shared.onboarding``), for an office that has no
shell on the broker's host. Only the office's API key may call it. The registry needs a
broker administrator for it (``WMSJ_RABBITMQ_MANAGEMENT_USER``/``_PASSWORD``): only those
may manage users. Without one (compose's default, where the registry's own broker user may
touch nothing but its queues) every call answers 503 with what to configure.
"""

# No ``from __future__ import annotations``: FastAPI must see the dependency types declared
# inside ``router`` itself, which string annotations would hide from it.

from collections.abc import Callable
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException
from fastapi.middleware.cors import CORSMiddleware

from services.registry.responses import TownshipAccessView, TownshipView
from shared.auth import Caller
from shared.onboarding import BrokerAdmin, OnboardingError, TownshipAccess

AdminFactory = Callable[[], BrokerAdmin]
UNMANAGEABLE: dict[int | str, dict[str, Any]] = {
    503: {
        "description": "No broker administrator is configured, or the broker's management API "
        "cannot be reached: the answer says what to configure.",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
}


def _access(access: TownshipAccess) -> dict[str, Any]:
    return {**asdict(access), "api_key_entry": access.api_key_entry}


def allow_dashboard(app: FastAPI, dashboard_origins: str) -> None:
    """Let the supervision dashboard's page manage townships from the browser (CORS): only
    its origins; the office's key still decides (any other key gets 403)."""
    origins = [o.strip() for o in dashboard_origins.split(",") if o.strip()]
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "X-API-Key"],
        )


def router(make_admin: AdminFactory, caller: Any) -> APIRouter:
    """``caller``: the API-key dependency (``services.registry.api.CALLER``)."""
    routes = APIRouter(prefix="/townships", tags=["townships"], responses=UNMANAGEABLE)

    def office(who: Annotated[Caller, caller]) -> Caller:
        if not who.is_office:
            raise HTTPException(403, "only the city office manages township identities")
        return who

    Office = Annotated[Caller, Depends(office)]

    async def run(operation: Callable[[BrokerAdmin], Any]) -> Any:
        try:
            async with make_admin() as admin:
                return await operation(admin)
        except ValueError as problem:
            raise HTTPException(422, str(problem)) from problem
        except OnboardingError as problem:
            raise HTTPException(503, f"township identities cannot be managed: {problem}") from problem

    @routes.get("", response_model=list[TownshipView])
    async def list_townships(_: Office) -> list[dict[str, Any]]:
        """Every township system's identity, without secrets."""
        return [asdict(info) for info in await run(lambda admin: admin.list())]

    @routes.get("/{township_id}", response_model=TownshipView)
    async def show_township(township_id: str, _: Office) -> dict[str, Any]:
        info = await run(lambda admin: admin.show(township_id))
        if info is None:
            raise HTTPException(404, f"no township {township_id}")
        return asdict(info)

    @routes.post("/{township_id}", status_code=201, response_model=TownshipAccessView)
    async def add_township(township_id: str, _: Office) -> dict[str, Any]:
        """Create (or, again, give a new password and key to) a township's identity. The
        answer holds its secrets, shown this once; the API key entry must be added to
        ``WMSJ_API_KEYS`` of the services."""
        return _access(await run(lambda admin: admin.add(township_id)))

    @routes.post("/{township_id}/rotate", response_model=TownshipAccessView)
    async def rotate_township(township_id: str, _: Office) -> dict[str, Any]:
        async def rotate(admin: BrokerAdmin) -> TownshipAccess | None:
            # An unknown township is the caller's mistake (404), not the broker's (503).
            return await admin.rotate(township_id) if await admin.exists(township_id) else None

        access = await run(rotate)
        if access is None:
            raise HTTPException(404, f"no township {township_id}")
        return _access(access)

    @routes.delete("/{township_id}", status_code=204)
    async def revoke_township(township_id: str, _: Office) -> None:
        if not await run(lambda admin: admin.revoke(township_id)):
            raise HTTPException(404, f"no township {township_id}")

    return routes
