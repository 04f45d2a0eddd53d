"""Who approved, and whose worklogs may be adopted (CONTRACT 11): against the JIRA simulator, whose `approve_as`
chooses the JIRA account that approves an OAuth request."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import update

from app.db.models import EntryRow
from jirasim.testing import SimServer
from tests.e2e.conftest import JiraSetup, oauth_dance


async def test_the_expected_jira_user_approving_connects(api: httpx.AsyncClient, jira_setup: Any) -> None:
    setup: JiraSetup = await jira_setup(approve_as="alice")
    r = await oauth_dance(api, setup, "jdoe", expected_jira_user="Alice")  # JIRA user names ignore case
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "connected" and r.json()["jira_username"] == "alice"


async def test_another_jira_user_approving_stores_nothing(api: httpx.AsyncClient, jira_setup: Any,
                                                          sim: SimServer) -> None:
    setup: JiraSetup = await jira_setup(approve_as="bob")
    r = await oauth_dance(api, setup, "jdoe", expected_jira_user="alice")
    assert r.status_code == 409
    assert r.json()["detail"] == ("JIRA user bob approved the connection, but alice was expected: "
                                  "nothing was stored; approve it as alice")
    assert (await api.get("/api/v1/users/jdoe/connections", headers=setup.headers)).json() == []
    audit = (await api.get("/api/v1/audit", params={"limit": 50}, headers=setup.headers)).json()
    assert any(a["action"] == "auth.wrong_jira_user" for a in audit)

    r = await oauth_dance(api, setup, "jdoe", expected_jira_user="alice", return_url="https://tt.example.com/s?x=1")
    assert r.status_code == 303
    location = urlsplit(r.headers["location"])
    assert (location.scheme, location.netloc, location.path) == ("https", "tt.example.com", "/s")
    assert parse_qs(location.query) == {"x": ["1"], "error": ["wrong_jira_user"]}
    assert (await api.get("/api/v1/users/jdoe/connections", headers=setup.headers)).json() == []


async def test_a_wrong_approval_leaves_a_working_connection_alone(api: httpx.AsyncClient, jira_setup: Any,
                                                                  sim: SimServer) -> None:
    setup: JiraSetup = await jira_setup(approve_as="alice")
    assert (await oauth_dance(api, setup, "jdoe", expected_jira_user="alice")).status_code == 200
    sim.control.set_settings(setup.sim_name, authorize_mode="approve", approve_as="bob")
    assert (await oauth_dance(api, setup, "jdoe", expected_jira_user="alice")).status_code == 409
    [connection] = (await api.get("/api/v1/users/jdoe/connections", headers=setup.headers)).json()
    assert connection["status"] == "connected" and connection["jira_username"] == "alice"


async def _push_after_an_unknown_outcome(app: Any, api: httpx.AsyncClient, settings: Any, setup: JiraSetup,
                                         entry_id: str) -> dict[str, Any]:
    """The entry as if a create had been sent and its outcome were unknown, then pushed by a real engine."""
    from workers.context import build_context

    body = {"user": "jdoe", "ticket": "PROJ-2", "date": "2026-11-25", "start": "09:00", "duration": 30,
            "timezone": "Europe/Berlin", "description": "mine", "activity": "Dev"}
    assert (await api.put(f"/api/v1/entries/{entry_id}", json=body, headers=setup.headers)).status_code == 202
    async with app.state.sessionmaker() as session:
        await session.execute(update(EntryRow).where(
            EntryRow.tenant_id == setup.tenant.tenant_id, EntryRow.id == entry_id,
        ).values(create_unconfirmed=True, worklog_instance_id=uuid.UUID(setup.instance_id), worklog_ticket="PROJ-2"))
        await session.commit()
    context = build_context(settings)
    try:
        assert await context.push(setup.tenant.tenant_id, entry_id) is None
    finally:
        await context.close()
    return dict((await api.get(f"/api/v1/entries/{entry_id}", headers=setup.headers)).json()["sync"])


@pytest.mark.parametrize("author, adopted", [("bob", False), ("alice", True)])
async def test_only_the_connections_own_anchored_worklog_is_adopted(
    app: Any, api: httpx.AsyncClient, settings: Any, jira_setup: Any, connect_user: Any, sim: SimServer,
    author: str, adopted: bool,
) -> None:
    """An anchored worklog by another author (anyone can type `#<id>:`) is never adopted: the entry gets its
    own worklog, and the other one is left alone."""
    setup: JiraSetup = await jira_setup()
    assert await connect_user(setup, "jdoe", jira_user="alice") == "connected"
    found = sim.control.create_worklog_as(setup.sim_name, "PROJ-2", author, 60 * 60, comment="#e-a: Dev: whose?")
    sync = await _push_after_an_unknown_outcome(app, api, settings, setup, "e-a")
    assert sync["status"] == "synced"
    assert (sync["worklog_id"] == str(found["id"])) is adopted
    worklogs = {str(w["id"]): w for w in sim.control.worklogs(setup.sim_name, "PROJ-2")}
    assert worklogs[sync["worklog_id"]]["author"]["name"] == "alice"
    anchored = [w for w in worklogs.values() if w["comment"].startswith("#e-a:")]
    assert len(anchored) == (1 if adopted else 2)
    if not adopted:
        assert worklogs[str(found["id"])]["comment"] == "#e-a: Dev: whose?"  # left alone
