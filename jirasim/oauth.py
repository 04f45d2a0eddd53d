"""OAuth 1.0a provider (RSA-SHA1 only), verifying signatures with oauthlib."""

from __future__ import annotations

import base64
import binascii
import hashlib
import time
from dataclasses import dataclass
from urllib.parse import quote, urlencode, urlsplit

from oauthlib.common import Request as OAuthRequest  # type: ignore[import-untyped,unused-ignore]
from oauthlib.common import generate_token  # type: ignore[import-untyped,unused-ignore]
from oauthlib.oauth1.rfc5849 import (  # type: ignore[import-untyped,unused-ignore]
    signature as oauth_signature,
)

from .state import AccessToken, Consumer, InstanceState, RequestToken

SIGNATURE_METHOD = "RSA-SHA1"
PROBLEMS = (
    "signature_invalid",
    "token_rejected",
    "token_used",
    "nonce_used",
    "timestamp_refused",
    "consumer_key_unknown",
    "signature_method_rejected",
    "parameter_absent",
    "parameter_rejected",
    "version_rejected",
    "permission_denied",
    "permission_unknown",
)
_MANDATORY = (
    "oauth_consumer_key",
    "oauth_signature_method",
    "oauth_signature",
    "oauth_timestamp",
    "oauth_nonce",
)
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"


class OAuthProblem(Exception):
    """A failed OAuth check; rendered as 401 with ``oauth_problem``."""

    def __init__(self, problem: str, detail: str = "", extra: dict[str, str] | None = None):
        super().__init__(f"{problem}: {detail}" if detail else problem)
        self.problem = problem
        self.detail = detail
        self.extra = extra or {}


@dataclass
class Verified:
    consumer: Consumer
    params: dict[str, str]
    access_token: AccessToken | None = None
    request_token: RequestToken | None = None


def _is_form(content_type: str | None) -> bool:
    return bool(content_type) and FORM_CONTENT_TYPE in (content_type or "")


def collect_oauth_params(
    url: str, authorization: str | None, content_type: str | None, body: bytes
) -> dict[str, str] | None:
    """The ``oauth_*`` parameters of a request (header, query or form body), or None."""
    try:
        return _collect_oauth_params(url, authorization, content_type, body)
    except ValueError as exc:
        raise OAuthProblem("parameter_rejected", str(exc)) from exc


def _collect_oauth_params(
    url: str, authorization: str | None, content_type: str | None, body: bytes
) -> dict[str, str] | None:
    found: list[tuple[str, str]] = []
    collect = oauth_signature.collect_parameters
    if authorization and authorization.strip().lower().startswith("oauth "):
        headers = {"Authorization": authorization}
        found.extend(collect(headers=headers, exclude_oauth_signature=False))
    query = urlsplit(url).query
    if query:
        found.extend(collect(uri_query=query, exclude_oauth_signature=False))
    if _is_form(content_type) and body:
        form = body.decode("utf-8", "replace")
        found.extend(collect(body=form, exclude_oauth_signature=False))
    oauth_params = [(k, v) for k, v in found if k.startswith("oauth_")]
    if not oauth_params:
        return None
    result: dict[str, str] = {}
    for key, value in oauth_params:
        if key in result:
            raise OAuthProblem("parameter_rejected", f"duplicate {key}")
        result[key] = value
    return result


def signature_base_string(
    method: str, url: str, authorization: str | None, content_type: str | None, body: bytes
) -> str:
    """The RFC 5849 signature base string of the request as this server sees it."""
    params = _signed_params(url, authorization, content_type, body)
    return str(
        oauth_signature.signature_base_string(
            method.upper(),
            oauth_signature.base_string_uri(url),
            oauth_signature.normalize_parameters(params),
        )
    )


def _signed_params(url: str, authorization: str | None, content_type: str | None, body: bytes) -> list[tuple[str, str]]:
    headers = {"Authorization": authorization} if authorization else {}
    form_body = body.decode("utf-8", "replace") if _is_form(content_type) and body else None
    params: list[tuple[str, str]] = oauth_signature.collect_parameters(
        uri_query=urlsplit(url).query,
        body=form_body,
        headers=headers,
        exclude_oauth_signature=True,
        with_realm=False,
    )
    return params


