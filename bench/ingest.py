"""Measurement 1: how fast the API accepts entry changes (PUT, TimeTracker webhook, a 10,000-entry backfill).

The API runs as the README's production command (`uvicorn app.main:app --http h11 --workers N`, one process per
core, `bench.stack.API_PROCESSES`). No worker runs during these runs: the figures are the API's alone, PostgreSQL
and Redis included (each accepted change is still handed to the queue). The load comes from tenants with the
default `TENANT_API_RATE_PER_SECOND` (100/s each): 1000 changes/s is twenty tenants at 50/s, each with a JIRA
instance its entries are routed to, so every change takes the whole path (routed, pending, fed, queued).

Besides latency and throughput, each run records the CPU every process spent per accepted change (API processes,
PostgreSQL, Redis, the load generator) and the Redis commands per change (`INFO commandstats` before and after),
so a missed goal shows what limits it. The load generator's own limit is measured first, against a server that
does nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import psutil
import redis

from bench.stack import API_PROCESSES, ROOT, Bench
from bench.world import Tenant, create_tenant, entry

TENANTS = 20
RATE = 1000  # changes per second offered in the open-loop runs, spread over the tenants
BACKFILL = 10_000
BATCH = 1000


def _generator(*args: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "bench.loadgen", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"the load generator failed: {done.stderr[-2000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def loadgen(bench: Bench, tenant: Tenant | list[Tenant], **spec: Any) -> dict[str, Any]:
    """Run the load generator in its own process against the API and return its figures."""
    tenants = tenant if isinstance(tenant, list) else [tenant]
    return _generator(json.dumps({"url": bench.api_url, **spec, "tenants": [
        {"api_key": t.api_key, "tenant_id": t.tenant_id, "webhook_secret": t.webhook_secret} for t in tenants]}))


def _cpu_seconds(procs: list[psutil.Process], *, with_exited_children: bool = False) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system
        if with_exited_children:  # PostgreSQL backends that ended are accounted to the postmaster
            total += t.children_user + t.children_system
    return total


class Meter:
    """CPU of the API processes, PostgreSQL (postmaster and backends) and Redis, and Redis' command counts."""

    def __init__(self, bench: Bench) -> None:
        assert bench.stack is not None
        self.api = [psutil.Process(pid) for pid in bench.api_pids()]
        self.postmaster = psutil.Process(bench.stack.postgres.proc.pid)
        self.redis_proc = psutil.Process(bench.stack.redis.proc.pid)
        self.redis = redis.Redis.from_url(bench.stack.redis.url)

    def sample(self) -> dict[str, Any]:
        backends = self.postmaster.children(recursive=True)
        stats: dict[str, Any] = self.redis.info("commandstats")  # type: ignore[assignment]
        return {
            "api": _cpu_seconds(self.api),
            "postgres": _cpu_seconds([self.postmaster], with_exited_children=True) + _cpu_seconds(backends),
            "redis": _cpu_seconds([self.redis_proc]),
            "commands": {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()},
        }

    @staticmethod
    def per_change(before: dict[str, Any], after: dict[str, Any], changes: int) -> dict[str, Any]:
        n = max(1, changes)
        commands = {k: after["commands"].get(k, 0) - before["commands"].get(k, 0) for k in after["commands"]}
        commands.pop("info", None)  # the meter's own
        return {
            **{f"{k}_cpu_ms_per_change": 1000 * (after[k] - before[k]) / n for k in ("api", "postgres", "redis")},
            "redis_commands_per_change": sum(commands.values()) / n,
            "redis_commands": {k: v for k, v in sorted(commands.items()) if v},
        }


def measured(bench: Bench, tenants: list[Tenant], **spec: Any) -> dict[str, Any]:
    """A load generator run plus what each process spent on it, per accepted change."""
    meter = Meter(bench)
    load_before = psutil.getloadavg()
    before = meter.sample()
    result = loadgen(bench, tenants, **spec)
    after = meter.sample()
    result.update(Meter.per_change(before, after, result["accepted"]))
    result["load_avg_before"] = [round(x, 2) for x in load_before]
    result["api_cpu_pct"] = 100 * (after["api"] - before["api"]) / result["elapsed_s"]
    return result


