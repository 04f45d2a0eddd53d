"""The push side of the service, as issue 15 and CONTRACT 11 measure it (section "Push" of docs/benchmarks.md).

* `many`: 10 JIRA instances at 10 requests/s each, 3 workers, a backlog per instance: total writes/s ÷ the sum of
  the limits (and the lowest instance), the busiest one-second window at JIRA, JIRA requests, **worker CPU** and
  **Redis commands** per synced change (`bench.fleet`: every worker process' CPU time and every command Redis ran,
  scripts' inner commands included, from just before the backlog is accepted until nothing is pending).
* `one`: one instance over a 1000-entry backlog: utilisation of its limit and its busiest second at JIRA.
* `big`: 100,000 entries over 20 instances (10,000 with `--quick`): time to drain ÷ the ideal (entries ÷ the sum of
  the limits), and the workers' resident memory over the run.
* `latency`: an idle system, one PUT at a time: from sending the PUT to the write arriving at JIRA.
* `fair`: tenant B's PUT → JIRA latency, idle and while tenant A has 1000 PUTs queued on an instance allowing
  1 request/s plus an instance whose JIRA answers only at the full JIRA_TIMEOUT_SECONDS (CONTRACT 11).

Workers are started first and left to settle; everything then goes through the API as TimeTracker would send it.
JIRA's side (arrivals, the busiest second, writes) is the simulator's own log.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from typing import Any

import httpx

from bench.fleet import Meter, pending, settle, wait_for
from bench.stack import Bench
from bench.sync import WORKLOG_WRITE, duplicates, jira_side
from bench.world import Tenant, connect_tenant, entry, post_batch

MANY = [f"many{k}" for k in range(1, 11)]
BIG = [f"big{k}" for k in range(1, 21)]
FAIR_ISSUES = 1000
# name → simulator instance settings beyond the defaults (bench.stack.sim_instance)
SIM_INSTANCES: dict[str, dict[str, Any]] = {
    "one": {}, "lat": {}, "fairB": {}, "fairA2": {}, "fairA": {"issues": FAIR_ISSUES},
    **{name: {} for name in MANY}, **{name: {} for name in BIG},
}

GOALS = {
    "cpu_ms_per_change": 3.0, "redis_per_change": 8.0, "fleet_utilisation": 0.95, "instance_utilisation": 0.90,
    "one_utilisation": 0.97, "drain_ratio": 1.1, "latency_p50_ms": 25.0, "latency_p99_ms": 100.0,
}


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))]


def _drained(bench: Bench, tenants: list[Tenant], n_each: int, meter: Meter | None = None,
             timeout: float = 900) -> bool:
    """Every tenant's writes reached JIRA and nothing is pending in PostgreSQL (read without the API)."""
    def writes_done() -> bool:
        return all(bench.sim.counters(t.sim_instance)["writes"] >= n_each for t in tenants)

    each = meter.sample_rss if meter is not None else None
    ok = wait_for(writes_done, timeout=timeout, interval=1.0 if len(tenants) > 5 else 0.25, each=each)
    ids = [t.tenant_id for t in tenants]
    return ok and wait_for(lambda: pending(bench, ids) == 0, timeout=120, interval=0.2)


def _backlog_run(bench: Bench, tenants: list[Tenant], *, n_each: int, workers: int, prefix: str,
                 limit: float = 10) -> dict[str, Any]:
    """Workers up and settled, then `n_each` entries per tenant through the batch endpoint; measured to the end."""
    with bench.workers().start(workers) as w:
        settle(w)
        meter = Meter(bench, w).start()
        t_launch = time.time()
        for k, t in enumerate(tenants):
            post_batch(bench, t, [entry(f"{prefix}{k}-{i}", i) for i in range(n_each)])
        drained = _drained(bench, tenants, n_each, meter)
        meter.stop()
    per_instance = {t.sim_instance: {**jira_side(bench, t.sim_instance, limit, t_launch),
                                     "duplicates": duplicates(bench, t.sim_instance)} for t in tenants}
    for p in per_instance.values():  # the curves are for the plot of small runs only
        p.pop("other_requests", None)
        p.pop("first_writes", None)
    changes = n_each * len(tenants)
    requests = sum(p["requests"] for p in per_instance.values())
    return {
        "instances": len(tenants), "n_per_instance": n_each, "workers": workers, "drained": drained,
        "total_writes_per_s": sum(p["writes_per_s"] for p in per_instance.values()),
        "total_limit": limit * len(tenants), "requests": requests, "requests_per_change": requests / changes,
        "max_in_1s": max(p["max_in_1s"] for p in per_instance.values()),
        "rate_limited": sum(p["rate_limited"] for p in per_instance.values()),
        "duplicates": sum(p["duplicates"] for p in per_instance.values()),
        "min_utilisation": min(p["utilisation"] for p in per_instance.values()),
        "per_instance": per_instance, **meter.figures(changes),
    }


