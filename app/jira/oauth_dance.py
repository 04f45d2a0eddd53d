"""Connecting a user's JIRA account: the OAuth 1.0a three-legged dance (CONTRACT section 4).

authlib's `AsyncOAuth1Client` is itself an `httpx.AsyncClient` with its own connection pool; it cannot
borrow the process's pool, and its RSA signer re-parses the PEM on every call. So the token requests go
out through `JiraClient.request` instead: the same shared pool, the same RSA-SHA1 signer with the cached
key, and, like every request to JIRA, through the gate and the observers (CONTRACT 10.3).
"""

from __future__ import annotations

import dataclasses
from urllib.parse import parse_qsl, urlencode

from app.jira.calls import OnCall
from app.jira.client import JiraClient, JiraTarget
from app.jira.errors import PermanentError

REQUEST_TOKEN_PATH = "/plugins/servlet/oauth/request-token"
AUTHORIZE_PATH = "/plugins/servlet/oauth/authorize"
ACCESS_TOKEN_PATH = "/plugins/servlet/oauth/access-token"


def _tokens(text: str, step: str) -> tuple[str, str]:
    values = dict(parse_qsl(text.strip()))
    token, secret = values.get("oauth_token"), values.get("oauth_token_secret", "")
    if not token:
        raise PermanentError(f"JIRA's {step} answer carries no oauth_token", status=None)
    return token, secret


async def fetch_request_token(
    client: JiraClient, target: JiraTarget, callback_url: str, *, on_call: OnCall | None = None,
) -> tuple[str, str]:
    """Step 1: a request token and its secret, with `oauth_callback` set to our callback URL."""
    response = await client.request(
        dataclasses.replace(target, access_token=None, token_secret=None), "POST", REQUEST_TOKEN_PATH,
        operation="fetch_request_token", callback=callback_url, on_call=on_call,
    )
    return _tokens(response.text, "request-token")


def authorize_url(base_url: str, token: str) -> str:
    """Step 2: where the user approves access (`<base_url>/plugins/servlet/oauth/authorize?oauth_token=…`)."""
    return base_url.rstrip("/") + AUTHORIZE_PATH + "?" + urlencode({"oauth_token": token})


async def fetch_access_token(
    client: JiraClient, target: JiraTarget, request_token: str, request_secret: str | None, verifier: str,
    *, on_call: OnCall | None = None,
) -> tuple[str, str]:
    """Step 3: exchange the approved request token and its verifier for an access token and secret."""
    response = await client.request(
        dataclasses.replace(target, access_token=request_token, token_secret=request_secret), "POST",
        ACCESS_TOKEN_PATH, operation="fetch_access_token", verifier=verifier, on_call=on_call,
    )
    return _tokens(response.text, "access-token")
