"""JIRA Data Center's OAuth 2.0 provider ("External application" incoming links): codes with PKCE, token pairs.

Modelled on Atlassian's "Jira OAuth 2.0 provider API" and its system properties: authorization codes are
single use and live `code_seconds` (JIRA: 10 s by default, at most 600 s); access tokens live
`access_token_seconds` (1 h), refresh tokens `refresh_token_seconds` (90 days). A refresh returns a new pair
and ends the old one, access token included; the old refresh token is then refused (`invalid_grant`), and
the redirect URI is checked on the refresh grant too.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from .config import OAUTH2_SCOPES, OAuth2ClientConfig
from .state import InstanceState, OAuth2Code, OAuth2Grant

PKCE_METHODS = ("S256", "plain")
_PKCE_VALUE = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")  # RFC 7636 code_verifier / code_challenge alphabet
_IMPLIED = {"READ": {"READ"}, "WRITE": {"READ", "WRITE"}, "ADMIN": {"READ", "WRITE", "ADMIN"}}
_IMPLIED["SYSTEM_ADMIN"] = set(OAUTH2_SCOPES)


class OAuth2Error(Exception):
    """An RFC 6749 error: ``{"error": ..., "error_description": ...}`` with an HTTP status."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.status = status
        self.error = error
        self.description = description

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


