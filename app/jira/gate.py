"""The request gate: what the JIRA client calls around every request (CONTRACT 10.3, 10.8, 12).

The Redis rate limiter (`app/jira/ratelimit.py`) implements `RequestGate`: `acquire` blocks until the
instance may receive one more request (its rate budget and its circuit, in one decision) or raises `GateClosed`;
`left` marks the moment the request leaves; `observe` hears every answer, so the gate can slow down on a 429's
`Retry-After` or a low `X-RateLimit-Remaining`, and count failures and successes for the circuit. A Jira Cloud
site's requests also fit the budgets of its `CloudPool` (the app's points, the per-issue writes): `acquire` names the
issue a write goes to, and `observe` the points an answer cost.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from app.domain.priority import Priority

__all__ = ["CloudPool", "InstanceRef", "NoGate", "Priority", "RequestGate", "response_header"]


def response_header(headers: Mapping[str, str], name: str) -> str | None:
    """A header of JIRA's answer, `name` lower-case: a case-insensitive look-up for httpx.Headers and plain dicts."""
    value = headers.get(name)
    if value is not None:
        return value
    for key, val in headers.items():
        if key.lower() == name:
            return val
    return None


@dataclass(frozen=True)
class CloudPool:
    """The points pool a Jira Cloud site's requests draw from: the service's 3LO app (`name`: its client id), and
    the points all its sites may spend per clock hour together (80 % of the app's quota)."""

    name: str
    points_per_window: int
    window_seconds: float = 3600.0


@dataclass(frozen=True)
class InstanceRef:
    """A JIRA instance as the gate sees it: its id and its configured request budget (a Cloud site: and its pool)."""

    id: uuid.UUID
    rate_limit_per_second: int
    pool: CloudPool | None = None


class RequestGate(Protocol):
    async def acquire(self, instance: InstanceRef, priority: Priority, *, max_wait: float | None = None,
                      write_to: str | None = None) -> float:
        """Wait until one more request may go to `instance` (`write_to`: the issue a write changes); return the
        seconds waited. Raises `GateClosed` (nothing sent) when it may not go now, or not within `max_wait`
        seconds; a Cloud budget that stays spent for long raises `RateLimited` instead (nothing sent)."""
        ...

    def left(self, instance: InstanceRef) -> None:
        """The request just let through is leaving now (called as it is sent; no I/O on its path)."""
        ...

    async def observe(self, instance: InstanceRef, status: int | None, headers: Mapping[str, str], *,
                      sent: bool = True, write_to: str | None = None, objects: int = 0) -> None:
        """Hear the answer (status None: no answer, a transport failure; `sent` False: the request never left)
        of a request let through; `objects`: how many objects a successful read returned (a Cloud read costs a
        point for each)."""
        ...


class NoGate:
    """Lets every request through at once (unit tests, one-off tools)."""

    async def acquire(self, instance: InstanceRef, priority: Priority, *, max_wait: float | None = None,
                      write_to: str | None = None) -> float:
        """Never waits."""
        return 0.0

    def left(self, instance: InstanceRef) -> None:
        """Keeps no slots."""

    async def observe(self, instance: InstanceRef, status: int | None, headers: Mapping[str, str], *,
                      sent: bool = True, write_to: str | None = None, objects: int = 0) -> None:
        """Ignores answers."""
