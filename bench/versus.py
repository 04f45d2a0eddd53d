"""Measurement 5: the service against a plain sequential client, pushing the same 200 worklogs.

Both talk to the simulator with 150 ms latency per request, first at 10 requests/s, then with the limit
lifted to 200 requests/s (the service's instance setting is raised to match). The plain client gets its own
simulator instance and consumer with an access token granted directly (its OAuth dance is not what is timed);
the service pushes through one worker (`WORKER_CONCURRENCY` 20, the default), already running when the
entries are submitted in one batch call. Its time runs from the batch call to the last worklog written.
The two run side by side on separate simulator instances, to keep `make bench` under ten minutes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from bench.stack import ROOT, Bench
from bench.sync import WORKLOG_WRITE
from bench.world import Tenant, connect_tenant, counts, entry, post_batch
from jirasim.testing import generate_rsa_keypair

LATENCY_MS = 150


def plain(bench: Bench, instance: str, n: int, prefix: str) -> dict[str, Any]:
    private_pem, public_pem = generate_rsa_keypair()
    bench.sim.add_consumer(instance, f"plain-{prefix}", public_pem)
    token, secret = bench.sim.grant_token(instance, f"plain-{prefix}", "jdoe")
    bench.sim.reset(instance, state=False, counters=True)
    spec = {"url": f"{bench.sim_url}/{instance}", "consumer_key": f"plain-{prefix}", "private_key_pem": private_pem,
            "token": token, "secret": secret, "prefix": prefix, "n": n}
    out = subprocess.run([sys.executable, "-m", "bench.plain_client", json.dumps(spec)], cwd=ROOT, check=True,
                         capture_output=True, text=True, timeout=600).stdout
    result = dict(json.loads(out.strip().splitlines()[-1]))
    c = bench.sim.counters(instance)
    result.update(requests=c["requests"], rate_limited=c["rate_limited"], writes=c["writes"])
    return result


def service(bench: Bench, tenant: Tenant, n: int, prefix: str) -> dict[str, Any]:
    bench.sim.reset(tenant.sim_instance, state=False, counters=True)
    t0 = time.time()
    post_batch(bench, tenant, [entry(f"{prefix}-{i}", i) for i in range(n)])
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        c = counts(bench, tenant)
        if c.get("synced", 0) >= n and c.get("pending", 0) == 0:
            break
        time.sleep(0.2)
    log = bench.sim.log(tenant.sim_instance)
    writes = sorted(r["time"] for r in log if r["method"] == "POST" and WORKLOG_WRITE.search(r["path"])
                    and 200 <= r["status"] < 300)
    ctr = bench.sim.counters(tenant.sim_instance)
    return {"elapsed_s": (writes[-1] - t0) if writes else None, "worklogs": len(writes),
            "requests": ctr["requests"], "rate_limited": ctr["rate_limited"], "statuses": counts(bench, tenant)}


def run(bench: Bench, *, quick: bool) -> dict[str, Any]:
    n = 40 if quick else 200
    tenant = connect_tenant(bench, "svc")
    rounds = []
    for limit in (10, 200):
        for inst in ("plain", "svc"):
            bench.sim.set_rate_limit(inst, rate=limit, burst=limit, refill=True)
            bench.sim.set_faults(inst, latency_ms=LATENCY_MS)
        httpx.patch(f"{bench.api_url}/api/v1/jira-instances/{tenant.instance_id}", headers=tenant.headers,
                    json={"rate_limit_per_second": limit}, timeout=30, trust_env=False).raise_for_status()
        with bench.workers().start(1), ThreadPoolExecutor(1) as pool:
            time.sleep(3)  # the worker is up and idle before the clock starts
            # the plain client runs at the same time on its own simulator instance (it mostly waits on latency)
            plain_run = pool.submit(plain, bench, "plain", n, f"plain{limit}")
            s = service(bench, tenant, n, f"svc{limit}")
            p = plain_run.result()
        rounds.append({"limit": limit, "plain": p, "service": s,
                       "speedup": (p["elapsed_s"] / s["elapsed_s"]) if s["elapsed_s"] else None})
    for inst in ("plain", "svc"):
        bench.sim.clear_faults(inst)
    return {"n": n, "latency_ms": LATENCY_MS, "rounds": rounds}
