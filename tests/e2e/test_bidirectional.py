"""JIRA → TimeTracker end to end (CONTRACT sections 7 and 8): people edit and delete worklogs in the simulator;
the service learns of it by webhook or by the reconciliation poll and applies the conflict policy; resolving a
conflict either way leaves JIRA and the entry equal. Real PostgreSQL, Redis, simulator and push engine."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import select

from app.db.models import EntryRow
from app.db.repositories import activity as activity_repo
from app.domain.worklog import build_comment, local_start, parse_started
from app.services.reconcile import ReconcileDeps, reconcile_instance
from jirasim.testing import SimServer
from tests.e2e.engine_support import World, build_world, entry, sim_config, wait_until
from workers.context import WorkerContext, build_context

SIM = "jira1"


class Relay:
    """Where the simulator delivers its webhooks: keeps the raw bodies and signatures to forward to the app."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[bytes, str | None]] = []
        self.lock = threading.Lock()
        relay = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with relay.lock:
                    relay.deliveries.append((body, self.headers.get("X-Hub-Signature")))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def take(self) -> list[tuple[bytes, str | None]]:
        with self.lock:
            taken, self.deliveries = self.deliveries, []
        return taken


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    # no feed delay here, so a poll right after a change sees it: these tests are about what a change means.
    # JIRA's delay is the subject of the two tests of late changes (a stamped-late edit, a delayed feed).
    with SimServer(sim_config(feed_delay=0, rate=1000, burst=1000)) as server:
        yield server


@pytest.fixture(scope="module")
def relay() -> Iterator[Relay]:
    r = Relay()
    yield r
    r.server.shutdown()


@pytest.fixture(autouse=True)
def drained_relay(relay: Relay) -> Relay:
    """Each test starts with no webhook of an earlier test still waiting to be forwarded."""
    relay.take()
    return relay


@pytest.fixture
async def world(app: Any, sim: SimServer) -> World:
    sim.control.set_webhook(SIM, None)
    return await build_world(app, sim.control, sim.instance_url(SIM), rate=100)


@pytest.fixture
async def wc(settings: Any) -> AsyncIterator[WorkerContext]:
    context = build_context(settings)
    yield context
    await context.close()


async def push(wc: WorkerContext, world: World, *entry_ids: str) -> None:
    """Run the push engine until every entry is settled (what a worker does with the queued jobs)."""
    for _ in range(40):
        waiting = False
        for entry_id in entry_ids:
            delay = await wc.push(world.tenant.tenant_id, entry_id)
            if delay is not None:
                waiting = True
                await asyncio.sleep(min(delay, 0.2))
        if not waiting:
            return
    raise AssertionError("push did not settle")


async def forward(api: Any, world: World, relay: Relay, *, expect: int = 1, timeout: float = 5) -> list[str]:
    """`api` receives them: the session's API, or `api_without_window` for an entry last changed long ago."""
    deadline = time.monotonic() + timeout
    deliveries: list[tuple[bytes, str | None]] = []
    while time.monotonic() < deadline:
        deliveries += relay.take()
        if len(deliveries) >= expect:
            await asyncio.sleep(0.2)  # stragglers (duplicates) of the same events
            deliveries += relay.take()
            break
        await asyncio.sleep(0.05)
    assert len(deliveries) >= expect, f"only {len(deliveries)} webhooks arrived"
    outcomes = []
    for body, signature in deliveries:
        r = await api.post(f"/webhooks/jira/{world.instance_id}", content=body,
                           headers={"X-Hub-Signature": signature or "", "Content-Type": "application/json"})
        assert r.status_code == 200, r.text
        outcomes.append(r.json()["outcome"])
    return outcomes


async def row_of(app: Any, world: World, entry_id: str) -> EntryRow:
    async with app.state.sessionmaker() as session:
        return (await session.execute(select(EntryRow).where(
            EntryRow.tenant_id == world.tenant.tenant_id, EntryRow.id == entry_id))).scalar_one()


def remote_worklogs(world: World, ticket: str) -> list[dict[str, Any]]:
    return world.control.worklogs(SIM, ticket)


