"""Jira Cloud's three limits end to end (CONTRACT 12): real workers push to simulated Cloud sites behind the
simulated Atlassian gateway, which counts points, writes per issue and what each 429 was for.

* writes to one issue never exceed 10 per 2 s, as the workers decided and (give or take a late arrival) as the site
  sees them arrive;
* one 429 of each `RateLimit-Reason` pauses exactly what it names — one issue, one site, or every site of the app —
  and nothing else: what it does not name goes on while what it names still waits; no attempt is spent;
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
from tests.conftest import atlassian_config
from tests.e2e.conftest import JiraSetup
from tests.e2e.engine_support import SimProcess, build_world, entry, point_at_platform, sim_config, wait_until
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


async def status(api: Any, setup: JiraSetup, entry_id: str) -> str:
    return str((await api.get(f"/api/v1/entries/{entry_id}", headers=setup.headers)).json()["sync"]["status"])


def synced_at(sync: dict[str, Any]) -> float:
    return datetime.fromisoformat(sync["synced_at"]).timestamp()


async def the_429(sim: SimServer, site: str, reason: str) -> float:
    """When the site answered its 429 of `reason` (waits for it)."""
    async def seen() -> float | None:
        hits = [e["time"] for e in sim.control.log(site) if e["limit_reason"] == reason and e["status"] == 429]
        return hits[0] if hits else None

    return await wait_until(seen, timeout=30, interval=0.05)


async def test_writes_to_one_issue_stay_within_ten_per_two_seconds(
    app: Any, api: Any, redis: Any, settings: Any, stack: Any, workers: Any, tmp_path: Any, monkeypatch: Any,
) -> None:
    """Two workers push 24 changes to one issue of a Cloud site. The site is a simulator of its own, in its own
    process: its arrival times are not skewed by this process's work (docs on `SimProcess`)."""
    sim = SimProcess(sim_config(name="site1", atlassian=atlassian_config(settings, stack)), tmp_path)
    try:
        point_at_platform(monkeypatch, settings, stack.env, sim.url)
        world = await build_world(app, sim.control, sim.instance_url("site1"), sim_instance="site1", auth="3lo")
        workers(2)
        ids = [f"hot-{i}" for i in range(24)]
        r = await api.post("/api/v1/entries/batch", headers=world.headers, json={"entries": [
            {**entry(ticket="PROJ-1", duration=15 + i), "id": entry_id} for i, entry_id in enumerate(ids)]})
        assert r.status_code == 202

        def all_written() -> bool:  # asks the simulator only: nothing here competes with its work meanwhile
            return sim.control.cloud_usage("site1")["writes_per_issue"].get("PROJ-1", 0) >= 24

        await wait_until(all_written, timeout=120, interval=0.5)
        await wait_until(lambda: synced(api, world, *ids), timeout=60, interval=0.5)
        # what the workers decided: the issue's write log (Redis' clock, µs, each write where it left) holds the 24
        # writes, and never 11 within 2 s
        log_key = redis_keys.cloud_issue(settings.atlassian_client_id, world.instance_id, "PROJ-1")[0]
        left_at = [score for _, score in await redis.zrange(log_key, 0, -1, withscores=True)]
        assert len(left_at) == 24
        assert all(left_at[i + 10] - left_at[i] >= 2_000_000 for i in range(len(left_at) - 10)), left_at
        # what the site saw: the 24 writes, as one each, and Atlassian (20 per 2 s) never had to refuse one. Ten per
        # 2 s as they arrived, give or take one: a request that leaves a loaded machine's worker late arrives later
        # than the limiter's 25 ms margin allows for (test_cloud_limits holds it exactly)
        usage = sim.control.cloud_usage("site1")
        assert usage["writes_per_issue"]["PROJ-1"] == 24
        assert usage["rate_limited"] == {}
        assert sim.control.max_writes("site1", 2.0, issue="PROJ-1") <= 10 + 1, usage
    finally:
        sim.stop()


