"""Atlassian's authorization server and gateway: consent, codes, rotating refresh tokens, reuse detection,
expiry, lost answers, accessible resources and what a 3LO token may reach."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest

from jirasim.testing import SimServer, consent

from .conftest import APP_ID, APP_SECRET, CALLBACK_3LO, CLOUD_SCOPES, CloudJira, grant_cloud, http

DAY = 86400


def _authorize_url(sim: SimServer, **overrides: str) -> str:
    params = {"audience": "api.atlassian.com", "client_id": APP_ID, "scope": " ".join(CLOUD_SCOPES),
              "redirect_uri": CALLBACK_3LO, "state": "st-42", "response_type": "code", "prompt": "consent"}
    params.update(overrides)
    return f"{sim.atlassian_auth_url}/authorize?{urlencode(params)}"


def _query(location: str) -> dict[str, str]:
    parts = urlsplit(location)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == CALLBACK_3LO
    return dict(parse_qsl(parts.query))


def _token(sim: SimServer, **body: str) -> httpx.Response:
    return http.post(f"{sim.atlassian_auth_url}/oauth/token", json={"client_id": APP_ID, "client_secret": APP_SECRET,
                                                                    **body})


def _exchange(sim: SimServer, code: str, **extra: str) -> httpx.Response:
    body = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK_3LO, **extra}
    return _token(sim, **body)


def _refresh(sim: SimServer, refresh_token: str) -> httpx.Response:
    return _token(sim, grant_type="refresh_token", refresh_token=refresh_token)


def _resources(sim: SimServer, access_token: str) -> httpx.Response:
    return http.get(f"{sim.atlassian_api_url}/oauth/token/accessible-resources",
                    headers={"Authorization": f"Bearer {access_token}"})


def _oauth(sim: SimServer) -> dict[str, int]:
    return dict(sim.control.atlassian_counters()["oauth"])


def _works(sim: SimServer, access_token: str, site: str = "acme") -> bool:
    r = CloudJira(sim, site, access_token)("GET", "myself")
    assert r.status_code in (200, 401), r.text
    return r.status_code == 200


# -- consent and code exchange -------------------------------------------------------------------
def test_the_whole_3lo_dance(sim: SimServer) -> None:
    redirect = _query(consent(_authorize_url(sim)))
    assert redirect["state"] == "st-42" and redirect["code"]
    answer = _exchange(sim, redirect["code"])
    assert answer.status_code == 200, answer.text
    assert answer.headers["Cache-Control"] == "no-store"
    tokens = answer.json()
    assert set(tokens) == {"access_token", "refresh_token", "expires_in", "token_type", "scope"}
    assert tokens["expires_in"] == 3600 and tokens["token_type"] == "Bearer"
    assert tokens["scope"].split() == CLOUD_SCOPES

    sites = _resources(sim, tokens["access_token"])
    assert sites.status_code == 200
    scopes = ["read:jira-work", "write:jira-work", "read:jira-user"]  # offline_access is no site scope
    assert sites.json() == [
        {"id": sim.cloud_id(name), "url": f"https://{name}.atlassian.net", "name": name, "scopes": scopes,
         "avatarUrl": sites.json()[i]["avatarUrl"]}
        for i, name in enumerate(["acme", "globex"])  # alice is a user of both
    ]
    me = CloudJira(sim, "acme", tokens["access_token"])("GET", "myself").json()
    assert me["accountId"] == sim.control.atlassian()["accounts"]["alice"] and "name" not in me
    token_call = [e for e in sim.control.log("atlassian") if e["path"].endswith("/oauth/token")][-1]
    assert (token_call["auth"], token_call["client"], token_call["user"]) == ("client", APP_ID, "alice")
    assert _oauth(sim) == {"consents": 1, "code_exchanges": 1}


def test_code_is_single_use_bound_to_its_redirect_and_the_app_secret(sim: SimServer) -> None:
    code = _query(consent(_authorize_url(sim)))["code"]
    wrong_secret = http.post(f"{sim.atlassian_auth_url}/oauth/token", json={
        "grant_type": "authorization_code", "client_id": APP_ID, "client_secret": "nope", "code": code,
        "redirect_uri": CALLBACK_3LO})
    assert wrong_secret.status_code == 401 and wrong_secret.json()["error"] == "access_denied"
    elsewhere = _exchange(sim, code, redirect_uri="http://127.0.0.1:9/elsewhere")
    assert elsewhere.status_code == 403 and elsewhere.json()["error"] == "invalid_grant"
    assert _exchange(sim, code).status_code == 200
    again = _exchange(sim, code)
    assert again.status_code == 403 and again.json() == {"error": "invalid_grant",
                                                         "error_description": "Invalid authorization code"}
    form = http.post(f"{sim.atlassian_auth_url}/oauth/token", data={"grant_type": "client_credentials",
                     "client_id": APP_ID, "client_secret": APP_SECRET})
    assert form.status_code == 400 and form.json()["error"] == "unsupported_grant_type"
    garbage = http.post(f"{sim.atlassian_auth_url}/oauth/token", content=b"{", headers={"Content-Type": "text/plain"})
    assert garbage.status_code == 400 and garbage.json()["error"] == "invalid_request"


@pytest.mark.parametrize(
    ("override", "error"),
    [
        ({"audience": "api.example.com"}, "invalid_request"),
        ({"prompt": "none"}, "invalid_request"),
        ({"state": ""}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": "read:jira-work fly:to-the-moon"}, "invalid_scope"),
    ],
)
def test_bad_authorize_requests_come_back_with_an_error(sim: SimServer, override: dict[str, str], error: str) -> None:
    r = http.get(_authorize_url(sim, **override))
    assert r.status_code == 302
    assert _query(r.headers["location"])["error"] == error


def test_unknown_app_or_unregistered_callback_gets_a_page_not_a_redirect(sim: SimServer) -> None:
    unknown = http.get(_authorize_url(sim, client_id="nope"))
    assert unknown.status_code == 400 and "Invalid client" in unknown.text
    evil = http.get(_authorize_url(sim, redirect_uri="http://127.0.0.1:9/evil"))
    assert evil.status_code == 400 and "callback URL" in evil.text


def test_manual_consent_picks_the_account_and_the_sites(sim: SimServer) -> None:
    sim.control.set_atlassian(authorize_mode="manual")
    page = http.get(_authorize_url(sim))
    assert page.status_code == 200 and 'name="sites"' in page.text and 'name="user"' in page.text
    code = _query(consent(_authorize_url(sim), user="bob", sites=["acme"]))["code"]
    tokens = _exchange(sim, code).json()
    assert [s["name"] for s in _resources(sim, tokens["access_token"]).json()] == ["acme"]
    me = CloudJira(sim, "acme", tokens["access_token"])("GET", "myself")
    assert me.json()["accountId"] == sim.control.atlassian()["accounts"]["bob"]
    assert me.headers["X-AACCOUNTID"] == me.json()["accountId"]
    assert not _works(sim, tokens["access_token"], "globex")  # not granted (and bob is no user there)


def test_approve_sites_setting_and_deny(sim: SimServer) -> None:
    sim.control.set_atlassian(approve_sites=["globex"])
    tokens = _exchange(sim, _query(consent(_authorize_url(sim)))["code"]).json()
    assert [s["name"] for s in _resources(sim, tokens["access_token"]).json()] == ["globex"]
    assert not _works(sim, tokens["access_token"], "acme")
    sim.control.set_atlassian(authorize_mode="deny")
    denied = _query(consent(_authorize_url(sim)))
    assert denied["error"] == "access_denied" and denied["state"] == "st-42" and "code" not in denied
    assert _oauth(sim)["denials"] == 1


def test_without_offline_access_there_is_no_refresh_token(sim: SimServer) -> None:
    code = _query(consent(_authorize_url(sim, scope="read:jira-work write:jira-work")))["code"]
    tokens = _exchange(sim, code).json()
    assert "refresh_token" not in tokens and tokens["scope"] == "read:jira-work write:jira-work"


# -- refresh tokens --------------------------------------------------------------------------------
def test_refresh_rotates_the_refresh_token(sim: SimServer) -> None:
    first = grant_cloud(sim)
    second = _refresh(sim, first["refresh_token"])
    assert second.status_code == 200, second.text
    new = second.json()
    assert new["refresh_token"] != first["refresh_token"] and new["access_token"] != first["access_token"]
    assert _works(sim, new["access_token"]) and _works(sim, first["access_token"])  # old access lives to expiry
    assert _refresh(sim, new["refresh_token"]).status_code == 200
    assert _oauth(sim)["refreshes"] == 2


def test_a_lost_refresh_answer_recovers_with_the_replaced_token(sim: SimServer) -> None:
    first = grant_cloud(sim)
    sim.control.lose_token_answers(1)
    with pytest.raises(httpx.RemoteProtocolError):
        _refresh(sim, first["refresh_token"])  # rotated, answer lost
    retry = _refresh(sim, first["refresh_token"])  # within the 10-minute leeway
    assert retry.status_code == 200, retry.text
    assert _refresh(sim, retry.json()["refresh_token"]).status_code == 200
    counts = _oauth(sim)
    assert counts["reuse_within_interval"] == 1 and "reuse_detected" not in counts
    assert sim.control.atlassian_counters()["faults"] == {"fail_after_write_drop": 1}


def test_reusing_a_replaced_token_after_the_leeway_revokes_the_grant(sim: SimServer) -> None:
    first = grant_cloud(sim)
    second = _refresh(sim, first["refresh_token"]).json()
    sim.control.advance_atlassian_clock(601)
    reused = _refresh(sim, first["refresh_token"])
    assert reused.status_code == 403
    assert reused.json() == {"error": "invalid_grant", "error_description": "Unknown or invalid refresh token."}
    assert _refresh(sim, second["refresh_token"]).status_code == 403  # the whole chain is gone
    assert not _works(sim, second["access_token"])
    assert sim.control.log("acme")[-1]["oauth_problem"] == "token_revoked"
    counts = _oauth(sim)
    assert counts["reuse_detected"] == 1 and counts["revoked_grants"] == 1
    assert sim.control.atlassian_counters()["oauth_by_user"]["alice"]["reuse_detected"] == 1
    fresh = grant_cloud(sim)  # a new consent starts a new grant
    assert _works(sim, fresh["access_token"])


def test_only_the_previous_token_may_be_reused(sim: SimServer) -> None:
    first = grant_cloud(sim)
    second = _refresh(sim, first["refresh_token"]).json()
    _refresh(sim, second["refresh_token"])
    assert _refresh(sim, first["refresh_token"]).status_code == 403  # second-to-last, within 10 minutes
    assert _oauth(sim)["reuse_detected"] == 1


def test_two_processes_refreshing_at_once_can_lose_the_consent(sim: SimServer) -> None:
    """Both refreshes succeed (the second within the leeway), but they hand out different tokens; whoever
    keeps the superseded one revokes the grant with its next refresh."""
    first = grant_cloud(sim)
    one = _refresh(sim, first["refresh_token"]).json()
    two = _refresh(sim, first["refresh_token"]).json()
    assert one["refresh_token"] != two["refresh_token"]
    assert _refresh(sim, one["refresh_token"]).status_code == 403
    assert _refresh(sim, two["refresh_token"]).status_code == 403


def test_refresh_tokens_expire_after_90_days_unused_and_365_days_after_consent(sim: SimServer) -> None:
    idle = grant_cloud(sim)
    sim.control.advance_atlassian_clock(91 * DAY)
    assert _refresh(sim, idle["refresh_token"]).status_code == 403
    assert _oauth(sim)["expired_refresh"] == 1

    busy = grant_cloud(sim)["refresh_token"]
    for _ in range(4):
        sim.control.advance_atlassian_clock(80 * DAY)
        answer = _refresh(sim, busy)
        assert answer.status_code == 200, answer.text
        busy = answer.json()["refresh_token"]
    sim.control.advance_atlassian_clock(46 * DAY)  # 366 days after consent, 46 after the last refresh
    assert _refresh(sim, busy).status_code == 403
    assert _oauth(sim)["expired_refresh"] == 2


def test_access_tokens_expire(sim: SimServer) -> None:
    tokens = grant_cloud(sim)
    assert sim.control.expire_atlassian_tokens("alice") == 1
    assert not _works(sim, tokens["access_token"])
    assert sim.control.log("acme")[-1]["oauth_problem"] == "token_expired"
    renewed = _refresh(sim, tokens["refresh_token"]).json()
    assert _works(sim, renewed["access_token"])
    sim.control.set_atlassian(access_token_seconds=3)
    short = _refresh(sim, renewed["refresh_token"]).json()
    assert short["expires_in"] == 3
    sim.control.advance_atlassian_clock(4)
    assert not _works(sim, short["access_token"])


def test_revoking_a_grant_ends_its_tokens(sim: SimServer) -> None:
    tokens = grant_cloud(sim)
    assert sim.control.revoke_atlassian(user="alice") == 1
    assert not _works(sim, tokens["access_token"])
    assert _refresh(sim, tokens["refresh_token"]).status_code == 403
    grants = sim.control.atlassian_grants()
    assert grants[0]["revoked"] is True and "refresh_token" not in grants[0] and "access_token" not in grants[0]


# -- what a token reaches ----------------------------------------------------------------------------
def test_gateway_checks_token_site_and_scopes(sim: SimServer) -> None:
    read_only = grant_cloud(sim, scopes=["read:jira-work"])["access_token"]
    jira = CloudJira(sim, "acme", read_only)
    assert jira("GET", "issue/PROJ-1").status_code == 200
    write = jira.add_worklog("PROJ-1")
    assert write.status_code == 401 and write.json() == {"code": 401, "message": "Unauthorized; scope does not match"}
    assert jira("GET", "myself").status_code == 401  # needs read:jira-user
    assert sim.control.log("acme")[-1]["oauth_problem"] == "scope_mismatch"
    assert sim.control.worklogs("acme", "PROJ-1") == []

    no_token = http.get(f"{sim.cloud_api_url('acme')}/rest/api/2/serverInfo")
    assert no_token.status_code == 401 and no_token.json() == {"code": 401, "message": "Unauthorized"}
    unknown_site = http.get(f"{sim.atlassian_api_url}/ex/jira/00000000-0000-0000-0000-000000000000/rest/api/2/myself",
                            headers={"Authorization": f"Bearer {read_only}"})
    assert unknown_site.status_code == 404
    assert _resources(sim, "not-a-token").status_code == 401

    acme_only = grant_cloud(sim, sites=["acme"])["access_token"]
    assert not _works(sim, acme_only, "globex")
    assert sim.control.log("globex")[-1]["oauth_problem"] == "site_not_granted"


def test_cloud_requests_are_logged_with_3lo_and_the_app(sim: SimServer, acme: CloudJira) -> None:
    assert acme("GET", "myself").status_code == 200
    entry = sim.control.log("acme")[-1]
    assert (entry["auth"], entry["client"], entry["user"], entry["points"]) == ("3lo", APP_ID, "alice", 2)
    assert sim.control.counters("acme")["auth_kinds"] == {"3lo": 1}


def test_atlassian_control_describes_apps_accounts_and_sites(sim: SimServer) -> None:
    app: dict[str, Any] = sim.control.add_atlassian_app(name="Other", points_per_hour=None)
    described = sim.control.atlassian()
    assert {a["client_id"] for a in described["apps"]} == {APP_ID, app["client_id"]}
    assert set(described["accounts"]) == {"alice", "bob", "carol", "dave"}
    assert [s["name"] for s in described["sites"]] == ["acme", "globex"]
    tokens = sim.control.grant_atlassian(app["client_id"], "dave")
    assert [s["name"] for s in _resources(sim, tokens["access_token"]).json()] == ["globex"]
