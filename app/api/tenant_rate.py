"""Per-tenant API rate limit across all API processes (CONTRACT 11, `TENANT_API_RATE_PER_SECOND`).

Sustained `rate` requests per second per tenant, bursts up to twice that; beyond → 429 with `Retry-After`.
Webhooks count for their tenant. The state is one Redis key per tenant (GCRA, on Redis' clock, in
`app/jira/lua/tenant_api_rate.lua`). Redis being down lets requests through: the API must keep accepting changes then
(guarantee 1), and the limit protects capacity, not data.
"""

from __future__ import annotations

import logging
import math
import uuid

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app import redis_keys
from app.jira import scripts

log = logging.getLogger(__name__)


class TenantRateLimit:
    """`check(tenant)` → None when the request may go, else the seconds to wait (at least 1, for Retry-After)."""

    def __init__(self, redis: Redis, rate_per_second: float) -> None:
        self.rate = rate_per_second
        self._interval_us = math.ceil(1_000_000 / rate_per_second) if rate_per_second > 0 else 0
        self._burst = max(1, math.floor(2 * rate_per_second))
        self._script = scripts.register(redis, "tenant_api_rate")

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    async def check(self, tenant_id: uuid.UUID) -> int | None:
        if not self.enabled:
            return None
        try:
            wait_us = int(await self._script(keys=[redis_keys.tenant_api_rate(tenant_id)],
                                             args=[self._interval_us, self._burst]))
        except (RedisError, OSError) as exc:
            log.warning("tenant rate limit unavailable (%s): request let through", exc.__class__.__name__)
            return None
        return None if wait_us <= 0 else max(1, math.ceil(wait_us / 1_000_000))
