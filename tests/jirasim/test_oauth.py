"""OAuth 1.0a provider: the dance, and every kind of rejected request."""

from __future__ import annotations

import time
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from jirasim.testing import OAuthSigner, SimServer, generate_rsa_keypair, oauth_dance

from .conftest import CONSUMER, Jira, Keys, http, make_jira

CALLBACK = "http://127.0.0.1:9/callback"


def _problem(response: httpx.Response) -> str:
    assert response.status_code == 401, response.text
    header = response.headers["WWW-Authenticate"]
    assert header.startswith('OAuth realm="')
    body = dict(parse_qsl(response.text))
    assert f'oauth_problem="{body["oauth_problem"]}"' in header
    return body["oauth_problem"]


def _request_token(sim: SimServer, keys: Keys, instance: str = "jira1") -> dict[str, str]:
    r = http.post(
        f"{sim.instance_url(instance)}/plugins/servlet/oauth/request-token",
        auth=OAuthSigner(CONSUMER, keys.private_pem, callback=CALLBACK),
    )
    assert r.status_code == 200, r.text
    return dict(parse_qsl(r.text))


def _exchange(sim: SimServer, keys: Keys, request_token: dict[str, str], verifier: str) -> httpx.Response:
    signer = OAuthSigner(
        CONSUMER,
        keys.private_pem,
        request_token["oauth_token"],
        request_token["oauth_token_secret"],
        verifier=verifier,
    )
    return http.post(f"{sim.instance_url('jira1')}/plugins/servlet/oauth/access-token", auth=signer)


def _myself(sim: SimServer, keys: Keys, token: str, secret: str) -> httpx.Response:
    signer = OAuthSigner(CONSUMER, keys.private_pem, token, secret)
    return http.get(f"{sim.instance_url('jira1')}/rest/api/2/myself", auth=signer)


def test_dance_approve(sim: SimServer, keys: Keys) -> None:
    token, secret = oauth_dance(sim.instance_url("jira1"), CONSUMER, keys.private_pem, CALLBACK)
    r = _myself(sim, keys, token, secret)
    assert r.status_code == 200
    assert r.json()["name"] == "alice"  # jira1 approves as alice


