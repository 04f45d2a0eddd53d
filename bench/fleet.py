"""Measuring the fleet of workers from outside: their CPU time, Redis' command count, PostgreSQL's backlog.

Workers are started first and left to settle (imports, warm-up, the start-up reconciliation poll), so what is
measured afterwards is the cost of the changes alone: CPU time of every worker process (psutil) and every
command Redis executed (`INFO commandstats`, which counts the commands run inside Lua scripts too), taken
before the backlog is accepted and after the last entry left `pending`. Nothing polls the API while measuring
(its stats endpoint talks to Redis too): progress is read from the simulator and from PostgreSQL directly.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psutil
import redis

from bench.stack import Bench, Workers


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes so far (a process that has exited counts as 0)."""
    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def rss_mb(pids: list[int]) -> list[float]:
    out = []
    for pid in pids:
        try:
            out.append(psutil.Process(pid).memory_info().rss / 2**20)
        except psutil.Error:
            pass
    return out


def redis_commands(url: str) -> Counter[str]:
    """Calls per command since Redis started (scripts' inner commands included)."""
    client = redis.Redis.from_url(url)
    try:
        stats: dict[str, Any] = client.info("commandstats")  # type: ignore[assignment]
    finally:
        client.close()
    return Counter({name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()})


def settle(workers: Workers, *, quiet_cpu: float = 0.03, timeout: float = 60) -> None:
    """Wait until the freshly started workers have finished starting: their CPU use drops to near idle."""
    pids = [p.pid for p in workers.procs]
    deadline = time.monotonic() + timeout
    time.sleep(1.0)
    while time.monotonic() < deadline:
        before = cpu_seconds(pids)
        time.sleep(0.5)
        if (cpu_seconds(pids) - before) / 0.5 < quiet_cpu * len(pids):
            return


async def _pending(database_url: str, tenant_ids: list[str]) -> int:
    import asyncpg

    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return int(await conn.fetchval(
            "SELECT count(*) FROM entries WHERE tenant_id = ANY($1::uuid[]) AND sync_status = 'pending'",
            tenant_ids))
    finally:
        await conn.close()


def pending(bench: Bench, tenant_ids: list[str]) -> int:
    """Entries of these tenants still `pending`, read from PostgreSQL (no API call, no Redis command)."""
    return asyncio.run(_pending(bench.env["DATABASE_URL"], tenant_ids))


@dataclass
class Meter:
    """CPU of the worker processes and Redis commands between `start` and `stop`, plus RSS samples."""

    bench: Bench
    workers: Workers
    cpu0: float = 0.0
    cmds0: Counter[str] = field(default_factory=Counter)
    t0: float = 0.0
    cpu_s: float = 0.0
    commands: Counter[str] = field(default_factory=Counter)
    wall_s: float = 0.0
    rss_samples: list[tuple[float, float]] = field(default_factory=list)  # (seconds since start, largest MB)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.workers.procs]

    def start(self) -> Meter:
        self.cpu0 = cpu_seconds(self.pids)
        self.cmds0 = redis_commands(self.bench.env["REDIS_URL"])
        self.t0 = time.monotonic()
        return self

    def sample_rss(self) -> None:
        sizes = rss_mb(self.pids)
        if sizes:
            self.rss_samples.append((time.monotonic() - self.t0, max(sizes)))

    def stop(self) -> Meter:
        self.wall_s = time.monotonic() - self.t0
        self.cpu_s = cpu_seconds(self.pids) - self.cpu0
        # the INFO call that took the first snapshot is not the service's
        self.commands = redis_commands(self.bench.env["REDIS_URL"]) - self.cmds0 - Counter({"info": 1})
        return self

    def figures(self, changes: int) -> dict[str, Any]:
        total = sum(self.commands.values())
        return {
            "worker_cpu_s": self.cpu_s, "wall_s": self.wall_s,
            "worker_cpu_ms_per_change": 1000 * self.cpu_s / changes if changes else None,
            "redis_commands": total, "redis_commands_per_change": total / changes if changes else None,
            "redis_top": dict(self.commands.most_common(12)),
            "rss_samples": [[round(t, 1), round(mb, 1)] for t, mb in self.rss_samples],
        }


def wait_for(check: Callable[[], bool], *, timeout: float, interval: float = 0.5,
              each: Callable[[], None] | None = None) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() > deadline:
            return False
        if each is not None:
            each()
        time.sleep(interval)
