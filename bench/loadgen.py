"""An httpx-based async load generator, run in its own process: `python -m bench.loadgen '<json spec>'`.

Spec: {"url", "api_key", "tenant_id", "webhook_secret", "kind": "put"|"webhook", "prefix",
       "mode": "closed"|"open", "n" (closed), "concurrency" (closed), "rate" and "seconds" (open)}.
Closed loop: `concurrency` requests always in flight until `n` are done (saturation throughput).
Open loop: requests start at a fixed `rate` whatever the answers (latency at a given load).
Latency is measured from the moment a request is handed to httpx to its complete answer.
Prints one JSON object: counts, statuses, elapsed, rate, latency percentiles, its own CPU use.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections import Counter
from datetime import datetime, timezone
from typing import Any

import httpx
import psutil

from app.security.signatures import sign_timetracker
from bench.world import entry


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    k = min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))
    return s[k]


class Generator:
    def __init__(self, spec: dict[str, Any], client: httpx.AsyncClient) -> None:
        self.spec = spec
        self.client = client
        self.latencies: list[float] = []
        self.statuses: Counter[str] = Counter()

    def _request(self, i: int) -> tuple[str, str, bytes, dict[str, str]]:
        spec = self.spec
        entry_id = f"{spec['prefix']}-{i}"
        body = entry(entry_id, i)
        body["updated_at"] = datetime.now(timezone.utc).isoformat()
        if spec["kind"] == "put":
            del body["id"]
            raw = json.dumps(body).encode()
            return ("PUT", f"/api/v1/entries/{entry_id}", raw,
                    {"Authorization": f"Bearer {spec['api_key']}", "Content-Type": "application/json"})
        raw = json.dumps({"event": "entry.created", "entry": body}).encode()
        return ("POST", f"/webhooks/timetracker/{spec['tenant_id']}", raw, {
            "Content-Type": "application/json", "X-TimeTracker-Delivery": str(uuid.uuid4()),
            "X-TimeTracker-Signature": sign_timetracker(spec["webhook_secret"], raw)})

    async def one(self, i: int) -> None:
        method, path, raw, headers = self._request(i)
        t0 = time.perf_counter()
        try:
            r = await self.client.request(method, path, content=raw, headers=headers)
            self.statuses[str(r.status_code)] += 1
        except httpx.HTTPError as exc:
            self.statuses[type(exc).__name__] += 1
            return
        self.latencies.append(time.perf_counter() - t0)

    async def closed(self, n: int, concurrency: int) -> None:
        counter = iter(range(n))

        async def lane() -> None:
            for i in counter:
                await self.one(i)

        await asyncio.gather(*(lane() for _ in range(concurrency)))

    async def open(self, rate: float, seconds: float, max_in_flight: int) -> None:
        n = int(rate * seconds)
        start = time.perf_counter()
        tasks = []
        in_flight = 0

        async def tracked(i: int) -> None:
            nonlocal in_flight
            in_flight += 1
            try:
                await self.one(i)
            finally:
                in_flight -= 1

        for i in range(n):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if in_flight >= max_in_flight:
                # the server is behind: queueing more inside httpx only measures httpx's pool, so count it
                self.statuses[f"not sent ({max_in_flight} in flight)"] += 1
                continue
            tasks.append(asyncio.create_task(tracked(i)))
        await asyncio.gather(*tasks)


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=spec.get("concurrency", 64), max_keepalive_connections=64)
    # a request unanswered after 5 s counts as an error, so an overloaded server cannot stretch a run for minutes
    async with httpx.AsyncClient(base_url=spec["url"], limits=limits, timeout=5.0, trust_env=False) as client:
        gen = Generator(spec, client)
        # a few requests to open connections and warm the server's code paths; not counted
        warm = Generator({**spec, "prefix": spec["prefix"] + "-warm"}, client)
        await asyncio.gather(*(warm.one(i) for i in range(min(20, spec.get("concurrency", 8)))))
        me = psutil.Process()
        cpu0 = me.cpu_times()
        t0 = time.perf_counter()
        if spec["mode"] == "closed":
            await gen.closed(spec["n"], spec["concurrency"])
        else:
            await gen.open(spec["rate"], spec["seconds"], spec.get("concurrency", 64))
        elapsed = time.perf_counter() - t0
        cpu1 = me.cpu_times()
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    ok = sum(v for k, v in gen.statuses.items() if k in ("200", "202"))
    ms = [x * 1000 for x in gen.latencies]
    return {
        "kind": spec["kind"], "mode": spec["mode"], "requests": sum(gen.statuses.values()), "accepted": ok,
        "statuses": dict(gen.statuses), "elapsed_s": elapsed, "rate_per_s": ok / elapsed if elapsed else 0.0,
        "p50_ms": percentile(ms, 50), "p95_ms": percentile(ms, 95), "p99_ms": percentile(ms, 99),
        "max_ms": max(ms) if ms else None, "loadgen_cpu_s": cpu, "loadgen_cpu_pct": 100 * cpu / elapsed,
        "concurrency": spec.get("concurrency"), "target_rate": spec.get("rate"),
    }


def main() -> None:
    spec = json.loads(sys.argv[1])
    print(json.dumps(asyncio.run(run(spec))))


if __name__ == "__main__":
    main()