def run_many(bench: Bench, *, quick: bool) -> dict[str, Any]:
    tenants = [connect_tenant(bench, name) for name in MANY]
    result = _backlog_run(bench, tenants, n_each=40 if quick else 150, workers=3, prefix="many")
    result["utilisation"] = result["total_writes_per_s"] / result["total_limit"]
    return result


def run_one(bench: Bench, *, quick: bool) -> dict[str, Any]:
    tenant = connect_tenant(bench, "one")
    result = _backlog_run(bench, [tenant], n_each=150 if quick else 1000, workers=3, prefix="one")
    result["utilisation"] = result["total_writes_per_s"] / result["total_limit"]
    for p in result["per_instance"].values():
        result["per_second"] = p["per_second"]
        result["write_times"] = p["write_times"]
    return result


def run_big(bench: Bench, *, quick: bool) -> dict[str, Any]:
    """Accepted first (no worker running), then drained by 3 workers: drain time against the ideal."""
    n_each = 500 if quick else 5000
    tenants = [connect_tenant(bench, name) for name in BIG]
    t0 = time.monotonic()
    for k, t in enumerate(tenants):
        post_batch(bench, t, [entry(f"big{k}-{i}", i) for i in range(n_each)])
    accepted_s = time.monotonic() - t0
    with bench.workers().start(3) as w:
        meter = Meter(bench, w).start()
        t_start = time.time()
        drained = _drained(bench, tenants, n_each, meter, timeout=1800)
        meter.stop()
        wall = time.time() - t_start
    n = n_each * len(tenants)
    ideal = n / (10 * len(tenants))
    samples = [mb for t, mb in meter.rss_samples if t >= 30] or [mb for _, mb in meter.rss_samples]
    half = max(1, len(samples) // 2)
    first, second = max(samples[:half]), max(samples[half:] or samples[:half])
    sides = {t.sim_instance: bench.sim.counters(t.sim_instance) for t in tenants}
    return {
        "entries": n, "instances": len(tenants), "accepted_s": accepted_s, "drained": drained, "drain_s": wall,
        "ideal_s": ideal, "ratio": wall / ideal, "rss_first_half_mb": first, "rss_second_half_mb": second,
        "rss_flat": second <= first * 1.1, "max_in_1s": max(c["max_requests_per_second"] for c in sides.values()),
        "rate_limited": sum(c["rate_limited"] for c in sides.values()), **meter.figures(n),
    }


async def _timed_puts(bench: Bench, tenant: Tenant, *, n: int, prefix: str, every: float,
                      first_issue: int = 1) -> list[tuple[str, float]]:
    """PUTs one after another, `every` seconds apart, each on its own issue: (issue, when it was sent)."""
    sent: list[tuple[str, float]] = []
    async with httpx.AsyncClient(base_url=bench.api_url, headers=tenant.headers, timeout=30,
                                 trust_env=False) as api:
        for i in range(n):
            issue = f"PROJ-{first_issue + i}"
            body = {**entry(f"{prefix}-{i}", i), "ticket": issue}
            body.pop("id")
            began = time.time()
            r = await api.put(f"/api/v1/entries/{prefix}-{i}", json=body)
            r.raise_for_status()
            sent.append((issue, began))
            await asyncio.sleep(max(0.0, every - (time.time() - began)))
    return sent


def _arrival_latencies(bench: Bench, instance: str, sent: list[tuple[str, float]]) -> list[float]:
    """ms from each PUT being sent to its worklog write arriving at JIRA (matched by issue)."""
    arrivals: dict[str, float] = {}
    for r in bench.sim.log(instance):
        if r["method"] == "POST" and WORKLOG_WRITE.search(r["path"]) and r.get("issue_key"):
            arrivals.setdefault(r["issue_key"], r["time"])
    return [1000 * (arrivals[issue] - at) for issue, at in sent if issue in arrivals]


def _latency_figures(values: list[float], expected: int) -> dict[str, Any]:
    return {"n": len(values), "expected": expected, "p50_ms": percentile(values, 50),
            "p99_ms": percentile(values, 99), "max_ms": max(values) if values else None,
            "mean_ms": statistics.fmean(values) if values else None}


def run_latency(bench: Bench, *, quick: bool) -> dict[str, Any]:
    tenant = connect_tenant(bench, "lat", rate=100)
    n = 40 if quick else 150
    with bench.workers().start(3) as w:
        settle(w)
        sent = asyncio.run(_timed_puts(bench, tenant, n=n, prefix="lat", every=0.25))
        wait_for(lambda: bench.sim.counters("lat")["writes"] >= n, timeout=60)
    return _latency_figures(_arrival_latencies(bench, "lat", sent), n)


def run_fair(bench: Bench, *, quick: bool) -> dict[str, Any]:
    """B's PUT → JIRA latency, idle and under A's load (1000 queued PUTs at 1/s, and a JIRA at the full timeout)."""
    other = connect_tenant(bench, "fairB", rate=100)
    limited = connect_tenant(bench, "fairA", rate=1)
    # JIRA's own limit of 1/s only once connected (the OAuth dance is a few requests at once)
    bench.sim.set_rate_limit("fairA", rate=1, burst=1)
    hanging = _second_instance(bench, limited, "fairA2", project="OPS")
    n_b, n_a = (15, 300) if quick else (40, FAIR_ISSUES)
    bench.sim.set_faults("fairA2", latency_ms=31_000)  # longer than JIRA_TIMEOUT_SECONDS (30): every request hangs
    with bench.workers().start(3) as w:
        settle(w)
        idle = _arrival_latencies(bench, "fairB", asyncio.run(
            _timed_puts(bench, other, n=n_b, prefix="idle", every=0.25)))
        # A: its people's PUTs (USER priority) on distinct issues, and changes for the instance that hangs
        asyncio.run(_many_puts(bench, limited, n=n_a, prefix="a", tickets=[f"PROJ-{i}" for i in range(1, n_a + 1)]))
        asyncio.run(_many_puts(bench, hanging, n=20, prefix="h", tickets=["OPS-1"] * 20))
        wait_for(lambda: bench.sim.counters("fairA2")["requests"] >= 1, timeout=60)
        queued_before = pending(bench, [limited.tenant_id])
        busy = _arrival_latencies(bench, "fairB", asyncio.run(
            _timed_puts(bench, other, n=n_b, prefix="busy", every=0.25, first_issue=n_b + 1)))
        queued_after = pending(bench, [limited.tenant_id])
    bench.sim.clear_faults("fairA2")
    idle_f, busy_f = _latency_figures(idle, n_b), _latency_figures(busy, n_b)
    return {
        "idle": idle_f, "busy": busy_f, "a_queued_before": queued_before, "a_queued_after": queued_after,
        "a_puts": n_a, "ratio_p50": _ratio(busy_f["p50_ms"], idle_f["p50_ms"]),
        "ratio_p99": _ratio(busy_f["p99_ms"], idle_f["p99_ms"]),
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def _second_instance(bench: Bench, tenant: Tenant, sim_instance: str, *, project: str) -> Tenant:
    """Another instance of the same tenant (project `project`), its user connected through the OAuth dance."""
    with httpx.Client(base_url=bench.api_url, headers=tenant.headers, timeout=60, trust_env=False) as api:
        r = api.post("/api/v1/jira-instances", json={
            "name": f"sim {sim_instance}", "base_url": f"{bench.sim_url}/{sim_instance}",
            "consumer_key": f"tt-{sim_instance}", "rate_limit_per_second": 10, "project_keys": [project]})
        r.raise_for_status()
        inst = r.json()
        bench.sim.add_consumer(sim_instance, f"tt-{sim_instance}", inst["public_key_pem"])
        r = api.post(f"/api/v1/jira-instances/{inst['id']}/oauth/start", json={"user": "jdoe"})
        r.raise_for_status()
        httpx.get(r.json()["authorize_url"], follow_redirects=True, timeout=60, trust_env=False).raise_for_status()
    bench.sim.reset(sim_instance, state=False, counters=True)
    return Tenant(tenant.tenant_id, tenant.api_key, tenant.webhook_secret, inst["id"], sim_instance)


async def _many_puts(bench: Bench, tenant: Tenant, *, n: int, prefix: str, tickets: list[str]) -> None:
    """`n` PUTs, a few at a time, as fast as the tenant's API rate allows (a 429 is waited out, as a client does)."""
    async with httpx.AsyncClient(base_url=bench.api_url, headers=tenant.headers, timeout=60,
                                 trust_env=False) as api:
        async def one(i: int) -> None:
            body = {**entry(f"{prefix}-{i}", i), "ticket": tickets[i]}
            body.pop("id")
            for _ in range(100):
                r = await api.put(f"/api/v1/entries/{prefix}-{i}", json=body)
                if r.status_code != 429:
                    r.raise_for_status()
                    return
                await asyncio.sleep(float(r.headers.get("Retry-After", "1")))

        for start in range(0, n, 16):
            await asyncio.gather(*(one(i) for i in range(start, min(n, start + 16))))


RUNNERS = {"many": run_many, "one": run_one, "latency": run_latency, "fair": run_fair, "big": run_big}


def run(bench: Bench, *, quick: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    # BENCH_PUSH_RUNS=many,one: only these (e.g. for a profile); all by default
    wanted = [n for n in os.environ.get("BENCH_PUSH_RUNS", ",".join(RUNNERS)).split(",") if n in RUNNERS]
    for name, runner in ((n, RUNNERS[n]) for n in wanted):
        print(f"[bench] push/{name} …", flush=True)
        t0 = time.monotonic()
        try:
            out[name] = runner(bench, quick=quick)
        except Exception as exc:  # one failed measurement must not lose the others
            import traceback

            traceback.print_exc()
            out[name] = {"error": f"{type(exc).__name__}: {exc}"}
        print(f"[bench] push/{name} done in {time.monotonic() - t0:.0f} s", flush=True)
    return out


# -- the report ---------------------------------------------------------------------------------------------------

def _v(ok: bool | None) -> str:
    return "n/a" if ok is None else ("goal met" if ok else "**goal missed**")


def _f(x: Any, digits: int = 1) -> str:
    if x is None:
        return "–"
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def _row(figure: str, value: str, goal: str, ok: bool | None, how: str) -> str:
    return f"| {figure} | {value} | {goal} | {_v(ok)} | {how} |"


def section(r: dict[str, Any], before: dict[str, str] | None = None) -> str:
    """Markdown for the push figures: one table of issue 15's goals with verdicts, then each run's details."""
    many, one, big, lat, fair = (r.get(k, {}) for k in ("many", "one", "big", "latency", "fair"))
    rows = ["| figure | measured | goal | verdict | run |", "|---|---|---|---|---|"]
    if "utilisation" in many:
        rows.append(_row("worker CPU per synced change", f"{_f(many['worker_cpu_ms_per_change'], 2)} ms",
                         "≤ 3 ms", many["worker_cpu_ms_per_change"] <= GOALS["cpu_ms_per_change"],
                         f"{many['instances']} instances × {many['n_per_instance']}, {many['workers']} workers: "
                         f"{_f(many['worker_cpu_s'], 1)} s CPU of all workers ÷ "
                         f"{many['instances'] * many['n_per_instance']} changes"))
        rows.append(_row("Redis commands per synced change", _f(many["redis_commands_per_change"], 2), "≤ 8",
                         many["redis_commands_per_change"] <= GOALS["redis_per_change"],
                         f"INFO commandstats before/after (scripts' inner commands included): "
                         f"{many['redis_commands']} commands"))
        rows.append(_row("10 instances × 10 req/s, 3 workers: writes/s ÷ sum of limits",
                         f"{_f(many['utilisation'], 3)} (lowest instance {_f(many['min_utilisation'], 3)})",
                         "≥ 0.95, no instance below 0.9",
                         many["utilisation"] >= GOALS["fleet_utilisation"]
                         and many["min_utilisation"] >= GOALS["instance_utilisation"],
                         f"{_f(many['total_writes_per_s'], 1)} writes/s of {many['total_limit']:.0f}; busiest second "
                         f"{many['max_in_1s']} (limit 10), 429s {many['rate_limited']}, "
                         f"duplicates {many['duplicates']}"))
    if "utilisation" in one:
        rows.append(_row("one instance over a 1000-entry backlog: utilisation, busiest second at JIRA",
                         f"{_f(one['utilisation'], 3)}, {one['max_in_1s']} requests",
                         "≥ 0.97, never above the limit (10)",
                         one["utilisation"] >= GOALS["one_utilisation"] and one["max_in_1s"] <= 10,
                         f"{one['n_per_instance']} entries, {one['workers']} workers; 429s {one['rate_limited']}"))
    if "ratio" in big:
        rows.append(_row(f"{big['entries']:,} entries over {big['instances']} instances: drain ÷ ideal, worker RSS",
                         f"{_f(big['ratio'], 3)} ({_f(big['drain_s'], 0)} s ÷ {_f(big['ideal_s'], 0)} s); RSS "
                         f"{_f(big['rss_first_half_mb'], 0)} → {_f(big['rss_second_half_mb'], 0)} MB",
                         "≤ 1.1, RSS flat", big["ratio"] <= GOALS["drain_ratio"] and big["rss_flat"],
                         f"accepted in {_f(big['accepted_s'], 0)} s first; 3 workers; busiest second "
                         f"{big['max_in_1s']}, 429s {big['rate_limited']}; CPU "
                         f"{_f(big['worker_cpu_ms_per_change'], 2)} ms and "
                         f"{_f(big['redis_commands_per_change'], 2)} Redis commands per change"))
    if lat.get("p50_ms") is not None:
        rows.append(_row("change accepted → worklog at JIRA, idle system",
                         f"p50 {_f(lat['p50_ms'])} ms, p99 {_f(lat['p99_ms'])} ms",
                         "p50 < 25 ms, p99 < 100 ms",
                         lat["p50_ms"] < GOALS["latency_p50_ms"] and lat["p99_ms"] < GOALS["latency_p99_ms"],
                         f"{lat['n']} PUTs one at a time, 4/s, PUT sent → write arrives at the simulator"))
    if fair.get("ratio_p50") is not None:
        rows.append(_row("tenant B's PUT → JIRA under tenant A's load ÷ idle (CONTRACT 11)",
                         f"p50 {_f(fair['ratio_p50'], 2)}×, p99 {_f(fair['ratio_p99'], 2)}×",
                         "normal latency (reported)", None,
                         f"A: {fair['a_puts']} PUTs queued at 1 req/s ({fair['a_queued_after']} still queued at the "
                         f"end) and a JIRA answering after the 30 s timeout; B idle p50 {_f(fair['idle']['p50_ms'])} / "
                         f"p99 {_f(fair['idle']['p99_ms'])} ms, under load {_f(fair['busy']['p50_ms'])} / "
                         f"{_f(fair['busy']['p99_ms'])} ms"))
    out = "\n".join(rows) + "\n"
    errors = {k: v["error"] for k, v in r.items() if isinstance(v, dict) and "error" in v}
    if errors:
        out += "\nRuns that failed: " + "; ".join(f"{k}: `{v}`" for k, v in errors.items()) + "\n"
    if before:
        out += "\nBefore this design (the same figures, measured on the previous one): " + "; ".join(
            f"{k}: {v}" for k, v in before.items()) + ".\n"
    if "redis_top" in many:
        top = ", ".join(f"`{k}` {v}" for k, v in list(many["redis_top"].items())[:8])
        out += f"\nRedis commands in the many-instance run, most frequent first: {top}.\n"
    return out
