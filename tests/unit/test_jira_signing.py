"""Every request is signed RSA-SHA1 so that an OAuth 1.0a server (oauthlib here, JIRA in life) accepts it."""

from __future__ import annotations

import base64
import hashlib
import json

import httpx
import pytest
import respx

from app.domain.worklog import WorklogBody
from app.jira.errors import PermanentError
from app.jira.signing import KeyCache, OAuthConsumer, authorization_header
from tests.unit.test_jira_support import (
    API,
    BASE,
    PRIVATE_KEY,
    PRIVATE_PEM,
    make_client,
    make_target,
    oauth_header_params,
    oauthlib_accepts_resource_request,
    oauthlib_verifies_signature,
)

WORKLOG = {"id": "10042", "issueId": "10001", "started": "2026-11-25T09:00:00.000+0100", "timeSpentSeconds": 5400,
           "comment": "#4711: Development: Fix login", "updated": "2026-11-25T10:00:00.000+0100"}
BODY = WorklogBody(started="2026-11-25T09:00:00.000+0100", time_spent_seconds=5400,
                   comment="#4711: Development: Fix login — ümlaut & \"quotes\"")


async def test_get_with_query_and_context_path_verifies_with_oauthlib() -> None:
    async with respx.mock(assert_all_called=True) as mock, httpx.AsyncClient() as http:
        route = mock.get(f"{API}/search").mock(return_value=httpx.Response(
            200, json={"startAt": 0, "maxResults": 100, "total": 0, "issues": []}))
        await make_client(http).client.list_subtasks(make_target(), "PROJ-1")
    request = route.calls.last.request
    assert request.url.path == "/jira/rest/api/2/search"
    assert 'parent = "PROJ-1"' in request.url.params["jql"]
    assert oauthlib_accepts_resource_request(request)
    assert "oauth_body_hash" not in oauth_header_params(request)


async def test_json_body_is_sent_whole_and_covered_by_body_hash() -> None:
    async with respx.mock(assert_all_called=True) as mock, httpx.AsyncClient() as http:
        route = mock.post(f"{API}/issue/PROJ-1/worklog").mock(
            return_value=httpx.Response(201, json=WORKLOG))
        await make_client(http).client.create_worklog(make_target(), "PROJ-1", BODY)
    request = route.calls.last.request
    assert json.loads(request.content) == BODY.as_json()
    params = oauth_header_params(request)
    assert params["oauth_body_hash"] == base64.b64encode(hashlib.sha1(request.content).digest()).decode()
    assert params["oauth_signature_method"] == "RSA-SHA1"
    assert request.url.params["adjustEstimate"] == "leave"
    assert oauthlib_accepts_resource_request(request)


async def test_tampered_request_fails_oauthlib_verification() -> None:
    async with respx.mock() as mock, httpx.AsyncClient() as http:
        route = mock.get(f"{API}/myself").mock(return_value=httpx.Response(
            200, json={"name": "jdoe", "displayName": "J. Doe"}))
        await make_client(http).client.myself(make_target())
    good = route.calls.last.request
    assert oauthlib_accepts_resource_request(good)
    moved = httpx.Request("GET", str(good.url).replace("/jira/", "/other/"), headers=good.headers)
    assert not oauthlib_accepts_resource_request(moved)
    with_query = httpx.Request("GET", str(good.url) + "?x=1", headers=good.headers)
    assert not oauthlib_accepts_resource_request(with_query)


def test_signature_covers_query_parameters_with_special_characters() -> None:
    consumer = OAuthConsumer("timetracker", PRIVATE_KEY)
    url = f"{BASE}/rest/api/2/search?jql=parent%20%3D%20%22A-1%22&fields=summary%2Cparent&since=1"
    request = httpx.Request("GET", url)
    request.headers["Authorization"] = authorization_header(consumer, method="GET", url=str(request.url),
                                                            token="access-token-1")
    assert oauthlib_accepts_resource_request(request)


def test_token_requests_with_callback_and_verifier_verify() -> None:
    consumer = OAuthConsumer("timetracker", PRIVATE_KEY)
    url = f"{BASE}/plugins/servlet/oauth/request-token"
    request = httpx.Request("POST", url)
    request.headers["Authorization"] = authorization_header(
        consumer, method="POST", url=url, callback="http://127.0.0.1:8000/oauth/jira/callback")
    assert oauth_header_params(request)["oauth_callback"] == "http://127.0.0.1:8000/oauth/jira/callback"
    assert oauthlib_verifies_signature(request)
    request.headers["Authorization"] = authorization_header(consumer, method="POST", url=url, token="rt",
                                                            verifier="v3r1f13r")
    assert oauthlib_verifies_signature(request)


def test_nonce_and_timestamp_change_per_request() -> None:
    consumer = OAuthConsumer("timetracker", PRIVATE_KEY)
    a = authorization_header(consumer, method="GET", url=BASE + "/x", token="t")
    b = authorization_header(consumer, method="GET", url=BASE + "/x", token="t")
    assert a != b


def test_key_cache_is_keyed_by_fingerprint_not_pem() -> None:
    cache = KeyCache()
    key = cache.load(PRIVATE_PEM)
    assert cache.load(PRIVATE_PEM.encode()) is key
    assert cache.load(PRIVATE_KEY) is PRIVATE_KEY
    assert all(PRIVATE_PEM not in k and "PRIVATE" not in k for k in cache._keys)


def test_unreadable_private_key_is_a_permanent_error_without_key_material() -> None:
    with pytest.raises(PermanentError) as info:
        KeyCache().load("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    assert "not a key" not in info.value.message
    assert "private key" in info.value.message


def test_target_repr_hides_credentials() -> None:
    text = repr(make_target())
    assert "access-token-1" not in text and "PRIVATE" not in text and "unused-secret" not in text
