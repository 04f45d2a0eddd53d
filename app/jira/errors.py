"""What can go wrong talking to JIRA, as a small taxonomy of values (CONTRACT 10.6-10.8).

`error_from_response` and `error_from_exception` turn an HTTP answer or a transport failure into one of
these. Messages are for people: they quote JIRA's `errorMessages`/`errors` and never carry credentials.
"""

from __future__ import annotations

import email.utils
import json
import math
import re
import time
from collections.abc import Mapping
from http import HTTPStatus
from urllib.parse import parse_qsl

import httpx

_DETAIL_LIMIT = 500
# anything that looks like an OAuth parameter is cut out of texts we quote back
_TOKEN_ERROR = re.compile(r"[a-z_]{1,64}")  # RFC 6749 error codes: invalid_grant, invalid_client, …
_OAUTH_PARAM = re.compile(r"oauth_(token|signature|verifier|token_secret|nonce)\s*=\s*\"?[^\s\",&]*", re.IGNORECASE)


class JiraError(Exception):
    """Base of every failure of a JIRA call; `message` is what a person reads."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class AuthRejected(JiraError):
    """401: JIRA refused the OAuth credentials (revoked token, unknown consumer, bad signature...)."""

    def __init__(self, message: str, *, oauth_problem: str | None = None, status: int | None = 401) -> None:
        super().__init__(message, status=status)
        self.oauth_problem = oauth_problem


class PermanentError(JiraError):
    """A 4xx other than 401/429: repeating the request cannot help."""

    def __init__(
        self, message: str, *, status: int | None, error_messages: tuple[str, ...] = (),
        errors: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, status=status)
        self.error_messages = error_messages
        self.errors: dict[str, str] = dict(errors or {})


class NotFound(PermanentError):
    """404: the issue or worklog does not exist, or the user may not see it."""


class TokenRefused(PermanentError):
    """An OAuth 2.0 token endpoint refused the request (RFC 6749 5.2): `error` is its code (`invalid_grant`,
    `invalid_client`, …), `description` its explanation (JIRA's own text, bounded)."""

    def __init__(self, message: str, *, error: str, description: str | None, status: int | None) -> None:
        super().__init__(message, status=status)
        self.error = error
        self.description = description


class RateLimited(JiraError):
    """429, after the client's own retries are used up; `retry_after` is at least one second. `issue`: only writes to
    this issue must wait (Jira Cloud's per-issue limits), the instance's other requests may go on."""

    def __init__(
        self, message: str, *, retry_after: float = 1.0, limit: int | None = None, remaining: int | None = None,
        fill_rate: int | None = None, interval: int | None = None, issue: str | None = None,
    ) -> None:
        super().__init__(message, status=429)
        self.retry_after = max(1.0, retry_after)
        self.issue = issue
        self.limit = limit
        self.remaining = remaining
        self.fill_rate = fill_rate
        self.interval = interval


class TransientError(JiraError):
    """5xx, timeouts and connection failures: worth retrying later.

    `maybe_applied` is True when the request may have reached JIRA (a 5xx, a read timeout, a connection
    lost after sending), so a write may have happened and must be looked for before creating again.
    """

    def __init__(self, message: str, *, maybe_applied: bool, status: int | None = None) -> None:
        super().__init__(message, status=status)
        self.maybe_applied = maybe_applied


class GateClosed(TransientError):
    """Nothing was sent: the instance's circuit is open, its next rate-limit slot is further away than the caller
    would wait (a 429's pause, USER work ahead), or the coordination store is unreachable. Asking again after
    `retry_in` seconds makes sense; it costs no attempt."""

    def __init__(self, message: str, *, retry_in: float, circuit: bool = False) -> None:
        super().__init__(message, maybe_applied=False)
        self.retry_in = retry_in
        self.circuit = circuit


def redact(text: str) -> str:
    """Remove OAuth token/signature values from a text before quoting it."""
    return _OAUTH_PARAM.sub(lambda m: f"oauth_{m.group(1)}=<redacted>", text)


def _short(text: str, limit: int = _DETAIL_LIMIT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _reason(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def jira_messages(body: bytes) -> tuple[tuple[str, ...], dict[str, str]]:
    """JIRA's `{"errorMessages": [...], "errors": {field: message}}`, or empty values for other bodies."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return (), {}
    if not isinstance(data, dict):
        return (), {}
    raw_messages = data.get("errorMessages")
    messages = tuple(str(m) for m in raw_messages if m) if isinstance(raw_messages, list) else ()
    raw_errors = data.get("errors")
    errors = {str(k): str(v) for k, v in raw_errors.items()} if isinstance(raw_errors, dict) else {}
    if not messages and not errors and isinstance(data.get("message"), str):
        messages = (data["message"],)  # some plugins and proxies answer {"message": "..."}
    return messages, errors


def describe_jira_error(status: int, headers: Mapping[str, str], body: bytes) -> str:
    """`JIRA says: <errorMessages>; <field>: <error>` or, without them, `JIRA answered 403 Forbidden`.

    Only JIRA's own error fields are ever quoted (CONTRACT 11): any other body (an HTML page, a text, what an
    internal service behind a wrong base_url answers) is reported by its status alone.
    """
    messages, errors = jira_messages(body)
    parts = [*messages, *(f"{field}: {text}" for field, text in errors.items())]
    if parts:
        return _short("JIRA says: " + "; ".join(redact(p) for p in parts))
    return f"JIRA answered {_reason(status)}"


def token_refusal(status: int, body: bytes) -> TokenRefused | None:
    """A token endpoint's RFC 6749 error answer (`{"error": "invalid_grant", "error_description": …}`), else None."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, str) or not _TOKEN_ERROR.fullmatch(error):
        return None
    raw = data.get("error_description")
    description = _short(redact(raw), 300) if isinstance(raw, str) and raw.strip() else None
    detail = f" ({description})" if description else ""
    return TokenRefused(f"JIRA refused the token request: {error}{detail}", error=error, description=description,
                        status=status)


def oauth_problem_of(headers: Mapping[str, str], body: bytes) -> str | None:
    """The `oauth_problem` JIRA names in `WWW-Authenticate` or in a form-encoded 401 body."""
    m = re.search(r"oauth_problem=\"?([A-Za-z_]+)", headers.get("www-authenticate", ""))
    if m:
        return m.group(1)
    try:
        for key, value in parse_qsl(body.decode("utf-8", "replace").strip()):
            if key == "oauth_problem" and re.fullmatch(r"[A-Za-z_]+", value):
                return value
    except ValueError:
        pass
    return None


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    try:
        return int(headers[name].strip())
    except (KeyError, ValueError):
        return None


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float:
    """`Retry-After` as seconds (delta or HTTP date), never below 1 s; missing or unreadable → 1 s."""
    if not value:
        return 1.0
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return 1.0
        seconds = when.timestamp() - (time.time() if now is None else now)
    if math.isnan(seconds) or math.isinf(seconds):
        return 1.0
    return max(1.0, seconds)


def rate_limited_from(headers: Mapping[str, str]) -> RateLimited:
    """A 429's wait and JIRA's X-RateLimit-* figures."""
    retry_after = retry_after_seconds(headers.get("retry-after"))
    return RateLimited(
        f"JIRA is rate limiting requests; retry after {retry_after:g} s",
        retry_after=retry_after,
        limit=_int_header(headers, "x-ratelimit-limit"),
        remaining=_int_header(headers, "x-ratelimit-remaining"),
        fill_rate=_int_header(headers, "x-ratelimit-fillrate"),
        interval=_int_header(headers, "x-ratelimit-interval-seconds"),
    )


def error_from_response(status: int, headers: Mapping[str, str], body: bytes) -> JiraError | None:
    """The error an HTTP answer stands for, or None for a 2xx. `headers` must look up case-insensitively
    (httpx.Headers does) or carry lower-case names."""
    if 200 <= status < 300:
        return None
    if status in (400, 401, 403) and (refused := token_refusal(status, body)) is not None:
        return refused  # only token endpoints answer in RFC 6749's shape
    if status == 401:
        problem = oauth_problem_of(headers, body)
        detail = f" ({problem})" if problem else ""
        return AuthRejected(f"JIRA rejected the OAuth credentials{detail}; the user must reconnect",
                            oauth_problem=problem)
    if status == 429:
        return rate_limited_from(headers)
    if status >= 500:
        return TransientError(describe_jira_error(status, headers, body), maybe_applied=True, status=status)
    if 300 <= status < 400:
        # a REST call answered by a redirect usually means base_url points at the wrong place (or a login page);
        # redirects are never followed, and where it points is not repeated (it may name an internal address)
        return PermanentError(f"JIRA answered {_reason(status)} (a redirect); check the instance's base_url",
                              status=status)
    messages, errors = jira_messages(body)
    cls = NotFound if status == 404 else PermanentError
    return cls(describe_jira_error(status, headers, body), status=status, error_messages=messages, errors=errors)


def error_from_exception(exc: httpx.HTTPError) -> TransientError:
    """A transport failure; `maybe_applied` is False only when nothing can have been sent."""
    if isinstance(exc, httpx.ConnectTimeout):
        return TransientError("JIRA did not accept a connection in time", maybe_applied=False)
    if isinstance(exc, httpx.PoolTimeout):
        return TransientError("no free connection to JIRA in time (too many requests in flight)",
                              maybe_applied=False)
    if isinstance(exc, httpx.ConnectError):
        # the OS's text (refused, unreachable, no route) would tell a tenant about the network behind us
        return TransientError("cannot connect to JIRA", maybe_applied=False)
    if isinstance(exc, httpx.ReadTimeout):
        return TransientError("JIRA did not answer in time (the request may have been applied)", maybe_applied=True)
    if isinstance(exc, httpx.TimeoutException):
        return TransientError("timed out sending the request to JIRA", maybe_applied=True)
    # read errors, a connection reset or closed after the request went out, protocol errors: unknown outcome
    return TransientError(f"connection to JIRA failed: {type(exc).__name__}", maybe_applied=True)
