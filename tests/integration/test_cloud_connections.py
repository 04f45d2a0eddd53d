"""Jira Cloud sites and their 3LO connections (CONTRACT 12) against the simulator's Atlassian platform: what a Cloud
instance takes and refuses, the authorize URL, the callback (code exchange, the site among the accessible resources
→ `cloud_id`, the approving accountId, the consent's end), denials, a lost renewal answer recovered within
Atlassian's leeway, and the notice a month before a consent ends."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import select, update

from app.db.models import AuditRow, ConnectionRow, JiraInstanceRow, NotificationRow, OAuthRequestRow
from app.services.connect import token_hash
from app.services.connect_atlassian import notify_expiring
from jirasim.testing import SimServer, consent
from tests.e2e.conftest import JiraSetup, oauth_dance
from tests.integration.connect_support import callback_path, connections_of, start_authorize

CALLBACK = "/oauth/atlassian/callback"








async def _instance(app: Any, setup: JiraSetup) -> JiraInstanceRow:
    async with app.state.sessionmaker() as session:
        row = await session.get(JiraInstanceRow, uuid.UUID(setup.instance_id))
    assert row is not None
    return row


def _oauth(sim: SimServer) -> dict[str, int]:
    return dict(sim.control.atlassian_counters()["oauth"])


@pytest.fixture
def cloud_setup(jira_setup: Any, sim: SimServer) -> Any:
    """`jira_setup(auth="3lo")`, with Atlassian's consent page approving as alice for every site she reaches."""
    async def make(**options: Any) -> JiraSetup:
        setup: JiraSetup = await jira_setup(auth="3lo", **options)
        sim.control.set_atlassian(authorize_mode="approve", approve_as="alice", approve_sites=None)
        return setup

    return make


async def test_a_cloud_instance_names_its_site_and_takes_nothing_of_data_center(
    api: httpx.AsyncClient, make_tenant: Any, settings: Any,
) -> None:
    headers = {"Authorization": f"Bearer {(await make_tenant()).api_key}"}
    body = {"name": "Acme", "deployment": "cloud", "site_url": "https://Acme.atlassian.net/", "project_keys": ["P"]}
    r = await api.post("/api/v1/jira-instances", json=body, headers=headers)
    assert r.status_code == 201, r.text
    created = r.json()
    assert (created["deployment"], created["site_url"], created["cloud_id"], created["auth"]) == (
        "cloud", "https://acme.atlassian.net", None, "3lo")
    assert created["consumer_key"] is None and created["public_key_pem"] is None
    assert created["redirect_uri"] == settings.public_base_url.rstrip("/") + CALLBACK
    refused = {
        "no site": {"name": "x", "deployment": "cloud"},
        "a base_url": {"name": "x", "deployment": "cloud", "site_url": "https://a.atlassian.net",
                       "base_url": "https://jira.example.com"},
        "http": {"name": "x", "deployment": "cloud", "site_url": "http://a.atlassian.net"},
        "a path": {"name": "x", "deployment": "cloud", "site_url": "https://a.atlassian.net/jira"},
        "another auth": {"name": "x", "deployment": "cloud", "site_url": "https://a.atlassian.net", "auth": "oauth1"},
        "3lo on data center": {"name": "x", "base_url": "https://jira.example.com", "auth": "3lo"},
        "a site on data center": {"name": "x", "base_url": "https://jira.example.com",
                                  "site_url": "https://a.atlassian.net"},
    }
    for case, bad in refused.items():
        r = await api.post("/api/v1/jira-instances", json=bad, headers=headers)
        assert r.status_code == 422, (case, r.text)
    r = await api.patch(f"/api/v1/jira-instances/{created['id']}", json={"deployment": "datacenter"},
                        headers=headers)
    assert r.status_code == 422 and "deployment" in r.text
    listed = (await api.get("/api/v1/jira-instances", headers=headers)).json()
    assert [i["name"] for i in listed] == ["Acme"]  # nothing half-made


