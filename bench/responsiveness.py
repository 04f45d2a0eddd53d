"""Measurement 4: the UI never waits for JIRA.

PUT latency at a steady rate is measured twice against the same tenant: idle (a backlog accepted, no worker
running), then while three workers drain that backlog against a JIRA that answers every request in 2 s.
"""

from __future__ import annotations

import time
from typing import Any

from bench.ingest import loadgen
from bench.stack import Bench
from bench.sync import backlog
from bench.world import connect_tenant

RATE = 25  # PUTs per second: a busy office's worth of edits


def run(bench: Bench, *, quick: bool) -> dict[str, Any]:
    tenant = connect_tenant(bench, "ui")
    n = 200 if quick else 1000
    seconds = 4 if quick else 12
    backlog(bench, tenant, n, "ui-")
    bench.sim.set_faults("ui", latency_ms=2000)
    idle = loadgen(bench, tenant, kind="put", prefix="ui-idle", mode="open", rate=RATE, seconds=seconds,
                   concurrency=64)
    t_launch = time.time()
    with bench.workers().start(3):
        # wait until JIRA is busy answering (the first requests arrive and the rate limit is in use)
        deadline = time.monotonic() + 60
        while bench.sim.counters("ui")["requests"] < 20 and time.monotonic() < deadline:
            time.sleep(0.25)
        before = bench.sim.counters("ui")
        t0 = time.time()
        busy = loadgen(bench, tenant, kind="put", prefix="ui-busy", mode="open", rate=RATE, seconds=seconds,
                       concurrency=64)
        after = bench.sim.counters("ui")
        window = time.time() - t0
    bench.sim.clear_faults("ui")
    return {
        "backlog": n, "rate": RATE, "seconds": seconds, "jira_latency_ms": 2000, "workers": 3,
        "idle": idle, "busy": busy, "jira_requests_during": after["requests"] - before["requests"],
        "jira_writes_during": after["writes"] - before["writes"], "busy_window_s": window,
        "first_jira_request_after_launch_s": t0 - t_launch,
        "ratio_p99": (busy["p99_ms"] / idle["p99_ms"]) if idle["p99_ms"] else None,
    }