def pkce_challenge(verifier: str) -> str:
    """The S256 code challenge of a verifier: BASE64URL(SHA256(verifier)) without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def granted(scopes: tuple[str, ...]) -> set[str]:
    """Every scope a token with ``scopes`` may use (WRITE includes READ, ...)."""
    result: set[str] = set()
    for scope in scopes:
        result |= _IMPLIED.get(scope, set())
    return result


@dataclass(frozen=True)
class AuthorizationRequest:
    """The checked parameters of ``/rest/oauth2/latest/authorize``."""

    client: OAuth2ClientConfig
    redirect_uri: str
    scopes: tuple[str, ...]
    state: str | None
    challenge: str | None
    challenge_method: str | None


class RedirectableError(Exception):
    """An authorize error reported back to the client's redirect URI (the client and its URI are trusted)."""

    def __init__(self, redirect_uri: str, state: str | None, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.redirect_uri = redirect_uri
        self.state = state
        self.error = error
        self.description = description


def check_authorization(state: InstanceState, params: dict[str, str]) -> AuthorizationRequest:
    """Validate authorize parameters. Unknown client or wrong redirect URI: ValueError (shown as a page,
    never redirected); anything else wrong: RedirectableError."""
    client = state.oauth2_clients.get(params.get("client_id", ""))
    if client is None:
        raise ValueError("Unknown client_id: no application link has this client ID.")
    redirect_uri = params.get("redirect_uri") or client.redirect_uri
    if redirect_uri != client.redirect_uri:
        raise ValueError("redirect_uri does not match the redirect URL of the application link.")
    state_param = params.get("state")

    def fail(error: str, description: str) -> RedirectableError:
        return RedirectableError(redirect_uri, state_param, error, description)

    if params.get("response_type") != "code":
        raise fail("unsupported_response_type", "response_type must be code")
    raw_scope = params.get("scope") or " ".join(client.scopes)
    scopes = tuple(raw_scope.split())
    if not scopes or any(s not in OAUTH2_SCOPES for s in scopes):
        raise fail("invalid_scope", f"scope must be among {' '.join(OAUTH2_SCOPES)}")
    if not set(scopes) <= granted(client.scopes):
        raise fail("invalid_scope", f"the application link permits only {' '.join(client.scopes)}")
    challenge = params.get("code_challenge") or None
    method = params.get("code_challenge_method") or None
    if challenge is None and method is not None:
        raise fail("invalid_request", "code_challenge_method without code_challenge")
    if challenge is not None:
        method = method or "plain"
        if method not in PKCE_METHODS:
            raise fail("invalid_request", f"code_challenge_method must be one of {', '.join(PKCE_METHODS)}")
        if not _PKCE_VALUE.match(challenge):
            raise fail("invalid_request", "code_challenge must be 43 to 128 characters of [A-Za-z0-9-._~]")
    return AuthorizationRequest(client, redirect_uri, scopes, state_param, challenge, method)


def issue_code(state: InstanceState, request: AuthorizationRequest, user: str, lifetime: float) -> OAuth2Code:
    code = OAuth2Code(
        code=secrets.token_urlsafe(24),
        client_id=request.client.client_id,
        user=user,
        redirect_uri=request.redirect_uri,
        scopes=request.scopes,
        expires_at=time.time() + lifetime,
        challenge=request.challenge,
        challenge_method=request.challenge_method,
    )
    state.oauth2_codes[code.code] = code
    return code


def _client(state: InstanceState, params: dict[str, str]) -> OAuth2ClientConfig:
    client = state.oauth2_clients.get(params.get("client_id", ""))
    secret = params.get("client_secret", "")
    if client is None or not hmac.compare_digest(client.client_secret.encode(), secret.encode()):
        state.oauth2_counts["invalid_client"] += 1
        raise OAuth2Error(401, "invalid_client", "Client authentication failed: unknown client_id or wrong secret.")
    return client


def _new_grant(state: InstanceState, client_id: str, user: str, scopes: tuple[str, ...]) -> OAuth2Grant:
    settings = state.config.oauth2
    now = time.time()
    grant = OAuth2Grant(
        access_token=secrets.token_urlsafe(32),
        refresh_token=secrets.token_urlsafe(32),
        client_id=client_id,
        user=user,
        scopes=scopes,
        created=now,
        access_expires_at=now + settings.access_token_seconds,
        refresh_expires_at=now + settings.refresh_token_seconds,
    )
    state.oauth2_access[grant.access_token] = grant
    state.oauth2_refresh[grant.refresh_token] = grant
    return grant


def grant_tokens(state: InstanceState, client_id: str, user: str, scopes: tuple[str, ...] | None = None) -> OAuth2Grant:
    """A token pair without the dance (control API)."""
    client = state.oauth2_clients.get(client_id)
    if client is None:
        raise KeyError(f"unknown OAuth 2.0 client {client_id!r}")
    if user not in state.users:
        raise KeyError(f"unknown user {user!r}")
    return _new_grant(state, client_id, user, scopes or client.scopes)


def _verify_pkce(state: InstanceState, code: OAuth2Code, verifier: str | None) -> None:
    if code.challenge is None:
        return
    if not verifier:
        state.oauth2_counts["pkce_failures"] += 1
        raise OAuth2Error(400, "invalid_grant", "code_verifier is required: the authorization used PKCE.")
    if not _PKCE_VALUE.match(verifier):
        state.oauth2_counts["pkce_failures"] += 1
        raise OAuth2Error(400, "invalid_grant", "code_verifier must be 43 to 128 characters of [A-Za-z0-9-._~].")
    expected = pkce_challenge(verifier) if code.challenge_method == "S256" else verifier
    if not hmac.compare_digest(expected.encode(), code.challenge.encode()):
        state.oauth2_counts["pkce_failures"] += 1
        raise OAuth2Error(
            400, "invalid_grant", "PKCE verification failed: code_verifier does not match code_challenge."
        )


def exchange_code(state: InstanceState, params: dict[str, str]) -> OAuth2Grant:
    """``grant_type=authorization_code``: client, single-use unexpired code, redirect URI, PKCE."""
    client = _client(state, params)
    code = state.oauth2_codes.get(params.get("code", ""))
    if code is None or code.client_id != client.client_id:
        raise OAuth2Error(400, "invalid_grant", "Unknown authorization code.")
    if code.used:
        raise OAuth2Error(400, "invalid_grant", "The authorization code was already used.")
    if time.time() > code.expires_at:
        raise OAuth2Error(400, "invalid_grant", "The authorization code has expired.")
    if params.get("redirect_uri", "") != code.redirect_uri:
        raise OAuth2Error(400, "invalid_grant", "redirect_uri does not match the one of the authorization.")
    _verify_pkce(state, code, params.get("code_verifier"))
    code.used = True
    state.oauth2_counts["code_exchanges"] += 1
    return _new_grant(state, client.client_id, code.user, code.scopes)


def refresh(state: InstanceState, params: dict[str, str]) -> OAuth2Grant:
    """``grant_type=refresh_token``: a new pair; the old refresh and access tokens end."""
    client = _client(state, params)
    old = state.oauth2_refresh.get(params.get("refresh_token", ""))
    if old is None or old.client_id != client.client_id:
        raise OAuth2Error(400, "invalid_grant", "Unknown refresh token.")
    if old.replaced:
        state.oauth2_counts["refresh_reuse"] += 1
        raise OAuth2Error(400, "invalid_grant", "The refresh token was already used.")
    if old.revoked:
        raise OAuth2Error(400, "invalid_grant", "The refresh token was revoked.")
    if time.time() > old.refresh_expires_at:
        raise OAuth2Error(400, "invalid_grant", "The refresh token has expired.")
    if params.get("redirect_uri", "") != client.redirect_uri:
        raise OAuth2Error(400, "invalid_grant", "redirect_uri does not match the redirect URL of the application link.")
    if old.user not in state.users or not state.users[old.user].active:
        raise OAuth2Error(400, "invalid_grant", "The user of this grant is not active.")
    old.replaced = True
    state.oauth2_counts["refreshes"] += 1
    return _new_grant(state, client.client_id, old.user, old.scopes)


def token_answer(grant: OAuth2Grant) -> dict[str, Any]:
    return {
        "access_token": grant.access_token,
        "token_type": "bearer",
        "expires_in": max(0, round(grant.access_expires_at - time.time())),
        "refresh_token": grant.refresh_token,
        "scope": " ".join(grant.scopes),
    }


def find_access(state: InstanceState, token: str) -> tuple[OAuth2Grant | None, str]:
    """The pair of a usable access token, or (None, why not)."""
    grant = state.oauth2_access.get(token)
    if grant is None:
        return None, "token_unknown"
    if grant.revoked:
        return None, "token_revoked"
    if grant.replaced:
        return None, "token_replaced"
    if time.time() > grant.access_expires_at:
        return None, "token_expired"
    return grant, ""


def revoke(state: InstanceState, user: str | None = None, client_id: str | None = None) -> int:
    """End the token pairs of a user and/or client (what a user's "Revoke access" or an admin does)."""
    count = 0
    for grant in state.oauth2_access.values():
        if grant.revoked or grant.replaced:
            continue
        if (user is not None and grant.user != user) or (client_id is not None and grant.client_id != client_id):
            continue
        grant.revoked = True
        count += 1
    return count


def expire_access(state: InstanceState, user: str | None = None) -> int:
    """Make current access tokens expire now (tests: "the token expired mid-backlog")."""
    count = 0
    now = time.time()
    for grant in state.oauth2_access.values():
        if grant.revoked or grant.replaced or (user is not None and grant.user != user):
            continue
        grant.access_expires_at = min(grant.access_expires_at, now - 0.001)
        count += 1
    return count
