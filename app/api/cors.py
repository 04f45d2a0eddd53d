"""CORS for the TimeTracker frontend (CONTRACT 14): browsers on a tenant's `allowed_origins` may call `/api/v1`.

* A request whose `Origin` is one of its **user token's** tenant's `allowed_origins` gets
  `Access-Control-Allow-Origin: <that origin>` — never `*`, and never `Access-Control-Allow-Credentials` (the API
  uses no cookies; a token travels in `Authorization`). Who the caller is was decided by `app.api.deps.authenticate`,
  which leaves the origins that may read the answer in the request's state: its tenant's for a user token, none for
  the API key (a browser holding the tenant-wide key is exactly what user tokens exist to prevent).
* A request nobody could identify (no, an unknown, an expired or a revoked credential; a body over the limit) may
  be read by every origin some tenant allows, so a frontend can see its 401 and fetch a new token.
* Preflights (`OPTIONS` with `Access-Control-Request-Method`) are answered for origins some tenant allows, with the
  methods and headers the API uses; other origins get a 403 without CORS headers, which the browser reports as a
  CORS failure. Only `/api/v1/` paths take part: everything else never carries CORS headers.

Origins some tenant allows are read from PostgreSQL at most every `TENANT_CACHE_SECONDS` per process (one query
for all tenants), never per request; the process that changes a tenant's list forgets its copy at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.domain.origins import normalise_origin

log = logging.getLogger(__name__)

# what the frontend's calls use: PATCH is tenant administration only (the API key, never a browser)
ALLOWED_METHODS = "GET, POST, PUT, DELETE"
ALLOWED_HEADERS = "authorization, content-type, x-request-id"
# what a page may read besides the safelisted headers: when to retry, the request id to quote, why a 401
EXPOSED_HEADERS = "retry-after, x-request-id, www-authenticate"
PREFLIGHT_MAX_AGE_SECONDS = 600
STATE_KEY = "cors_origins"  # set by app.api.deps.authenticate: the origins that may read this answer
_PATH_PREFIX = "/api/v1/"

OriginsLoader = Callable[[], Awaitable[set[str]]]


class AllowedOrigins:
    """The union of every tenant's `allowed_origins`, as one process last read it (at most `ttl` seconds ago)."""

    def __init__(self, load: OriginsLoader, *, ttl: float) -> None:
        self._load = load
        self._ttl = ttl
        self._origins: frozenset[str] = frozenset()
        self._read_at: float | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> frozenset[str]:
        if self._fresh():
            return self._origins
        async with self._lock:  # one reader per process; the others wait for its answer
            if not self._fresh():
                try:
                    self._origins = frozenset(await self._load())
                except Exception as exc:
                    # keep what was known: a database hiccup must not switch every frontend off
                    log.warning("could not read the tenants' allowed origins: %s", exc.__class__.__name__)
                self._read_at = time.monotonic()
        return self._origins

    def _fresh(self) -> bool:
        return self._read_at is not None and time.monotonic() - self._read_at < self._ttl

    def clear(self) -> None:
        self._read_at = None


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            try:
                return bytes(value).decode("ascii")
            except UnicodeDecodeError:
                return None
    return None


def _origin(scope: Scope) -> str | None:
    raw = _header(scope, b"origin")
    if raw is None or raw == "null":
        return None
    try:
        return normalise_origin(raw)
    except ValueError:
        return None


def _with_vary(headers: list[tuple[bytes, bytes]], *names: bytes) -> list[tuple[bytes, bytes]]:
    vary = [v for k, v in headers if k.lower() == b"vary"]
    merged = b", ".join([*vary, *names])
    return [(k, v) for k, v in headers if k.lower() != b"vary"] + [(b"vary", merged)]


class Cors:
    """Pure ASGI middleware (outermost): answers preflights, adds `Access-Control-Allow-Origin` where allowed."""

    def __init__(self, app: ASGIApp, *, origins: Callable[[Scope], AllowedOrigins]) -> None:
        self.app = app
        self._origins = origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(_PATH_PREFIX) or _header(scope, b"origin") is None:
            await self.app(scope, receive, send)
            return
        origin = _origin(scope)
        if scope["method"] == "OPTIONS" and _header(scope, b"access-control-request-method") is not None:
            await self._preflight(scope, origin, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = _with_vary(list(message.get("headers", [])), b"Origin")
                if origin is not None and await self._may_read(scope, origin):
                    headers += [(b"access-control-allow-origin", origin.encode()),
                                (b"access-control-expose-headers", EXPOSED_HEADERS.encode())]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_cors)

    async def _may_read(self, scope: Scope, origin: str) -> bool:
        identified = scope.get("state", {}).get(STATE_KEY)
        if identified is not None:
            return origin in identified
        return origin in await self._origins(scope).get()

    async def _preflight(self, scope: Scope, origin: str | None, send: Send) -> None:
        allowed = origin is not None and origin in await self._origins(scope).get()
        vary = (b"vary", b"Origin, Access-Control-Request-Method, Access-Control-Request-Headers")
        if not allowed:
            body = json.dumps({"detail": "CORS: this origin is not among any tenant's allowed_origins "
                                         "(PATCH /api/v1/tenant)"}).encode()
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), vary]
            await send({"type": "http.response.start", "status": 403, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        assert origin is not None
        headers = [
            (b"access-control-allow-origin", origin.encode()),
            (b"access-control-allow-methods", ALLOWED_METHODS.encode()),
            (b"access-control-allow-headers", ALLOWED_HEADERS.encode()),
            (b"access-control-max-age", str(PREFLIGHT_MAX_AGE_SECONDS).encode()),
            (b"content-length", b"0"), vary,
        ]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