async def test_without_the_3lo_app_a_cloud_instance_is_422_naming_the_settings(
    api: httpx.AsyncClient, make_tenant: Any, cloud_setup: Any, settings: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    setup: JiraSetup = await cloud_setup()
    monkeypatch.setattr(settings, "atlassian_client_secret", "")
    headers = {"Authorization": f"Bearer {(await make_tenant()).api_key}"}
    r = await api.post("/api/v1/jira-instances", json={"name": "Acme", "deployment": "cloud",
                                                       "site_url": "https://acme.atlassian.net"}, headers=headers)
    assert r.status_code == 422 and "ATLASSIAN_CLIENT_ID and ATLASSIAN_CLIENT_SECRET" in r.text
    r = await api.post(f"/api/v1/jira-instances/{setup.instance_id}/oauth/start", json={"user": "jdoe"},
                       headers=setup.headers)
    assert r.status_code == 422 and "ATLASSIAN_CLIENT_ID and ATLASSIAN_CLIENT_SECRET" in r.text


async def test_start_answers_atlassians_authorize_url_and_sends_nothing(
    api: httpx.AsyncClient, app: Any, cloud_setup: Any, sim: SimServer, settings: Any,
) -> None:
    setup: JiraSetup = await cloud_setup()
    before = len(sim.control.log("atlassian"))
    url = await start_authorize(api, setup)
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{sim.atlassian_auth_url}/authorize"
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert query == {"audience": "api.atlassian.com", "client_id": settings.atlassian_client_id,
                     "scope": "read:jira-work write:jira-work read:jira-user offline_access",
                     "redirect_uri": settings.public_base_url.rstrip("/") + CALLBACK, "state": query["state"],
                     "response_type": "code", "prompt": "consent"}
    assert len(sim.control.log("atlassian")) == before and sim.control.log(setup.sim_name) == []
    async with app.state.sessionmaker() as session:
        row = (await session.execute(select(OAuthRequestRow).where(
            OAuthRequestRow.tenant_id == setup.tenant.tenant_id))).scalar_one()
    assert row.kind == "3lo" and row.request_token_hash == token_hash(query["state"])
    assert row.code_verifier_enc is None and row.user == "jdoe"
    assert timedelta(minutes=9) < row.expires_at - datetime.now(UTC) <= timedelta(minutes=10)


async def test_the_dance_finds_the_site_and_connects_as_the_approving_account(
    api: httpx.AsyncClient, app: Any, cloud_setup: Any, sim: SimServer,
) -> None:
    setup: JiraSetup = await cloud_setup()
    alice = sim.control.atlassian()["accounts"]["alice"]
    r = await oauth_dance(api, setup, "jdoe", expected_jira_user=alice)
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "connected", "user": "jdoe", "jira_instance": setup.instance_id,
                        "jira_username": alice}
    assert (await _instance(app, setup)).cloud_id == sim.cloud_id(setup.sim_name)
    [connection] = (await api.get("/api/v1/users/jdoe/connections", headers=setup.headers)).json()
    assert (connection["auth"], connection["status"], connection["jira_username"]) == ("3lo", "connected", alice)
    assert timedelta(days=364) < datetime.fromisoformat(connection["expires_at"]) - datetime.now(UTC)
    # the code went to Atlassian's token endpoint with the app's credentials; the site was asked as alice
    paths = [e["path"] for e in sim.control.log("atlassian")]
    assert "/auth.atlassian.com/oauth/token" in paths
    assert "/api.atlassian.com/oauth/token/accessible-resources" in paths
    assert [e["path"].rsplit("/", 1)[-1] for e in sim.control.log(setup.sim_name)] == ["myself"]
    instance = (await api.get(f"/api/v1/jira-instances/{setup.instance_id}", headers=setup.headers)).json()
    assert instance["cloud_id"] == sim.cloud_id(setup.sim_name)


async def test_a_refusal_and_an_account_that_cannot_reach_the_site_are_denied(
    api: httpx.AsyncClient, app: Any, cloud_setup: Any, sim: SimServer,
) -> None:
    setup: JiraSetup = await cloud_setup()
    other: JiraSetup = await cloud_setup(tenant=setup.tenant)
    sim.control.set_atlassian(authorize_mode="deny")
    r = await oauth_dance(api, setup, "ann")
    assert r.status_code == 200 and r.json()["status"] == "denied" and "reason" not in r.json()
    # the consent covers another site only
    sim.control.set_atlassian(authorize_mode="approve", approve_sites=[other.sim_name])
    r = await oauth_dance(api, setup, "jdoe")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "denied"
    assert r.json()["reason"] == f"this Atlassian account cannot reach https://{setup.sim_name}.atlassian.net"
    by_user = {c.user: c for c in await connections_of(app, setup) if c.jira_instance_id == uuid.UUID(
        setup.instance_id)}
    assert {u: (c.status, c.access_token_enc) for u, c in by_user.items()} == {"ann": ("denied", None),
                                                                              "jdoe": ("denied", None)}
    assert (await _instance(app, setup)).cloud_id is None
    async with app.state.sessionmaker() as session:
        audit = [a.detail for a in (await session.execute(select(AuditRow).where(
            AuditRow.tenant_id == setup.tenant.tenant_id, AuditRow.action == "auth.denied"))).scalars()]
    assert any("cannot reach" in (d or "") for d in audit)


