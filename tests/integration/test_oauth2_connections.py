"""Data Center OAuth 2.0 (CONTRACT 13, `auth: oauth2`): the authorize URL with state and PKCE (S256), the callback
exchanging the code with the verifier, and what fails with a clear message and stores nothing: a PKCE mismatch, a
reused state, an expired state, a wrong client secret."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from sqlalchemy import select, update

from app.db.models import OAuthRequestRow
from app.jira.oauth2 import code_challenge
from app.security.secrets import binding
from app.services.connect import token_hash
from jirasim.testing import SimServer, consent, pkce_pair
from tests.e2e.conftest import JiraSetup, oauth_dance
from tests.integration.connect_support import audit_of, callback_path, connections_of, start_authorize

CALLBACK = "/oauth/jira2/callback"










async def test_start_answers_the_authorize_url_with_state_and_s256_challenge(
    api: httpx.AsyncClient, app: Any, jira_setup: Any, sim: SimServer, settings: Any,
) -> None:
    setup: JiraSetup = await jira_setup(auth="oauth2")
    url = await start_authorize(api, setup)
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{setup.base_url}/rest/oauth2/latest/authorize"
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert query["client_id"] == setup.instance["client_id"]
    assert query["redirect_uri"] == settings.public_base_url.rstrip("/") + CALLBACK
    assert (query["response_type"], query["scope"], query["code_challenge_method"]) == ("code", "WRITE", "S256")
    assert sim.control.log(setup.sim_name) == []  # nothing was sent to JIRA yet
    async with app.state.sessionmaker() as session:
        row = (await session.execute(select(OAuthRequestRow).where(
            OAuthRequestRow.tenant_id == setup.tenant.tenant_id))).scalar_one()
    assert row.kind == "oauth2" and row.request_token_hash == token_hash(query["state"])
    assert row.request_token_enc is None and row.code_verifier_enc is not None
    assert timedelta(minutes=9) < row.expires_at - datetime.now(UTC) <= timedelta(minutes=10)
    verifier = app.state.secret_box.open(row.code_verifier_enc, binding("oauth_requests", "code_verifier", row.id))
    assert code_challenge(verifier) == query["code_challenge"] and verifier not in url
    # another start gives another state and challenge
    again = {k: v[0] for k, v in parse_qs(urlsplit(await start_authorize(api, setup)).query).items()}
    assert again["state"] != query["state"] and again["code_challenge"] != query["code_challenge"]


async def test_the_dance_connects_as_the_approving_account(api: httpx.AsyncClient, app: Any, jira_setup: Any,
                                                           sim: SimServer) -> None:
    setup: JiraSetup = await jira_setup(auth="oauth2", approve_as="bob")
    r = await oauth_dance(api, setup, "jdoe")
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "connected", "user": "jdoe", "jira_instance": setup.instance_id,
                        "jira_username": "bob"}
    [connection] = await connections_of(app, setup)
    assert connection.status == "connected" and connection.refresh_token_enc is not None
    assert connection.access_expires_at is not None and connection.refresh_due_at is not None
    assert connection.refresh_due_at < connection.access_expires_at
    counts = sim.control.oauth2_tokens(setup.sim_name)["counts"]
    assert counts["code_exchanges"] == 1 and counts.get("pkce_failures", 0) == 0
    kinds = [(e["path"].rsplit("/", 1)[-1], e["auth"]) for e in sim.control.log(setup.sim_name)]
    assert kinds == [("authorize", None), ("token", "client"), ("myself", "oauth2")]  # the browser, then us
    actions = [a.action for a in await audit_of(app, setup)]
    for wanted in ("auth.oauth_start", "jira.exchange_authorization_code", "jira.myself", "auth.connected"):
        assert wanted in actions
    r = await api.get(f"/api/v1/jira-instances/{setup.instance_id}/tickets/PROJ-2?user=jdoe", headers=setup.headers)
    assert r.status_code == 200 and sim.control.log(setup.sim_name)[-1]["auth"] == "oauth2"


async def test_connect_redirects_to_the_return_url_and_denial_stores_nothing(
    api: httpx.AsyncClient, app: Any, jira_setup: Any, sim: SimServer,
) -> None:
    setup: JiraSetup = await jira_setup(auth="oauth2")
    r = await oauth_dance(api, setup, "jdoe", return_url="https://tt.example.com/done?x=1")
    assert r.status_code == 303 and r.headers["location"] == "https://tt.example.com/done?x=1"
    sim.control.set_settings(setup.sim_name, authorize_mode="deny")
    r = await oauth_dance(api, setup, "ann")
    assert r.status_code == 200 and r.json()["status"] == "denied"
    by_user = {c.user: c for c in await connections_of(app, setup)}
    assert by_user["ann"].status == "denied" and by_user["ann"].access_token_enc is None
    assert by_user["jdoe"].status == "connected"


async def test_another_account_than_expected_stores_nothing(api: httpx.AsyncClient, app: Any, jira_setup: Any,
                                                            sim: SimServer) -> None:
    setup: JiraSetup = await jira_setup(auth="oauth2", approve_as="bob")
    r = await oauth_dance(api, setup, "jdoe", expected_jira_user="alice")
    assert r.status_code == 409 and "bob" in r.json()["detail"]
    r = await oauth_dance(api, setup, "jdoe", expected_jira_user="alice", return_url="https://tt.example.com/")
    assert r.status_code == 303 and r.headers["location"] == "https://tt.example.com/?error=wrong_jira_user"
    assert await connections_of(app, setup) == []


async def test_a_pkce_mismatch_fails_clearly_and_stores_nothing(api: httpx.AsyncClient, app: Any, jira_setup: Any,
                                                               sim: SimServer) -> None:
    """An attacker's code (approved with their own challenge) injected into the user's callback: JIRA refuses our
    verifier for it."""
    setup: JiraSetup = await jira_setup(auth="oauth2")
    url = await start_authorize(api, setup)
    state = parse_qs(urlsplit(url).query)["state"][0]
    _, their_challenge = pkce_pair()
    forged = url.replace(parse_qs(urlsplit(url).query)["code_challenge"][0], their_challenge)
    location = consent(forged, user="bob")
    assert parse_qs(urlsplit(location).query)["state"][0] == state
    r = await api.get(callback_path(location, CALLBACK))
    assert r.status_code == 400, r.text
    assert "PKCE verification failed" in r.json()["detail"] and "nothing was stored" in r.json()["detail"]
    assert sim.control.oauth2_tokens(setup.sim_name)["counts"]["pkce_failures"] == 1
    assert await connections_of(app, setup) == []
    assert any(a.action == "auth.connect" and a.outcome == "failed" for a in await audit_of(app, setup))


async def test_a_reused_state_fails_clearly_and_stores_nothing_more(api: httpx.AsyncClient, app: Any,
                                                                   jira_setup: Any, sim: SimServer) -> None:
    setup: JiraSetup = await jira_setup(auth="oauth2")
    location = consent(await start_authorize(api, setup))
    assert (await api.get(callback_path(location, CALLBACK))).status_code == 200
    before = [(c.user, c.updated_at) for c in await connections_of(app, setup)]
    exchanges = sim.control.oauth2_tokens(setup.sim_name)["counts"]["code_exchanges"]
    again = await api.get(callback_path(location, CALLBACK))
    assert again.status_code == 400 and "state was already used" in again.json()["detail"]
    assert [(c.user, c.updated_at) for c in await connections_of(app, setup)] == before
    assert sim.control.oauth2_tokens(setup.sim_name)["counts"]["code_exchanges"] == exchanges  # not even tried


async def test_an_expired_state_fails_clearly_and_stores_nothing(api: httpx.AsyncClient, app: Any, jira_setup: Any,
                                                                sim: SimServer) -> None:
    setup: JiraSetup = await jira_setup(auth="oauth2")
    location = consent(await start_authorize(api, setup))
    async with app.state.sessionmaker() as session:  # ten minutes later
        await session.execute(update(OAuthRequestRow).where(OAuthRequestRow.tenant_id == setup.tenant.tenant_id)
                              .values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
        await session.commit()
    r = await api.get(callback_path(location, CALLBACK))
    assert r.status_code == 400 and "state expired (after 10 minutes)" in r.json()["detail"]
    assert await connections_of(app, setup) == []
    assert sim.control.oauth2_tokens(setup.sim_name)["counts"].get("code_exchanges", 0) == 0


async def test_a_wrong_client_secret_fails_clearly_and_stores_nothing(api: httpx.AsyncClient, app: Any,
                                                                     jira_setup: Any, sim: SimServer) -> None:
    setup: JiraSetup = await jira_setup(auth="oauth2", client_secret="not-the-links-secret")
    r = await oauth_dance(api, setup, "jdoe")
    assert r.status_code == 502, r.text
    detail = r.json()["detail"]
    assert "client_id and client_secret" in detail and "invalid_client" in detail and "nothing was stored" in detail
    assert "not-the-links-secret" not in detail
    assert sim.control.oauth2_tokens(setup.sim_name)["counts"]["invalid_client"] == 1
    assert await connections_of(app, setup) == []


async def test_unknown_missing_and_foreign_states_are_400(api: httpx.AsyncClient, jira_setup: Any) -> None:
    assert (await api.get(CALLBACK)).status_code == 400
    assert (await api.get(f"{CALLBACK}?state=nope&code=x")).status_code == 400
    assert (await api.get(f"{CALLBACK}?state=nope")).status_code == 400
    oauth1: JiraSetup = await jira_setup()
    token = parse_qs(urlsplit(await start_authorize(api, oauth1)).query)["oauth_token"][0]
    r = await api.get(f"{CALLBACK}?state={token}&code=x")  # an OAuth 1.0a request token is no state
    assert r.status_code == 400 and "unknown state" in r.json()["detail"]
    setup: JiraSetup = await jira_setup(auth="oauth2")
    state = parse_qs(urlsplit(await start_authorize(api, setup)).query)["state"][0]
    r = await api.get(f"/oauth/jira/callback?oauth_token={state}&oauth_verifier=v")  # nor the other way round
    assert r.status_code == 400 and "unknown oauth_token" in r.json()["detail"]


async def test_a_refused_scope_is_a_readable_502(api: httpx.AsyncClient, jira_setup: Any, sim: SimServer) -> None:
    setup: JiraSetup = await jira_setup(auth="oauth2")
    sim.control.remove_oauth2_client(setup.sim_name, setup.instance["client_id"])
    sim.control.add_oauth2_client(setup.sim_name, setup.instance["redirect_uri"], scopes=["READ"],
                                  client_id=setup.instance["client_id"], client_secret=setup.extra["client_secret"])
    location = consent(await start_authorize(api, setup))
    r = await api.get(callback_path(location, CALLBACK))
    assert r.status_code == 502 and "invalid_scope" in r.json()["detail"] and "WRITE" in r.json()["detail"]


async def test_instances_of_other_tenants_are_404(api: httpx.AsyncClient, jira_setup: Any, make_tenant: Any) -> None:
    setup: JiraSetup = await jira_setup(auth="oauth2")
    other = {"Authorization": f"Bearer {(await make_tenant()).api_key}"}
    r = await api.post(f"/api/v1/jira-instances/{setup.instance_id}/oauth/start", json={"user": "jdoe"},
                       headers=other)
    assert r.status_code == 404
    r = await api.post(f"/api/v1/jira-instances/{uuid.uuid4()}/oauth/start", json={"user": "jdoe"},
                       headers=setup.headers)
    assert r.status_code == 404