async def test_one_429_of_each_reason_pauses_exactly_what_it_names(
    api: Any, sim: SimServer, jira_setup: Any, connect_user: Any, workers: Any,
) -> None:
    # sites of four tenants (a tenant routes PROJ to one instance): `a` meets a per-issue 429, `c` a burst one and
    # `d` one of its own points quota, all at once; `b` meets none
    a, b, c, d = [await cloud_site(jira_setup, connect_user) for _ in range(4)]
    workers(2)
    pause = 10  # long beside how soon what is not paused gets through, however loaded the machine
    sim.control.add_fault_rule(a.sim_name, "rate_limit", reason="jira-per-issue-on-write", retry_after=pause,
                               path_contains="/issue/PROJ-1/", method="POST")
    for site, reason in ((c, "jira-burst-based"), (d, "jira-quota-tenant-based")):
        sim.control.add_fault_rule(site.sim_name, "rate_limit", reason=reason, retry_after=pause, method="POST")
    await put(api, a, "i1", "PROJ-1")
    for site in (c, d):
        await put(api, site, "s1", "PROJ-3")
    refused_at = {a.sim_name: await the_429(sim, a.sim_name, "jira-per-issue-on-write"),
                  c.sim_name: await the_429(sim, c.sim_name, "jira-burst-based"),
                  d.sim_name: await the_429(sim, d.sim_name, "jira-quota-tenant-based")}
    # while they are paused: the issue's site writes to its other issues, the other site writes, and each paused
    # site's other changes wait with the refused one
    await put(api, a, "i2", "PROJ-2")
    await put(api, b, "b1", "PROJ-1")
    for site in (c, d):
        await put(api, site, "s2", "PROJ-4")
    went_on = await wait_until(lambda: synced(api, a, "i2"), timeout=30, interval=0.1)
    went_on |= await wait_until(lambda: synced(api, b, "b1"), timeout=30, interval=0.1)
    assert await status(api, a, "i1") == "pending"
    for site in (c, d):
        assert [await status(api, site, e) for e in ("s1", "s2")] == ["pending", "pending"], site.sim_name
    # (inside the pauses, not once they were over)
    assert synced_at(went_on["i2"]) < refused_at[a.sim_name] + pause
    assert synced_at(went_on["b1"]) < min(refused_at.values()) + pause
    done = await wait_until(lambda: synced(api, a, "i1"), timeout=30, interval=0.1)
    assert synced_at(done["i1"]) >= refused_at[a.sim_name] + pause - 0.05
    for site in (c, d):
        done = await wait_until(lambda site=site: synced(api, site, "s1", "s2"), timeout=30, interval=0.1)
        assert min(synced_at(s) for s in done.values()) >= refused_at[site.sim_name] + pause - 0.05, site.sim_name

    # the app's quota: every site of the app waits
    pause = 3
    sim.control.add_fault_rule(a.sim_name, "rate_limit", reason="jira-quota-global-based", retry_after=pause,
                               method="POST")
    await put(api, a, "g1", "PROJ-5")
    refused = await the_429(sim, a.sim_name, "jira-quota-global-based")
    await put(api, b, "g2", "PROJ-5")
    done = await wait_until(lambda: synced(api, a, "g1"), timeout=30, interval=0.1)
    other = await wait_until(lambda: synced(api, b, "g2"), timeout=30, interval=0.1)
    assert synced_at(done["g1"]) >= refused + pause - 0.05
    assert synced_at(other["g2"]) >= refused + pause - 0.05

    for setup in (a, b, c, d):  # no attempt was spent on a 429, and each entry has its one worklog
        for body in (await api.get("/api/v1/entries", headers=setup.headers)).json()["items"]:
            assert body["sync"]["attempts"] == 1, body
    reasons = {"jira-per-issue-on-write": 1, "jira-quota-global-based": 1}
    expected = {a.sim_name: reasons, b.sim_name: {}, c.sim_name: {"jira-burst-based": 1},
                d.sim_name: {"jira-quota-tenant-based": 1}}
    for setup in (a, b, c, d):
        assert len([e for e in sim.control.log(setup.sim_name) if e["status"] == 429 and e["limit_reason"]]) == sum(
            expected[setup.sim_name].values()), setup.sim_name

    async def counted(setup: JiraSetup) -> dict[str, int] | None:  # the workers publish their counts every 2 s
        [site] = (await api.get("/api/v1/stats", headers=setup.headers)).json()["instances"]
        seen = site["rate_limited_by_reason"]
        return seen if seen == expected[setup.sim_name] else None

    for setup in (a, c, d):
        await wait_until(lambda setup=setup: counted(setup), timeout=20, interval=0.5)


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