def make_tenants(bench: Bench, n: int) -> list[Tenant]:
    """`n` tenants made with the admin CLI, each with a JIRA instance (on the simulator) for project PROJ."""

    def one(i: int) -> Tenant:
        t = create_tenant(bench, f"bench-ingest-{i}")
        r = httpx.post(f"{bench.api_url}/api/v1/jira-instances", headers={"Authorization": f"Bearer {t['api_key']}"},
                       json={"name": "sim ingest", "base_url": f"{bench.sim_url}/ingest", "consumer_key": "tt-ingest",
                             "project_keys": ["PROJ"]}, timeout=60, trust_env=False)
        r.raise_for_status()
        return Tenant(t["tenant_id"], t["api_key"], t["webhook_secret"], r.json()["id"], "ingest")

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(one, range(n)))


def _api_rss_mb(bench: Bench) -> float:
    return sum(psutil.Process(pid).memory_info().rss for pid in bench.api_pids()) / 2**20


def backfill(bench: Bench, tenant: Tenant, n: int) -> dict[str, Any]:
    """`n` new entries through the batch endpoint, `BATCH` a call, one call after another; the API processes'
    memory after each call."""
    meter = Meter(bench)
    before = meter.sample()
    rss = [_api_rss_mb(bench)]
    calls = []
    with httpx.Client(base_url=bench.api_url, headers=tenant.headers, timeout=120, trust_env=False) as api:
        t0 = time.perf_counter()
        for start in range(0, n, BATCH):
            body = {"entries": [entry(f"backfill-{i}", i) for i in range(start, min(n, start + BATCH))]}
            c0 = time.perf_counter()
            r = api.post("/api/v1/entries/batch", json=body)
            calls.append(time.perf_counter() - c0)
            r.raise_for_status()
            if r.json()["accepted"] != len(body["entries"]):
                raise RuntimeError(f"backfill partly rejected: {r.json()['results'][:3]}")
            rss.append(_api_rss_mb(bench))
        total = time.perf_counter() - t0
    after = meter.sample()
    return {"entries": n, "batch": BATCH, "total_s": total, "calls_s": calls, "api_rss_mb": rss,
            "rss_growth_mb": rss[-1] - rss[1], **Meter.per_change(before, after, n)}


def run(bench: Bench, *, quick: bool) -> dict[str, Any]:
    generator = _generator("selftest", "webhook")
    tenants = make_tenants(bench, TENANTS)
    n = 600 if quick else 3000
    seconds = 3 if quick else 10
    results: dict[str, Any] = {"api_processes": API_PROCESSES, "tenants": TENANTS, "generator": generator,
                               "runs": []}
    for kind in ("put", "webhook"):
        # saturation: a fixed number of requests always in flight
        results["runs"].append(measured(bench, tenants, kind=kind, prefix=f"{kind}-sat", mode="closed", n=n,
                                        concurrency=64))
        # latency at the target load: RATE changes per second, each due on schedule whatever the answers
        results["runs"].append(measured(bench, tenants, kind=kind, prefix=f"{kind}-{RATE}", mode="open",
                                        rate=RATE, seconds=seconds, concurrency=256))
    results["backfill"] = backfill(bench, tenants[0], 2000 if quick else BACKFILL)
    return results


# -- the report ---------------------------------------------------------------------------------------------------

def _f(x: Any, digits: int = 1) -> str:
    return "–" if x is None else f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def _verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def open_loop_met(run: dict[str, Any]) -> bool:
    """Every offered change accepted, at the offered rate (2 % slack for the last answers), p99 under 50 ms."""
    return (run["accepted"] == run["requests"] and run["rate_per_s"] >= 0.98 * run["target_rate"]
            and (run["p99_ms"] or 1e9) < 50)


def backfill_met(b: dict[str, Any]) -> bool:
    """Accepted in under 5 s, and the API processes' memory flat (under 10 MB growth after the first call)."""
    return b["total_s"] < 5 and b["rss_growth_mb"] < 10


def cpu_ms_per_change(run: dict[str, Any]) -> float:
    """CPU every process spent per accepted change: API, PostgreSQL, Redis and the load generator."""
    return (run["api_cpu_ms_per_change"] + run["postgres_cpu_ms_per_change"] + run["redis_cpu_ms_per_change"]
            + run["loadgen_cpu_s"] * 1000 / max(1, run["accepted"]))


