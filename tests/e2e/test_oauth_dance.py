"""End to end against the JIRA simulator: the OAuth 1.0a dance through the API, and a worklog round trip."""

from __future__ import annotations

import uuid
from datetime import date, time
from typing import Any

import httpx

from jirasim.testing import SimServer
from tests.e2e.conftest import JiraSetup, oauth_dance


async def test_connect_through_the_whole_dance(api: httpx.AsyncClient, jira_setup: Any, sim: SimServer) -> None:
    setup: JiraSetup = await jira_setup(approve_as="bob")
    r = await oauth_dance(api, setup, "jdoe")
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "connected", "user": "jdoe", "jira_instance": setup.instance_id,
                        "jira_username": "bob"}
    r = await api.get("/api/v1/users/jdoe/connections", headers=setup.headers)
    [connection] = r.json()
    assert connection["status"] == "connected" and connection["jira_instance"] == setup.instance_id
    assert connection["connected_at"] and connection["jira_username"] == "bob"
    # the simulator saw: request-token, access-token and myself, all signed with the generated key
    tokens = sim.control.tokens(setup.sim_name)
    assert [t["user"] for t in tokens if t.get("user")] == ["bob"]


async def test_connect_redirects_to_the_return_url(api: httpx.AsyncClient, jira_setup: Any) -> None:
    setup: JiraSetup = await jira_setup()
    r = await oauth_dance(api, setup, "jdoe", return_url="https://tt.example.com/settings?tab=jira")
    assert r.status_code == 303
    assert r.headers["location"] == "https://tt.example.com/settings?tab=jira"


async def test_denied_dance_stores_no_token(api: httpx.AsyncClient, jira_setup: Any) -> None:
    setup: JiraSetup = await jira_setup(authorize_mode="deny")
    r = await oauth_dance(api, setup, "jdoe", return_url="https://tt.example.com/")
    assert r.status_code == 200
    assert r.json()["status"] == "denied" and r.json()["user"] == "jdoe"
    r = await api.get("/api/v1/users/jdoe/connections", headers=setup.headers)
    assert [c["status"] for c in r.json()] == ["denied"]


async def test_callback_token_is_single_use(api: httpx.AsyncClient, jira_setup: Any, sim: SimServer) -> None:
    setup: JiraSetup = await jira_setup()
    r = await api.post(f"/api/v1/jira-instances/{setup.instance_id}/oauth/start", json={"user": "jdoe"},
                       headers=setup.headers)
    async with httpx.AsyncClient(trust_env=False) as browser:
        page = await browser.get(r.json()["authorize_url"])
    callback = httpx.URL(page.headers["location"])
    first = await api.get(f"{callback.path}?{callback.query.decode()}")
    assert first.status_code == 200
    again = await api.get(f"{callback.path}?{callback.query.decode()}")
    assert again.status_code == 400
    assert "already used" in again.json()["detail"]


async def test_worklog_round_trip_with_the_stored_credentials(
    api: httpx.AsyncClient, app: Any, jira_setup: Any, connect_user: Any, sim: SimServer,
) -> None:
    from app.db.repositories import jira as jira_repo
    from app.domain.worklog import build_worklog
    from app.jira.client import JiraClient
    from app.jira.gate import NoGate

    setup: JiraSetup = await jira_setup()
    assert await connect_user(setup, "jdoe", jira_user="alice") == "connected"
    async with app.state.sessionmaker() as session:
        instance = await jira_repo.get_instance(session, setup.tenant.tenant_id, uuid.UUID(setup.instance_id))
        assert instance is not None
        connection = await jira_repo.get_connection(session, instance.tenant_id, instance.id, "jdoe")
        assert connection is not None
        target = app.state.credentials.user_target(instance, connection)
    assert target is not None
    jira = JiraClient(app.state.http, gate=NoGate())
    body = build_worklog(entry_id="4711", day=date(2026, 11, 25), start=time(9, 0), zone="Europe/Berlin",
                        duration_minutes=90, activity="Development", description="Fix login")
    created = await jira.create_worklog(target, "PROJ-2", body)
    [stored] = sim.control.worklogs(setup.sim_name, "PROJ-2")
    assert str(stored["id"]) == created.id
    assert stored["timeSpentSeconds"] == 5400 and stored["comment"] == "#4711: Development: Fix login"
    assert stored["author"]["name"] == "alice"
    back = await jira.get_worklog(target, "PROJ-2", created.id)
    assert back.anchor == "4711" and back.time_spent_seconds == 5400


async def test_instance_key_mismatch_is_a_readable_502(api: httpx.AsyncClient, jira_setup: Any, sim: SimServer) -> None:
    setup: JiraSetup = await jira_setup()
    sim.control.remove_consumer(setup.sim_name, setup.consumer_key)
    r = await api.post(f"/api/v1/jira-instances/{setup.instance_id}/oauth/start", json={"user": "jdoe"},
                       headers=setup.headers)
    assert r.status_code == 502
    detail = r.json()["detail"]
    assert "rejected" in detail and setup.consumer_key in detail