async def test_another_account_than_expected_stores_nothing(api: httpx.AsyncClient, app: Any, cloud_setup: Any,
                                                            sim: SimServer) -> None:
    setup: JiraSetup = await cloud_setup()
    sim.control.set_atlassian(approve_as="bob")
    r = await oauth_dance(api, setup, "jdoe", expected_jira_user=sim.control.atlassian()["accounts"]["alice"])
    assert r.status_code == 409 and sim.control.atlassian()["accounts"]["bob"] in r.json()["detail"]
    assert await connections_of(app, setup) == []


async def test_a_reused_state_and_a_refused_code_store_nothing(api: httpx.AsyncClient, app: Any, cloud_setup: Any,
                                                                sim: SimServer) -> None:
    setup: JiraSetup = await cloud_setup()
    location = consent(await start_authorize(api, setup))
    assert (await api.get(callback_path(location, CALLBACK))).status_code == 200
    exchanges = _oauth(sim).get("code_exchanges", 0)
    again = await api.get(callback_path(location, CALLBACK))
    assert again.status_code == 400 and "state was already used" in again.json()["detail"]
    assert _oauth(sim).get("code_exchanges", 0) == exchanges  # not even tried
    # a code Atlassian does not know, on a fresh state
    state = parse_qs(urlsplit(await start_authorize(api, setup, user="ann")).query)["state"][0]
    r = await api.get(f"{CALLBACK}?state={state}&code=forged")
    assert r.status_code == 400 and "invalid_grant" in r.json()["detail"] and "nothing was stored" in r.text
    assert [c.user for c in await connections_of(app, setup)] == ["jdoe"]


async def test_a_lost_renewal_answer_is_recovered_within_atlassians_leeway(
    api: httpx.AsyncClient, app: Any, cloud_setup: Any, connect_user: Any, sim: SimServer,
) -> None:
    """Atlassian rotated the pair but its answer never arrived: the replaced refresh token is presented once more,
    within the 10 minutes Atlassian accepts it, and the connection lives on; its consent is never revoked."""
    setup: JiraSetup = await cloud_setup()
    assert await connect_user(setup, "jdoe", jira_user="alice") == "connected"
    before = _oauth(sim)
    sim.control.lose_token_answers(1)
    sim.control.expire_atlassian_tokens(user="alice")
    lookup = f"/api/v1/jira-instances/{setup.instance_id}/tickets/PROJ-2?user=jdoe"
    r = await api.get(lookup, headers=setup.headers)
    assert r.status_code == 502, r.text  # this look-up met the lost answer
    [connection] = await connections_of(app, setup)
    assert connection.status == "connected" and connection.refresh_started_at is not None  # the mark stays
    r = await api.get(lookup.replace("PROJ-2", "PROJ-3"), headers=setup.headers)
    assert r.status_code == 200, r.text
    after = _oauth(sim)
    assert after.get("reuse_within_interval", 0) - before.get("reuse_within_interval", 0) == 1
    assert after.get("reuse_detected", 0) == before.get("reuse_detected", 0)
    [connection] = await connections_of(app, setup)
    assert connection.refresh_started_at is None and connection.status == "connected"


async def test_a_consent_ending_within_a_month_is_told_once(api: httpx.AsyncClient, app: Any, cloud_setup: Any,
                                                             connect_user: Any) -> None:
    setup: JiraSetup = await cloud_setup()
    assert await connect_user(setup, "jdoe", jira_user="alice") == "connected"
    now = datetime.now(UTC)
    async with app.state.sessionmaker() as session:
        instance = await session.get(JiraInstanceRow, uuid.UUID(setup.instance_id))
        assert instance is not None
        assert await notify_expiring(session, instance, now=now) == []  # a year ahead: nothing to say
        await session.execute(update(ConnectionRow).where(ConnectionRow.tenant_id == setup.tenant.tenant_id)
                              .values(expires_at=now + timedelta(days=20)))
        assert await notify_expiring(session, instance, now=now) == ["jdoe"]
        assert await notify_expiring(session, instance, now=now + timedelta(days=1)) == []  # once per consent
        await session.commit()
        notes = list((await session.execute(select(NotificationRow).where(
            NotificationRow.tenant_id == setup.tenant.tenant_id))).scalars())
    assert len(notes) == 1 and notes[0].kind == "auth_required" and "connect your Atlassian account again" in (
        notes[0].message)
    # reconnecting is a new consent: a year again, and the notice is read
    assert await connect_user(setup, "jdoe", jira_user="alice") == "connected"
    [connection] = await connections_of(app, setup)
    assert connection.expires_at is not None and connection.expires_at - now > timedelta(days=364)
    assert connection.expiry_notified_at is None
    unread = (await api.get("/api/v1/notifications?user=jdoe&unread=true", headers=setup.headers)).json()
    assert unread == []
