"""Fair share (CONTRACT 11, guarantee 10): one tenant's backlog, slow JIRA or lost queue never holds another's
pushes up. Real workers, real PostgreSQL and Redis, the simulator.

How much later a push comes under another tenant's load than on an idle system is a figure of `make bench`;
these tests assert the behaviour: the other tenant's push happens while the load is still there.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from app.api.tenant_rate import TenantRateLimit
from app.jira.circuit import CircuitBreaker
from tests.e2e.engine_support import count_by_status, entry, wait_until

pytestmark = pytest.mark.slow

MANY_ISSUES = [{"key": f"PROJ-{i}", "summary": f"Issue {i}"} for i in range(1, 1001)]


@contextlib.contextmanager
def no_tenant_api_limit(app: Any, redis: Any) -> Iterator[None]:
    """TENANT_API_RATE_PER_SECOND=0 for a while (an operator's setting): these tests send 1000 PUTs at once."""
    saved = app.state.tenant_rate
    app.state.tenant_rate = TenantRateLimit(redis, 0)
    try:
        yield
    finally:
        app.state.tenant_rate = saved


async def put_all(api: Any, headers: dict[str, str], bodies: dict[str, dict[str, Any]]) -> None:
    async def one(entry_id: str, body: dict[str, Any]) -> None:
        r = await api.put(f"/api/v1/entries/{entry_id}", json=body, headers=headers)
        assert r.status_code == 202, r.text

    items = list(bodies.items())
    for start in range(0, len(items), 50):
        await asyncio.gather(*(one(i, b) for i, b in items[start:start + 50]))


async def synced(api: Any, headers: dict[str, str], entry_id: str) -> bool:
    body = (await api.get(f"/api/v1/entries/{entry_id}", headers=headers)).json()
    return bool(body["sync"]["status"] == "synced")


async def test_a_tenants_backlog_on_a_slow_limit_and_a_hanging_jira_leaves_another_tenants_push_alone(
        app, api, redis, sim, jira_setup, connect_user, workers):
    # tenant A: one instance allowing 1 request per second with 1000 changes waiting (people's PUTs, so USER
    # priority, on distinct issues), and a second instance whose JIRA answers only at the full JIRA timeout
    limited = await jira_setup(rate_limit_per_second=1, project_keys=["PROJ"], issues=MANY_ISSUES)
    hanging = await jira_setup(tenant=limited.tenant, project_keys=["OPS"])
    other = await jira_setup(project_keys=["PROJ"])  # tenant B
    for setup in (limited, hanging, other):
        assert await connect_user(setup, "jdoe", jira_user="alice") == "connected"
    workers(2, JIRA_TIMEOUT_SECONDS=3)
    sim.control.set_faults(hanging.sim_name, latency_ms=3500)  # longer than the JIRA timeout: every request hangs
    with no_tenant_api_limit(app, redis):
        await put_all(api, limited.headers, {f"a{i}": entry(ticket=f"PROJ-{i}") for i in range(1, 1001)})
        await put_all(api, limited.headers, {f"h{i}": entry(ticket="OPS-1", start=f"{8 + i:02d}:00") for i in range(6)})

    async def a_is_busy() -> bool:  # A's limited instance is being pushed, its hanging one is being waited on
        counters = sim.control.counters(limited.sim_name), sim.control.counters(hanging.sim_name)
        return counters[0]["writes"] >= 2 and counters[1]["requests"] >= 1

    await wait_until(a_is_busy, timeout=60, interval=0.1)
    r = await api.put("/api/v1/entries/b1", json=entry(ticket="PROJ-1"), headers=other.headers)
    assert r.status_code == 202
    await wait_until(lambda: synced(api, other.headers, "b1"), timeout=30, interval=0.1)
    # B's change went while A's backlog was still there (at 1 per second, it takes A 1000 seconds)
    counts = await count_by_status(app, limited.tenant.tenant_id)
    assert counts.get("pending", 0) >= 900, counts


async def test_after_redis_lost_everything_another_tenants_entry_is_found_while_one_has_thousands_due(
        app, api, redis, stack, sim, jira_setup, connect_user, workers):
    failing = await jira_setup(project_keys=["PROJ"])  # tenant A, whose JIRA is down
    other = await jira_setup(project_keys=["PROJ"])  # tenant B
    for setup in (failing, other):
        assert await connect_user(setup, "jdoe", jira_user="alice") == "connected"
    sim.control.set_faults(failing.sim_name, error_rate=1.0, error_statuses=[503])
    with no_tenant_api_limit(app, redis):
        for chunk in range(6):  # 6000 due entries (a backfill)
            batch = [{**entry(ticket=f"PROJ-{1 + i % 4}", duration=10 + i % 50), "id": f"a{chunk}-{i}"}
                     for i in range(1000)]
            r = await api.post("/api/v1/entries/batch", json={"entries": batch}, headers=failing.headers)
            assert r.status_code == 202 and r.json()["accepted"] == 1000
    # the workers try A's JIRA until its circuit opens (and stays open: a reset far away)
    first = workers(1, CIRCUIT_FAILURE_THRESHOLD=3, CIRCUIT_RESET_SECONDS=600)
    circuit = CircuitBreaker.from_settings(redis, app.state.settings)

    async def open_circuit() -> bool:
        return (await circuit.describe(uuid.UUID(failing.instance_id)))[0] == "open"

    await wait_until(open_circuit, timeout=60, interval=0.1)
    await asyncio.to_thread(first.stop)
    # B's change is accepted while no worker runs: the wake-up goes nowhere; then Redis loses everything
    r = await api.put("/api/v1/entries/b1", json=entry(ticket="PROJ-2"), headers=other.headers)
    assert r.status_code == 202 and r.json()["sync"]["status"] == "pending"
    await redis.flushall()
    counts = await count_by_status(app, failing.tenant.tenant_id)
    assert counts.get("pending") == 6000, counts
    workers(1, SWEEP_INTERVAL_SECONDS=5, CIRCUIT_FAILURE_THRESHOLD=3, CIRCUIT_RESET_SECONDS=600)
    # the sweeper finds B's entry (every instance with due entries, whatever A holds), within its interval + 1 min
    await wait_until(lambda: synced(api, other.headers, "b1"), timeout=5 + 60, interval=0.2)


async def test_a_hanging_jira_holds_only_its_own_poll(app, api, sim, jira_setup, connect_user, settings):
    """The poller's deadline (CONTRACT 11): a poll of a JIRA that answers only after a long while is abandoned
    with its cursors where they were, and the other instances are polled meanwhile."""
    from app.db.repositories import activity as activity_repo
    from app.redis_keys import reconcile_lease
    from workers.context import build_context
    from workers.reconcile import poll_due_instances

    hanging, fine = await jira_setup(), await jira_setup()
    for setup in (hanging, fine):
        assert await connect_user(setup, "jdoe", jira_user="alice") == "connected"
    # answers, but long after the poll's deadline (which gives a healthy poll ample time on a loaded machine)
    sim.control.set_faults(hanging.sim_name, latency_ms=60_000)
    wc = build_context(settings.model_copy(update={"reconcile_poll_deadline_seconds": 5.0,
                                                   "jira_timeout_seconds": 90}))
    try:
        for setup in (hanging, fine):
            await wc.redis.delete(reconcile_lease(uuid.UUID(setup.instance_id)))
        await poll_due_instances(wc)
        async with app.state.sessionmaker() as session:
            polled = {name: await activity_repo.instance_by_id(session, uuid.UUID(setup.instance_id))
                      for name, setup in (("hanging", hanging), ("fine", fine))}
        assert polled["fine"] is not None and polled["fine"].reconciled_at is not None
        # without the deadline this poll would have finished (60 s < the 90 s JIRA timeout) and moved its cursors
        assert polled["hanging"] is not None and polled["hanging"].reconciled_at is None
        assert polled["hanging"].reconcile_updated_since is None
    finally:
        sim.control.clear_faults(hanging.sim_name)
        await wc.close()


async def test_instances_whose_polls_keep_failing_do_not_stay_ahead_of_the_others(settings):
    """The poller's turn order is when each instance's poll last started, whatever its outcome: an instance that
    was never polled goes first, and instances that were never reconciled because their polls fail (first in the
    database's order) wait their turn behind it."""
    from app.redis_keys import reconcile_started
    from workers.context import build_context
    from workers.reconcile import Poller

    failing_1, failing_2, new = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    wc = build_context(settings)
    try:
        poller = Poller(wc)
        key = reconcile_started()
        await wc.redis.hset(key, mapping={str(failing_1): "1000", str(failing_2): "2000"})
        # the database's order: never reconciled first (both failing ones), then the new one
        assert await poller._in_turn([failing_1, failing_2, new]) == [new, failing_1, failing_2]
        await wc.redis.hset(key, str(new), "3000")
        assert await poller._in_turn([failing_2, failing_1, new]) == [failing_1, failing_2, new]
        # an instance no longer in the database leaves the record
        assert await poller._in_turn([failing_2, new]) == [failing_2, new]
        assert not await wc.redis.hexists(key, str(failing_1))
    finally:
        await wc.redis.hdel(key, str(failing_1), str(failing_2), str(new))
        await wc.close()


async def test_a_burst_of_wake_ups_spreads_the_instances_over_the_workers(settings, redis):
    """A backfill over many instances wakes them all at once, and every worker hears every wake-up: the free leases
    go to the least busy worker each, not all to the one that heard the burst first (whose CPU would then bound
    the whole drain). Three workers' fleets in this process (pushers not started: only who takes which lease)."""
    from dataclasses import replace

    from app import redis_keys
    from app.domain.priority import Priority
    from workers.context import build_context
    from workers.pushers import PushFleet, _Running

    class LeasesOnly(PushFleet):
        def _start(self, instance_id: uuid.UUID, priority: Priority) -> None:
            self._running[instance_id] = _Running(pusher=None)  # type: ignore[arg-type]

    contexts = [build_context(settings) for _ in range(3)]
    fleets = [LeasesOnly(replace(wc, holder=f"worker:test:{n}:{uuid.uuid4().hex[:8]}"))
              for n, wc in enumerate(contexts)]
    instances = [uuid.uuid4() for _ in range(9)]
    try:
        for instance_id in instances:  # one wake-up per instance, heard by every worker
            for fleet in fleets:
                fleet.on_wake(instance_id, Priority.BATCH)

        async def all_taken() -> bool:
            return sum(len(f.instances) for f in fleets) == len(instances)  # (a lease has one holder)

        await wait_until(all_taken, timeout=30, interval=0.02)
        held = sorted(len(f.instances) for f in fleets)
        # every worker gets a share (3 each on an idle machine; a busy one may give one worker a few more, which
        # the hand-over evens out: test_sync_resilience's workers-started-later test), not 9 for one of them
        assert held[0] >= 2, held
        for fleet in fleets:  # each lease is in Redis under the holder that started its pusher, and only there
            for instance_id in fleet.instances:
                assert await redis.get(redis_keys.push_lease(instance_id)) == fleet.wc.holder.encode()
    finally:
        for fleet in fleets:
            for instance_id in fleet.instances:
                await fleet.leases.release(redis_keys.push_lease(instance_id))
        for wc in contexts:
            await wc.close()
