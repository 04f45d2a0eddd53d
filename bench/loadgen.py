"""A raw-socket HTTP/1.1 load generator on uvloop, run in its own process: `python -m bench.loadgen '<json spec>'`.

Spec: {"url", "tenants": [{"api_key", "tenant_id", "webhook_secret"}, …] (or one tenant's three keys at the top
level), "kind": "put"|"webhook"|"noop", "prefix", "mode": "closed"|"open", "n" (closed), "concurrency" (closed:
requests in flight; open: connections), "rate" and "seconds" (open)}.

Closed loop: `concurrency` requests always in flight until `n` are done (saturation throughput).
Open loop: request i is due at start + i/rate whatever the answers; it goes out on the first idle connection
(each of `concurrency` keep-alive connections carries one request at a time). Its latency runs from when it was
*due* to its complete answer, so time spent waiting for a free connection counts (no coordinated omission).

Every request (body, headers, webhook signature) is built before the clock starts, and answers are parsed only as
far as status line and Content-Length: the generator's own cost is a few tens of µs per request, so one process
offers well over 1000 requests/s on one core (`python -m bench.loadgen selftest` measures its limit against a
server that answers without doing anything). Tenants are used in turn, request i by tenant i mod len(tenants).

Prints one JSON object: counts, statuses, elapsed, rate, latency percentiles, its own CPU use.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import time
import uuid
from collections import Counter, deque
from datetime import datetime, timezone
from typing import Any, cast
from urllib.parse import urlsplit

import psutil
import uvloop

from app.security.signatures import sign_timetracker
from bench.world import entry


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    k = min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))
    return s[k]


def _tenants(spec: dict[str, Any]) -> list[dict[str, str]]:
    if spec.get("tenants"):
        return list(spec["tenants"])
    return [{k: spec.get(k, "") for k in ("api_key", "tenant_id", "webhook_secret")}]


def build_requests(spec: dict[str, Any], count: int, host: str) -> list[bytes]:
    """Every request of the run as the bytes that go on the wire."""
    tenants = _tenants(spec)
    stamp = datetime.now(timezone.utc).isoformat()
    out = []
    for i in range(count):
        t = tenants[i % len(tenants)]
        entry_id = f"{spec['prefix']}-{i}"
        if spec["kind"] == "noop":
            out.append(f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            continue
        body = entry(entry_id, i)
        body["updated_at"] = stamp
        if spec["kind"] == "put":
            del body["id"]
            raw = json.dumps(body).encode()
            head = (f"PUT /api/v1/entries/{entry_id} HTTP/1.1\r\nHost: {host}\r\n"
                    f"Authorization: Bearer {t['api_key']}\r\nContent-Type: application/json\r\n")
        else:
            raw = json.dumps({"event": "entry.created", "entry": body}).encode()
            head = (f"POST /webhooks/timetracker/{t['tenant_id']} HTTP/1.1\r\nHost: {host}\r\n"
                    f"Content-Type: application/json\r\nX-TimeTracker-Delivery: {uuid.uuid4()}\r\n"
                    f"X-TimeTracker-Signature: {sign_timetracker(t['webhook_secret'], raw)}\r\n")
        out.append(head.encode() + f"Content-Length: {len(raw)}\r\n\r\n".encode() + raw)
    return out


def _next_message(buf: bytes) -> tuple[bytes, int] | None:
    """The head of the first complete HTTP/1.1 message in `buf` and its whole size (head, blank line, body), or
    None while it is incomplete."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head, length = buf[:end], 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    size = end + 4 + length
    return (head, size) if len(buf) >= size else None


class Connection(asyncio.Protocol):
    """One keep-alive connection carrying one request at a time; calls `done(status)` per complete answer."""

    def __init__(self, gen: Generator) -> None:
        self.gen = gen
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.due = 0.0
        self.busy = False
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not its subclasses

    def send(self, request: bytes, due: float) -> None:
        assert self.transport is not None
        self.busy, self.due = True, due
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while message := _next_message(self.buf):
            head, size = message
            self.buf = self.buf[size:]
            self.busy = False
            self.gen.done(self, head[9:12].decode())

    def connection_lost(self, exc: Exception | None) -> None:
        if self.busy:
            self.gen.lost(self)
        if not self.closed.done():
            self.closed.set_result(None)


class Generator:
    def __init__(self, requests: list[bytes]) -> None:
        self.requests = requests
        self.latencies: list[float] = []
        self.statuses: Counter[str] = Counter()
        self.idle: deque[Connection] = deque()
        self.waiting: deque[tuple[int, float]] = deque()  # due but no idle connection yet
        self.finished = 0
        self.all_done = asyncio.get_running_loop().create_future()
        self.next_closed = 0

    def done(self, conn: Connection, status: str) -> None:
        self.statuses[status] += 1
        self.latencies.append(time.perf_counter() - conn.due)
        self._free(conn)

    def lost(self, conn: Connection) -> None:
        self.statuses["connection lost"] += 1
        self._count_finished()

    def _free(self, conn: Connection) -> None:
        self._count_finished()
        self.next_request(conn)

    def next_request(self, conn: Connection) -> None:
        """Give `conn` the next request: one that waits for a connection, the next of a closed loop, or none."""
        if self.waiting:
            i, due = self.waiting.popleft()
            conn.send(self.requests[i], due)
        elif self.closed_mode and self.next_closed < len(self.requests):
            i, self.next_closed = self.next_closed, self.next_closed + 1
            conn.send(self.requests[i], time.perf_counter())
        else:
            self.idle.append(conn)

    def _count_finished(self) -> None:
        self.finished += 1
        if self.finished == len(self.requests) and not self.all_done.done():
            self.all_done.set_result(None)

    def submit(self, i: int, due: float) -> None:
        if self.idle:
            self.idle.popleft().send(self.requests[i], due)
        else:
            self.waiting.append((i, due))

    closed_mode = False


