"""Per-tenant API rate limit across all API processes (CONTRACT 11, `TENANT_API_RATE_PER_SECOND`).

Sustained `rate` requests per second per tenant, bursts up to twice that; beyond → 429 with `Retry-After`.
Webhooks count for their tenant. The state is one Redis key per tenant (GCRA, on Redis' clock, in
`app/jira/lua/tenant_api_rate.lua`). Redis being down lets requests through: the API must keep accepting changes then
(guarantee 1), and the limit protects capacity, not data.

A round trip to Redis on every request would be the largest cost of accepting a change after the database's: an API
process asks for up to a twentieth of a second's worth of its tenant's rate at once and admits that many requests
without asking again, for at most `HOLD_SECONDS`. Every admitted request is charged in Redis when granted, so all
processes together never admit more than the GCRA allows; a process holding admissions it does not use makes the
limit slightly stricter for the others, never looser (by at most one twentieth of a second's rate per process).
"""

from __future__ import annotations

import logging
import math
import time
import uuid

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app import redis_keys
from app.jira import scripts

log = logging.getLogger(__name__)

HOLD_SECONDS = 0.25  # how long a process keeps admissions Redis granted ahead
_HELD_MAX = 10_000  # tenants one process holds admissions for; beyond that it forgets them (stricter, never looser)


class TenantRateLimit:
    """`check(tenant)` → None when the request may go, else the seconds to wait (at least 1, for Retry-After)."""

    def __init__(self, redis: Redis, rate_per_second: float) -> None:
        self.rate = rate_per_second
        self._interval_us = math.ceil(1_000_000 / rate_per_second) if rate_per_second > 0 else 0
        self._burst = max(1, math.floor(2 * rate_per_second))
        self._ahead = max(1, math.floor(rate_per_second / 20))
        self._held: dict[uuid.UUID, tuple[int, float]] = {}  # tenant → (admissions left, until when)
        self._script = scripts.register(redis, "tenant_api_rate")

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    async def check(self, tenant_id: uuid.UUID) -> int | None:
        if not self.enabled:
            return None
        now = time.monotonic()
        left, until = self._held.get(tenant_id, (0, 0.0))
        if left > 0 and until > now:
            self._held[tenant_id] = (left - 1, until)
            return None
        try:
            granted, wait_us = (int(x) for x in await self._script(
                keys=[redis_keys.tenant_api_rate(tenant_id)], args=[self._interval_us, self._burst, self._ahead]))
        except (RedisError, OSError) as exc:
            log.warning("tenant rate limit unavailable (%s): request let through", exc.__class__.__name__)
            return None
        if granted <= 0:
            return max(1, math.ceil(wait_us / 1_000_000))
        if granted > 1:
            if len(self._held) >= _HELD_MAX:
                self._held.clear()
            # requests of this tenant that asked at the same moment add up; expired admissions are dropped
            left, until = self._held.get(tenant_id, (0, 0.0))
            self._held[tenant_id] = ((left if until > now else 0) + granted - 1, now + HOLD_SECONDS)
        return None
