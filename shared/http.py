"""The HTTP door of every service: what a request may be before any route sees it, the
headers every answer carries, and the bounded parameter types the routes declare.

``guard(app)`` (``shared.service`` calls it for every service's app) adds one ASGI middleware:

- **Body size.** A request body over ``WMSJ_HTTP_MAX_BODY_BYTES`` (default 1 MiB: every JSON
  body of the APIs is a few kB) is refused with 413 — by its ``Content-Length`` before it is
  read, and while it is read if it has none (chunked). A route that takes files declares its
  own cap with ``limit_body`` (the registry's spreadsheet imports:
  ``WMSJ_HTTP_MAX_FILE_BYTES``, default 16 MiB); the evidence service's streaming upload,
  which enforces its own per-type limits as it streams, is exempt (``limit_body(..., None)``).
- **Parameters.** A path segment or query value over ``MAX_PARAM_CHARS`` characters, or with a
  control character (NUL, C0, DEL, C1), is a 422 with the reason: no id is that long, and no
  store or log is asked about it.
- **Headers.** ``X-Content-Type-Options: nosniff`` and (unless the route set its own)
  ``Cache-Control: no-store`` on every answer; on every HTML page a
  Content-Security-Policy (no inline or foreign scripts, no framing, no plugins),
  ``X-Frame-Options: DENY`` and ``Referrer-Policy: no-referrer``. A page that sets its own
  CSP keeps it (the dashboard's, say).

Routes bound their parameters with the types below (``Period``, ``Year``, ``Id``): a bad
period (``0000-01``, ``9999-12``), year (a huge integer) or id (not as the contract states
ids) is a 422 with the reason.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Annotated, Any
from urllib.parse import parse_qsl, unquote

from fastapi import FastAPI, HTTPException, Path, Query
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_PARAM_CHARS = 256
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

# Years a period may name: the platform's records start in 2000 (as event times do), and
# nothing is planned beyond 2099.
FIRST_YEAR, LAST_YEAR = 2000, 2099
_YEAR = r"20\d\d"
_MONTH = r"(0[1-9]|1[0-2])"

# An id as the contract states ids (shared.events.envelope.Id): nothing else was ever stored.
Id = Annotated[
    str,
    Path(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$",
        description="An id as the events state it: up to 64 letters, digits and . _ : -",
    ),
]
Year = Annotated[int, Query(ge=FIRST_YEAR, le=LAST_YEAR, description=f"{FIRST_YEAR}–{LAST_YEAR}")]
YearPath = Annotated[int, Path(ge=FIRST_YEAR, le=LAST_YEAR, description=f"{FIRST_YEAR}–{LAST_YEAR}")]
MONTH_PATTERN = rf"^{_YEAR}-{_MONTH}$"
PERIOD_PATTERN = rf"^{_YEAR}(-{_MONTH}|-Q[1-4])?$"  # a month, a quarter or a year
Month = Annotated[str, Query(pattern=MONTH_PATTERN, description=f"YYYY-MM, {FIRST_YEAR}–{LAST_YEAR}")]
Period = Annotated[
    str, Query(pattern=PERIOD_PATTERN, description=f"YYYY-MM, YYYY-Qn or YYYY, {FIRST_YEAR}–{LAST_YEAR}")
]
PeriodPath = Annotated[
    str, Path(pattern=PERIOD_PATTERN, description=f"YYYY-MM, YYYY-Qn or YYYY, {FIRST_YEAR}–{LAST_YEAR}")
]

# The CSP of HTML pages: scripts from the page's own origin only (no inline script: what an
# injected text could run); inline styles allowed (they run nothing); images and API calls
# may go to other origins (the dashboard shows photos through S3 view links and asks the
# evidence service for them); no framing, no plugins, no <base>, forms post home.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob: http: https:; "
    "connect-src 'self' http: https:; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
# FastAPI's interactive docs load Swagger UI / ReDoc from a CDN with an inline bootstrap.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "font-src 'self' https://fonts.gstatic.com; img-src 'self' data: https:; worker-src blob:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
_DOCS_PATHS = ("/docs", "/redoc")


class HttpSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WMSJ_HTTP_", extra="ignore")

    max_body_bytes: int = Field(default=1 << 20, gt=0, description="Largest request body (bytes)")
    max_file_bytes: int = Field(
        default=16 << 20, gt=0, description="Largest spreadsheet a route that takes files accepts"
    )


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is over the {limit}-byte limit of this route")


def limit_body(app: FastAPI, path: str, limit: int | None) -> None:
    """Give the route at ``path`` (exactly) its own body cap; None: the route enforces its own."""
    app.state.body_limits = {**getattr(app.state, "body_limits", {}), path: limit}


def guard(app: FastAPI, settings: HttpSettings | None = None) -> None:
    """Add the door's checks and headers (see the module's docstring) to ``app``."""
    app.add_middleware(Guard, app_state=app.state, settings=settings or HttpSettings())


def _refuse(status: int, reason: str) -> tuple[Message, Message]:
    body = json.dumps({"detail": reason}).encode()
    start = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"x-content-type-options", b"nosniff"),
        ],
    }
    return start, {"type": "http.response.body", "body": body}


def parameter_problem(path: str, query: str) -> str | None:
    """Why a request's path or query may not be looked at, or None."""
    values = [("path segment", unquote(segment)) for segment in path.split("/")]
    values += [(f"query parameter {name[:40]!r}", value) for name, value in parse_qsl(query, True)]
    for what, value in values:
        if len(value) > MAX_PARAM_CHARS:
            return f"{what} is {len(value)} characters long; at most {MAX_PARAM_CHARS}"
        if _CONTROL.search(value):
            return f"{what} holds a control character"
    return None


