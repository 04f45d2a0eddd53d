"""Connections (CONTRACT section 4) and ticket look-ups (section 9) against the JIRA simulator."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select, update

from jirasim.testing import SimServer
from tests.e2e.conftest import JiraSetup, oauth_dance


async def _start(api: httpx.AsyncClient, setup: JiraSetup, user: str = "jdoe") -> str:
    r = await api.post(f"/api/v1/jira-instances/{setup.instance_id}/oauth/start", json={"user": user},
                       headers=setup.headers)
    assert r.status_code == 200, r.text
    url = r.json()["authorize_url"]
    assert url.startswith(f"{setup.base_url}/plugins/servlet/oauth/authorize?oauth_token=")
    return url


async def _audit_actions(app: Any, tenant_id: uuid.UUID) -> list[str]:
    from app.db.models import AuditRow

    async with app.state.sessionmaker() as session:
        rows = (await session.execute(select(AuditRow.action).where(AuditRow.tenant_id == tenant_id)
                                      .order_by(AuditRow.id))).scalars()
        return list(rows)


async def test_start_needs_a_known_instance_of_the_tenant(api: httpx.AsyncClient, jira_setup: Any,
                                                          make_tenant: Any) -> None:
    setup: JiraSetup = await jira_setup()
    other = {"Authorization": f"Bearer {(await make_tenant()).api_key}"}
    url = f"/api/v1/jira-instances/{setup.instance_id}/oauth/start"
    assert (await api.post(url, json={"user": "jdoe"}, headers=other)).status_code == 404
    assert (await api.post(f"/api/v1/jira-instances/{uuid.uuid4()}/oauth/start", json={"user": "jdoe"},
                           headers=setup.headers)).status_code == 404
    r = await api.post(url, json={"user": "jdoe", "return_url": "javascript:alert(1)"}, headers=setup.headers)
    assert r.status_code == 422 and "return_url" in r.text
    assert (await api.post(url, json={}, headers=setup.headers)).status_code == 422
    assert (await api.post(url, json={"user": "jdoe"})).status_code == 401


async def test_callback_refuses_unknown_missing_and_expired_tokens(
    api: httpx.AsyncClient, app: Any, jira_setup: Any,
) -> None:
    from app.db.models import OAuthRequestRow

    assert (await api.get("/oauth/jira/callback")).status_code == 400
    assert (await api.get("/oauth/jira/callback?oauth_token=nope&oauth_verifier=x")).status_code == 400
    setup: JiraSetup = await jira_setup()
    url = await _start(api, setup)
    token = httpx.URL(url).params["oauth_token"]
    assert (await api.get(f"/oauth/jira/callback?oauth_token={token}")).status_code == 400  # no verifier
    async with app.state.sessionmaker() as session:
        await session.execute(update(OAuthRequestRow).where(OAuthRequestRow.tenant_id == setup.tenant.tenant_id)
                              .values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
        await session.commit()
    r = await api.get(f"/oauth/jira/callback?oauth_token={token}&oauth_verifier=abc")
    assert r.status_code == 400 and "expired" in r.json()["detail"]


async def test_request_token_is_stored_hashed_and_sealed(api: httpx.AsyncClient, app: Any,
                                                         jira_setup: Any) -> None:
    from app.db.models import OAuthRequestRow
    from app.services.connect import token_hash

    setup: JiraSetup = await jira_setup()
    token = httpx.URL(await _start(api, setup, "jdoe")).params["oauth_token"]
    async with app.state.sessionmaker() as session:
        row = (await session.execute(select(OAuthRequestRow).where(
            OAuthRequestRow.tenant_id == setup.tenant.tenant_id))).scalar_one()
    assert row.request_token_hash == token_hash(token) and token.encode() not in row.request_token_enc
    assert row.user == "jdoe" and row.used_at is None
    assert timedelta(minutes=9) < row.expires_at - datetime.now(UTC) <= timedelta(minutes=10)


async def test_connect_resumes_auth_required_entries_and_reads_their_notifications(
    api: httpx.AsyncClient, app: Any, jira_setup: Any, sim: SimServer,
) -> None:
    from app.db.models import EntryRow, NotificationRow
    from app.db.repositories import entries as entries_repo

    setup: JiraSetup = await jira_setup()
    tenant_id, instance_id = setup.tenant.tenant_id, uuid.UUID(setup.instance_id)
    entry = {"user": "jdoe", "ticket": "PROJ-1", "date": "2026-11-25", "start": "09:00", "duration": 30}
    for entry_id in ("a1", "a2"):
        assert (await api.put(f"/api/v1/entries/{entry_id}", json=entry, headers=setup.headers)).status_code == 202
    await api.put("/api/v1/entries/other", json={**entry, "user": "someone"}, headers=setup.headers)
    # what a push without a connection leaves behind
    async with app.state.sessionmaker() as session:
        await session.execute(update(EntryRow).where(EntryRow.tenant_id == tenant_id)
                              .values(sync_status="auth_required", due_at=None, last_error="connect JIRA"))
        entries_repo.add_notification(session, tenant_id=tenant_id, user="jdoe", kind="auth_required",
                                      message="connect JIRA", entry_id="a1", jira_instance_id=instance_id)
        await session.commit()

    r = await oauth_dance(api, setup, "jdoe")
    assert r.status_code == 200 and r.json()["status"] == "connected"

    for entry_id in ("a1", "a2"):
        sync = (await api.get(f"/api/v1/entries/{entry_id}", headers=setup.headers)).json()["sync"]
        assert sync["status"] == "pending" and sync["last_error"] is None
    assert (await api.get("/api/v1/entries/other", headers=setup.headers)).json()["sync"]["status"] == "auth_required"
    async with app.state.sessionmaker() as session:
        rows = (await session.execute(select(EntryRow).where(EntryRow.tenant_id == tenant_id,
                                                             EntryRow.user == "jdoe"))).scalars().all()
        assert all(r.due_at is not None and r.priority == 0 for r in rows)
        note = (await session.execute(select(NotificationRow).where(NotificationRow.tenant_id == tenant_id))
                ).scalar_one()
        assert note.read_at is not None

    actions = await _audit_actions(app, tenant_id)
    for expected in ("jira.fetch_request_token", "auth.oauth_start", "jira.fetch_access_token", "jira.myself",
                     "auth.connected"):
        assert expected in actions


async def test_list_and_forget_connections(api: httpx.AsyncClient, app: Any, jira_setup: Any,
                                           connect_user: Any, make_tenant: Any) -> None:
    setup: JiraSetup = await jira_setup()
    second: JiraSetup = await jira_setup(tenant=setup.tenant)
    await connect_user(setup, "jdoe")
    await connect_user(second, "jdoe", jira_user="bob")
    r = await api.get("/api/v1/users/jdoe/connections", headers=setup.headers)
    assert {c["jira_instance"]: c["status"] for c in r.json()} == {
        setup.instance_id: "connected", second.instance_id: "connected"}
    other = {"Authorization": f"Bearer {(await make_tenant()).api_key}"}
    assert (await api.get("/api/v1/users/jdoe/connections", headers=other)).json() == []
    assert (await api.delete(f"/api/v1/users/jdoe/connections/{setup.instance_id}", headers=other)).status_code == 404

    assert (await api.delete(f"/api/v1/users/jdoe/connections/{setup.instance_id}",
                             headers=setup.headers)).status_code == 204
    assert (await api.delete(f"/api/v1/users/jdoe/connections/{setup.instance_id}",
                             headers=setup.headers)).status_code == 404
    r = await api.get("/api/v1/users/jdoe/connections", headers=setup.headers)
    assert [c["jira_instance"] for c in r.json()] == [second.instance_id]
    assert "auth.disconnected" in await _audit_actions(app, setup.tenant.tenant_id)


async def test_tickets_need_a_connection(api: httpx.AsyncClient, jira_setup: Any) -> None:
    setup: JiraSetup = await jira_setup()
    r = await api.get(f"/api/v1/jira-instances/{setup.instance_id}/tickets/PROJ-1?user=jdoe", headers=setup.headers)
    assert r.status_code == 409 and "oauth/start" in r.json()["detail"]
    r = await api.get(f"/api/v1/jira-instances/{setup.instance_id}/tickets/PROJ-1", headers=setup.headers)
    assert r.status_code == 422


async def test_ticket_and_subtickets_are_looked_up_as_the_user_and_cached(
    api: httpx.AsyncClient, app: Any, jira_setup: Any, connect_user: Any, sim: SimServer,
) -> None:
    setup: JiraSetup = await jira_setup()
    await connect_user(setup, "jdoe")
    base = f"/api/v1/jira-instances/{setup.instance_id}/tickets"
    r = await api.get(f"{base}/proj-2?user=jdoe", headers=setup.headers)
    assert r.status_code == 200, r.text
    assert r.json() == {"key": "PROJ-2", "summary": "First subtask", "subtask": True, "parent": "PROJ-1"}
    r = await api.get(f"{base}/PROJ-1/subtickets?user=jdoe", headers=setup.headers)
    assert r.json() == {"items": [{"key": "PROJ-2", "summary": "First subtask"},
                                  {"key": "PROJ-3", "summary": "Second subtask"}]}
    assert (await api.get(f"{base}/PROJ-4/subtickets?user=jdoe", headers=setup.headers)).json() == {"items": []}
    assert (await api.get(f"{base}/PROJ-99?user=jdoe", headers=setup.headers)).status_code == 404
    assert (await api.get(f"{base}/PROJ-98/subtickets?user=jdoe", headers=setup.headers)).status_code == 404
    assert (await api.get(f"{base}/not a key?user=jdoe", headers=setup.headers)).status_code == 422

    before = sim.control.counters(setup.sim_name)["requests"]
    for _ in range(3):
        assert (await api.get(f"{base}/PROJ-2?user=jdoe", headers=setup.headers)).status_code == 200
        assert (await api.get(f"{base}/PROJ-1/subtickets?user=jdoe", headers=setup.headers)).status_code == 200
        assert (await api.get(f"{base}/PROJ-99?user=jdoe", headers=setup.headers)).status_code == 404
    assert sim.control.counters(setup.sim_name)["requests"] == before
    assert "jira.get_issue" in await _audit_actions(app, setup.tenant.tenant_id)


async def test_rejected_token_on_a_lookup_asks_for_a_reconnect(
    api: httpx.AsyncClient, jira_setup: Any, connect_user: Any, sim: SimServer,
) -> None:
    setup: JiraSetup = await jira_setup()
    await connect_user(setup, "jdoe")
    sim.control.revoke(setup.sim_name, user="alice")
    r = await api.get(f"/api/v1/jira-instances/{setup.instance_id}/tickets/OPS-1?user=jdoe", headers=setup.headers)
    assert r.status_code == 409 and "reconnect" in r.json()["detail"]
    r = await api.get("/api/v1/users/jdoe/connections", headers=setup.headers)
    assert [c["status"] for c in r.json()] == ["auth_required"]


async def test_jira_down_during_start_is_a_readable_502(api: httpx.AsyncClient, jira_setup: Any,
                                                        sim: SimServer) -> None:
    setup: JiraSetup = await jira_setup()
    sim.control.set_faults(setup.sim_name, error_rate=1.0, error_statuses=[503])
    r = await api.post(f"/api/v1/jira-instances/{setup.instance_id}/oauth/start", json={"user": "jdoe"},
                       headers=setup.headers)
    assert r.status_code == 502
    assert "could not be reached" in r.json()["detail"] and setup.base_url in r.json()["detail"]