async def assert_jira_equals_entry(app: Any, world: World, entry_id: str) -> None:
    row = await row_of(app, world, entry_id)
    assert row.sync_status == "synced", (row.sync_status, row.last_error)
    ours = [w for w in remote_worklogs(world, row.ticket) if str(w["comment"]).startswith(f"#{entry_id}:")]
    assert len(ours) == 1, ours
    worklog = ours[0]
    assert str(worklog["id"]) == row.worklog_id
    assert parse_started(worklog["started"]) == local_start(row.date, row.start, row.timezone)
    assert worklog["timeSpentSeconds"] == row.duration * 60
    assert worklog["comment"] == build_comment(row.id, row.activity, row.description)


async def put_and_push(api: Any, wc: WorkerContext, world: World, entry_id: str, **fields: Any) -> dict[str, Any]:
    r = await api.put(f"/api/v1/entries/{entry_id}", json=entry(ticket="PROJ-7", duration=90, **fields),
                      headers=world.headers)
    assert r.status_code == 202, r.text
    await push(wc, world, entry_id)
    r = await api.get(f"/api/v1/entries/{entry_id}", headers=world.headers)
    assert r.json()["sync"]["status"] == "synced", r.text
    return dict(r.json())


def reconcile_deps(wc: WorkerContext, *, long_ago: bool = False) -> ReconcileDeps:
    """The poller's dependencies; with `long_ago`, its CONFLICT_WINDOW_SECONDS is 0: every entry's last local
    change is long past, so JIRA's edits are conflicts."""
    d = wc.deps
    settings = wc.settings.model_copy(update={"conflict_window_seconds": 0}) if long_ago else wc.settings
    return ReconcileDeps(sessionmaker=d.sessionmaker, credentials=d.credentials, jira=d.jira, settings=settings)


async def conflict_of(api: Any, world: World, entry_id: str) -> dict[str, Any]:
    r = await api.get(f"/api/v1/conflicts?status=open&entry_id={entry_id}", headers=world.headers)
    [conflict] = r.json()
    return dict(conflict)


# -- by webhook ------------------------------------------------------------------------------------------------

async def test_webhook_remote_edit_of_an_old_entry_is_a_conflict_resolved_for_jira(  # type: ignore[no-untyped-def]
        app, api, api_without_window, wc, world, relay, sim):
    sim.control.set_webhook(SIM, relay.url, secret=world.webhook_secret, duplicates=1)
    synced = await put_and_push(api, wc, world, "101")
    assert set(await forward(api, world, relay, expect=2)) == {"ignore"}  # the echo of our create, twice
    sim.control.remote_edit(SIM, synced["sync"]["worklog_id"], time_spent_seconds=7200,
                            comment="#101: Development: work and review", as_user="alice")
    outcomes = await forward(api_without_window, world, relay, expect=2)  # the entry was changed long ago
    assert "jira_wins" in outcomes and set(outcomes) <= {"jira_wins", "ignore"}
    row = await row_of(app, world, "101")
    assert row.sync_status == "conflict" and row.duration == 90 and "changed in JIRA" in (row.last_error or "")
    notes = (await api.get("/api/v1/notifications?user=jdoe&unread=true", headers=world.headers)).json()
    assert [n["kind"] for n in notes] == ["conflict"]

    conflict = await conflict_of(api, world, "101")
    r = await api.post(f"/api/v1/conflicts/{conflict['id']}/resolve", json={"winner": "jira"}, headers=world.headers)
    assert r.status_code == 200, r.text
    await push(wc, world, "101")
    row = await row_of(app, world, "101")
    assert (row.duration, row.description) == (120, "work and review")
    await assert_jira_equals_entry(app, world, "101")


async def test_webhook_remote_edit_within_the_window_is_overwritten(  # type: ignore[no-untyped-def]
        app, api, wc, world, relay, sim):
    sim.control.set_webhook(SIM, relay.url, secret=world.webhook_secret)
    synced = await put_and_push(api, wc, world, "102")
    await forward(api, world, relay)
    sim.control.remote_edit(SIM, synced["sync"]["worklog_id"], time_spent_seconds=600, as_user="alice")
    assert await forward(api, world, relay) == ["timetracker_wins"]
    await push(wc, world, "102")
    await assert_jira_equals_entry(app, world, "102")
    assert (await row_of(app, world, "102")).duration == 90
    # the echo of the re-push changes nothing
    assert set(await forward(api, world, relay)) == {"ignore"}
    assert (await row_of(app, world, "102")).sync_status == "synced"
    assert (await api.get("/api/v1/conflicts", headers=world.headers)).json() == []


