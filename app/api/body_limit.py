"""Request bodies bounded on every route, before anything else runs (CONTRACT section 11).

A pure ASGI middleware, outermost: it reads a request's body up to the route's limit before the app sees the
request, so neither authentication, nor a JSON parser, nor a webhook's signature check ever runs on (or holds)
more than the limit. A `Content-Length` over the limit is refused without reading a byte of the body; a body
without one (chunked) is cut as soon as it passes the limit. Either way the answer is 413, and uvicorn closes
the connection rather than read the rest.

The limits bound one request; a `ByteBudget` (app.budget) bounds them all together. Anyone may send a body up
to the batch limit before being authenticated, so a handful of connections could otherwise make the process hold
handfuls of 8 MiB. A request finding the budget exhausted stops being read (TCP pushes back on its sender) until
the ones before it are done, or is answered 503 after 30 s.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.budget import BudgetExhausted, ByteBudget, Share

BATCH_PATH = "/api/v1/entries/batch"
BUDGET_WAIT_SECONDS = 30.0


class BodyTooLarge(Exception):
    """The body passed the route's limit."""


class BodyLimit:
    """Refuse request bodies over `default` bytes (`batch` bytes on the batch route) with 413."""

    def __init__(self, app: ASGIApp, *, default: int, batch: int) -> None:
        self.app = app
        self.default = default
        self.batch = batch
        # room for one largest body and a few ordinary ones at once
        self.budget = ByteBudget(max(batch, 4 * default))

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
        async with self.budget.share(wait_seconds=BUDGET_WAIT_SECONDS) as reading:
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


async def _read_body(receive: Receive, limit: int, reading: Share) -> list[Message]:
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
