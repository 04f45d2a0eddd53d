"""Jira Cloud's three limits end to end (CONTRACT 12): real workers push to simulated Cloud sites behind the
simulated Atlassian gateway, which counts points, writes per issue and what each 429 was for.

* writes to one issue never exceed 10 per 2 s, as the site sees them arrive;
* one 429 of each `RateLimit-Reason` pauses exactly what it names — one issue, one site, or every site of the app —
  and nothing else; no attempt is spent;
* with the app's quota set low, the sites together never take more than 80 % of it in the hour, and two sites
  competing for it each get half; what is left waits `pending` (no attempt spent) for the next hour.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app import redis_keys
from jirasim.testing import SimServer
from tests.e2e.conftest import JiraSetup
from tests.e2e.engine_support import entry, wait_until
from workers.context import build_context

pytestmark = pytest.mark.slow


async def cloud_site(jira_setup: Any, connect_user: Any, *, tenant: Any = None, issues: int = 10) -> JiraSetup:
    setup: JiraSetup = await jira_setup(auth="3lo", tenant=tenant,
                                        issues=[{"key": f"PROJ-{i}"} for i in range(1, issues + 1)])
    assert await connect_user(setup, "jdoe", jira_user="alice") == "connected"
    return setup


async def put(api: Any, setup: JiraSetup, entry_id: str, ticket: str) -> None:
    r = await api.put(f"/api/v1/entries/{entry_id}", json=entry(ticket=ticket, duration=30), headers=setup.headers)
    assert r.status_code == 202, r.text


async def synced(api: Any, setup: JiraSetup, *ids: str) -> dict[str, dict[str, Any]] | None:
    found = {}
    for entry_id in ids:
        body = (await api.get(f"/api/v1/entries/{entry_id}", headers=setup.headers)).json()
        if body["sync"]["status"] != "synced":
            return None
        found[entry_id] = body["sync"]
    return found


def synced_at(sync: dict[str, Any]) -> float:
    return datetime.fromisoformat(sync["synced_at"]).timestamp()


async def the_429(sim: SimServer, site: str, reason: str) -> float:
    """When the site answered its 429 of `reason` (waits for it)."""
    async def seen() -> float | None:
        hits = [e["time"] for e in sim.control.log(site) if e["limit_reason"] == reason and e["status"] == 429]
        return hits[0] if hits else None

    return await wait_until(seen, timeout=30, interval=0.05)


async def test_writes_to_one_issue_stay_within_ten_per_two_seconds(
    api: Any, sim: SimServer, jira_setup: Any, connect_user: Any, workers: Any,
) -> None:
    setup = await cloud_site(jira_setup, connect_user)
    workers(2)
    ids = [f"hot-{i}" for i in range(24)]
    r = await api.post("/api/v1/entries/batch", headers=setup.headers, json={"entries": [
        {**entry(ticket="PROJ-1", duration=15 + i), "id": entry_id} for i, entry_id in enumerate(ids)]})
    assert r.status_code == 202
    await wait_until(lambda: synced(api, setup, *ids), timeout=120, interval=0.5)
    usage = sim.control.cloud_usage(setup.sim_name)
    assert usage["writes_per_issue"]["PROJ-1"] == 24
    assert sim.control.max_writes(setup.sim_name, 2.0, issue="PROJ-1") <= 10, usage
    assert usage["rate_limited"] == {}  # Atlassian never had to refuse one


async def test_one_429_of_each_reason_pauses_exactly_what_it_names(
    api: Any, sim: SimServer, jira_setup: Any, connect_user: Any, workers: Any,
) -> None:
    a = await cloud_site(jira_setup, connect_user)
    b = await cloud_site(jira_setup, connect_user)  # another tenant's (a tenant routes PROJ to one instance)
    workers(2)
    pause = 3

    # one issue: its next write waits, the site's other issues and the other site go on
    sim.control.add_fault_rule(a.sim_name, "rate_limit", reason="jira-per-issue-on-write", retry_after=pause,
                               path_contains="/issue/PROJ-1/", method="POST")
    await put(api, a, "i1", "PROJ-1")
    refused_at = await the_429(sim, a.sim_name, "jira-per-issue-on-write")
    await put(api, a, "i2", "PROJ-2")
    await put(api, b, "i3", "PROJ-1")
    done = await wait_until(lambda: synced(api, a, "i1", "i2"), timeout=30, interval=0.1)
    other = await wait_until(lambda: synced(api, b, "i3"), timeout=30, interval=0.1)
    assert synced_at(done["i1"]) >= refused_at + pause - 0.05
    assert synced_at(done["i2"]) < refused_at + pause and synced_at(other["i3"]) < refused_at + pause

    # one site (its burst limit, its own points quota): that site waits, the other goes on
    for n, reason in enumerate(("jira-burst-based", "jira-quota-tenant-based")):
        sim.control.add_fault_rule(a.sim_name, "rate_limit", reason=reason, retry_after=pause, method="POST")
        await put(api, a, f"s{n}a", "PROJ-3")
        refused_at = await the_429(sim, a.sim_name, reason)
        await put(api, a, f"s{n}b", "PROJ-4")
        await put(api, b, f"s{n}c", "PROJ-4")
        done = await wait_until(lambda n=n: synced(api, a, f"s{n}a", f"s{n}b"), timeout=30, interval=0.1)
        other = await wait_until(lambda n=n: synced(api, b, f"s{n}c"), timeout=30, interval=0.1)
        assert min(synced_at(s) for s in done.values()) >= refused_at + pause - 0.05, reason
        assert synced_at(other[f"s{n}c"]) < refused_at + pause, reason

    # the app's quota: every site of the app waits
    sim.control.add_fault_rule(a.sim_name, "rate_limit", reason="jira-quota-global-based", retry_after=pause,
                               method="POST")
    await put(api, a, "g1", "PROJ-5")
    refused_at = await the_429(sim, a.sim_name, "jira-quota-global-based")
    await put(api, b, "g2", "PROJ-5")
    done = await wait_until(lambda: synced(api, a, "g1"), timeout=30, interval=0.1)
    other = await wait_until(lambda: synced(api, b, "g2"), timeout=30, interval=0.1)
    assert synced_at(done["g1"]) >= refused_at + pause - 0.05
    assert synced_at(other["g2"]) >= refused_at + pause - 0.05

    for setup in (a, b):  # no attempt was spent on a 429, and each entry has its one worklog
        for body in (await api.get("/api/v1/entries", headers=setup.headers)).json()["items"]:
            assert body["sync"]["attempts"] == 1, body
    assert len([e for e in sim.control.log(a.sim_name) if e["status"] == 429 and e["limit_reason"]]) == 4

    async def counted() -> dict[str, int] | None:  # the workers publish their counts every 2 s
        [site] = (await api.get("/api/v1/stats", headers=a.headers)).json()["instances"]
        return site["rate_limited_by_reason"] if len(site["rate_limited_by_reason"]) == 4 else None

    assert await wait_until(counted, timeout=20, interval=0.5) == {
        "jira-per-issue-on-write": 1, "jira-burst-based": 1, "jira-quota-tenant-based": 1,
        "jira-quota-global-based": 1}


async def test_a_low_quota_is_never_passed_and_competing_sites_share_it(
    api: Any, sim: SimServer, jira_setup: Any, connect_user: Any, workers: Any, redis: Any, settings: Any,
) -> None:
    """Two sites push their backlogs at the same time through push engines whose app quota is 50 points an hour:
    together they take 40 (80 %), 20 each, as the sites count them; the rest waits `pending` for the next hour.
    (In-process engines, not worker processes: a worker's start-up poll of every instance in the database would
    make the earlier tests' sites compete for this small quota too.)"""
    quota, budget = 50, 40
    left = (datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
            - datetime.now(UTC)).total_seconds()
    if left < 90:  # the hour's reset in the middle would start a new budget
        await asyncio.sleep(left + 1)
    a = await cloud_site(jira_setup, connect_user)
    b = await cloud_site(jira_setup, connect_user)  # another tenant's (a tenant routes PROJ to one instance)
    workers(0)  # none runs; the fixture empties the queue the PUTs filled, afterwards
    ids = {s.sim_name: [f"q{n}-{uuid.uuid4().hex[:6]}" for n in range(30)] for s in (a, b)}
    for n in range(30):
        for s in (a, b):
            await put(api, s, ids[s.sim_name][n], f"PROJ-{n % 10 + 1}")
    pool = redis_keys.cloud_pool(settings.atlassian_client_id)
    await redis.delete(pool["points"], pool["sites"])  # these two sites alone in the pool this hour
    before = {s.sim_name: sim.control.cloud_usage(s.sim_name)["points_this_window"] for s in (a, b)}
    engine = build_context(settings.model_copy(update={"atlassian_points_per_hour": quota}))
    try:
        async def push_backlog(s: JiraSetup) -> None:
            for entry_id in ids[s.sim_name]:
                await engine.push(s.tenant.tenant_id, entry_id)  # a refused one is deferred: go on

        await asyncio.gather(push_backlog(a), push_backlog(b))  # both at once: the sites compete throughout
        points = {s.sim_name: sim.control.cloud_usage(s.sim_name)["points_this_window"] - before[s.sim_name]
                  for s in (a, b)}
        assert sum(points.values()) <= budget, points  # never past 80 % of the quota
        assert all(abs(n - budget / 2) <= 1 for n in points.values()), points  # an equal share each
        waiting = 0
        for s in (a, b):
            for entry_id in ids[s.sim_name]:
                body = (await api.get(f"/api/v1/entries/{entry_id}", headers=s.headers)).json()
                assert body["sync"]["status"] in ("synced", "pending"), body
                waiting += body["sync"]["status"] == "pending"
                assert body["sync"]["attempts"] == (body["sync"]["status"] == "synced"), body  # waiting costs none
        assert waiting == 60 - budget
        stats = (await api.get("/api/v1/stats", headers=a.headers)).json()
        [site] = stats["instances"]
        assert (site["deployment"], site["points_this_hour"]) == ("cloud", budget // 2)
        assert stats["atlassian_points"]["used"] == budget and stats["atlassian_points"]["quota"] == 65000
    finally:
        await engine.close()
        await redis.delete(pool["points"], pool["sites"])
