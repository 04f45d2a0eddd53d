"""Personal access tokens (CONTRACT 13, `auth: pat`): checked with `myself` before they are stored (sealed, bound
to their row), the token's account becomes `jira_username`, a later 401 asks for a new token, a new token resumes
the user's entries."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import select

from app.db.models import AuditRow, ConnectionRow
from jirasim.testing import SimServer
from tests.e2e.conftest import JiraSetup, store_token


def _put(api: httpx.AsyncClient, setup: JiraSetup, token: str, user: str = "jdoe", **extra: Any) -> Any:
    return api.put(f"/api/v1/users/{user}/connections/{setup.instance_id}",
                   json={"personal_access_token": token, **extra}, headers=setup.headers)


async def _connection(app: Any, setup: JiraSetup, user: str = "jdoe") -> ConnectionRow | None:
    async with app.state.sessionmaker() as session:
        return (await session.execute(select(ConnectionRow).where(
            ConnectionRow.tenant_id == setup.tenant.tenant_id, ConnectionRow.user == user))).scalar_one_or_none()


async def test_a_token_is_checked_with_myself_and_stored_sealed(api: httpx.AsyncClient, app: Any, jira_setup: Any,
                                                               sim: SimServer) -> None:
    setup: JiraSetup = await jira_setup(auth="pat")
    r = await store_token(api, sim.control, setup, "jdoe", "bob")
    assert r.status_code == 200, r.text
    view = r.json()
    assert (view["status"], view["jira_username"], view["auth"]) == ("connected", "bob", "pat")
    token = setup.extra["pat:bob"]
    assert token not in r.text
    [check] = [e for e in sim.control.log(setup.sim_name) if e["path"].endswith("/rest/api/2/myself")]
    assert (check["auth"], check["user"], check["status"]) == ("pat", "bob", 200)
    row = await _connection(app, setup)
    assert row is not None and row.access_token_enc is not None and token.encode() not in row.access_token_enc
    assert row.token_secret_enc is None and row.refresh_token_enc is None
    listed = (await api.get("/api/v1/users/jdoe/connections", headers=setup.headers)).json()
    assert [(c["auth"], c["status"], c["jira_username"]) for c in listed] == [("pat", "connected", "bob")]
    # the stored token works for look-ups as bob
    r = await api.get(f"/api/v1/jira-instances/{setup.instance_id}/tickets/PROJ-2?user=jdoe", headers=setup.headers)
    assert r.status_code == 200 and r.json()["key"] == "PROJ-2"
    assert sim.control.log(setup.sim_name)[-1]["auth"] == "pat"


async def test_a_token_jira_rejects_is_422_and_stores_nothing(api: httpx.AsyncClient, app: Any, jira_setup: Any,
                                                             sim: SimServer) -> None:
    setup: JiraSetup = await jira_setup(auth="pat")
    revoked = sim.control.create_pat(setup.sim_name, "alice")
    sim.control.revoke_pats(setup.sim_name, user="alice")
    for token in ("no-such-token", revoked["token"]):
        r = await _put(api, setup, token)
        assert r.status_code == 422 and r.json()["detail"].startswith("JIRA rejected this token"), r.text
        assert token not in r.text
    assert await _connection(app, setup) is None
    async with app.state.sessionmaker() as session:
        audit = list((await session.execute(select(AuditRow).where(
            AuditRow.tenant_id == setup.tenant.tenant_id))).scalars())
    assert [a.action for a in audit].count("auth.token_refused") == 2
    assert all(revoked["token"] not in (a.detail or "") for a in audit)


async def test_a_token_of_another_account_than_expected_stores_nothing(api: httpx.AsyncClient, app: Any,
                                                                      jira_setup: Any, sim: SimServer) -> None:
    setup: JiraSetup = await jira_setup(auth="pat")
    token = sim.control.create_pat(setup.sim_name, "bob")["token"]
    r = await _put(api, setup, token, expected_jira_user="alice")
    assert r.status_code == 409 and "bob" in r.json()["detail"] and "alice" in r.json()["detail"]
    assert await _connection(app, setup) is None
    r = await _put(api, setup, token, expected_jira_user="BOB")  # JIRA usernames are case-insensitive
    assert r.status_code == 200 and r.json()["jira_username"] == "bob"


async def test_tokens_are_for_pat_instances_only(api: httpx.AsyncClient, jira_setup: Any, make_tenant: Any) -> None:
    oauth1: JiraSetup = await jira_setup()
    r = await _put(api, oauth1, "whatever")
    assert r.status_code == 409 and "oauth/start" in r.json()["detail"]
    pat: JiraSetup = await jira_setup(auth="pat")
    r = await api.post(f"/api/v1/jira-instances/{pat.instance_id}/oauth/start", json={"user": "jdoe"},
                       headers=pat.headers)
    assert r.status_code == 409 and f"/api/v1/users/jdoe/connections/{pat.instance_id}" in r.json()["detail"]
    other = {"Authorization": f"Bearer {(await make_tenant()).api_key}"}
    r = await api.put(f"/api/v1/users/jdoe/connections/{pat.instance_id}", json={"personal_access_token": "x"},
                      headers=other)
    assert r.status_code == 404
    for bad in ({}, {"personal_access_token": ""}, {"personal_access_token": "has space"},
                {"personal_access_token": "x" * 501}, {"personal_access_token": "x", "extra": 1}):
        r = await api.put(f"/api/v1/users/jdoe/connections/{pat.instance_id}", json=bad, headers=pat.headers)
        assert r.status_code == 422, bad
        assert "has space" not in r.text


async def test_a_rejected_token_asks_for_a_new_one_which_resumes_the_entries(
    api: httpx.AsyncClient, app: Any, jira_setup: Any, sim: SimServer, pusher: Any,
) -> None:
    setup: JiraSetup = await jira_setup(auth="pat")
    assert (await store_token(api, sim.control, setup, "jdoe", "alice")).status_code == 200
    sim.control.revoke_pats(setup.sim_name, user="alice")
    entry = {"user": "jdoe", "ticket": "PROJ-1", "date": "2026-11-25", "start": "09:00", "duration": 30}
    assert (await api.put("/api/v1/entries/p1", json=entry, headers=setup.headers)).status_code == 202
    tenant_id = uuid.UUID(str(setup.tenant.tenant_id))
    await pusher(tenant_id, "p1")
    sync = (await api.get("/api/v1/entries/p1", headers=setup.headers)).json()["sync"]
    assert sync["status"] == "auth_required" and sync["attempts"] == 0
    r = await api.get(f"/api/v1/jira-instances/{setup.instance_id}/tickets/PROJ-2?user=jdoe", headers=setup.headers)
    assert r.status_code == 409 and "personal access token" in r.json()["detail"]
    notes = (await api.get("/api/v1/notifications?user=jdoe&unread=true", headers=setup.headers)).json()
    assert [n["kind"] for n in notes] == ["auth_required"]

    r = await store_token(api, sim.control, setup, "jdoe", "alice")
    assert r.status_code == 200 and r.json()["status"] == "connected"
    assert (await api.get("/api/v1/entries/p1", headers=setup.headers)).json()["sync"]["status"] == "pending"
    assert (await api.get("/api/v1/notifications?user=jdoe&unread=true", headers=setup.headers)).json() == []
    await pusher(tenant_id, "p1")
    sync = (await api.get("/api/v1/entries/p1", headers=setup.headers)).json()["sync"]
    assert sync["status"] == "synced" and sync["attempts"] == 1
    [worklog] = sim.control.worklogs(setup.sim_name, "PROJ-1")
    assert worklog["author"]["name"] == "alice"


async def test_a_401_to_the_token_of_an_earlier_connect_leaves_a_new_connection_alone(
        api: httpx.AsyncClient, app: Any, jira_setup: Any, sim: SimServer) -> None:
    """A push that left with the old token meets a 401 after the user connected again: the new connection stays
    (its token was not the one refused); a 401 to the current connect's token still rejects it."""
    from app.services.connect import reject_connection

    setup: JiraSetup = await jira_setup(auth="pat")
    assert (await store_token(api, sim.control, setup, "jdoe", "bob")).status_code == 200
    first = await _connection(app, setup)
    assert first is not None and first.connected_at is not None
    assert (await store_token(api, sim.control, setup, "jdoe", "bob")).status_code == 200  # connected again
    current = await _connection(app, setup)
    assert current is not None and current.connected_at != first.connected_at

    async def reject(connected_at: Any) -> str | None:
        async with app.state.sessionmaker() as session:
            row = await reject_connection(session, tenant_id=setup.tenant.tenant_id,
                                          instance_id=uuid.UUID(setup.instance_id), user="jdoe",
                                          oauth_problem="token_rejected", connected_at=connected_at)
            await session.commit()
            return None if row is None else row.status

    assert await reject(first.connected_at) == "connected"
    assert await reject(current.connected_at) == "auth_required"
