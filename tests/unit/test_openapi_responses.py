"""Every route of every service's OpenAPI document says what it answers (issue 16): a typed
success body (a model, not ``{}`` or "any object"), a file's media types for a download
(``shared.openapi.file_responses``), 401 and 403 where it takes a key, and ``X-Total-Count``
where it pages. Only the health probes answer untyped maps; ``/metrics`` is not in the
documents. The apps are built as ``wmsj.docs`` builds them: no server is needed."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI

from shared.openapi import BINARY, _paged, _routes, _takes_key

SERVICES = ("registry", "activities", "evidence", "supervision")
UNTYPED = ("/health/live", "/health/ready")  # {"status": ...}: probes, not part of the API
SUCCESS = ("200", "201", "202")


def _app(service: str) -> FastAPI:
    app: FastAPI = importlib.import_module(f"services.{service}.app").create_app()
    return app


def _operations(service: str) -> Iterator[tuple[str, str, dict[str, Any], Any]]:
    """(method, path, operation, the route) of every documented operation."""
    app = _app(service)
    paths = app.openapi()["paths"]
    for route in _routes(app.routes):
        for method in sorted(route.methods or ()):
            operation = paths.get(route.path_format, {}).get(method.lower())
            if operation is not None:
                yield method, route.path_format, operation, route


def _untyped(schema: Any, at: str = "") -> list[str]:
    """Where in ``schema`` a body is left untyped (empty: every part has a type)."""
    if not isinstance(schema, dict) or not schema:
        return [at or "the body"]
    if "$ref" in schema:
        return []
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            return [where for s in schema[key] for where in _untyped(s, f"{at}/{key}")]
    kind = schema.get("type")
    if kind == "array":
        return _untyped(schema.get("items"), f"{at}[]")
    if kind == "object":
        if schema.get("properties"):
            return []
        extra = schema.get("additionalProperties")
        return _untyped(extra, f"{at}{{}}") if isinstance(extra, dict) else [at or "the body"]
    return [] if kind in ("string", "integer", "number", "boolean", "null") else [at or "the body"]


def _problems(method: str, path: str, operation: dict[str, Any], route: Any) -> list[str]:
    responses = operation.get("responses", {})
    problems = []
    success = [c for c in SUCCESS if c in responses]
    if not success and not (method == "DELETE" and "204" in responses):  # 204: nothing to type
        problems.append(f"no success response (has {sorted(responses)})")
    for code in success:
        content = responses[code].get("content", {})
        if not content:
            problems.append(f"{code} has no body")
        files = [m for m, c in content.items() if c.get("schema") == BINARY]
        if files and len(files) != len(content):
            problems.append(f"{code} is a file but also declares {sorted(set(content) - set(files))}")
        for media, body in content.items():
            if media not in files and path not in UNTYPED:
                problems += [f"{code} {media} untyped at {w}" for w in _untyped(body.get("schema"))]
        if _paged(route.dependant) and "X-Total-Count" not in responses[code].get("headers", {}):
            problems.append(f"{code} pages without documenting X-Total-Count")
    if _takes_key(route.dependant):
        problems += [f"takes a key but does not document {c}" for c in ("401", "403") if c not in responses]
        if not operation.get("security"):
            problems.append("takes a key but declares no security scheme")
    return [f"{method} {path}: {p}" for p in problems]


@pytest.mark.parametrize("service", SERVICES)
def test_every_route_documents_a_typed_answer_and_its_refusals(service: str) -> None:
    problems = [p for op in _operations(service) for p in _problems(*op)]
    assert not problems, "\n".join(problems)


def test_the_checks_see_an_untyped_body() -> None:
    # What FastAPI makes of ``-> dict[str, Any]`` and of a bare ``Response``.
    assert _untyped({"type": "object", "additionalProperties": True}) == ["the body"]
    assert _untyped({}) == ["the body"]
    assert _untyped({"type": "array", "items": {"type": "object", "additionalProperties": True}}) == ["[]"]
    assert _untyped({"type": "object", "additionalProperties": {"$ref": "#/components/schemas/X"}}) == []
    assert _untyped({"anyOf": [{"$ref": "#/a"}, {"type": "null"}]}) == []


def test_paged_routes_are_found() -> None:
    paged = {(s, p) for s in SERVICES for m, p, _, route in _operations(s) if _paged(route.dependant)}
    assert {("registry", "/units"), ("supervision", "/scores"), ("activities", "/activities")} <= paged
