"""The service signs with authlib: check that its OAuth1 client works against the simulator."""

from __future__ import annotations

import warnings

import pytest

from jirasim.testing import SimServer

from .conftest import CONSUMER, Keys, http

with warnings.catch_warnings():
    # authlib.deprecate installs an "always" filter on import; silence the httpx-vs-httpx2 notice
    pytest.importorskip("authlib.deprecate")
    warnings.simplefilter("ignore")
    httpx_client = pytest.importorskip("authlib.integrations.httpx_client")

CALLBACK = "http://127.0.0.1:9/callback"


def test_authlib_dance_and_signed_writes(sim: SimServer, keys: Keys) -> None:
    base = sim.instance_url("jira1")
    servlet = f"{base}/plugins/servlet/oauth"
    options = {"signature_method": "RSA-SHA1", "rsa_key": keys.private_pem, "trust_env": False}
    with httpx_client.OAuth1Client(CONSUMER, redirect_uri=CALLBACK, **options) as dance:
        dance.fetch_request_token(f"{servlet}/request-token")
        redirect = http.get(dance.create_authorization_url(f"{servlet}/authorize")).headers["location"]
        dance.parse_authorization_response(redirect)
        token = dance.fetch_access_token(f"{servlet}/access-token")

    # force_include_body: without it authlib sends JSON requests with an empty body
    with httpx_client.OAuth1Client(
        CONSUMER,
        token=token["oauth_token"],
        token_secret=token["oauth_token_secret"],
        force_include_body=True,
        **options,
    ) as client:
        search = client.get(f"{base}/rest/api/2/search", params={"jql": "parent = PROJ-1", "fields": "summary"})
        assert search.status_code == 200 and search.json()["total"] == 2
        body = {"timeSpentSeconds": 600, "started": "2026-11-25T09:00:00.000+0100", "comment": "ünïcödé ✓"}
        created = client.post(f"{base}/rest/api/2/issue/PROJ-2/worklog", json=body)
        assert created.status_code == 201, created.text
        assert "oauth_body_hash" in created.request.headers["authorization"]
        assert created.json()["comment"] == "ünïcödé ✓"
        url = f"{base}/rest/api/2/issue/PROJ-2/worklog/{created.json()['id']}"
        updated = client.put(url, params={"adjustEstimate": "leave"}, json={"comment": "a b&c"})
        assert updated.status_code == 200
        assert client.delete(url).status_code == 204
    assert sim.control.counters("jira1")["oauth_problems"] == {}