# -- by the reconciliation poll (no webhooks) ---------------------------------------------------------------------

async def test_poll_finds_an_old_entrys_remote_edit_resolved_for_timetracker(  # type: ignore[no-untyped-def]
        app, api, wc, world, sim):
    synced = await put_and_push(api, wc, world, "201")
    deps = reconcile_deps(wc, long_ago=True)
    first = await reconcile_instance(deps, world.instance_id)
    assert first.polled and first.outcomes.get("jira_wins", 0) == 0, first
    sim.control.remote_edit(SIM, synced["sync"]["worklog_id"], time_spent_seconds=1800, as_user="alice")
    report = await reconcile_instance(deps, world.instance_id)
    assert report.outcomes["jira_wins"] == 1, report
    assert (await row_of(app, world, "201")).sync_status == "conflict"
    # the next poll sees the same change again (overlapping windows): nothing twice
    again = await reconcile_instance(deps, world.instance_id)
    assert again.outcomes.get("jira_wins", 0) == 0
    assert len((await api.get("/api/v1/conflicts", headers=world.headers)).json()) == 1

    conflict = await conflict_of(api, world, "201")
    r = await api.post(f"/api/v1/conflicts/{conflict['id']}/resolve", json={"winner": "timetracker"},
                       headers=world.headers)
    assert r.status_code == 200
    await push(wc, world, "201")
    await assert_jira_equals_entry(app, world, "201")
    assert (await row_of(app, world, "201")).duration == 90
    after = await reconcile_instance(deps, world.instance_id)
    assert set(after.outcomes) <= {"ignore"}
    audit = (await api.get("/api/v1/audit?limit=200", headers=world.headers)).json()
    assert {"jira.worklogs_updated_since", "jira.worklogs_deleted_since", "jira.worklog_list"} <= \
        {a["action"] for a in audit}


async def test_poll_finds_a_recent_entrys_remote_deletion_and_recreates_it(  # type: ignore[no-untyped-def]
        app, api, wc, world, sim):
    synced = await put_and_push(api, wc, world, "202")
    sim.control.remote_delete(SIM, synced["sync"]["worklog_id"])
    report = await reconcile_instance(reconcile_deps(wc), world.instance_id)
    assert report.outcomes["timetracker_wins"] == 1, report
    await push(wc, world, "202")
    await assert_jira_equals_entry(app, world, "202")
    assert (await row_of(app, world, "202")).worklog_id != synced["sync"]["worklog_id"]


async def test_poll_finds_an_old_entrys_remote_deletion_resolved_for_jira(  # type: ignore[no-untyped-def]
        app, api, wc, world, sim):
    synced = await put_and_push(api, wc, world, "203")
    sim.control.remote_delete(SIM, synced["sync"]["worklog_id"])
    report = await reconcile_instance(reconcile_deps(wc, long_ago=True), world.instance_id)
    assert report.outcomes["jira_wins"] == 1, report
    conflict = await conflict_of(api, world, "203")
    assert conflict["remote"] is None
    r = await api.post(f"/api/v1/conflicts/{conflict['id']}/resolve", json={"winner": "jira"}, headers=world.headers)
    assert r.status_code == 200
    entry_now = (await api.get("/api/v1/entries/203", headers=world.headers)).json()
    assert entry_now["deleted"] is True and entry_now["sync"]["status"] == "deleted"
    assert not [w for w in remote_worklogs(world, "PROJ-7") if str(w["comment"]).startswith("#203:")]


async def test_poll_cursors_advance_with_overlap_and_ignore_foreign_worklogs(  # type: ignore[no-untyped-def]
        app, api, wc, world, sim):
    await put_and_push(api, wc, world, "204")
    sim.control.create_worklog_as(SIM, "PROJ-7", "alice", 600, comment="#204: not written by the service")
    deps = reconcile_deps(wc)
    report = await reconcile_instance(deps, world.instance_id)
    assert report.polled and set(report.outcomes) <= {"ignore"}
    async with app.state.sessionmaker() as session:
        instance = await activity_repo.instance_by_id(session, world.instance_id)
        assert instance is not None and instance.reconcile_updated_since and instance.reconciled_at
        cursor = instance.reconcile_updated_since
    now_ms = int(time.time() * 1000)
    assert cursor <= now_ms - 60_000  # never past what JIRA may still add (its last minute)
    assert (await row_of(app, world, "204")).sync_status == "synced"


