"""Measurement 1: how fast one API process accepts entry changes (PUT, TimeTracker webhook, batch).

No worker runs during these runs: the figures are the API's alone (PostgreSQL and Redis included).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from typing import Any

import psutil

from bench.stack import ROOT, Bench
from bench.world import Tenant, connect_tenant, entry, post_batch


def loadgen(bench: Bench, tenant: Tenant, **spec: Any) -> dict[str, Any]:
    """Run the load generator in its own process against the API and return its figures."""
    full = {"url": bench.api_url, "api_key": tenant.api_key, "tenant_id": tenant.tenant_id,
            "webhook_secret": tenant.webhook_secret, **spec}
    out = subprocess.run([sys.executable, "-m", "bench.loadgen", json.dumps(full)], cwd=ROOT, check=True,
                         capture_output=True, text=True, timeout=300).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def _cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def measured(bench: Bench, tenant: Tenant, **spec: Any) -> dict[str, Any]:
    """A load generator run plus the CPU the API process and PostgreSQL spent on it, per accepted request."""
    assert bench.api_proc is not None
    api = [bench.api_proc.pid]
    pg = [p.pid for p in psutil.process_iter(["name"]) if p.info["name"] == "postgres"]
    a0, p0 = _cpu_seconds(api), _cpu_seconds(pg)
    result = loadgen(bench, tenant, **spec)
    a1, p1 = _cpu_seconds(api), _cpu_seconds(pg)
    done = max(1, sum(v for k, v in result["statuses"].items() if not k.startswith("not sent")))
    result["api_cpu_ms_per_request"] = 1000 * (a1 - a0) / done
    result["pg_cpu_ms_per_request"] = 1000 * (p1 - p0) / done
    result["api_cpu_pct"] = 100 * (a1 - a0) / result["elapsed_s"]
    return result


def run(bench: Bench, *, quick: bool) -> dict[str, Any]:
    tenant = connect_tenant(bench, "ingest")
    n = 400 if quick else 1000
    seconds = 2 if quick else 4
    results: dict[str, Any] = {"runs": [], "batch_s": []}
    for kind in ("put", "webhook"):
        # saturation: a fixed number of requests always in flight
        results["runs"].append(measured(bench, tenant, kind=kind, prefix=f"{kind}-sat", mode="closed", n=n,
                                       concurrency=16))
        # latency at the target load: 500 changes per second, started on schedule whatever the answers
        results["runs"].append(measured(bench, tenant, kind=kind, prefix=f"{kind}-500", mode="open", rate=500,
                                       seconds=seconds, concurrency=64))
    for rep in range(2 if quick else 3):
        entries = [entry(f"batch{rep}-{i}", i) for i in range(1000)]
        results["batch_s"].append(post_batch(bench, tenant, entries))
    results["batch_median_s"] = statistics.median(results["batch_s"])
    return results
