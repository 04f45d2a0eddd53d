"""A JIRA of our own making that attacks its client, and a listener that only counts who knocks.

`HostileJira` answers each request with the attack its path names (the issue key in a ticket look-up):

| key prefix  | answer |
|-------------|--------|
| `BOMB-`     | 200, `Content-Encoding: gzip`, 256 MiB of zeros compressed to ~250 kB |
| `TRICKLE-`  | 200 with a large `Content-Length`, then one byte every 0.2 s, forever |
| `HEADERS-`  | 200 with 4 MiB of headers |
| `REDIRECT-` | 302 to `redirect_to` (a refused address) with an internal-looking path |
| `ENDLESS-`  | 200, an identity body with no end, as fast as the client reads |
| `HTML-`     | 500 with an HTML page holding text that must never reach a caller |
| anything else | 200 with a plain issue |

It runs on its own event loop in a thread, so the test's loop (and the API process under test) cannot slow
it down. Loopback only: both classes bind 127.0.0.x addresses.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import zlib
from collections.abc import Callable, Coroutine
from typing import Any, Self

LEAK_MARKER = "INTERNAL-SECRET-7f3a"

_BOMB_MIB = 256


def _gzip_bomb() -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(1024 * 1024)
    parts = [compressor.compress(zeros) for _ in range(_BOMB_MIB)]
    parts.append(compressor.flush())
    return b"".join(parts)


class _LoopThread:
    """An event loop in a daemon thread, for servers that must not share the test's loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, factory: Callable[[], Coroutine[Any, Any, Any]], timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(factory(), self.loop).result(timeout)

    def stop(self) -> None:
        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            self.run(cancel_all, timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)


class _LoopServer:
    """A TCP server on its own loop thread; subclasses answer connections in `_serve`."""

    def __init__(self, host: str, port: int = 0) -> None:
        self.host, self.port = host, port
        self._loop = _LoopThread()
        self._server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    def start(self, port: int | None = None) -> Self:
        async def go() -> None:
            self._server = await asyncio.start_server(self._serve, self.host, self.port if port is None else port,
                                                      limit=1024 * 1024)
            self.port = self._server.sockets[0].getsockname()[1]
        self._loop.run(go)
        return self

    def stop(self) -> None:
        async def go() -> None:
            if self._server is not None:
                self._server.close()
        self._loop.run(go)
        self._loop.stop()


class CountingListener(_LoopServer):
    """Accepts TCP connections on `host`, counts them and closes them; nothing else."""

    def __init__(self, host: str, port: int = 0) -> None:
        super().__init__(host, port)
        self.connections = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.close()


class HostileJira(_LoopServer):
    def __init__(self, host: str = "127.0.0.2", *, redirect_to: str = "http://127.0.0.3:9/") -> None:
        super().__init__(host)
        self.redirect_to = redirect_to
        self.requests: list[str] = []
        self._bomb = _gzip_bomb()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1]
                length = next((int(v) for k, _, v in (line.partition(":") for line in lines[1:])
                               if k.strip().lower() == "content-length"), 0)
                if length:
                    await reader.readexactly(length)
                self.requests.append(path)
                if not await self._answer(path, writer):
                    break
        writer.close()

    async def _answer(self, path: str, writer: asyncio.StreamWriter) -> bool:
        """Write the attack for `path`; False when the connection is to be closed afterwards."""
        key = path.split("?")[0].rstrip("/").rsplit("/", 1)[-1]
        if key.startswith("BOMB-"):
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(self._bomb))
            writer.write(self._bomb)
            await writer.drain()
            return True
        if key.startswith("TRICKLE-"):
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n")
            while True:
                writer.write(b" ")
                await writer.drain()
                await asyncio.sleep(0.2)
        if key.startswith("HEADERS-"):
            writer.write(b"HTTP/1.1 200 OK\r\n")
            line = b"X-Junk: " + b"a" * 8000 + b"\r\n"
            for _ in range(512):
                writer.write(line)
                await writer.drain()
            writer.write(b"Content-Length: 2\r\n\r\n{}")
            await writer.drain()
            return False
        if key.startswith("REDIRECT-"):
            location = f"{self.redirect_to}{LEAK_MARKER}/rest/api/2/issue/{key}".encode()
            writer.write(b"HTTP/1.1 302 Found\r\nLocation: " + location + b"\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            return True
        if key.startswith("ENDLESS-"):
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 99999999999\r\n\r\n")
            chunk = b"[" * 65536
            while True:
                writer.write(chunk)
                await writer.drain()
        if key.startswith("HTML-"):
            page = f"<html><body>Internal dashboard {LEAK_MARKER}: 10.0.0.5 db=prod</body></html>".encode()
            writer.write(b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/html\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(page) + page)
            await writer.drain()
            return True
        body = json.dumps({"key": key, "id": "10001", "fields": {"summary": "fine", "issuetype": {"subtask": False}}})
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                     % len(body) + body.encode())
        await writer.drain()
        return True
