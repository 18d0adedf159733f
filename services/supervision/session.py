"""Signing in to the dashboard, and the headers every dashboard page is served with.

The page signs in with a form: the key goes once in a POST body and comes back as a session
cookie (HttpOnly, so no script reads it; SameSite=Strict, so no other site's page sends it).
The cookie never holds the key: it names the key by a fingerprint and carries an expiry and
an HMAC of both made with the key itself, so a session ends when its key is withdrawn, every
replica of the service checks it alike, and nothing is kept on the server. The key is never
put in a URL or in the browser's storage.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Annotated

from fastapi import Cookie, Depends, Header, HTTPException, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.auth import AuthSettings, Caller, parse_keys

COOKIE = "wmsj_session"
SESSION_S = 8 * 3600  # a working day


def _fingerprint(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _mac(key: str, fingerprint: str, expires: int) -> str:
    return hmac.new(key.encode(), f"{fingerprint}.{expires}".encode(), hashlib.sha256).hexdigest()


class Sessions:
    """The keys (``WMSJ_API_KEYS``) and the sessions made with them."""

    def __init__(self, keys: dict[str, Caller] | None = None) -> None:
        self.keys = keys if keys is not None else parse_keys(AuthSettings().api_keys)
        self.by_fingerprint = {_fingerprint(k): k for k in self.keys}

    def caller_of_key(self, key: str | None) -> Caller | None:
        if key:
            for known, who in self.keys.items():
                if hmac.compare_digest(known.encode(), key.encode()):  # constant time
                    return who
        return None

    def cookie_for(self, key: str, now: float | None = None) -> str:
        fingerprint, expires = _fingerprint(key), int((now or time.time()) + SESSION_S)
        return f"{fingerprint}.{expires}.{_mac(key, fingerprint, expires)}"

    def caller_of_cookie(self, cookie: str | None, now: float | None = None) -> Caller | None:
        try:
            fingerprint, expires_text, mac = (cookie or "").split(".")
            expires = int(expires_text)
        except ValueError:
            return None
        key = self.by_fingerprint.get(fingerprint)
        if key is None or expires < (now or time.time()):
            return None
        if not hmac.compare_digest(mac, _mac(key, fingerprint, expires)):
            return None
        return self.keys[key]

    def dependency(self) -> object:
        """``caller: Caller = sessions.dependency()``: the key in a header (tools) or the
        dashboard's session cookie; 401 otherwise."""

        async def caller(
            authorization: Annotated[str | None, Header()] = None,
            x_api_key: Annotated[str | None, Header()] = None,
            wmsj_session: Annotated[str | None, Cookie()] = None,
        ) -> Caller:
            key = x_api_key or (authorization.removeprefix("Bearer ").strip() if authorization else None)
            who = self.caller_of_key(key) if key else self.caller_of_cookie(wmsj_session)
            if who is None:
                # The same words as every other service's door (shared.auth).
                raise HTTPException(
                    401,
                    "this API key is not known"
                    if key
                    else "an API key is required: Authorization: Bearer <key>",
                    headers={"WWW-Authenticate": "Bearer"},
                )
            return who

        return Depends(caller)

    def sign_in(self, response: Response, key: str, secure: bool) -> Caller | None:
        who = self.caller_of_key(key)
        if who is not None:
            response.set_cookie(
                COOKIE,
                self.cookie_for(key),
                max_age=SESSION_S,
                httponly=True,
                samesite="strict",
                secure=secure,
                path="/",
            )
        return who

    @staticmethod
    def sign_out(response: Response) -> None:
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")


def security_headers(evidence_url: str, *other_apis: str) -> dict[str, str]:
    """The dashboard's headers: scripts only from this service (no inline script, no CDN);
    the evidence service's API may be called for view links (and the other services' APIs the
    page reads: activities' open orders, the registry's townships); the photos themselves come
    from wherever the object store's presigned links point, so images may come from any origin."""
    connect = " ".join(x for x in ("'self'", *(u.rstrip("/") for u in (evidence_url, *other_apis))) if x)
    return {
        "Content-Security-Policy": (
            "default-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; "
            "frame-ancestors 'none'; form-action 'self'; "
            # ECharts sizes its canvas through element styles.
            "style-src 'self' 'unsafe-inline'; "
            f"img-src 'self' data: blob: http: https:; connect-src {connect}"
        ),
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }


def is_page(path: str) -> bool:
    return path == "/" or path.startswith("/dashboard")


class PageHeaders:
    """ASGI middleware: the dashboard's headers on its page and files. Plain ASGI, not
    ``@app.middleware("http")``: that one re-streams the request body, and a body refused
    as too large while it is read (shared.http) would then surface as a 400, not a 413."""

    def __init__(self, app: ASGIApp, headers: dict[str, str]) -> None:
        self.app = app
        self.headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_page(scope["path"]):
            await self.app(scope, receive, send)
            return
        names = {name for name, _ in self.headers}

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [(n, v) for n, v in message.get("headers", []) if n.lower() not in names]
                message["headers"] = kept + self.headers
            await send(message)

        await self.app(scope, receive, with_headers)
