"""Data Center beyond OAuth 1.0a: personal access tokens and the OAuth 2.0 provider (PKCE, refresh, revocation)."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from jirasim.testing import SimServer, pkce_pair

from .conftest import http

REDIRECT = "http://127.0.0.1:9/oauth/jira2/callback"


def _bearer(sim: SimServer, token: str, path: str = "myself", method: str = "GET", **kwargs: Any) -> httpx.Response:
    url = f"{sim.instance_url('jira1')}/rest/api/2/{path}"
    return http.request(method, url, headers={"Authorization": f"Bearer {token}"}, **kwargs)


def _last(sim: SimServer) -> dict[str, Any]:
    return sim.control.log("jira1")[-1]


# -- personal access tokens -----------------------------------------------------------------
def test_pat_acts_as_its_user_and_is_logged_as_pat(sim: SimServer) -> None:
    pat = sim.control.create_pat("jira1", "bob", name="TimeTracker")
    me = _bearer(sim, pat["token"])
    assert me.status_code == 200 and me.json()["name"] == "bob"
    assert me.headers["X-AUSERNAME"] == "bob"
    entry = _last(sim)
    assert (entry["auth"], entry["client"], entry["user"]) == ("pat", f"pat:{pat['id']}", "bob")
    body = {"timeSpentSeconds": 600, "started": "2026-11-25T09:00:00.000+0100"}
    created = _bearer(sim, pat["token"], "issue/PROJ-1/worklog", "POST", json=body)
    assert created.status_code == 201 and created.json()["author"]["name"] == "bob"
    listed = sim.control.pats("jira1")
    assert [p["name"] for p in listed] == ["TimeTracker"] and "token" not in listed[0]
    assert listed[0]["last_used"] is not None
    assert sim.control.counters("jira1")["auth_kinds"] == {"pat": 2}


def test_revoked_expired_and_unknown_pats_get_401(sim: SimServer) -> None:
    pat = sim.control.create_pat("jira1", "alice")
    assert sim.control.revoke_pats("jira1", pat_id=pat["id"]) == 1
    r = _bearer(sim, pat["token"])
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer realm=")
    assert r.json()["errorMessages"][0].startswith("You are not authenticated.")
    assert _last(sim)["oauth_problem"] == "token_revoked"

    expiring = sim.control.create_pat("jira1", "alice", expiration_days=1)
    assert _bearer(sim, expiring["token"]).status_code == 200
    sim.sim.instances["jira1"].state.pats[expiring["token"]].expires_at = time.time() - 1  # a day later
    assert _bearer(sim, expiring["token"]).status_code == 401
    assert _last(sim)["oauth_problem"] == "token_expired"

    assert _bearer(sim, "not-a-token").status_code == 401
    assert _last(sim)["oauth_problem"] == "token_unknown"
    assert sim.control.revoke_pats("jira1", user="alice") == 1  # the expired one; the revoked one stays revoked


def test_configured_pat_survives_reset(server: SimServer) -> None:
    config = {"name": "jirapat", "users": [{"name": "dave"}],
              "personal_access_tokens": [{"user": "dave", "token": "fixed-demo-token", "name": "demo"}]}
    if "jirapat" not in {i["name"] for i in server.control.instances()}:
        server.control.add_instance(config)
    server.control.reset("jirapat")
    r = http.get(f"{server.instance_url('jirapat')}/rest/api/2/myself",
                 headers={"Authorization": "Bearer fixed-demo-token"})
    assert r.status_code == 200 and r.json()["name"] == "dave"


# -- OAuth 2.0 provider -----------------------------------------------------------------------
@pytest.fixture
def client(sim: SimServer) -> dict[str, Any]:
    return sim.control.add_oauth2_client("jira1", REDIRECT, name="TimeTracker")


def _authorize(sim: SimServer, client: dict[str, Any], challenge: str | None, **extra: str) -> httpx.Response:
    params = {"client_id": client["client_id"], "redirect_uri": REDIRECT, "response_type": "code",
              "scope": "WRITE", "state": "st-1"}
    if challenge is not None:
        params.update(code_challenge=challenge, code_challenge_method="S256")
    params.update(extra)
    return http.get(f"{sim.instance_url('jira1')}/rest/oauth2/latest/authorize", params=params)


def _redirected(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 302, response.text
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    return dict(parse_qsl(location.query))


def _token(sim: SimServer, **params: str) -> httpx.Response:
    return http.post(f"{sim.instance_url('jira1')}/rest/oauth2/latest/token", data=params)


def _exchange(sim: SimServer, client: dict[str, Any], code: str, verifier: str | None, **extra: str) -> httpx.Response:
    params = {"grant_type": "authorization_code", "client_id": client["client_id"],
              "client_secret": client["client_secret"], "code": code, "redirect_uri": REDIRECT, **extra}
    if verifier is not None:
        params["code_verifier"] = verifier
    return _token(sim, **params)


def _refresh(sim: SimServer, client: dict[str, Any], refresh_token: str) -> httpx.Response:
    return _token(
        sim,
        grant_type="refresh_token",
        client_id=client["client_id"],
        client_secret=client["client_secret"],
        refresh_token=refresh_token,
        redirect_uri=REDIRECT,
    )


def _dance(sim: SimServer, client: dict[str, Any]) -> dict[str, Any]:
    verifier, challenge = pkce_pair()
    code = _redirected(_authorize(sim, client, challenge))["code"]
    answer = _exchange(sim, client, code, verifier)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_authorization_code_with_pkce(sim: SimServer, client: dict[str, Any]) -> None:
    verifier, challenge = pkce_pair()
    redirect = _redirected(_authorize(sim, client, challenge))
    assert redirect["state"] == "st-1" and redirect["code"]
    answer = _exchange(sim, client, redirect["code"], verifier)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Cache-Control"] == "no-store"
    tokens = answer.json()
    assert tokens["token_type"] == "bearer" and tokens["scope"] == "WRITE"
    assert 3590 <= tokens["expires_in"] <= 3600 and tokens["refresh_token"]
    me = _bearer(sim, tokens["access_token"])
    assert me.status_code == 200 and me.json()["name"] == "alice"  # jira1 approves as alice
    token_call, myself = sim.control.log("jira1")[-2:]
    assert (token_call["auth"], token_call["client"], token_call["user"]) == ("client", client["client_id"], "alice")
    assert (myself["auth"], myself["client"]) == ("oauth2", client["client_id"])
    again = _exchange(sim, client, redirect["code"], verifier)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert sim.control.oauth2_tokens("jira1")["counts"]["code_exchanges"] == 1


def test_pkce_mismatch_and_missing_verifier_are_refused(sim: SimServer, client: dict[str, Any]) -> None:
    verifier, challenge = pkce_pair()
    code = _redirected(_authorize(sim, client, challenge))["code"]
    wrong = _exchange(sim, client, code, pkce_pair()[0])
    assert wrong.status_code == 400
    assert wrong.json() == {
        "error": "invalid_grant",
        "error_description": "PKCE verification failed: code_verifier does not match code_challenge.",
    }
    missing = _exchange(sim, client, code, None)
    assert missing.status_code == 400 and "code_verifier is required" in missing.json()["error_description"]
    assert sim.control.oauth2_tokens("jira1")["counts"]["pkce_failures"] == 2
    assert sim.control.oauth2_tokens("jira1")["tokens"] == []
    assert _exchange(sim, client, code, verifier).status_code == 200  # a failed check does not spend the code


def test_wrong_secret_redirect_and_expired_code(sim: SimServer, client: dict[str, Any]) -> None:
    verifier, challenge = pkce_pair()
    code = _redirected(_authorize(sim, client, challenge))["code"]
    bad_secret = _exchange(sim, client, code, verifier, client_secret="nope")
    assert bad_secret.status_code == 401 and bad_secret.json()["error"] == "invalid_client"
    bad_redirect = _exchange(sim, client, code, verifier, redirect_uri="http://127.0.0.1:9/elsewhere")
    assert bad_redirect.status_code == 400 and bad_redirect.json()["error"] == "invalid_grant"
    sim.sim.instances["jira1"].state.oauth2_codes[code].expires_at = time.time() - 1  # JIRA: codes live 10 s
    expired = _exchange(sim, client, code, verifier)
    assert expired.status_code == 400 and "expired" in expired.json()["error_description"]
    unsupported = _token(sim, grant_type="password", client_id=client["client_id"])
    assert unsupported.status_code == 400 and unsupported.json()["error"] == "unsupported_grant_type"


def test_authorize_errors(sim: SimServer, client: dict[str, Any]) -> None:
    unknown = http.get(f"{sim.instance_url('jira1')}/rest/oauth2/latest/authorize",
                       params={"client_id": "nope", "redirect_uri": REDIRECT, "response_type": "code"})
    assert unknown.status_code == 400 and "Unknown client_id" in unknown.text
    elsewhere = _authorize(sim, client, None, redirect_uri="http://127.0.0.1:9/evil")
    assert elsewhere.status_code == 400 and "redirect_uri" in elsewhere.text  # never redirected there
    bad_method = _redirected(_authorize(sim, client, pkce_pair()[1], code_challenge_method="S512"))
    assert bad_method["error"] == "invalid_request" and bad_method["state"] == "st-1"
    too_wide = _redirected(_authorize(sim, client, None, scope="ADMIN"))
    assert too_wide["error"] == "invalid_scope"
    sim.control.set_settings("jira1", authorize_mode="deny")
    denied = _redirected(_authorize(sim, client, pkce_pair()[1]))
    assert denied["error"] == "access_denied" and denied["state"] == "st-1" and "code" not in denied


def test_manual_consent_page_chooses_the_user(sim: SimServer, client: dict[str, Any]) -> None:
    sim.control.set_settings("jira1", authorize_mode="manual")
    verifier, challenge = pkce_pair()
    page = _authorize(sim, client, challenge)
    assert page.status_code == 200 and 'name="user"' in page.text and "Allow" in page.text
    assert f'name="code_challenge" value="{challenge}"' in page.text
    form = {"client_id": client["client_id"], "redirect_uri": REDIRECT, "response_type": "code", "scope": "WRITE",
            "state": "st-2", "code_challenge": challenge, "code_challenge_method": "S256",
            "user": "bob", "action": "allow"}
    redirect = _redirected(http.post(f"{sim.instance_url('jira1')}/rest/oauth2/latest/authorize", data=form))
    assert redirect["state"] == "st-2"
    tokens = _exchange(sim, client, redirect["code"], verifier).json()
    assert _bearer(sim, tokens["access_token"]).json()["name"] == "bob"


def test_refresh_rotates_and_ends_the_old_pair(sim: SimServer, client: dict[str, Any]) -> None:
    first = _dance(sim, client)
    second = _refresh(sim, client, first["refresh_token"])
    assert second.status_code == 200, second.text
    new = second.json()
    assert new["access_token"] != first["access_token"] and new["refresh_token"] != first["refresh_token"]
    assert _bearer(sim, first["access_token"]).status_code == 401
    assert _last(sim)["oauth_problem"] == "token_replaced"
    reused = _refresh(sim, client, first["refresh_token"])
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    assert _bearer(sim, new["access_token"]).status_code == 200  # reuse of an old token ends nothing else
    no_redirect = _token(sim, grant_type="refresh_token", client_id=client["client_id"],
                         client_secret=client["client_secret"], refresh_token=new["refresh_token"])
    assert no_redirect.status_code == 400  # JIRA checks the redirect URI on the refresh grant too
    counts = sim.control.oauth2_tokens("jira1")["counts"]
    assert counts["refreshes"] == 1 and counts["refresh_reuse"] == 1


def test_expiry_then_refresh_and_revocation(sim: SimServer, client: dict[str, Any]) -> None:
    tokens = _dance(sim, client)
    assert sim.control.expire_oauth2_tokens("jira1", user="alice") == 1
    assert _bearer(sim, tokens["access_token"]).status_code == 401
    assert _last(sim)["oauth_problem"] == "token_expired"
    fresh = _refresh(sim, client, tokens["refresh_token"]).json()
    assert _bearer(sim, fresh["access_token"]).status_code == 200
    assert sim.control.revoke_oauth2_tokens("jira1", user="alice") == 1
    assert _bearer(sim, fresh["access_token"]).status_code == 401
    assert _last(sim)["oauth_problem"] == "token_revoked"
    refused = _refresh(sim, client, fresh["refresh_token"])
    assert refused.status_code == 400 and "revoked" in refused.json()["error_description"]


def test_read_scope_cannot_write_and_query_string_parameters_work(sim: SimServer) -> None:
    client = sim.control.add_oauth2_client("jira1", REDIRECT, scopes=["READ", "WRITE"])
    code = _redirected(_authorize(sim, client, None, scope="READ"))["code"]
    params = {"grant_type": "authorization_code", "client_id": client["client_id"],
              "client_secret": client["client_secret"], "code": code, "redirect_uri": REDIRECT}
    answer = http.post(f"{sim.instance_url('jira1')}/rest/oauth2/latest/token", params=params)  # as Atlassian's docs
    assert answer.status_code == 200, answer.text
    token = answer.json()["access_token"]
    assert _bearer(sim, token, "issue/PROJ-1").status_code == 200
    body = {"timeSpentSeconds": 600, "started": "2026-11-25T09:00:00.000+0100"}
    write = _bearer(sim, token, "issue/PROJ-1/worklog", "POST", json=body)
    assert write.status_code == 403 and "scope" in write.json()["errorMessages"][0]
    assert sim.control.worklogs("jira1", "PROJ-1") == []


def test_lost_token_answer_still_applies_the_exchange(sim: SimServer, client: dict[str, Any]) -> None:
    verifier, challenge = pkce_pair()
    code = _redirected(_authorize(sim, client, challenge))["code"]
    sim.control.add_fault_rule("jira1", "fail_after_write", mode="drop", path_contains="/oauth2/latest/token")
    with pytest.raises(httpx.RemoteProtocolError):
        _exchange(sim, client, code, verifier)
    assert len(sim.control.oauth2_tokens("jira1")["tokens"]) == 1  # issued, the answer lost
    assert _last(sim)["status"] == 0
    assert _exchange(sim, client, code, verifier).status_code == 400  # the code is spent


def test_granted_tokens_without_the_dance_and_client_removal(sim: SimServer, client: dict[str, Any]) -> None:
    tokens = sim.control.grant_oauth2_tokens("jira1", client["client_id"], "carol")
    assert _bearer(sim, tokens["access_token"]).json()["name"] == "carol"
    assert [c["client_id"] for c in sim.control.oauth2_clients("jira1")] == [client["client_id"]]
    removed = sim.control.remove_oauth2_client("jira1", client["client_id"])
    assert removed["revoked_tokens"] == 1
    assert _bearer(sim, tokens["access_token"]).status_code == 401
