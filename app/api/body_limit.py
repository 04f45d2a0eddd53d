"""Request bodies bounded on every route, before anything else runs (CONTRACT section 11).

A pure ASGI middleware, outermost: it reads a request's body up to the route's limit before the app sees the
request, so neither authentication, nor a JSON parser, nor a webhook's signature check ever runs on (or holds)
more than the limit. A `Content-Length` over the limit is refused without reading a byte of the body; a body
without one (chunked) is cut as soon as it passes the limit. Either way the answer is 413, and uvicorn closes
the connection rather than read the rest.

The limits bound one request; `LargeBodyBudget` bounds them all together. Anyone may send a body up to the
batch limit before being authenticated, so a handful of connections could otherwise make the process hold
handfuls of 8 MiB. Each request's first 64 KiB are free (nearly every request is far smaller); bytes beyond
that are taken from a budget shared by the process, and a request that finds it exhausted stops being read
(TCP pushes back on its sender) until the ones before it are done, or is answered 503 after 30 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

from starlette.types import ASGIApp, Message, Receive, Scope, Send

BATCH_PATH = "/api/v1/entries/batch"
FREE_BYTES = 64 * 1024  # per request, outside the shared budget
BUDGET_WAIT_SECONDS = 30.0


class BodyTooLarge(Exception):
    """The body passed the route's limit."""


class BudgetExhausted(Exception):
    """No room in the shared budget within `BUDGET_WAIT_SECONDS`."""


class LargeBodyBudget:
    """Bytes of request bodies beyond `FREE_BYTES` each that the process holds at once, all requests together.

    The oldest request still being read may always go on (up to its limit), even past the budget: otherwise
    several half-read bodies could each wait for the others' bytes forever. So the process holds at most the
    budget plus one limit, and every reader's turn comes.
    """

    def __init__(self, total: int) -> None:
        self.total = total
        self.used = 0
        self._readers: list[_Reading] = []  # in the order they started
        self._changed = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def reading(self) -> AsyncIterator[_Reading]:
        reading = _Reading(self)
        self._readers.append(reading)
        try:
            yield reading
        finally:
            self._readers.remove(reading)
            async with self._changed:
                self.used -= reading.taken
                self._changed.notify_all()

    async def take(self, reading: _Reading, size: int) -> None:
        async with self._changed:
            try:
                async with asyncio.timeout(BUDGET_WAIT_SECONDS):
                    await self._changed.wait_for(
                        lambda: self.used + size <= self.total or self._readers[0] is reading)
            except TimeoutError:
                raise BudgetExhausted from None
            self.used += size


class _Reading:
    """One request's share of the budget, given back when the request is done."""

    def __init__(self, budget: LargeBodyBudget) -> None:
        self.budget = budget
        self.size = 0
        self.taken = 0

    async def add(self, size: int) -> None:
        self.size += size
        beyond = max(0, self.size - FREE_BYTES - self.taken)
        if beyond:
            await self.budget.take(self, beyond)
            self.taken += beyond


class BodyLimit:
    """Refuse request bodies over `default` bytes (`batch` bytes on the batch route) with 413."""

    def __init__(self, app: ASGIApp, *, default: int, batch: int) -> None:
        self.app = app
        self.default = default
        self.batch = batch
        # room for one largest body and a few ordinary ones at once
        self.budget = LargeBodyBudget(max(batch, 4 * default))

    def limit_for(self, path: str) -> int:
        return self.batch if path.rstrip("/") == BATCH_PATH else self.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope.get("path", ""))
        declared = _content_length(scope)
        if declared == "invalid":
            await _answer(send, 400, "Content-Length is not a number")
            return
        if isinstance(declared, int) and declared > limit:
            await _answer(send, 413, f"request body is over {limit} bytes")
            return
        async with self.budget.reading() as reading:
            try:
                body = await _read_body(receive, limit, reading)
            except BodyTooLarge:
                await _answer(send, 413, f"request body is over {limit} bytes")
                return
            except BudgetExhausted:
                await _answer(send, 503, "too many large requests are being received; retry shortly",
                              retry_after=1)
                return
            await self.app(scope, _replay(body, receive), send)


def _content_length(scope: Scope) -> int | str | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isascii() and text.isdigit() else "invalid"
    return None


async def _read_body(receive: Receive, limit: int, reading: _Reading) -> list[Message]:
    """The request's body messages, up to `limit` bytes in all; a disconnect ends the list early."""
    messages: list[Message] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages  # the client went away: the app sees the disconnect as it would have
        await reading.add(len(message.get("body", b"")))
        if reading.size > limit:
            raise BodyTooLarge
        if not message.get("more_body", False):
            return messages


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()  # after the body: wait for the disconnect, as the server's receive does

    return replayed


async def _answer(send: Send, status: int, detail: str, *, retry_after: int | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"connection", b"close")]
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
