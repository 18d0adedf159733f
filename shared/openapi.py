"""What FastAPI's OpenAPI document of a service lacks, added when it is made: the API-key
security schemes (``Authorization: Bearer <key>`` or ``X-API-Key``, ``shared.auth``) on every
route that takes a key, and the error responses the routes answer — 401 (no or unknown key),
403 (the key's role may not), 404 (an id not found, or not visible to a township), 422 (a
bad parameter or body) — in the shape they have: ``{"detail": ...}``.

Routes that return a file declare their media types with ``file_responses`` in their
decorator (CSV, XLSX, DOCX, PDF); paged list routes (``shared.paging``) get their
``X-Total-Count`` header documented.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

CSV = "text/csv"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
PDF = "application/pdf"

SECURITY_SCHEMES = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "The API key the city office gave you: `Authorization: Bearer <key>`. "
        "An office key sees everything; a township's key its own township's subtree.",
    },
    "apiKey": {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "The same key, in a header.",
    },
}
ERROR = {
    "title": "Error",
    "type": "object",
    "properties": {"detail": {"description": "What is wrong: a sentence, or the fields at fault."}},
    "required": ["detail"],
}
ERRORS = {
    "400": "The body cannot be read (not JSON, or not multipart/form-data, as declared).",
    "401": "No API key, or an unknown one.",
    "403": "The key's role may not do this (a township key on an office-only route).",
    "404": "Not found, or not in the caller's subtree (an id in the path or the query).",
    "422": "A parameter or the body is not valid.",
}


BINARY = {"type": "string", "format": "binary"}
# What a paged list route (``shared.paging``) says beside its page.
TOTAL_COUNT = {
    "description": "How many items there are in all (the page holds at most `limit` of them, from `offset`).",
    "required": True,  # Page.of sets it on every page, an empty one too
    "schema": {"type": "integer", "minimum": 0},
}


def file_responses(*media_types: str) -> dict[int | str, dict[str, Any]]:
    """``responses=`` of a route that answers a file of one of these types."""
    return {200: {"description": "The file.", "content": {m: {"schema": dict(BINARY)} for m in media_types}}}


def _routes(found: list[Any]) -> Iterator[APIRoute]:
    for route in found:
        if isinstance(route, APIRoute):
            yield route
        elif (included := getattr(route, "original_router", None)) is not None:  # include_router
            yield from _routes(included.routes)


# Modules whose dependencies read the caller's key: shared.auth's, and the dashboard's
# sessions (a key in a header, or the signed-in page's cookie).
KEY_CHECKERS = frozenset({"shared.auth", "services.supervision.session"})


def _takes_key(dependant: Any) -> bool:
    return any(
        getattr(d.call, "__module__", "") in KEY_CHECKERS or _takes_key(d) for d in dependant.dependencies
    )


def _paged(dependant: Any) -> bool:
    # shared.paging's ``Paged`` dependency reads ``limit`` and ``offset``.
    return any(
        getattr(d.call, "__module__", "") == "shared.paging" or _paged(d) for d in dependant.dependencies
    )


def _takes_input(route: APIRoute) -> bool:
    d = route.dependant
    return bool(d.path_params or d.query_params or d.header_params or d.body_params or d.dependencies)


def document(app: FastAPI) -> None:
    """Make ``app``'s OpenAPI document complete (call once the routes are added)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        components = schema.setdefault("components", {})
        components.setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
        components.setdefault("schemas", {})["Error"] = ERROR
        for route in _routes(app.routes):
            path = schema.get("paths", {}).get(route.path_format)
            if path is None:  # not in the document (include_in_schema=False)
                continue
            codes = []
            if _takes_key(route.dependant):
                codes += ["401", "403"]
            if route.dependant.path_params or route.dependant.query_params:
                codes.append("404")
            if _takes_input(route):
                codes.append("422")
            for method in route.methods or ():
                operation = path.get(method.lower())
                if operation is None:
                    continue
                if _takes_key(route.dependant):
                    operation["security"] = [{"bearer": []}, {"apiKey": []}]
                responses = operation.setdefault("responses", {})
                has_body = "requestBody" in operation
                for response in responses.values():  # a file route answers the file, not JSON
                    content = response.get("content", {})
                    if any(c.get("schema") == BINARY for c in content.values()):
                        content.pop("application/json", None)
                if _paged(route.dependant):
                    for code in ("200", "201"):
                        if code in responses:
                            responses[code].setdefault("headers", {})["X-Total-Count"] = TOTAL_COUNT
                for code in ["400", *codes] if has_body else codes:
                    # 422 comes from FastAPI's validation (a list) and from the routes (a
                    # sentence): one schema for both.
                    responses[code] = {
                        "description": ERRORS[code],
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                    }
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
