"""Jira Cloud → TimeTracker (CONTRACT 12, with sections 7 and 8): an admin webhook signed with the instance's secret,
and the `worklog/updated` / `worklog/deleted` poller behind Atlassian's gateway (authors are accountIds), apply the
conflict policy exactly as on Data Center. The session simulator serves the site and Atlassian's platform."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from app.services.reconcile import reconcile_instance
from jirasim.testing import SimServer
from tests.e2e.conftest import JiraSetup
from tests.e2e.engine_support import World
from tests.e2e.test_bidirectional import (
    Relay,
    assert_jira_equals_entry,
    conflict_of,
    forward,
    push,
    put_and_push,
    reconcile_deps,
    row_of,
)
from workers.context import WorkerContext, build_context


@pytest.fixture(scope="module")
def relay() -> Iterator[Relay]:
    r = Relay()
    yield r
    r.server.shutdown()


@pytest.fixture
async def wc(settings: Any) -> AsyncIterator[WorkerContext]:
    context = build_context(settings)
    yield context
    await context.close()


@pytest.fixture
async def cloud(jira_setup: Any, connect_user: Any, sim: SimServer) -> World:
    """A Cloud site with jdoe connected as alice, as a `World` for the bidirectional helpers."""
    setup: JiraSetup = await jira_setup(auth="3lo", issues=[{"key": "PROJ-7"}])
    assert await connect_user(setup, "jdoe", jira_user="alice") == "connected"
    return World(sim.control, setup.sim_name, setup.tenant, uuid.UUID(setup.instance_id), "", setup.headers,
                 setup.webhook_secret, setup)


async def assert_equal_on_the_site(app: Any, world: World, entry_id: str) -> None:
    """As `assert_jira_equals_entry`, on the Cloud site (the helper reads the simulator instance `jira1`)."""
    from tests.e2e import test_bidirectional

    original = test_bidirectional.SIM
    test_bidirectional.SIM = world.sim_instance
    try:
        await assert_jira_equals_entry(app, world, entry_id)
    finally:
        test_bidirectional.SIM = original


async def test_an_admin_webhook_brings_a_remote_edit_of_an_old_entry_as_a_conflict(  # type: ignore[no-untyped-def]
        app, api, api_without_window, wc, cloud, relay, sim):
    site = cloud.sim_instance
    sim.control.set_webhook(site, relay.url, secret=cloud.webhook_secret)
    synced = await put_and_push(api, wc, cloud, "c101")
    [event] = sim.control.webhook_events(site)
    assert event["payload"]["worklog"]["author"]["accountId"] == sim.control.atlassian()["accounts"]["alice"]
    assert set(await forward(api, cloud, relay)) == {"ignore"}  # the echo of our create changes nothing
    sim.control.remote_edit(site, synced["sync"]["worklog_id"], time_spent_seconds=7200,
                            comment="#c101: Development: work and review", as_user="bob")
    assert "jira_wins" in await forward(api_without_window, cloud, relay)
    row = await row_of(app, cloud, "c101")
    assert row.sync_status == "conflict" and "changed in JIRA" in (row.last_error or "")
    conflict = await conflict_of(api, cloud, "c101")
    r = await api.post(f"/api/v1/conflicts/{conflict['id']}/resolve", json={"winner": "jira"}, headers=cloud.headers)
    assert r.status_code == 200, r.text
    await push(wc, cloud, "c101")
    assert ((await row_of(app, cloud, "c101")).duration, (await row_of(app, cloud, "c101")).description) == (
        120, "work and review")
    await assert_equal_on_the_site(app, cloud, "c101")
    # a wrongly signed delivery is refused
    r = await api.post(f"/webhooks/jira/{cloud.instance_id}", content=b"{}", headers={"X-Hub-Signature": "sha256=0"})
    assert r.status_code == 401


async def test_the_poller_reads_the_sites_feeds_behind_the_gateway(  # type: ignore[no-untyped-def]
        app, api, wc, cloud, sim):
    site = cloud.sim_instance
    edited = await put_and_push(api, wc, cloud, "c201")
    deleted = await put_and_push(api, wc, cloud, "c202")
    deps = reconcile_deps(wc, long_ago=True)
    first = await reconcile_instance(deps, cloud.instance_id)
    assert first.polled and first.outcomes.get("jira_wins", 0) == 0, first
    sim.control.remote_edit(site, edited["sync"]["worklog_id"], time_spent_seconds=1800, as_user="bob")
    report = await reconcile_instance(deps, cloud.instance_id)
    assert report.outcomes["jira_wins"] == 1, report
    assert (await row_of(app, cloud, "c201")).sync_status == "conflict"
    # a recent entry's worklog deleted in JIRA: TimeTracker wins and the worklog comes back, with its property
    sim.control.remote_delete(site, deleted["sync"]["worklog_id"])
    report = await reconcile_instance(reconcile_deps(wc), cloud.instance_id)
    assert report.outcomes["timetracker_wins"] == 1, report
    await push(wc, cloud, "c202")
    await assert_equal_on_the_site(app, cloud, "c202")
    [again] = [w for w in sim.control.worklogs(site, "PROJ-7") if str(w["comment"]).startswith("#c202:")]
    assert again["properties"][0]["value"]["entry"] == "c202"
    feeds = [e for e in sim.control.log(site) if "/worklog/updated" in e["path"] or "/worklog/deleted" in e["path"]]
    assert feeds and all(e["auth"] == "3lo" and "/api.atlassian.com/ex/jira/" in e["path"] for e in feeds)