def test_dance_step_by_step_and_request_token_single_use(sim: SimServer, keys: Keys) -> None:
    request_token = _request_token(sim, keys)
    assert set(request_token) >= {"oauth_token", "oauth_token_secret"}
    r = http.get(
        f"{sim.instance_url('jira1')}/plugins/servlet/oauth/authorize",
        params={"oauth_token": request_token["oauth_token"]},
    )
    assert r.status_code == 302
    location = urlsplit(r.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == CALLBACK
    query = dict(parse_qsl(location.query))
    assert query["oauth_token"] == request_token["oauth_token"]
    verifier = query["oauth_verifier"]

    first = _exchange(sim, keys, request_token, verifier)
    assert first.status_code == 200
    access = dict(parse_qsl(first.text))
    assert _myself(sim, keys, access["oauth_token"], access["oauth_token_secret"]).status_code == 200

    again = _exchange(sim, keys, request_token, verifier)
    assert _problem(again) == "token_used"


def test_wrong_verifier_is_rejected(sim: SimServer, keys: Keys) -> None:
    request_token = _request_token(sim, keys)
    http.get(
        f"{sim.instance_url('jira1')}/plugins/servlet/oauth/authorize",
        params={"oauth_token": request_token["oauth_token"]},
    )
    assert _problem(_exchange(sim, keys, request_token, "not-the-verifier")) == "token_rejected"


def test_dance_deny(sim: SimServer, keys: Keys) -> None:
    sim.control.set_settings("jira1", authorize_mode="deny")
    request_token = _request_token(sim, keys)
    r = http.get(
        f"{sim.instance_url('jira1')}/plugins/servlet/oauth/authorize",
        params={"oauth_token": request_token["oauth_token"]},
    )
    assert r.status_code == 302
    assert dict(parse_qsl(urlsplit(r.headers["location"]).query))["oauth_verifier"] == "denied"
    assert _problem(_exchange(sim, keys, request_token, "denied")) == "permission_denied"


def test_dance_manual_page(sim: SimServer, keys: Keys) -> None:
    sim.control.set_settings("jira1", authorize_mode="manual")
    request_token = _request_token(sim, keys)
    url = f"{sim.instance_url('jira1')}/plugins/servlet/oauth/authorize"
    page = http.get(url, params={"oauth_token": request_token["oauth_token"]})
    assert page.status_code == 200
    assert "Allow" in page.text and "Deny" in page.text and 'name="user"' in page.text
    r = http.post(url, data={"oauth_token": request_token["oauth_token"], "user": "bob", "action": "allow"})
    assert r.status_code == 302
    verifier = dict(parse_qsl(urlsplit(r.headers["location"]).query))["oauth_verifier"]
    access = dict(parse_qsl(_exchange(sim, keys, request_token, verifier).text))
    me = _myself(sim, keys, access["oauth_token"], access["oauth_token_secret"])
    assert me.json()["name"] == "bob"


def test_authorize_unknown_token(sim: SimServer) -> None:
    r = http.get(
        f"{sim.instance_url('jira1')}/plugins/servlet/oauth/authorize",
        params={"oauth_token": "nope"},
    )
    assert r.status_code == 400


def test_other_key_is_signature_invalid(sim: SimServer, keys: Keys) -> None:
    token, secret = sim.control.grant_token("jira1", CONSUMER, "alice")
    r = http.get(
        f"{sim.instance_url('jira1')}/rest/api/2/myself",
        auth=OAuthSigner(CONSUMER, keys.other_private_pem, token, secret),
    )
    assert _problem(r) == "signature_invalid"
    body = dict(parse_qsl(r.text))
    assert body["oauth_signature_base_string"].startswith("GET&http%3A%2F%2F127.0.0.1")
    counters = sim.control.counters("jira1")
    assert counters["oauth_problems"] == {"signature_invalid": 1}
    assert counters["invalid_signatures"] == 1


def test_signature_covers_query_and_context_path(sim: SimServer, keys: Keys) -> None:
    token, secret = sim.control.grant_token("jira1", CONSUMER, "alice")
    signer = OAuthSigner(CONSUMER, keys.private_pem, token, secret)
    base = sim.instance_url("jira1")
    ok = http.get(f"{base}/rest/api/2/search", params={"jql": "parent = PROJ-1"}, auth=signer)
    assert ok.status_code == 200, ok.text
    # signed for one query, sent with another
    url = f"{base}/rest/api/2/search?jql=parent%3DPROJ-1"
    headers = signer.sign("GET", url)
    tampered = http.get(f"{base}/rest/api/2/search?jql=parent%3DPROJ-2", headers=headers)
    assert _problem(tampered) == "signature_invalid"
    # signed for another context path
    headers = signer.sign("GET", f"{sim.instance_url('jira2')}/rest/api/2/myself")
    other_ctx = http.get(f"{base}/rest/api/2/myself", headers=headers)
    assert _problem(other_ctx) == "signature_invalid"


def test_replayed_nonce(sim: SimServer, keys: Keys) -> None:
    token, secret = sim.control.grant_token("jira1", CONSUMER, "alice")
    signer = OAuthSigner(CONSUMER, keys.private_pem, token, secret)
    url = f"{sim.instance_url('jira1')}/rest/api/2/myself"
    headers = signer.sign("GET", url)
    assert http.get(url, headers=headers).status_code == 200
    assert _problem(http.get(url, headers=headers)) == "nonce_used"


@pytest.mark.parametrize("offset", [-301, 400])
def test_timestamp_outside_window(sim: SimServer, keys: Keys, offset: int) -> None:
    token, secret = sim.control.grant_token("jira1", CONSUMER, "alice")
    signer = OAuthSigner(CONSUMER, keys.private_pem, token, secret)
    url = f"{sim.instance_url('jira1')}/rest/api/2/myself"
    headers = signer.sign("GET", url, timestamp=str(int(time.time()) + offset))
    r = http.get(url, headers=headers)
    assert _problem(r) == "timestamp_refused"
    assert "oauth_acceptable_timestamps" in dict(parse_qsl(r.text))


def test_timestamp_inside_window_is_fine(sim: SimServer, keys: Keys) -> None:
    token, secret = sim.control.grant_token("jira1", CONSUMER, "alice")
    signer = OAuthSigner(CONSUMER, keys.private_pem, token, secret)
    url = f"{sim.instance_url('jira1')}/rest/api/2/myself"
    headers = signer.sign("GET", url, timestamp=str(int(time.time()) - 250))
    assert http.get(url, headers=headers).status_code == 200


def test_revoked_token(sim: SimServer, keys: Keys) -> None:
    jira = make_jira(sim, keys)
    assert jira("GET", "myself").status_code == 200
    assert sim.control.revoke("jira1", user="alice") == 1
    assert _problem(jira("GET", "myself")) == "token_rejected"
    jira.close()


def test_unknown_token(sim: SimServer, keys: Keys) -> None:
    signer = OAuthSigner(CONSUMER, keys.private_pem, "made-up-token", "x")
    r = http.get(f"{sim.instance_url('jira1')}/rest/api/2/myself", auth=signer)
    assert _problem(r) == "token_rejected"


def test_token_of_other_instance_is_rejected(sim: SimServer, keys: Keys) -> None:
    token, secret = sim.control.grant_token("jira2", CONSUMER, "alice")
    r = _myself(sim, keys, token, secret)
    assert _problem(r) == "token_rejected"


def test_unknown_consumer(sim: SimServer, keys: Keys) -> None:
    token, secret = sim.control.grant_token("jira1", CONSUMER, "alice")
    signer = OAuthSigner("someone-else", keys.private_pem, token, secret)
    r = http.get(f"{sim.instance_url('jira1')}/rest/api/2/myself", auth=signer)
    assert _problem(r) == "consumer_key_unknown"


def test_hmac_is_rejected(sim: SimServer, keys: Keys) -> None:
    token, secret = sim.control.grant_token("jira1", CONSUMER, "alice")
    signer = OAuthSigner(CONSUMER, keys.private_pem, token, secret)
    url = f"{sim.instance_url('jira1')}/rest/api/2/myself"
    headers = signer.sign("GET", url, signature_method="HMAC-SHA1", client_secret="s", rsa_key=None)
    assert _problem(http.get(url, headers=headers)) == "signature_method_rejected"


def test_body_hash_mismatch(sim: SimServer, keys: Keys) -> None:
    token, secret = sim.control.grant_token("jira1", CONSUMER, "alice")
    signer = OAuthSigner(CONSUMER, keys.private_pem, token, secret)
    url = f"{sim.instance_url('jira1')}/rest/api/2/issue/PROJ-1/worklog"
    signed_body = b'{"timeSpentSeconds": 3600, "started": "2026-11-25T09:00:00.000+0100"}'
    sent_body = b'{"timeSpentSeconds": 7200, "started": "2026-11-25T09:00:00.000+0100"}'
    headers = signer.sign("POST", url, signed_body)
    assert "oauth_body_hash" in headers["Authorization"]
    r = http.post(url, content=sent_body, headers=headers)
    assert _problem(r) == "signature_invalid"
    assert "oauth_body_hash_expected" in dict(parse_qsl(r.text))
    assert sim.control.worklogs("jira1", "PROJ-1") == []
    good = http.post(url, content=signed_body, headers=signer.sign("POST", url, signed_body))
    assert good.status_code == 201


def test_body_hash_is_optional(sim: SimServer, keys: Keys) -> None:
    token, secret = sim.control.grant_token("jira1", CONSUMER, "alice")
    signer = OAuthSigner(CONSUMER, keys.private_pem, token, secret, body_hash=False)
    jira = Jira(sim.instance_url("jira1"), signer)
    assert jira.add_worklog("PROJ-1").status_code == 201
    jira.close()


def test_anonymous_requests(sim: SimServer) -> None:
    base = f"{sim.instance_url('jira1')}/rest/api/2"
    assert http.get(f"{base}/serverInfo").status_code == 200
    r = http.get(f"{base}/myself")
    assert r.status_code == 401
    assert r.json()["errorMessages"]
    assert http.post(f"{base}/issue/PROJ-1/worklog", json={"timeSpentSeconds": 60}).status_code == 401


def test_consumer_added_at_runtime(sim: SimServer) -> None:
    private_pem, public_pem = generate_rsa_keypair()
    sim.control.add_consumer("jira2", "new-service", public_pem, name="New service")
    token, secret = sim.control.grant_token("jira2", "new-service", "bob")
    signer = OAuthSigner("new-service", private_pem, token, secret)
    r = http.get(f"{sim.instance_url('jira2')}/rest/api/2/myself", auth=signer)
    assert r.status_code == 200
    assert r.json()["name"] == "bob"
    tokens = sim.control.tokens("jira2")
    assert [t["user"] for t in tokens] == ["bob"]
