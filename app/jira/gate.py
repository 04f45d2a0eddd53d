"""The request gate: what the JIRA client calls around every request (CONTRACT 10.3).

The Redis rate limiter (`app/jira/ratelimit.py`) implements `RequestGate`; `acquire` blocks until the
instance may receive one more request, `observe` hears every answer so the gate can slow down on a 429's
`Retry-After` or a low `X-RateLimit-Remaining`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from app.domain.priority import Priority

__all__ = ["InstanceRef", "NoGate", "Priority", "RequestGate"]


@dataclass(frozen=True)
class InstanceRef:
    """A JIRA instance as the gate sees it: its id and its configured request budget."""

    id: uuid.UUID
    rate_limit_per_second: int


class RequestGate(Protocol):
    async def acquire(self, instance: InstanceRef, priority: Priority) -> float:
        """Wait until one more request may go to `instance`; return the seconds waited."""
        ...

    async def observe(self, instance: InstanceRef, status: int | None, headers: Mapping[str, str]) -> None:
        """Hear the answer (status None: no answer, a transport failure) of a request let through."""
        ...

    async def left(self, instance: InstanceRef) -> None:
        """The request just let through is leaving now (called as it is sent, off its critical path)."""
        ...


class NoGate:
    """Lets every request through at once (unit tests, one-off tools)."""

    async def acquire(self, instance: InstanceRef, priority: Priority) -> float:
        """Never waits."""
        return 0.0

    async def observe(self, instance: InstanceRef, status: int | None, headers: Mapping[str, str]) -> None:
        """Ignores answers."""

    async def left(self, instance: InstanceRef) -> None:
        """Keeps no slots."""
