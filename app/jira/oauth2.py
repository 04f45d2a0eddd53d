"""Jira Data Center's OAuth 2.0 provider (CONTRACT 13): the authorize URL with PKCE, and its token endpoint.

An incoming "External application" link gives the service a client id and secret and fixes the redirect URL
(`<PUBLIC_BASE_URL>/oauth/jira2/callback`). The user approves at `<base_url>/rest/oauth2/latest/authorize`; the
code that comes back is exchanged, with the PKCE verifier, at `<base_url>/rest/oauth2/latest/token`, which also
renews pairs. JIRA checks the redirect URL on both grants. Token requests go through the JIRA client like every
other request (egress rules, the instance's rate limit, the audit log); their parameters travel in a form body,
never in a URL that a proxy might log.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import quote, urlencode

from authlib.oauth2.rfc7636 import create_s256_code_challenge

from app.clock import now_utc
from app.jira.calls import OnCall
from app.jira.client import JiraClient, JiraTarget
from app.jira.token_refresh import TokenPair

AUTHORIZE_PATH = "/rest/oauth2/latest/authorize"
TOKEN_PATH = "/rest/oauth2/latest/token"
SCOPE = "WRITE"  # worklogs are written as the user; WRITE includes READ


@dataclass(frozen=True)
class OAuth2Client:
    """The service as the link's client: its id and secret, and the redirect URL the link was registered with."""

    client_id: str
    client_secret: str = field(repr=False)
    redirect_uri: str


def new_code_verifier() -> str:
    """A PKCE code verifier (RFC 7636 4.1): 64 characters of the unreserved alphabet, 384 random bits."""
    return secrets.token_urlsafe(48)


def code_challenge(verifier: str) -> str:
    """The S256 challenge of a verifier: BASE64URL(SHA-256(verifier)) without padding (authlib's RFC 7636)."""
    return str(create_s256_code_challenge(verifier))


def authorize_url(base_url: str, client: OAuth2Client, *, state: str, verifier: str) -> str:
    """Where the user approves access, with the state and the verifier's S256 challenge."""
    query = urlencode({"client_id": client.client_id, "redirect_uri": client.redirect_uri, "response_type": "code",
                       "scope": SCOPE, "state": state, "code_challenge": code_challenge(verifier),
                       "code_challenge_method": "S256"}, quote_via=quote, safe="")
    return base_url.rstrip("/") + AUTHORIZE_PATH + "?" + query


class DataCenterTokens:
    """The instance's token endpoint, for one client; a `TokenEndpoint` for `RefreshingBearer`."""

    def __init__(self, jira: JiraClient, target: JiraTarget, client: OAuth2Client, *,
                 clock: Callable[[], datetime] = now_utc) -> None:
        self._jira, self._target, self._client, self._clock = jira, target, client, clock

    async def exchange_code(self, code: str, verifier: str, *, on_call: OnCall | None = None) -> TokenPair:
        """The pair for an approved authorization code (single use, valid seconds: exchange it at once)."""
        return await self._token({"grant_type": "authorization_code", "code": code, "code_verifier": verifier},
                                 "exchange_authorization_code", on_call)

    async def refresh(self, refresh_token: str, *, on_call: OnCall | None) -> TokenPair:
        """A new pair for `refresh_token` (which JIRA then ends, with its access token)."""
        return await self._token({"grant_type": "refresh_token", "refresh_token": refresh_token},
                                 "refresh_access_token", on_call)

    async def _token(self, grant: dict[str, str], operation: str, on_call: OnCall | None) -> TokenPair:
        form = {**grant, "client_id": self._client.client_id, "client_secret": self._client.client_secret,
                "redirect_uri": self._client.redirect_uri}
        answer = await self._jira.request(self._target, "POST", TOKEN_PATH, operation=operation, form=form,
                                          on_call=on_call)
        return TokenPair.from_content(answer.content, status=answer.status_code, server="JIRA",
                                      operation=operation, now=self._clock())
