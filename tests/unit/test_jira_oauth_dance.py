"""Connecting a user's account: request token, authorize URL, access token (CONTRACT section 4)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import respx

from app.jira.errors import AuthRejected, TransientError
from app.jira.oauth_dance import authorize_url, fetch_access_token, fetch_request_token
from tests.unit.test_jira_support import (
    BASE,
    INSTANCE,
    make_client,
    make_target,
    oauth_header_params,
    oauthlib_verifies_signature,
)

CALLBACK = "http://127.0.0.1:8000/oauth/jira/callback"


async def test_request_token_is_fetched_with_callback_through_gate_and_observer() -> None:
    async with respx.mock() as mock, httpx.AsyncClient() as http:
        route = mock.post(f"{BASE}/plugins/servlet/oauth/request-token").mock(return_value=httpx.Response(
            200, text="oauth_token=req-1&oauth_token_secret=sec-1&oauth_callback_confirmed=true"))
        harness = make_client(http)
        token, secret = await fetch_request_token(harness.client, make_target(access_token=None), CALLBACK)
    assert (token, secret) == ("req-1", "sec-1")
    params = oauth_header_params(route.calls.last.request)
    assert params["oauth_callback"] == CALLBACK
    assert "oauth_token" not in params
    assert oauthlib_verifies_signature(route.calls.last.request)
    assert len(harness.gate.acquired) == 1
    assert harness.calls[0].operation == "fetch_request_token" and harness.calls[0].outcome == "ok"
    assert harness.calls[0].instance_id == INSTANCE.id


async def test_access_token_exchange_signs_request_token_and_verifier() -> None:
    async with respx.mock() as mock, httpx.AsyncClient() as http:
        route = mock.post(f"{BASE}/plugins/servlet/oauth/access-token").mock(return_value=httpx.Response(
            200, text="oauth_token=acc-1&oauth_token_secret=acc-sec&oauth_expires_in=157680000"))
        harness = make_client(http)
        token, secret = await fetch_access_token(harness.client, make_target(access_token=None), "req-1", "verif")
    assert (token, secret) == ("acc-1", "acc-sec")
    params = oauth_header_params(route.calls.last.request)
    assert (params["oauth_token"], params["oauth_verifier"]) == ("req-1", "verif")
    assert oauthlib_verifies_signature(route.calls.last.request)


def test_authorize_url_keeps_the_context_path() -> None:
    url = authorize_url(BASE + "/", "req 1")
    parts = urlsplit(url)
    assert parts.path == "/jira/plugins/servlet/oauth/authorize"
    assert parse_qs(parts.query) == {"oauth_token": ["req 1"]}


async def test_refused_token_request_is_auth_rejected() -> None:
    async with respx.mock() as mock, httpx.AsyncClient() as http:
        mock.post(f"{BASE}/plugins/servlet/oauth/access-token").mock(return_value=httpx.Response(
            401, text="oauth_problem=token_rejected&oauth_problem_advice=The%20token%20is%20invalid"))
        harness = make_client(http)
        with pytest.raises(AuthRejected) as info:
            await fetch_access_token(harness.client, make_target(), "req-1", "verif")
    assert info.value.oauth_problem == "token_rejected"


async def test_token_request_to_unreachable_jira_is_transient() -> None:
    async with respx.mock() as mock, httpx.AsyncClient() as http:
        mock.post(f"{BASE}/plugins/servlet/oauth/request-token").mock(side_effect=httpx.ConnectError("refused"))
        with pytest.raises(TransientError):
            await fetch_request_token(make_client(http).client, make_target(), CALLBACK)
