"""Data Center's OAuth 2.0 provider as the client speaks it (CONTRACT 13), and how the client uses any credential:
Bearer tokens, the authorize URL with PKCE, the token endpoint, its refusals, one retry after a renewal."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import respx

from app.jira.calls import OnCall
from app.jira.credentials import ClientAuthenticated, StaticBearer
from app.jira.errors import AuthRejected, PermanentError, TokenRefused, TransientError, error_from_response
from app.jira.oauth2 import DataCenterTokens, OAuth2Client, authorize_url, code_challenge, new_code_verifier
from app.jira.token_refresh import DEFAULT_LIFETIME, TokenPair
from jirasim.oauth2 import pkce_challenge
from tests.unit.test_jira_support import API, BASE, make_client, make_target

CLIENT = OAuth2Client("tt-client", "s3cret-value", "http://127.0.0.1:8000/oauth/jira2/callback")
TOKEN_URL = f"{BASE}/rest/oauth2/latest/token"
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def test_the_pkce_challenge_is_rfc_7636s() -> None:
    rfc_verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"  # RFC 7636, appendix B
    assert code_challenge(rfc_verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    verifier = new_code_verifier()
    assert 43 <= len(verifier) <= 128 and verifier != new_code_verifier()
    assert code_challenge(verifier) == pkce_challenge(verifier)  # what the simulator (JIRA) computes


def test_the_authorize_url_is_the_contracts() -> None:
    url = authorize_url(BASE + "/", CLIENT, state="st4te", verifier="v" * 64)
    parts = urlsplit(url)
    assert parts.path == "/jira/rest/oauth2/latest/authorize"
    assert parse_qs(parts.query) == {
        "client_id": ["tt-client"], "redirect_uri": [CLIENT.redirect_uri], "response_type": ["code"],
        "scope": ["WRITE"], "state": ["st4te"], "code_challenge": [code_challenge("v" * 64)],
        "code_challenge_method": ["S256"]}
    assert "v" * 64 not in url and "s3cret" not in url  # the verifier and the secret never travel in a URL


async def test_the_code_is_exchanged_in_a_form_body_through_the_gate() -> None:
    async with respx.mock() as mock, httpx.AsyncClient() as http:
        route = mock.post(TOKEN_URL).mock(return_value=httpx.Response(200, json={
            "access_token": "acc-4711", "token_type": "bearer", "expires_in": 3600, "refresh_token": "ref-4711",
            "scope": "WRITE"}))
        harness = make_client(http)
        tokens = DataCenterTokens(harness.client, make_target(credential=ClientAuthenticated()), CLIENT,
                                  clock=lambda: NOW)
        pair = await tokens.exchange_code("the-code", "the-verifier")
    request = route.calls.last.request
    assert "authorization" not in request.headers and request.url.query == b""
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert parse_qs(request.content.decode()) == {
        "grant_type": ["authorization_code"], "code": ["the-code"], "code_verifier": ["the-verifier"],
        "client_id": ["tt-client"], "client_secret": ["s3cret-value"], "redirect_uri": [CLIENT.redirect_uri]}
    assert (pair.access_token, pair.refresh_token) == ("acc-4711", "ref-4711")
    assert pair.expires_at == NOW + timedelta(hours=1) and pair.refresh_due_at == NOW + timedelta(minutes=55)
    assert len(harness.gate.acquired) == 1  # a token call counts against the instance's rate limit
    assert harness.calls[0].operation == "exchange_authorization_code" and "s3cret" not in harness.calls[0].path
    assert "4711" not in repr(pair)


async def test_a_refresh_sends_the_redirect_uri_too() -> None:
    async with respx.mock() as mock, httpx.AsyncClient() as http:
        route = mock.post(TOKEN_URL).mock(return_value=httpx.Response(200, json={"access_token": "a2"}))
        tokens = DataCenterTokens(make_client(http).client, make_target(credential=ClientAuthenticated()), CLIENT,
                                  clock=lambda: NOW)
        pair = await tokens.refresh("r1", on_call=None)
    form = parse_qs(route.calls.last.request.content.decode())
    assert form["grant_type"] == ["refresh_token"] and form["refresh_token"] == ["r1"]
    assert form["redirect_uri"] == [CLIENT.redirect_uri]
    assert pair.refresh_token is None and pair.expires_at == NOW + DEFAULT_LIFETIME  # what JIRA did not say


@pytest.mark.parametrize("status, body, error", [
    (400, {"error": "invalid_grant", "error_description": "PKCE verification failed: no match."}, "invalid_grant"),
    (401, {"error": "invalid_client", "error_description": "Client authentication failed."}, "invalid_client"),
    (403, {"error": "invalid_grant", "error_description": "Unknown or invalid refresh token."}, "invalid_grant"),
])
def test_token_endpoint_refusals_carry_their_rfc_6749_code(status: int, body: dict[str, str], error: str) -> None:
    refused = error_from_response(status, httpx.Headers({}), httpx.Response(status, json=body).content)
    assert isinstance(refused, TokenRefused) and isinstance(refused, PermanentError)
    assert refused.error == error and refused.description == body["error_description"]
    assert error in refused.message and body["error_description"] in refused.message


@pytest.mark.parametrize("body", [
    {"errorMessages": ["You are not authenticated."], "errors": {}},
    {"error": "Not An OAuth Code"},
    {"code": 401, "message": "Unauthorized"},
])
def test_a_rest_401_is_still_auth_rejected(body: dict[str, object]) -> None:
    error = error_from_response(401, httpx.Headers({}), httpx.Response(401, json=body).content)
    assert isinstance(error, AuthRejected) and not isinstance(error, TokenRefused)


async def test_a_token_answer_that_is_no_token_is_transient() -> None:
    async with respx.mock() as mock, httpx.AsyncClient() as http:
        mock.post(TOKEN_URL).mock(side_effect=[httpx.Response(200, text="<html>login</html>"),
                                               httpx.Response(200, json={"token_type": "bearer"})])
        tokens = DataCenterTokens(make_client(http).client, make_target(credential=ClientAuthenticated()), CLIENT)
        for _ in range(2):
            with pytest.raises(TransientError) as info:
                await tokens.exchange_code("c", "v")
            assert info.value.maybe_applied  # the code may be spent all the same


async def test_a_personal_access_token_is_sent_as_bearer() -> None:
    async with respx.mock() as mock, httpx.AsyncClient() as http:
        route = mock.get(f"{API}/myself").mock(return_value=httpx.Response(200, json={"name": "alice"}))
        await make_client(http).client.myself(make_target(credential=StaticBearer("pat-123")))
    assert route.calls.last.request.headers["authorization"] == "Bearer pat-123"


@dataclass
class Renewing:
    """A credential that renews after a 401 `renewals` times (what RefreshingBearer does with a store)."""

    tokens: list[str]
    renewals: int = 1
    prepared: int = 0
    asked: list[str] = field(default_factory=list)
    kind: str = "test"

    async def prepare(self, on_call: OnCall | None) -> None:
        self.prepared += 1

    def authorization(self, method: str, url: str, body: bytes) -> str | None:
        return f"Bearer {self.tokens[0]}"

    async def renew_after_rejection(self, on_call: OnCall | None) -> bool:
        self.asked.append(self.tokens[0])
        if self.renewals <= 0:
            return False
        self.renewals -= 1
        self.tokens.pop(0)
        return True


async def test_a_401_is_retried_once_with_the_renewed_credential() -> None:
    credential = Renewing(["old", "new"])
    async with respx.mock() as mock, httpx.AsyncClient() as http:
        route = mock.get(f"{API}/myself").mock(side_effect=[
            httpx.Response(401, json={"errorMessages": ["expired"]}), httpx.Response(200, json={"name": "alice"})])
        harness = make_client(http)
        user = await harness.client.myself(make_target(credential=credential))
    assert user.name == "alice" and credential.prepared == 1 and credential.asked == ["old"]
    assert [c.request.headers["authorization"] for c in route.calls] == ["Bearer old", "Bearer new"]
    assert [c.outcome for c in harness.calls] == ["auth_rejected", "ok"]  # both attempts observed
    assert len(harness.gate.acquired) == 2  # and both counted


async def test_a_second_401_is_the_callers() -> None:
    credential = Renewing(["old", "new", "newer"], renewals=5)
    async with respx.mock() as mock, httpx.AsyncClient() as http:
        route = mock.get(f"{API}/myself").mock(return_value=httpx.Response(401, json={"errorMessages": ["no"]}))
        with pytest.raises(AuthRejected):
            await make_client(http).client.myself(make_target(credential=credential))
    assert route.call_count == 2 and credential.asked == ["old"]


async def test_a_credential_that_cannot_renew_fails_at_the_first_401() -> None:
    credential = Renewing(["only"], renewals=0)
    async with respx.mock() as mock, httpx.AsyncClient() as http:
        route = mock.get(f"{API}/myself").mock(return_value=httpx.Response(401, json={"errorMessages": ["no"]}))
        with pytest.raises(AuthRejected):
            await make_client(http).client.myself(make_target(credential=credential))
    assert route.call_count == 1


def test_token_pair_from_an_answer() -> None:
    pair = TokenPair.from_answer({"access_token": "a", "refresh_token": "r", "expires_in": "120"}, now=NOW)
    assert pair.expires_at == NOW + timedelta(minutes=2) and pair.refresh_due_at == NOW + timedelta(minutes=1)
    with pytest.raises(TransientError):
        TokenPair.from_answer({"refresh_token": "r"}, now=NOW)