def verify_request(
    state: InstanceState,
    *,
    method: str,
    url: str,
    authorization: str | None,
    content_type: str | None,
    body: bytes,
    token_kind: str | None,
    params: dict[str, str] | None = None,
) -> Verified:
    """Check an OAuth-signed request. ``token_kind`` is "access", "request" or None.

    Order: signature method, consumer, timestamp, token, signature, body hash, nonce.
    """
    if params is None:
        params = collect_oauth_params(url, authorization, content_type, body)
    if params is None:
        raise OAuthProblem("parameter_absent", "no OAuth parameters", {"oauth_parameters_absent": "&".join(_MANDATORY)})
    missing = [p for p in _MANDATORY if not params.get(p)]
    if token_kind and not params.get("oauth_token"):
        missing.append("oauth_token")
    if missing:
        raise OAuthProblem("parameter_absent", f"missing {missing}", {"oauth_parameters_absent": "&".join(missing)})
    if params.get("oauth_version", "1.0") != "1.0":
        raise OAuthProblem("version_rejected", "oauth_version must be 1.0", {"oauth_acceptable_versions": "1.0-1.0"})
    if params["oauth_signature_method"] != SIGNATURE_METHOD:
        raise OAuthProblem(
            "signature_method_rejected",
            f"{params['oauth_signature_method']} is not supported",
            {"oauth_acceptable_signature_methods": SIGNATURE_METHOD},
        )
    consumer = state.consumers.get(params["oauth_consumer_key"])
    if consumer is None:
        raise OAuthProblem("consumer_key_unknown", params["oauth_consumer_key"])

    window = state.config.timestamp_window_seconds
    now = int(time.time())
    try:
        timestamp = int(params["oauth_timestamp"])
    except ValueError:
        timestamp = -1
    if abs(now - timestamp) > window:
        raise OAuthProblem(
            "timestamp_refused",
            f"timestamp {params['oauth_timestamp']} outside ±{window}s",
            {"oauth_acceptable_timestamps": f"{now - window}-{now + window}"},
        )

    verified = Verified(consumer=consumer, params=params)
    token = params.get("oauth_token")
    if token_kind == "access":
        access = state.access_tokens.get(token or "")
        if access is None or access.revoked or access.consumer_key != consumer.key:
            raise OAuthProblem("token_rejected", "unknown or revoked access token")
        verified.access_token = access
    elif token_kind == "request":
        request_token = state.request_tokens.get(token or "")
        if request_token is None or request_token.consumer_key != consumer.key:
            raise OAuthProblem("token_rejected", "unknown request token")
        if request_token.status == "used":
            raise OAuthProblem("token_used", "request token already exchanged")
        verified.request_token = request_token

    try:
        signed = _signed_params(url, authorization, content_type, body)
        oauth_request = OAuthRequest(url, http_method=method.upper(), body="", headers={})
        oauth_request.params = signed
        oauth_request.signature = params["oauth_signature"]
        valid = bool(oauth_signature.verify_rsa_sha1(oauth_request, consumer.public_key_pem))
    except (ValueError, TypeError, binascii.Error):
        valid = False
    if not valid:
        try:
            base_string = signature_base_string(method, url, authorization, content_type, body)
        except ValueError:
            base_string = ""
        raise OAuthProblem(
            "signature_invalid",
            "RSA-SHA1 signature does not verify",
            {
                "oauth_signature": params["oauth_signature"],
                "oauth_signature_base_string": base_string,
                "oauth_signature_method": SIGNATURE_METHOD,
            },
        )

    body_hash = params.get("oauth_body_hash")
    if body_hash is not None and not _is_form(content_type):
        expected = base64.b64encode(hashlib.sha1(body, usedforsecurity=False).digest()).decode("ascii")
        if body_hash != expected:
            raise OAuthProblem(
                "signature_invalid", "oauth_body_hash does not match the body", {"oauth_body_hash_expected": expected}
            )

    if not state.remember_nonce(consumer.key, params["oauth_nonce"], time.time() + 2 * window):
        raise OAuthProblem("nonce_used", params["oauth_nonce"])
    return verified


def problem_headers_and_body(problem: OAuthProblem, realm: str) -> tuple[dict[str, str], str]:
    """``WWW-Authenticate`` header and form-encoded body the way JIRA reports problems."""
    quoted_realm = quote(realm, safe="")
    header = f'OAuth realm="{quoted_realm}", oauth_problem="{problem.problem}"'
    body_params = {"oauth_problem": problem.problem, **problem.extra}
    if problem.detail:
        body_params["oauth_problem_advice"] = problem.detail
    return {"WWW-Authenticate": header}, urlencode(body_params)


# -- token lifecycle ---------------------------------------------------------------
def issue_request_token(state: InstanceState, consumer: Consumer, callback: str) -> RequestToken:
    token = RequestToken(
        token=generate_token(32),
        secret=generate_token(32),
        consumer_key=consumer.key,
        callback=callback or "oob",
    )
    state.request_tokens[token.token] = token
    return token


def authorize_request_token(state: InstanceState, token: RequestToken, user: str) -> str:
    token.status = "authorized"
    token.user = user
    token.verifier = generate_token(16)
    return token.verifier


def deny_request_token(token: RequestToken) -> None:
    token.status = "denied"
    token.verifier = "denied"


def exchange_request_token(state: InstanceState, token: RequestToken, verifier: str | None) -> AccessToken:
    """Turn an authorized request token into an access token (single use)."""
    if token.status == "denied":
        raise OAuthProblem("permission_denied", "the user denied access")
    if token.status != "authorized" or token.user is None:
        raise OAuthProblem("permission_unknown", "request token was not authorized")
    if not verifier or verifier != token.verifier:
        raise OAuthProblem("token_rejected", "oauth_verifier does not match")
    token.status = "used"
    return grant_access_token(state, token.consumer_key, token.user)


def grant_access_token(state: InstanceState, consumer_key: str, user: str) -> AccessToken:
    if consumer_key not in state.consumers:
        raise KeyError(f"unknown consumer {consumer_key}")
    if user not in state.users:
        raise KeyError(f"unknown user {user}")
    access = AccessToken(token=generate_token(32), secret=generate_token(32), consumer_key=consumer_key, user=user)
    state.access_tokens[access.token] = access
    return access


def callback_url(callback: str, params: dict[str, str]) -> str:
    separator = "&" if urlsplit(callback).query else "?"
    return callback + separator + urlencode(params)
