"""The sync engine end to end: real PostgreSQL, Redis, `python -m workers` processes and the simulator."""

from __future__ import annotations

import itertools
import time

import pytest

from app.db.repositories import activity as activity_repo
from app.jira.ratelimit import block_size
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
    """Every request JIRA received since `since` (any path: a stray `myself`, `search` or `worklog/list`
    per push counts too)."""
    return [r for r in control.log("jira1", since=since) if r["method"] in methods]


def issue_requests(control, issue, since=0):
    return [r for r in jira_requests(control, since) if f"/issue/{issue}/" in r["path"]]


async def started(app, world):
    """The worker is up and its first reconciliation poll of this instance is over: from now on every
    request JIRA sees is a push's (the next poll is RECONCILE_INTERVAL_SECONDS away)."""

    async def polled():
        async with app.state.sessionmaker() as session:
            instance = await activity_repo.instance_by_id(session, world.instance_id)
            return instance is not None and instance.reconciled_at is not None

    await wait_until(polled, timeout=60)


async def synced(api, world, entry_id, status="synced"):
    body = await entry_of(api, world, entry_id)
    return body if body["sync"]["status"] == status else None


async def test_each_change_costs_exactly_one_jira_request(app, api, world, control, workers):
    workers(1)
    await started(app, world)
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


async def test_twenty_quick_updates_cost_two_writes_the_last_with_the_latest_state(app, api, world, control,
                                                                                    workers):
    # the first write is held at JIRA while the other nineteen changes arrive: they coalesce into one more write
    workers(1, JIRA_TIMEOUT_SECONDS=30)
    await started(app, world)
    control.add_fault_rule("jira1", "hold", seconds=25, writes_only=True)  # until released (inside the timeout)
    t0 = time.time()
    await api.put("/api/v1/entries/burst", json=entry(duration=10), headers=world.headers)

    async def first_write_at_jira():
        return control.counters("jira1")["in_flight_writes"].get("PROJ-1")

    await wait_until(first_write_at_jira, timeout=30, interval=0.05)
    for i in range(1, 20):
        await api.put("/api/v1/entries/burst", json=entry(duration=10 + i), headers=world.headers)
    assert control.counters("jira1")["in_flight_writes"].get("PROJ-1"), "the first write was still at JIRA"
    control.release_holds("jira1")
    body = await wait_until(lambda: synced(api, world, "burst"), timeout=60)
    assert body["duration"] == 29
    calls = [(c["method"], c["status"]) for c in jira_requests(control, t0)]
    assert calls == [("POST", 201), ("PUT", 200)], calls
    [wl] = worklogs_by_anchor(control, "jira1")["burst"]
    assert wl["timeSpentSeconds"] == 29 * 60


async def test_changes_made_before_any_worker_runs_cost_one_write_with_the_latest_state(app, api, world, control,
                                                                                       workers):
    # guarantee 4: nothing is pushed yet when the twenty changes arrive
    for i in range(20):
        r = await api.put("/api/v1/entries/early", json=entry(duration=10 + i, description=f"v{i}"),
                          headers=world.headers)
        assert r.status_code == 202
    t0 = time.time()
    workers(1)
    body = await wait_until(lambda: synced(api, world, "early"), timeout=60)
    assert body["duration"] == 29 and body["sync"]["attempts"] == 1
    await started(app, world)
    # the worker's first reconciliation poll (the two feeds) may come before or after the push
    pushes = [(c["method"], c["path"].rsplit("/rest/api/2/", 1)[-1], c["status"]) for c in jira_requests(control, t0)
              if not c["path"].endswith(("/worklog/updated", "/worklog/deleted"))]
    assert pushes == [("POST", "issue/PROJ-1/worklog", 201)]
    [wl] = worklogs_by_anchor(control, "jira1")["early"]
    assert wl["timeSpentSeconds"] == 29 * 60 and wl["comment"] == "#early: Development: v19"


