"""The sync engine end to end: real PostgreSQL, Redis, `python -m workers` processes and the simulator."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from jirasim.testing import SimServer
from tests.e2e.engine_support import (
    build_world,
    count_by_status,
    entry,
    wait_until,
    worklogs_by_anchor,
)


@pytest.fixture(scope="module")
def sim():
    from tests.e2e.engine_support import sim_config

    with SimServer(sim_config()) as server:
        yield server


@pytest.fixture
def control(sim):
    sim.control.reset("jira1", state=False, counters=True)
    sim.control.clear_faults("jira1")
    sim.control.set_rate_limit("jira1", rate=10, burst=10)
    return sim.control


@pytest.fixture
async def world(app, sim, control):
    return await build_world(app, control, sim.instance_url("jira1"))


async def entry_of(api, world, entry_id):
    return (await api.get(f"/api/v1/entries/{entry_id}", headers=world.headers)).json()


def jira_requests(control, since, *, methods=("POST", "PUT", "DELETE", "GET")):
    return [r for r in control.log("jira1", since=since)
            if r["method"] in methods and "/rest/api/2/issue/" in r["path"]]


async def synced(api, world, entry_id, status="synced"):
    body = await entry_of(api, world, entry_id)
    return body if body["sync"]["status"] == status else None


async def test_each_change_costs_exactly_one_jira_request(api, world, control, workers):
    workers(1)
    t0 = time.time()
    r = await api.put("/api/v1/entries/e1", json=entry(duration=90), headers=world.headers)
    assert r.status_code == 202 and r.json()["sync"]["status"] == "pending"
    body = await wait_until(lambda: synced(api, world, "e1"), timeout=30)
    assert body["sync"]["attempts"] == 1 and body["sync"]["worklog_id"]
    calls = jira_requests(control, t0)
    assert [(c["method"], c["status"]) for c in calls] == [("POST", 201)]
    [wl] = worklogs_by_anchor(control, "jira1")["e1"]
    assert wl["timeSpentSeconds"] == 5400
    assert wl["comment"] == "#e1: Development: work"

    t1 = time.time()
    await api.put("/api/v1/entries/e1", json=entry(duration=60, description="more"), headers=world.headers)
    await wait_until(lambda: synced(api, world, "e1"), timeout=30)
    assert [(c["method"], c["status"]) for c in jira_requests(control, t1)] == [("PUT", 200)]

    # an identical PUT causes no JIRA write at all
    t2 = time.time()
    r = await api.put("/api/v1/entries/e1", json=entry(duration=60, description="more"), headers=world.headers)
    assert r.json()["sync"]["status"] == "synced"

    t3 = time.time()
    assert (await api.delete("/api/v1/entries/e1", headers=world.headers)).status_code == 202
    await wait_until(lambda: synced(api, world, "e1", "deleted"), timeout=30)
    assert [(c["method"], c["status"]) for c in jira_requests(control, t2)] == [("DELETE", 204)]
    assert jira_requests(control, t2)[0]["time"] >= t3
    assert "e1" not in worklogs_by_anchor(control, "jira1")


async def test_started_carries_the_entry_zone_offset_across_dst(api, world, control, workers):
    workers(1)
    await api.put("/api/v1/entries/dst", json=entry(date="2026-03-29", start="02:30", duration=60),
                  headers=world.headers)
    await wait_until(lambda: synced(api, world, "dst"), timeout=30)
    log = [r for r in control.log("jira1") if r["method"] == "POST" and "worklog" in r["path"]]
    assert log
    [wl] = worklogs_by_anchor(control, "jira1")["dst"]
    from app.domain.worklog import parse_started

    # 02:30 does not exist in Berlin that night: moved forward by the gap to 03:30+0200 = 01:30Z
    assert parse_started(wl["started"]).timestamp() == parse_started("2026-03-29T01:30:00.000+0000").timestamp()


async def test_twenty_quick_updates_cost_at_most_three_writes(api, world, control, workers):
    # a write takes 2 s: the burst meets at most one write in flight, then one more with the latest state
    control.set_faults("jira1", latency_ms=2000, writes_only=True)
    workers(1)
    t0 = time.time()
    try:
        for i in range(20):
            await api.put("/api/v1/entries/burst", json=entry(duration=10 + i), headers=world.headers)
        body = await wait_until(lambda: synced(api, world, "burst"), timeout=60)
    finally:
        control.clear_faults("jira1")
    assert body["duration"] == 29
    writes = [c for c in jira_requests(control, t0, methods=("POST", "PUT"))]
    assert 1 <= len(writes) <= 3
    [wl] = worklogs_by_anchor(control, "jira1")["burst"]
    assert wl["timeSpentSeconds"] == 29 * 60


async def test_permanent_error_fails_at_once_with_jiras_message(api, world, control, workers):
    workers(1)
    await api.put("/api/v1/entries/gone", json=entry(ticket="PROJ-9999"), headers=world.headers)
    body = await wait_until(lambda: synced(api, world, "gone", "failed"), timeout=30)
    assert body["sync"]["attempts"] == 1
    assert "Issue Does Not Exist" in body["sync"]["last_error"]
    notes = (await api.get("/api/v1/notifications", params={"user": "jdoe"}, headers=world.headers))
    if notes.status_code == 200:  # the notifications API lands with the bidirectional-sync issue
        assert any(n["kind"] == "sync_failed" and n["entry_id"] == "gone" for n in notes.json())


async def test_transient_errors_back_off_then_fail_after_max_attempts(api, world, control, workers):
    workers(1, SYNC_MAX_ATTEMPTS=3, CIRCUIT_FAILURE_THRESHOLD=100)
    control.set_faults("jira1", error_rate=1.0, error_statuses=[503])
    await api.put("/api/v1/entries/down", json=entry(), headers=world.headers)
    body = await wait_until(lambda: synced(api, world, "down", "failed"), timeout=30)
    assert body["sync"]["attempts"] == 3
    assert "3 attempts" in body["sync"]["last_error"]
    # a 503 may have been applied: before creating again the engine looks for its anchor (GET)
    posts = [c for c in jira_requests(control, 0) if c["status"] == 503]
    assert [c["method"] for c in posts] == ["POST", "GET", "GET"]
    gaps = [b["time"] - a["time"] for a, b in itertools.pairwise(posts)]
    assert gaps[0] >= 0.2 and gaps[1] >= 0.4  # base 0.2 s: 0.2, 0.4 (+ jitter)


async def test_open_circuit_keeps_entries_pending_without_spending_attempts(api, world, control, workers):
    workers(1, CIRCUIT_FAILURE_THRESHOLD=2, CIRCUIT_RESET_SECONDS=3, SYNC_MAX_ATTEMPTS=50)
    control.set_faults("jira1", error_rate=1.0, error_statuses=[502])
    for i in range(6):
        await api.put(f"/api/v1/entries/c{i}", json=entry(ticket=f"PROJ-{i + 1}"), headers=world.headers)
    # the first wave may all be in flight before two failures are counted; then the circuit is open
    await wait_until(lambda: circuit_state(api, world, "open"), timeout=20)
    time.sleep(0.5)
    t0 = time.time()
    time.sleep(5)
    # while open: nothing, then one trial per reset period (half-open lets exactly one through)
    assert len(jira_requests(control, t0)) <= 2
    counts = await count_by_status(app_of(api), world.tenant.tenant_id)
    assert counts.get("pending") == 6
    body = await entry_of(api, world, "c5")
    assert body["sync"]["attempts"] <= 3  # waiting on the circuit spends no attempts
    control.clear_faults("jira1")
    await wait_until(lambda: all_synced(api, world, 6, "c"), timeout=40)


async def circuit_state(api, world, wanted):
    from app.jira.circuit import CircuitBreaker

    app = app_of(api)
    state, _, _ = await CircuitBreaker.from_settings(app.state.redis, app.state.settings).describe(world.instance_id)
    return state if state == wanted else None


def app_of(api):
    return api._transport.app  # the ASGI app behind the test client


async def all_synced(api, world, n, prefix):
    counts = await count_by_status(app_of(api), world.tenant.tenant_id)
    return counts.get("synced", 0) == n and counts


async def test_one_instances_backlog_does_not_starve_another_instance(app, api, jira_setup, connect_user, workers):
    slow = await jira_setup(rate_limit_per_second=2, project_keys=["PROJ"])
    fast = await jira_setup(rate_limit_per_second=10, project_keys=["OPS"])
    for setup in (slow, fast):
        await connect_user(setup, "jdoe", jira_user="alice", via="grant")
    backlog = [{**entry(ticket=f"PROJ-{1 + i % 4}", duration=10 + i), "id": f"s{i}"} for i in range(40)]
    r = await api.post("/api/v1/entries/batch", json={"entries": backlog}, headers=slow.headers)
    assert r.json()["accepted"] == 40
    workers(1, WORKER_CONCURRENCY=6)
    await asyncio.sleep(2)  # the slow instance's batch jobs are in flight now
    others = [{**entry(ticket="OPS-1", duration=30 + i), "id": f"f{i}"} for i in range(4)]
    t0 = time.monotonic()
    await api.post("/api/v1/entries/batch", json={"entries": others}, headers=fast.headers)

    async def fast_done():
        counts = await count_by_status(app, fast.tenant.tenant_id)
        return counts.get("synced", 0) == 4

    await wait_until(fast_done, timeout=30)
    elapsed = time.monotonic() - t0
    slow_counts = await count_by_status(app, slow.tenant.tenant_id)
    # 40 entries at 2/s take 20 s; the other instance did not wait for them
    assert slow_counts.get("pending", 0) > 10, (elapsed, slow_counts)
