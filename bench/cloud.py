"""Measurement 7: Jira Cloud (CONTRACT 12). A backlog drains to a simulated Cloud site behind the simulated Atlassian
gateway: how much of the site's `rate_limit_per_second` it uses, what Atlassian's points cost per synced change
(goal 1.0: one write, one point), how many writes one issue saw in any 2 s (at most 10), and whether Atlassian ever
answered 429. The points are the simulator's own count (a write 1 point, a read 1 plus 1 per object returned).
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from bench.stack import Bench
from bench.sync import drain
from bench.world import Tenant, create_tenant

SITE = "cloud1"


def connect_site(bench: Bench, site: str, *, rate: int = 10) -> Tenant:
    """A new tenant with a Cloud instance on the simulated site `site` and `jdoe` connected through 3LO."""
    t = create_tenant(bench, f"bench-{site}")
    headers = {"Authorization": f"Bearer {t['api_key']}"}
    with httpx.Client(base_url=bench.api_url, headers=headers, timeout=60, trust_env=False) as api:
        r = api.post("/api/v1/jira-instances", json={
            "name": f"sim {site}", "deployment": "cloud", "site_url": f"https://{site}.atlassian.net",
            "rate_limit_per_second": rate, "project_keys": ["PROJ"]})
        r.raise_for_status()
        inst = r.json()
        r = api.post(f"/api/v1/jira-instances/{inst['id']}/oauth/start", json={"user": "jdoe"})
        r.raise_for_status()
        # Atlassian's consent page approves at once and redirects to the API's callback
        done = httpx.get(r.json()["authorize_url"], follow_redirects=True, timeout=60, trust_env=False)
        done.raise_for_status()
        if done.json().get("status") != "connected":
            raise RuntimeError(f"3LO connect for {site} did not connect: {done.text}")
    return Tenant(t["tenant_id"], t["api_key"], t["webhook_secret"], inst["id"], site)


def _points(bench: Bench, site: str) -> int:
    return sum(bench.sim.cloud_usage(site)["points_by_window"].values())


def run(bench: Bench, *, quick: bool) -> dict[str, Any]:
    tenant = connect_site(bench, SITE)
    bench.sim.reset(SITE, state=False, counters=True)  # the dance's requests (and points) must not count
    t0 = time.time()
    result = drain(bench, [tenant], n=60 if quick else 400, workers=2, prefix="c")
    usage = bench.sim.cloud_usage(SITE)
    points = _points(bench, SITE)
    per = result["per_instance"][SITE]
    polls = result["reconcile_polls"]
    result["cloud"] = {
        "points": points, "points_per_synced": points / result["synced"] if result["synced"] else None,
        # the start-up polls are reads of the feeds (1 point each while they return nothing), not per change
        "points_per_synced_excl_polls": (points - polls) / result["synced"] if result["synced"] else None,
        "max_writes_per_issue_2s": bench.sim.max_writes(SITE, 2.0), "rate_limited": usage["rate_limited"],
        "utilisation": per["utilisation"], "took_s": time.time() - t0,
    }
    return result


def report_section(r: dict[str, Any]) -> str:
    c = r["cloud"]
    per = r["per_instance"][SITE]
    head = ["backlog", "synced", "workers", "writes/s", "limit/s", "utilisation", "max requests in any 1 s",
            "points", "points per synced change", "excluding the start-up polls", "max writes to one issue in 2 s",
            "Atlassian 429s", "duplicates"]
    row = [str(r["n_per_instance"]), str(r["synced"]), str(r["workers"]), f"{per['writes_per_s']:.2f}", "10",
           f"{c['utilisation']:.3f}", str(per["max_in_1s"]), str(c["points"]),
           "n/a" if c["points_per_synced"] is None else f"{c['points_per_synced']:.3f}",
           "n/a" if c["points_per_synced_excl_polls"] is None else f"{c['points_per_synced_excl_polls']:.3f}",
           str(c["max_writes_per_issue_2s"]), str(sum(c["rate_limited"].values())), str(per["duplicates"])]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head), "| " + " | ".join(row) + " |"]
    return ("\n".join(lines) + "\n\nOne Cloud site behind the simulated gateway, `rate_limit_per_second: 10`, the "
            "backlog accepted by the batch endpoint, then workers started. Goal: 1.0 point per synced change (one "
            "write each), utilisation as on Data Center, at most 10 writes to one issue in any 2 s, no 429.\n")
