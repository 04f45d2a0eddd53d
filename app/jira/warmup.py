"""Warm a process's JIRA path before its first real request.

A fresh process's first request pays for lazy imports and first-use set-up in httpx/httpcore/anyio and the
RSA signer (about 40 ms here, far more on a busy machine). Paid between a rate-limit grant and the request's
arrival, that delay bunches the first requests of several workers together at JIRA; paid at start-up it
costs nothing. The round trip goes to a throwaway server on loopback, never to JIRA, through a throwaway
client built like the real one (same egress-checked transport, allowing only that loopback address: the
process's own client may well refuse loopback).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa

from app.jira.egress import EgressPolicy
from app.jira.signing import OAuthConsumer, authorization_header
from app.jira.transport import jira_http_client, read_bounded

_RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}"


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(_RESPONSE)
        await writer.drain()
    writer.close()


async def warm_up() -> None:
    """Sign and send one JSON request through a JIRA-shaped client to a loopback server of our own."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    consumer = OAuthConsumer("warm-up", key)
    server = await asyncio.start_server(_answer, "127.0.0.1", 0)
    http = jira_http_client(EgressPolicy([ipaddress.ip_network("127.0.0.1/32")]), timeout_seconds=5)
    try:
        port = server.sockets[0].getsockname()[1]
        url = f"http://127.0.0.1:{port}/rest/api/2/warm-up?startAt=0"
        body = b'{"warm":"up"}'
        request = http.build_request("POST", url, content=body, headers={"Content-Type": "application/json"})
        request.headers["Authorization"] = authorization_header(
            consumer, method="POST", url=str(request.url), body=body, token="warm-up"
        )
        with contextlib.suppress(httpx.HTTPError):
            response = await http.send(request, stream=True)
            await read_bounded(response, 1024)
            await response.aclose()
    finally:
        await http.aclose()
        server.close()
        await server.wait_closed()
