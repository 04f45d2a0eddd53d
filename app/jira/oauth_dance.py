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
from app.jira.credentials import OAuth1Signature
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


def _signed(target: JiraTarget, *, token: str | None = None, callback: str | None = None,
            verifier: str | None = None) -> JiraTarget:
    """`target` signed as its consumer with the dance's token, callback or verifier."""
    if not isinstance(target.credential, OAuth1Signature):
        raise PermanentError("this JIRA instance is not connected through OAuth 1.0a", status=None)
    credential = OAuth1Signature(target.credential.consumer, token=token, callback=callback, verifier=verifier)
    return dataclasses.replace(target, credential=credential)


async def fetch_request_token(
    client: JiraClient, target: JiraTarget, callback_url: str, *, on_call: OnCall | None = None,
) -> tuple[str, str]:
    """Step 1: a request token and its secret, with `oauth_callback` set to our callback URL (`target` is signed
    by the consumer)."""
    response = await client.request(_signed(target, callback=callback_url), "POST", REQUEST_TOKEN_PATH,
                                    operation="fetch_request_token", on_call=on_call)
    return _tokens(response.text, "request-token")


def authorize_url(base_url: str, token: str) -> str:
    """Step 2: where the user approves access (`<base_url>/plugins/servlet/oauth/authorize?oauth_token=…`)."""
    return base_url.rstrip("/") + AUTHORIZE_PATH + "?" + urlencode({"oauth_token": token})


async def fetch_access_token(
    client: JiraClient, target: JiraTarget, request_token: str, verifier: str,
    *, on_call: OnCall | None = None,
) -> tuple[str, str]:
    """Step 3: exchange the approved request token and its verifier for an access token and secret (the request
    token's secret plays no part in RSA-SHA1)."""
    response = await client.request(_signed(target, token=request_token, verifier=verifier), "POST",
                                    ACCESS_TOKEN_PATH, operation="fetch_access_token", on_call=on_call)
    return _tokens(response.text, "access-token")