def ceiling(run: dict[str, Any]) -> float:
    """Changes per second this machine's cores could accept at that CPU per change, with nothing else running."""
    return 1000 * (os.cpu_count() or 1) / max(0.001, cpu_ms_per_change(run))


def report_section(r: dict[str, Any]) -> str:
    g = r["generator"]
    rows = []
    for run in r["runs"]:
        how = (f"closed loop, {run['concurrency']} in flight" if run["mode"] == "closed"
               else f"open loop at {run['target_rate']:g}/s, {run['concurrency']} connections")
        errors = {k: v for k, v in run["statuses"].items() if k not in ("200", "202")}
        if run["mode"] == "open":
            target, verdict = "≥ 1000/s, p99 < 50 ms", _verdict(open_loop_met(run))
        else:
            target, verdict = "(saturation)", "n/a"
        rows.append([
            "PUT" if run["kind"] == "put" else "webhook", how, str(run["requests"]), _f(run["rate_per_s"], 0),
            _f(run["p50_ms"]), _f(run["p95_ms"]), _f(run["p99_ms"]), _f(run["max_ms"]), str(errors or "none"),
            f"{run['api_cpu_ms_per_change']:.2f} ({run['api_cpu_pct']:.0f}%)",
            f"{run['postgres_cpu_ms_per_change']:.2f}",
            f"{run['redis_cpu_ms_per_change']:.2f}", f"{run['redis_commands_per_change']:.2f}",
            f"{ceiling(run):.0f}/s",
            f"{run['loadgen_cpu_pct']:.0f}%", " / ".join(map(str, run["load_avg_before"])), target, verdict,
        ])
    head = ["request", "load", "requests", "accepted/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "errors",
            "API CPU ms/change (all processes, % of one core)", "PostgreSQL CPU ms/change", "Redis CPU ms/change",
            "Redis commands/change", "CPU ceiling (cores ÷ CPU per change)", "load generator CPU",
            "load average before", "target", "verdict"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|",
             *("| " + " | ".join(row) + " |" for row in rows)]
    commands = "; ".join(
        f"{run['kind']} {run['mode']}: " + ", ".join(f"{k} {v / max(1, run['accepted']):.2f}"
                                                     for k, v in run["redis_commands"].items())
        for run in r["runs"])
    b = r["backfill"]
    rss = ", ".join(f"{x:.0f}" for x in b["api_rss_mb"])
    return "\n".join([
        f"{r['api_processes']} API processes (`uvicorn app.main:app --http h11 --workers {r['api_processes']}`), "
        f"{r['tenants']} tenants at the default `TENANT_API_RATE_PER_SECOND` (100/s), each with a JIRA instance: the "
        "load generator uses them in turn. Latency runs from when a request was due (open loop) or sent (closed "
        "loop) to its complete answer. The load generator (`bench/loadgen.py`, raw HTTP/1.1 on uvloop, every "
        "request built before the clock starts) alone, against a server that answers without doing anything: "
        f"**{g['rate_per_s']:.0f} requests/s** on one process, {g['loadgen_cpu_us_per_request']:.0f} µs of CPU per "
        "request: offering 1000/s costs it about "
        f"{g['loadgen_cpu_us_per_request'] / 10:.0f} % of one core.",
        "",
        *lines,
        "",
        f"Redis commands per accepted change, by command: {commands}.",
        "",
        f"**Backfill**: {b['entries']} new entries through `POST /api/v1/entries/batch`, {b['batch']} a call, one "
        f"call after another: **{b['total_s']:.2f} s** in all (calls: "
        f"{', '.join(f'{x:.2f}' for x in b['calls_s'])} s); API processes' RSS (sum, MB) before and after each "
        f"call: {rss} (growth after the first call {b['rss_growth_mb']:+.1f} MB); API CPU "
        f"{b['api_cpu_ms_per_change']:.2f} ms, PostgreSQL {b['postgres_cpu_ms_per_change']:.2f} ms per entry. "
        f"Target < 5 s with memory flat (growth < 10 MB): {_verdict(backfill_met(b))}.",
        "",
    ])
