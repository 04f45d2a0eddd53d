"""Per-tenant API rate limit across all API processes (CONTRACT 11, `TENANT_API_RATE_PER_SECOND`).

Sustained `rate` requests per second per tenant, bursts up to twice that; beyond → 429 with `Retry-After`.
Webhooks count for their tenant. The state is one Redis key per tenant (GCRA, on Redis' clock, in
`app/jira/lua/tenant_api_rate.lua`). Redis being down lets requests through: the API must keep accepting changes then
(guarantee 1), and the limit protects capacity, not data.

A round trip to Redis on every request would be the largest cost of accepting a change after the database's: an API
process asks for several admissions of a tenant at once and admits that many requests without asking again, for at
most `HOLD_SECONDS`. It asks for twice as many as last time when it used them all, half as many when some were left
(at most a twentieth of a second's worth of the tenant's rate): a busy tenant costs one round trip per many
requests, a quiet one a round trip per request and no admission held. Every admission is charged in Redis when
granted, and the ones left unused are given back with the next call, so all processes together never admit more
than the GCRA allows; admissions one process holds make the limit slightly stricter for the others meanwhile,
never looser.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app import redis_keys
from app.jira import scripts

log = logging.getLogger(__name__)

HOLD_SECONDS = 0.25  # how long a process keeps admissions Redis granted ahead
_HELD_MAX = 10_000  # tenants one process holds admissions for; beyond that it forgets them (stricter, never looser)


@dataclass
class _Held:
    """Admissions of one tenant this process was granted ahead: how many are left, until when, and how many it
    asked for last."""

    left: int
    until: float
    asked: int


class TenantRateLimit:
    """`check(tenant)` → None when the request may go, else the seconds to wait (at least 1, for Retry-After)."""

    def __init__(self, redis: Redis, rate_per_second: float) -> None:
        self.rate = rate_per_second
        self._interval_us = math.ceil(1_000_000 / rate_per_second) if rate_per_second > 0 else 0
        self._burst = max(1, math.floor(2 * rate_per_second))
        self._most_ahead = max(1, math.floor(rate_per_second / 20))
        self._held: dict[uuid.UUID, _Held] = {}
        self._script = scripts.register(redis, "tenant_api_rate")

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    async def check(self, tenant_id: uuid.UUID) -> int | None:
        if not self.enabled:
            return None
        now = time.monotonic()
        held = self._held.get(tenant_id)
        if held is not None and held.left > 0 and held.until > now:
            held.left -= 1
            return None
        if held is None:
            ask, unused = 1, 0
        else:
            # all used: ask for more next time; some left (expired): fewer, and give those back
            ask = min(self._most_ahead, held.asked * 2) if held.left == 0 else max(1, held.asked // 2)
            unused, held.left = held.left, 0  # given back once, even if requests of this tenant ask at once
        try:
            granted, wait_us = (int(x) for x in await self._script(
                keys=[redis_keys.tenant_api_rate(tenant_id)], args=[self._interval_us, self._burst, ask, unused]))
        except (RedisError, OSError) as exc:
            log.warning("tenant rate limit unavailable (%s): request let through", exc.__class__.__name__)
            return None
        if len(self._held) >= _HELD_MAX and tenant_id not in self._held:
            self._held.clear()
        held = self._held.setdefault(tenant_id, _Held(0, 0.0, ask))
        held.asked = ask
        if granted <= 0:
            return max(1, math.ceil(wait_us / 1_000_000))
        held.left += granted - 1  # requests of this tenant that asked at the same moment add up
        held.until = now + HOLD_SECONDS
        return None