async def _connect(host: str, port: int, gen: Generator, n: int) -> list[Connection]:
    loop = asyncio.get_running_loop()
    conns = []
    for _ in range(n):
        _, proto = await loop.create_connection(lambda: Connection(gen), host, port)
        conns.append(proto)
    return conns


async def drive(spec: dict[str, Any]) -> dict[str, Any]:
    parts = urlsplit(spec["url"])
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    count = spec["n"] if spec["mode"] == "closed" else int(spec["rate"] * spec["seconds"])
    connections = int(spec.get("concurrency", 64))
    # a few requests to open connections and warm the server's code paths; not counted
    warm_requests = build_requests({**spec, "prefix": spec["prefix"] + "-warm"}, connections, f"{host}:{port}")
    warm = Generator(warm_requests)
    conns = await _connect(host, port, warm, connections)
    for i, c in enumerate(conns):
        c.send(warm_requests[i], time.perf_counter())
    await asyncio.wait_for(warm.all_done, 60)
    gen = Generator(build_requests(spec, count, f"{host}:{port}"))
    for c in conns:
        c.gen = gen
    me = psutil.Process()
    cpu0 = me.cpu_times()
    t0 = time.perf_counter()
    if spec["mode"] == "closed":
        gen.closed_mode = True
        for c in conns:
            gen.next_request(c)
    else:
        gen.idle.extend(conns)
        rate = float(spec["rate"])
        i = 0
        while i < count:
            now = time.perf_counter()
            while i < count and t0 + i / rate <= now:
                gen.submit(i, t0 + i / rate)
                i += 1
            if i < count:
                await asyncio.sleep(max(0.0, t0 + i / rate - time.perf_counter()))
    timeout = float(spec.get("timeout", 60))
    try:
        await asyncio.wait_for(gen.all_done, timeout)
    except TimeoutError:
        gen.statuses[f"unanswered after {timeout:g} s"] += count - gen.finished
    elapsed = time.perf_counter() - t0
    cpu1 = me.cpu_times()
    for c in conns:
        if c.transport is not None:
            c.transport.close()
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    ok = sum(v for k, v in gen.statuses.items() if k in ("200", "202"))
    ms = [x * 1000 for x in gen.latencies]
    return {
        "kind": spec["kind"], "mode": spec["mode"], "requests": count, "accepted": ok,
        "statuses": dict(gen.statuses), "elapsed_s": elapsed, "rate_per_s": ok / elapsed if elapsed else 0.0,
        "p50_ms": percentile(ms, 50), "p95_ms": percentile(ms, 95), "p99_ms": percentile(ms, 99),
        "max_ms": max(ms) if ms else None, "loadgen_cpu_s": cpu, "loadgen_cpu_pct": 100 * cpu / elapsed,
        "loadgen_cpu_us_per_request": 1e6 * cpu / max(1, count),
        "concurrency": connections, "target_rate": spec.get("rate"), "tenants": len(_tenants(spec)),
    }


class _Answer(asyncio.Protocol):
    """The self-test's server: answers every request at once with a fixed 202 (nothing else runs)."""

    REPLY = b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\ncontent-type: application/json\r\n\r\n{}"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not its subclasses
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while message := _next_message(self.buf):
            self.buf = self.buf[message[1]:]
            self.transport.write(self.REPLY)


def _serve_answers(port: int) -> None:
    async def serve() -> None:
        server = await asyncio.get_running_loop().create_server(_Answer, "127.0.0.1", port)
        await server.serve_forever()

    uvloop.run(serve())


def selftest(kind: str = "put", seconds: float = 3.0) -> dict[str, Any]:
    """The generator's own limit: closed loop against a server (its own process) that does nothing."""
    import multiprocessing

    from devstack.servers import free_port

    port = free_port()
    server = multiprocessing.get_context("spawn").Process(target=_serve_answers, args=(port,), daemon=True)
    server.start()
    try:
        deadline = time.monotonic() + 60
        while True:  # until the server listens (spawning a process takes a while on a busy machine)
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or not server.is_alive():
                    raise
                time.sleep(0.1)
        spec = {"url": f"http://127.0.0.1:{port}", "api_key": "k", "tenant_id": str(uuid.uuid4()),
                "webhook_secret": "s", "kind": kind, "prefix": "self", "mode": "closed", "n": int(20000 * seconds),
                "concurrency": 64}
        return uvloop.run(drive(spec))
    finally:
        server.terminate()


def main() -> None:
    if sys.argv[1] == "selftest":
        print(json.dumps(selftest(sys.argv[2] if len(sys.argv) > 2 else "put")))
        return
    print(json.dumps(uvloop.run(drive(json.loads(sys.argv[1])))))


if __name__ == "__main__":
    main()