def updated_ms(worklog: dict[str, Any]) -> int:
    return int(parse_started(str(worklog["updated"])).timestamp() * 1000)


async def updated_cursor(app: Any, world: World) -> int:
    async with app.state.sessionmaker() as session:
        instance = await activity_repo.instance_by_id(session, world.instance_id)
        assert instance is not None and instance.reconcile_updated_since is not None
        return int(instance.reconcile_updated_since)


async def test_poll_windows_overlap_so_a_change_the_feed_shows_late_is_still_found(  # type: ignore[no-untyped-def]
        app, api, wc, world, sim):
    synced = await put_and_push(api, wc, world, "205")
    worklog_id = synced["sync"]["worklog_id"]
    [ours] = [w for w in remote_worklogs(world, "PROJ-7") if str(w["id"]) == worklog_id]
    await asyncio.sleep(0.01)  # distinct millisecond stamps
    foreign = sim.control.create_worklog_as(SIM, "PROJ-7", "alice", 600, comment="pairing")
    assert updated_ms(foreign) > updated_ms(ours) + 1
    # the polls run ten minutes later, so JIRA's last minute says nothing about where the windows end
    later = datetime.now(UTC) + timedelta(minutes=10)
    deps = reconcile_deps(wc, long_ago=True)
    first = await reconcile_instance(deps, world.instance_id, now=later)
    assert first.polled and set(first.outcomes) <= {"ignore"}, first
    cursor = await updated_cursor(app, world)

    # JIRA now shows a change stamped between our write and the foreign worklog: the first window had passed it
    stamp = (updated_ms(ours) + updated_ms(foreign)) // 2
    sim.control.remote_edit(SIM, worklog_id, time_spent_seconds=3600, as_user="alice", updated=stamp)
    second = await reconcile_instance(deps, world.instance_id, now=later + timedelta(seconds=5))
    assert second.outcomes["jira_wins"] == 1, second
    row = await row_of(app, world, "205")
    assert row.sync_status == "conflict" and "1h" in (row.last_error or "")
    # each window starts 120 s before the newest change the previous one saw, and never moves back
    assert cursor == updated_ms(foreign) - 120_000
    assert await updated_cursor(app, world) == cursor

    await asyncio.sleep(0.01)
    newer = sim.control.create_worklog_as(SIM, "PROJ-7", "bob", 900, comment="review")
    third = await reconcile_instance(deps, world.instance_id, now=later + timedelta(seconds=10))
    assert third.polled and third.outcomes.get("jira_wins", 0) == 0  # the conflict is not declared twice
    assert await updated_cursor(app, world) == updated_ms(newer) - 120_000  # and the window moves on


async def test_the_workers_polling_loop_finds_a_remote_edit_the_feed_shows_late(  # type: ignore[no-untyped-def]
        app, api, sim, jira_setup, connect_user, workers):
    """No webhook: the poller of a running worker, on its own schedule, against a feed that leaves out its
    last seconds (as JIRA leaves out its last minute)."""
    setup = await jira_setup()
    await connect_user(setup, "jdoe", jira_user="alice")
    sim.control.set_settings(setup.sim_name, feed_delay_seconds=3)
    workers(1, RECONCILE_INTERVAL_SECONDS=1, CONFLICT_WINDOW_SECONDS=0)  # every local change is "long ago"
    r = await api.put("/api/v1/entries/501", json=entry(ticket="PROJ-1", duration=90), headers=setup.headers)
    assert r.status_code == 202

    async def entry_status(wanted: str) -> dict[str, Any] | None:
        body = (await api.get("/api/v1/entries/501", headers=setup.headers)).json()
        return body if body["sync"]["status"] == wanted else None

    synced = await wait_until(lambda: entry_status("synced"), timeout=60)
    sim.control.remote_edit(setup.sim_name, synced["sync"]["worklog_id"], time_spent_seconds=7200, as_user="alice")
    conflicted = await wait_until(lambda: entry_status("conflict"), timeout=60)
    assert "changed in JIRA" in conflicted["sync"]["last_error"] and conflicted["duration"] == 90
    [conflict] = (await api.get("/api/v1/conflicts?status=open", headers=setup.headers)).json()
    assert conflict["remote"]["time_spent_seconds"] == 7200
    polls = [a for a in (await api.get("/api/v1/audit", params={"limit": 500}, headers=setup.headers)).json()
             if a["action"] == "jira.worklogs_updated_since"]
    assert len(polls) >= 2  # the loop polled before the change showed up, and again after