async def test_permanent_error_fails_at_once_with_jiras_message_and_a_retry_syncs_it(api, world, control, workers):
    workers(1)
    await api.put("/api/v1/entries/gone", json=entry(ticket="PROJ-404"), headers=world.headers)
    body = await wait_until(lambda: synced(api, world, "gone", "failed"), timeout=30)
    assert body["sync"]["attempts"] == 1
    assert "Issue Does Not Exist" in body["sync"]["last_error"]
    notes = await api.get("/api/v1/notifications", params={"user": "jdoe"}, headers=world.headers)
    assert notes.status_code == 200
    [note] = [n for n in notes.json() if n["entry_id"] == "gone"]
    assert note["kind"] == "sync_failed" and "Issue Does Not Exist" in note["message"]

    # someone creates the issue in JIRA; the user retries the failed entry
    control.add_issue("jira1", "PROJ-404", "created later")
    r = await api.post("/api/v1/entries/gone/retry", headers=world.headers)
    assert r.status_code == 202 and r.json()["sync"]["status"] == "pending"
    assert r.json()["sync"]["attempts"] == 0 and r.json()["sync"]["last_error"] is None
    body = await wait_until(lambda: synced(api, world, "gone"), timeout=30)
    assert body["sync"]["attempts"] == 1 and body["sync"]["worklog_id"]
    [wl] = worklogs_by_anchor(control, "jira1")["gone"]
    assert str(wl["id"]) == body["sync"]["worklog_id"]
    # a synced entry has nothing to retry
    r = await api.post("/api/v1/entries/gone/retry", headers=world.headers)
    assert r.status_code == 409 and "synced" in r.json()["detail"]


async def test_transient_errors_back_off_then_fail_after_max_attempts(app, api, world, control, workers):
    workers(1, SYNC_MAX_ATTEMPTS=3, CIRCUIT_FAILURE_THRESHOLD=100)
    await started(app, world)
    t0 = time.time()
    control.set_faults("jira1", error_rate=1.0, error_statuses=[503])
    await api.put("/api/v1/entries/down", json=entry(), headers=world.headers)
    body = await wait_until(lambda: synced(api, world, "down", "failed"), timeout=30)
    assert body["sync"]["attempts"] == 3
    assert "3 attempts" in body["sync"]["last_error"]
    # a 503 may have been applied: before creating again the engine looks for its anchor (GET)
    posts = jira_requests(control, t0)
    assert all(c["status"] == 503 for c in posts)
    assert [c["method"] for c in posts] == ["POST", "GET", "GET"]
    gaps = [b["time"] - a["time"] for a, b in itertools.pairwise(posts)]
    assert gaps[0] >= 0.2 and gaps[1] >= 0.4  # base 0.2 s: 0.2, 0.4 (+ jitter)


def half_open_trials(arrivals: list[float]) -> int:
    """Where the half-open trials begin among the arrivals at JIRA: the first request a whole reset period (1 s)
    after the one before it. Before it: the failures that opened the circuit, and any request the gate had granted
    before it opened that a loaded machine sent only afterwards."""
    return next((i for i in range(1, len(arrivals)) if arrivals[i] - arrivals[i - 1] >= 0.9), len(arrivals))


async def test_open_circuit_keeps_entries_pending_without_spending_attempts(app, api, world, control, workers):
    workers(1, CIRCUIT_FAILURE_THRESHOLD=2, CIRCUIT_RESET_SECONDS=1, SYNC_MAX_ATTEMPTS=50)
    await started(app, world)
    t0 = time.time()
    control.set_faults("jira1", error_rate=1.0, error_statuses=[502])
    tickets = {f"c{i}": f"PROJ-{i + 1}" for i in range(6)}
    for entry_id, ticket in tickets.items():
        await api.put(f"/api/v1/entries/{entry_id}", json=entry(ticket=ticket), headers=world.headers)
    await wait_until(lambda: circuit_state(api, world, "open"), timeout=20)

    async def trials_seen():
        arrivals = [r["time"] for r in jira_requests(control, t0)]
        return len(arrivals) - half_open_trials(arrivals) >= 3 and await circuit_state(api, world, "open")

    await wait_until(trials_seen, timeout=30)  # those that opened it, then three trials, each one failing again

    async def attempts_equal_requests():
        # an attempt is a request that reached JIRA: waiting on the open circuit spends none
        requests = {e: len(issue_requests(control, t, t0)) for e, t in tickets.items()}
        attempts = {e: (await entry_of(api, world, e))["sync"]["attempts"] for e in tickets}
        return attempts == requests and attempts

    attempts = await wait_until(attempts_equal_requests, timeout=20)
    assert sum(attempts.values()) >= 5
    counts = await count_by_status(app, world.tenant.tenant_id)
    assert counts.get("pending") == 6, counts
    # half-open lets one trial through per reset period (the breaker runs on Redis' clock, the same machine's; a
    # trial's failure is recorded after JIRA saw it, so the next one arrives a whole period later). Before the
    # trials: the two failures that opened it, and at most the rest of a block of slots granted before it opened
    arrivals = [r["time"] for r in jira_requests(control, t0)]
    first_trial = half_open_trials(arrivals)
    assert 2 <= first_trial <= 2 + block_size(10), arrivals
    assert all(b - a >= 0.95 for a, b in itertools.pairwise(arrivals[first_trial:])), arrivals
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


