"""Webhook signatures: TimeTracker's `t=…,v1=…` scheme and JIRA's `X-Hub-Signature: sha256=…`."""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass

TIMETRACKER_TOLERANCE_SECONDS = 300


@dataclass(frozen=True)
class SignatureProblem(Exception):
    reason: str


def sign_timetracker(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The header value TimeTracker sends: `t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify_timetracker(secret: str, header: str | None, body: bytes, *, now: float | None = None) -> None:
    """Raise SignatureProblem unless `header` signs `body` with `secret` within the tolerance."""
    if not header:
        raise SignatureProblem("missing X-TimeTracker-Signature header")
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        k, sep, v = item.strip().partition("=")
        if sep:
            parts.setdefault(k, []).append(v)
    raw_t = parts.get("t", [""])[0]
    # ASCII digits only, and few of them: int() would also take "١٢٣" or a 4000-digit number (and the float
    # arithmetic below cannot hold the latter)
    if not (raw_t.isascii() and raw_t.isdigit() and len(raw_t) <= 12):
        raise SignatureProblem("X-TimeTracker-Signature has no valid t=<unix seconds>")
    t = int(raw_t)
    current = time.time() if now is None else now
    if abs(current - t) > TIMETRACKER_TOLERANCE_SECONDS:
        raise SignatureProblem("X-TimeTracker-Signature timestamp is more than 300 s from now")
    expected = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    # compare_digest refuses non-ASCII text (TypeError): compare bytes, whatever the header carried
    if not any(hmac.compare_digest(expected.encode(), v.encode("utf-8", "surrogateescape"))
               for v in parts.get("v1", [])):
        raise SignatureProblem("X-TimeTracker-Signature does not match the body")


def sign_hub(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_hub(secret: str, header: str | None, body: bytes) -> None:
    """Verify JIRA's `X-Hub-Signature: sha256=<hex>` over the raw body."""
    if not header:
        raise SignatureProblem("missing X-Hub-Signature header")
    algo, _, value = header.strip().partition("=")
    if algo.lower() != "sha256" or not value:
        raise SignatureProblem("X-Hub-Signature must be sha256=<hex>")
    given = ("sha256=" + value.lower()).encode("utf-8", "surrogateescape")
    if not hmac.compare_digest(sign_hub(secret, body).encode(), given):
        raise SignatureProblem("X-Hub-Signature does not match the body")