class Guard:
    def __init__(self, app: ASGIApp, app_state: Any, settings: HttpSettings) -> None:
        self.app = app
        self.state = app_state
        self.settings = settings

    def _limit(self, path: str) -> int | None:
        limits: dict[str, int | None] = getattr(self.state, "body_limits", {})
        return limits.get(path, self.settings.max_body_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        problem = parameter_problem(scope.get("raw_path", b"").decode("latin-1") or path, "")
        problem = problem or parameter_problem("", scope.get("query_string", b"").decode("latin-1"))
        if problem:
            for message in _refuse(422, problem):
                await send(message)
            return
        limit = self._limit(path)
        if limit is not None:
            declared = dict(scope["headers"]).get(b"content-length")
            if declared is not None and not declared.isdigit():
                for message in _refuse(400, "the Content-Length header is not a number of bytes"):
                    await send(message)
                return
            if declared is not None and int(declared) > limit:
                for message in _refuse(413, BodyTooLarge(limit).detail):
                    await send(message)
                return
            receive = _counting(receive, limit)
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = _with_security_headers(list(message.get("headers", [])), path)
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except BodyTooLarge as too_large:  # read past the cap outside a route's body parsing
            if started:
                raise
            for message in _refuse(413, too_large.detail):
                await send(message)


def _counting(receive: Receive, limit: int) -> Receive:
    seen = 0

    async def counted() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLarge(limit)
        return message

    return counted


def _with_security_headers(headers: list[tuple[bytes, bytes]], path: str) -> list[tuple[bytes, bytes]]:
    names = {name.lower() for name, _ in headers}
    # Answers hold units' data and masked personal data: no browser or proxy keeps them.
    add = [(b"x-content-type-options", b"nosniff"), (b"cache-control", b"no-store")]
    content_type = next((v for n, v in headers if n.lower() == b"content-type"), b"")
    if content_type.startswith(b"text/html"):
        csp = DOCS_CSP if path.startswith(_DOCS_PATHS) else PAGE_CSP
        add += [
            (b"content-security-policy", csp.encode()),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"),
        ]
    return headers + [(n, v) for n, v in add if n not in names]
