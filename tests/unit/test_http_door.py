"""The HTTP door's checks on a bare app (``shared.http.guard``): body caps by length and by
count, per-route limits, bounded parameters, and the security headers."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse

from shared.http import HttpSettings, guard, limit_body, parameter_problem


def app() -> FastAPI:
    made = FastAPI()

    @made.post("/json")
    async def take(body: dict[str, Any]) -> dict[str, int]:
        return {"keys": len(body)}

    @made.post("/stream")
    async def stream(request: Request) -> dict[str, int]:
        return {"size": sum([len(c) async for c in request.stream()])}

    @made.get("/page", response_class=HTMLResponse)
    async def page() -> str:
        return "<p>hi</p>"

    @made.get("/items/{item_id}")
    async def item(item_id: str, q: str = "") -> dict[str, str]:
        return {"item_id": item_id}

    limit_body(made, "/stream", None)
    guard(made, HttpSettings(max_body_bytes=1000))
    return made


@pytest.fixture
async def http() -> Any:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app()), base_url="http://t") as client:
        yield client


async def test_a_body_over_the_cap_is_a_413_by_length_and_by_count(http: httpx.AsyncClient) -> None:
    assert (await http.post("/json", json={"a": "x" * 100})).status_code == 200
    too_big = await http.post("/json", json={"a": "x" * 2000})
    assert too_big.status_code == 413 and "1000-byte limit" in too_big.json()["detail"]

    async def chunked() -> Any:
        for _ in range(5):
            yield b" " * 400

    streamed = await http.post("/json", content=chunked(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413


async def test_a_route_with_its_own_limit_is_not_capped_by_the_door(http: httpx.AsyncClient) -> None:
    response = await http.post("/stream", content=b"x" * 5000)
    assert response.status_code == 200 and response.json() == {"size": 5000}


@pytest.mark.parametrize(
    ("path", "params", "reason"),
    [
        ("/items/" + "x" * 300, {}, "at most 256"),
        ("/items/a%00b", {}, "control character"),
        ("/items/a", {"q": "x" * 300}, "at most 256"),
        ("/items/a", {"q": "\x1b"}, "control character"),
    ],
)
async def test_an_over_long_or_control_parameter_is_a_422(
    http: httpx.AsyncClient, path: str, params: dict[str, str], reason: str
) -> None:
    response = await http.get(path, params=params)
    assert response.status_code == 422 and reason in response.json()["detail"]


async def test_pages_get_a_csp_and_every_answer_nosniff(http: httpx.AsyncClient) -> None:
    page = await http.get("/page")
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY" and page.headers["referrer-policy"] == "no-referrer"
    data = await http.get("/items/a")
    assert data.headers["x-content-type-options"] == "nosniff"
    assert data.headers["cache-control"] == "no-store"
    assert "content-security-policy" not in data.headers


def test_parameter_problems() -> None:
    assert parameter_problem("/units/431381101", "name=甲&kind=village") is None
    assert parameter_problem("/units/%E7%94%B2", "") is None
    assert "control character" in (parameter_problem("/units/a%0Ab", "") or "")
