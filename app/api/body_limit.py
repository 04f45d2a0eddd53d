"""Request bodies bounded on every route, before anything else runs (CONTRACT section 11).

A pure ASGI middleware, outermost: it reads a request's body up to the route's limit before the app sees the
request, so neither authentication, nor a JSON parser, nor a webhook's signature check ever runs on (or holds)
more than the limit. A `Content-Length` over the limit is refused without reading a byte of the body; a body
without one (chunked) is cut as soon as it passes the limit. Either way the answer is 413, and uvicorn closes
the connection rather than read the rest.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

BATCH_PATH = "/api/v1/entries/batch"


class BodyTooLarge(Exception):
    """The body passed the route's limit."""


class BodyLimit:
    """Refuse request bodies over `default` bytes (`batch` bytes on the batch route) with 413."""

    def __init__(self, app: ASGIApp, *, default: int, batch: int) -> None:
        self.app = app
        self.default = default
        self.batch = batch

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
        try:
            body = await _read_body(receive, limit)
        except BodyTooLarge:
            await _answer(send, 413, f"request body is over {limit} bytes")
            return
        await self.app(scope, _replay(body, receive), send)


def _content_length(scope: Scope) -> int | str | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isascii() and text.isdigit() else "invalid"
    return None


async def _read_body(receive: Receive, limit: int) -> list[Message]:
    """The request's body messages, up to `limit` bytes in all; a disconnect ends the list early."""
    messages: list[Message] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages  # the client went away: the app sees the disconnect as it would have
        size += len(message.get("body", b""))
        if size > limit:
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


async def _answer(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