async def test_one_instances_backlog_does_not_starve_another_instance(app, api, sim, jira_setup, connect_user,
                                                                      workers):
    slow = await jira_setup(rate_limit_per_second=2, project_keys=["PROJ"])
    fast = await jira_setup(rate_limit_per_second=10, project_keys=["OPS"])
    for setup in (slow, fast):
        await connect_user(setup, "jdoe", jira_user="alice")
    backlog = [{**entry(ticket=f"PROJ-{1 + i % 4}", duration=10 + i), "id": f"s{i}"} for i in range(40)]
    r = await api.post("/api/v1/entries/batch", json={"entries": backlog}, headers=slow.headers)
    assert r.json()["accepted"] == 40
    workers(1)

    def slow_writes():
        return sorted(r["time"] for r in sim.control.log(slow.sim_name)
                      if r["method"] == "POST" and r["status"] == 201)

    await wait_until(lambda: len(slow_writes()) >= 2, timeout=30)  # its backlog is draining
    others = [{**entry(ticket="OPS-1", duration=30 + i), "id": f"f{i}"} for i in range(4)]
    await api.post("/api/v1/entries/batch", json={"entries": others}, headers=fast.headers)

    async def fast_done():
        counts = await count_by_status(app, fast.tenant.tenant_id)
        return counts.get("synced", 0) == 4

    await wait_until(fast_done, timeout=30)
    # the other instance's entries went while the backlog was still queued: at 2/s, 40 writes take 20 s, and
    # the four were written before the last ten of them
    slow_counts = await count_by_status(app, slow.tenant.tenant_id)
    assert slow_counts.get("pending", 0) >= 10, slow_counts
    fast_writes = [r["time"] for r in sim.control.log(fast.sim_name) if r["method"] == "POST" and r["status"] == 201]
    assert len(fast_writes) == 4
    writes_before = [t for t in slow_writes() if t < max(fast_writes)]
    assert len(writes_before) <= 30, (len(writes_before), slow_counts)


async def test_a_429_is_waited_out_for_its_retry_after_without_spending_attempts(app, api, sim, jira_setup,
                                                                                 connect_user, workers):
    setup = await jira_setup(rate_limit_per_second=10)
    await connect_user(setup, "jdoe")
    # JIRA allows one request every 2 s, we were told 10/s: JIRA answers 429 with Retry-After 1 or 2
    sim.control.set_rate_limit(setup.sim_name, rate=0.5, burst=1)
    workers(1, SYNC_MAX_ATTEMPTS=2)
    tickets = {"r1": "PROJ-1", "r2": "PROJ-4", "r3": "OPS-1"}
    for entry_id, ticket in tickets.items():
        await api.put(f"/api/v1/entries/{entry_id}", json=entry(ticket=ticket), headers=setup.headers)

    async def all_done():
        counts = await count_by_status(app, setup.tenant.tenant_id)
        return counts.get("synced", 0) + counts.get("failed", 0) == len(tickets) and counts

    assert await wait_until(all_done, timeout=90) == {"synced": len(tickets)}
    for entry_id in tickets:
        body = (await api.get(f"/api/v1/entries/{entry_id}", headers=setup.headers)).json()
        assert body["sync"]["attempts"] == 1, body["sync"]  # the 429s spent nothing
    log = sorted(sim.control.log(setup.sim_name), key=lambda r: r["time"])
    limited = [r for r in log if r["status"] == 429]
    assert limited, "JIRA never said 429: the test did not test anything"
    for r in limited:
        assert r["retry_after"] >= 1
        # nothing new reached JIRA before Retry-After was over, but the one request whose slot was already
        # reserved when the 429 came back (it meets the pause and is retried)
        too_early = [x for x in log if r["time"] < x["time"] < r["time"] + r["retry_after"] - 0.05]
        assert len(too_early) <= 1, (r, too_early)
