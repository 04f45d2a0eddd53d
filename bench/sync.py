"""Draining a backlog against JIRA's rate limit: what JIRA saw (`jira_side`, `duplicates`), and the run under faults.

A backlog is accepted through the batch endpoint with no worker running; then N `python -m workers`
processes start and the run ends when the instance's stats show no pending entry. Everything about JIRA's
side (arrival times, 429s, the busiest one-second window) comes from the simulator's own request log, which
is taken where the requests arrive. The push figures of issue 15 (many instances, one instance, 100,000 entries,
latency, fair share) are `bench/push.py`'s.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from typing import Any

from bench.stack import Bench
from bench.world import Tenant, connect_tenant, counts, entry, post_batch

ANCHOR = re.compile(r"^#([^:]+):")
WORKLOG_WRITE = re.compile(r"/rest/api/2/issue/[^/]+/worklog(/\d+)?$")


def backlog(bench: Bench, tenant: Tenant, n: int, prefix: str) -> float:
    return post_batch(bench, tenant, [entry(f"{prefix}-{i}", i) for i in range(n)])


def wait_drained(bench: Bench, tenants: list[Tenant], expected: int, timeout: float) -> dict[str, dict[str, int]]:
    """Poll the stats until every tenant's `expected` entries have left `pending`."""
    deadline = time.monotonic() + timeout
    while True:
        now = {t.sim_instance: counts(bench, t) for t in tenants}
        settled = all(c.get("pending", 0) == 0 and sum(c.values()) >= expected for c in now.values())
        if settled or time.monotonic() > deadline:
            return now
        time.sleep(0.5)


def jira_side(bench: Bench, instance: str, limit: float, t_launch: float) -> dict[str, Any]:
    """What the simulator saw for one instance: requests, writes, 429s, window maximum, curves."""
    # requests before the launch (a worker's start-up reconciliation poll, if workers ran before the backlog came)
    # are not part of the run
    log = sorted((r for r in bench.sim.log(instance) if r["time"] >= t_launch), key=lambda r: r["time"])
    c = bench.sim.counters(instance)
    writes = [r for r in log if r["method"] in ("POST", "PUT") and WORKLOG_WRITE.search(r["path"])
              and 200 <= r["status"] < 300]
    first = log[0]["time"] if log else t_launch
    last_write = writes[-1]["time"] if writes else first
    span = last_write - first
    achieved = len(writes) / (span + 1 / limit) if writes else 0.0
    per_second = Counter(int(r["time"] - first) for r in log)
    kinds = Counter(f"{r['method']} {_kind(r['path'])} {r['status']}" for r in log)
    return {
        "requests": len(log), "accepted": c["accepted"], "rate_limited": c["rate_limited"],
        "writes_ok": len(writes), "first_request_after_launch_s": first - t_launch,
        "drain_s": last_write - t_launch, "span_s": span, "writes_per_s": achieved,
        "utilisation": achieved / limit, "max_in_1s": bench.sim.max_requests_in_any_window(instance, 1.0),
        "max_concurrent_writes_per_issue": max(c.get("max_concurrent_writes", {}).values(), default=0),
        "per_second": [per_second.get(s, 0) for s in range(int(span) + 2)],
        "write_times": [r["time"] - t_launch for r in writes],
        "kinds": dict(kinds),
        # every request that is not a successful worklog create, for reading what the extra ones were
        "other_requests": [[round(r["time"] - t_launch, 3), r["method"], r["path"].split("/rest/api/2/")[-1],
                            r["status"]] for r in log if not (r["method"] == "POST" and 200 <= r["status"] < 300
                                                              and WORKLOG_WRITE.search(r["path"]))][:40],
        "first_writes": [[round(r["time"] - t_launch, 3), r["path"].split("/rest/api/2/")[-1]] for r in writes[:25]],
    }


def _kind(path: str) -> str:
    if WORKLOG_WRITE.search(path):
        return "issue/{key}/worklog"
    return path.split("/rest/api/2/")[-1] if "/rest/api/2/" in path else path.rsplit("/", 1)[-1]


def duplicates(bench: Bench, instance: str) -> int:
    """Entries with more than one worklog in JIRA (guarantee 2 says none)."""
    data = bench.sim.all_worklogs(instance)
    items = data.get("worklogs", data) if isinstance(data, dict) else data
    if isinstance(items, dict):
        items = [w for ws in items.values() for w in ws]
    seen: Counter[str] = Counter()
    for w in items:
        m = ANCHOR.match(str(w.get("comment") or ""))
        if m:
            seen[m.group(1)] += 1
    return sum(1 for v in seen.values() if v > 1)


def drain(bench: Bench, tenants: list[Tenant], *, n: int, workers: int, prefix: str, limit: float = 10,
          timeout: float = 300, **worker_settings: Any) -> dict[str, Any]:
    """Accept `n` entries per tenant, then start `workers` workers and time the drain."""
    batch_s = sum(backlog(bench, t, n, f"{prefix}{k}") for k, t in enumerate(tenants))
    t_launch = time.time()
    with bench.workers(**worker_settings).start(workers):
        final = wait_drained(bench, tenants, n, timeout)
    wall = time.time() - t_launch
    per_instance = {t.sim_instance: {**jira_side(bench, t.sim_instance, limit, t_launch),
                                     "statuses": final[t.sim_instance],
                                     "duplicates": duplicates(bench, t.sim_instance)}
                    for t in tenants}
    synced = sum(v["statuses"].get("synced", 0) for v in per_instance.values())
    requests = sum(v["requests"] for v in per_instance.values())
    # the reconciler polls each instance once when a worker starts (worklog/updated + worklog/deleted)
    polls = sum(n for v in per_instance.values() for k, n in v["kinds"].items()
                if k.startswith(("GET worklog/updated", "GET worklog/deleted")))
    return {"n_per_instance": n, "instances": len(tenants), "workers": workers, "wall_s": wall,
            "batch_accept_s": batch_s, "synced": synced, "requests": requests,
            "requests_per_synced": requests / synced if synced else None, "reconcile_polls": polls,
            "requests_per_synced_excl_polls": (requests - polls) / synced if synced else None,
            "total_writes_per_s": sum(v["writes_per_s"] for v in per_instance.values()),
            "total_limit": limit * len(tenants), "per_instance": per_instance,
            "worker_settings": worker_settings}


def run_faults(bench: Bench, *, quick: bool) -> dict[str, Any]:
    """Measurement 3 under faults: ~20% of JIRA requests fail (half before the write, half after it)."""
    tenant = connect_tenant(bench, "faults")
    bench.sim.set_faults("faults", error_rate=0.1, error_statuses=[500, 502, 503], fail_after_write_rate=0.1,
                         fail_after_write_mode="502", seed=8)
    try:
        result = drain(bench, [tenant], n=40 if quick else 200, workers=1, prefix="f-",
                       sync_backoff_base_seconds=0.5)
    finally:
        bench.sim.clear_faults("faults")
    result["faults"] = {"error_rate": 0.1, "fail_after_write_rate": 0.1, "fail_after_write_mode": "502"}
    return result