async def test_one_poller_per_instance_and_interval_across_workers(  # type: ignore[no-untyped-def]
        app, api, wc, world, settings):
    from app.redis_keys import reconcile_lease
    from workers.reconcile import poll_due_instances

    other = build_context(settings)
    try:
        async with app.state.sessionmaker() as session:
            ids = await activity_repo.all_instance_ids(session)
        for instance_id in ids:
            await wc.redis.delete(reconcile_lease(instance_id))
        polled = await asyncio.gather(poll_due_instances(wc), poll_due_instances(other))
        # two workers ticking at once: every instance was polled by exactly one of them
        assert sum(polled) == len(ids)
        # and by nobody else until the interval is over
        assert await poll_due_instances(wc) == 0 and await poll_due_instances(other) == 0
        async with app.state.sessionmaker() as session:
            instance = await activity_repo.instance_by_id(session, world.instance_id)
            assert instance is not None and instance.reconciled_at is not None
    finally:
        await other.close()


async def test_poller_meeting_a_rejected_token_marks_the_connection(  # type: ignore[no-untyped-def]
        app, api, sim, world, wc):
    sim.control.revoke(SIM, user="jdoe")
    report = await reconcile_instance(reconcile_deps(wc), world.instance_id)
    assert not report.polled
    connections = (await api.get("/api/v1/users/jdoe/connections", headers=world.headers)).json()
    assert [c["status"] for c in connections] == ["auth_required"]
    audit = (await api.get("/api/v1/audit", params={"limit": 20}, headers=world.headers)).json()
    assert any(a["action"] == "auth.token_rejected" and "reconciliation" in (a["detail"] or "") for a in audit)


async def test_a_push_in_flight_when_jira_wins_settles_the_conflict_it_overwrote(  # type: ignore[no-untyped-def]
        app, api, api_without_window, wc, world, relay, sim):
    sim.control.set_webhook(SIM, relay.url, secret=world.webhook_secret)
    synced = await put_and_push(api, wc, world, "301")
    await forward(api, world, relay)  # the echo of our create
    await api.put("/api/v1/entries/301", json=entry(ticket="PROJ-7", duration=45), headers=world.headers)
    sim.control.set_faults(SIM, latency_ms=5000, writes_only=True)
    try:
        in_flight = asyncio.create_task(wc.push(world.tenant.tenant_id, "301"))

        async def write_at_jira() -> bool:
            return bool(sim.control.counters(SIM)["in_flight_writes"].get("PROJ-7"))

        await wait_until(write_at_jira, timeout=30, interval=0.05)
        sim.control.remote_edit(SIM, synced["sync"]["worklog_id"], time_spent_seconds=7200, as_user="alice")
        # for an entry changed long ago (whose change is still on its way), JIRA's edit wins for now
        assert "jira_wins" in await forward(api_without_window, world, relay)
        assert (await row_of(app, world, "301")).sync_status == "conflict"
        await in_flight
    finally:
        sim.control.clear_faults(SIM)
    await push(wc, world, "301")
    # our write replaced JIRA's edit: JIRA and the entry agree, and the conflict says why it closed
    await assert_jira_equals_entry(app, world, "301")
    assert (await row_of(app, world, "301")).duration == 45
    resolved = (await api.get("/api/v1/conflicts?status=resolved", headers=world.headers)).json()
    assert [c["entry_id"] for c in resolved] == ["301"]
    audit = (await api.get("/api/v1/audit", params={"entry_id": "301"}, headers=world.headers)).json()
    assert any("in flight" in (a["detail"] or "") for a in audit)
