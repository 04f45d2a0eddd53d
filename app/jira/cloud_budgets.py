"""Jira Cloud's keyed budgets of the request gate (CONTRACT 12): more keys for the one rate limiter, not a second one.

`RedisRateLimiter` asks them at three points of every request to a Cloud site (an `InstanceRef` with a `pool`):
`admit` before the site's own slot, `left` as the request leaves, `observe` with its answer. Everything a Data Center
instance's request passes through is untouched (no pool: every hook returns at once).

* **Admit** (`cloud_admit.lua`, one call): the app's points for the clock hour (80 % of the quota, an equal share each
  while several sites compete; 1 point charged at once), the pauses a Cloud 429 set (the pool, the site's own quota,
  the issue), `X-RateLimit-NearLimit` (every site of the pool at half its rate), and for a write the issue's write
  logs (10 per 2 s, 50 per 30 s). A budget that frees up within a second is waited for here; a longer wait raises
  `RateLimited` with it, before anything is sent (the push is deferred; no attempt spent, no worker slot held).
* **Left** (`cloud_left.lua`): a write's entry in its issue's log moves to the instant the request really left.
* **Observe**: a read's objects are charged to the pool (`cloud_charge.lua`: a read costs 1 point plus 1 per object);
  a 429 pauses what its `RateLimit-Reason` names (`cloud_pause.lua`: the pool or the site until `X-RateLimit-Reset`,
  the issue for `Retry-After`); a burst 429 (or one without a reason) is left to the site's own pause and backoff.

Redis keys: `app.redis_keys.cloud_*` (hash-tagged by the pool); see `docs/coordination.md`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import math
import random
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.asyncio import Redis

from app import metrics, redis_keys
from app.clock import now_utc
from app.config import DEFAULT_ARRIVAL_MARGIN_SECONDS
from app.domain.cloud_limits import (
    COMPETING_FOR,
    PER_ISSUE_WRITE_LIMITS,
    LimitReason,
    PauseScope,
    PointsUsage,
    pause_scope,
    pause_seconds,
)
from app.jira.errors import RateLimited, retry_after_seconds
from app.jira.gate import CloudPool, InstanceRef, response_header
from app.jira.scripts import as_text, register

__all__ = ["CloudBudgets"]

_US = 1_000_000
# the Cloud write admitted last in this asyncio task: (instance id, issue log key, member)
_CLOUD_WRITE: contextvars.ContextVar[tuple[uuid.UUID, str, str] | None] = contextvars.ContextVar(
    "cloud_write", default=None)
# a Cloud budget that frees up within this is waited for here; a longer wait is the caller's (deferred)
_INLINE_WAIT = 1.0
# what a refusal of cloud_admit.lua means: (metric label, words for a person)
_REFUSALS = {
    1: ("pool_paused", "Atlassian paused the app's points quota (jira-quota-global-based)"),
    2: ("site_paused", "Atlassian paused this site's points quota (jira-quota-tenant-based)"),
    3: ("points", "the app's points budget for this hour is spent (80 % of ATLASSIAN_POINTS_PER_HOUR)"),
    4: ("fair_share", "this site has used its share of the app's points for this hour"),
    5: ("issue_writes", "the issue's write limit (10 per 2 s, 50 per 30 s)"),
    6: ("issue_paused", "Atlassian paused writes to this issue (jira-per-issue-on-write)"),
    7: ("near_limit", "Atlassian's points quota is nearly spent: going at half speed"),
}
_ISSUE_REFUSALS = {"issue_writes", "issue_paused"}  # refusals that hold only the issue's writes, not the site
_NEAR_LIMIT_MS = 60_000


class CloudBudgets:
    """The Cloud sites' keyed budgets, shared by every process through Redis (see module docstring)."""

    def __init__(self, redis: Redis, *, arrival_margin: float = DEFAULT_ARRIVAL_MARGIN_SECONDS) -> None:
        self._redis = redis
        self._margin_us = int(arrival_margin * _US)
        self._admit = register(redis, "cloud_admit")
        self._charge = register(redis, "cloud_charge")
        self._pause = register(redis, "cloud_pause")
        self._left = register(redis, "cloud_left")

    async def admit(self, instance: InstanceRef, write_to: str | None) -> None:
        """Fit a request to a Cloud site into its pool's budgets, waiting up to a second for them; `RateLimited`
        (nothing sent) when they stay spent for longer. Nothing for a Data Center instance."""
        # `left` runs in a task of its own (a copy of this context): what it clears stays set here
        _CLOUD_WRITE.set(None)
        pool = instance.pool
        if pool is None:
            return
        keys = redis_keys.cloud_pool(pool.name)
        key_list = [keys["points"], keys["sites"], keys["pause"],
                    redis_keys.cloud_site_pause(pool.name, instance.id), keys["near"]]
        member = uuid.uuid4().hex
        limits: list[int] = []
        if write_to:
            key_list += redis_keys.cloud_issue(pool.name, instance.id, write_to)
            limits = [x for limit, window in PER_ISSUE_WRITE_LIMITS for x in (limit, int(window * _US))]
        args: list[str | int] = [str(instance.id), pool.points_per_window, 1, int(pool.window_seconds * _US),
                                 int(COMPETING_FOR.total_seconds() * _US), member, self._margin_us,
                                 max(1, int(instance.rate_limit_per_second)), *limits]
        while True:
            code, delay_us = await self._admit(keys=key_list, args=args)
            if not int(code):
                break
            label, why = _REFUSALS[int(code)]
            metrics.CLOUD_LIMIT_WAITS.labels(str(instance.id), label).inc()
            delay = int(delay_us) / _US
            if delay > _INLINE_WAIT:
                raise RateLimited(f"Jira Cloud: {why}; nothing was sent, trying again in {math.ceil(delay)} s",
                                  retry_after=delay, issue=write_to if label in _ISSUE_REFUSALS else None)
            await asyncio.sleep(delay + random.uniform(0, 0.002))
        if write_to:
            _CLOUD_WRITE.set((instance.id, key_list[5], member))

    async def left(self, instance: InstanceRef) -> None:
        """The Cloud write admitted last in this task leaves now: its entry in the issue's log moves to now."""
        write = _CLOUD_WRITE.get()
        if write is None or write[0] != instance.id:
            return
        _CLOUD_WRITE.set(None)
        with contextlib.suppress(Exception):  # best effort: the limits are half of Atlassian's
            await self._left(keys=[write[1]], args=[write[2]])

    async def observe(self, instance: InstanceRef, status: int | None, headers: Mapping[str, str], *,
                      write_to: str | None, objects: int) -> bool:
        """The Cloud part of the gate's `observe`; True when the answer needs nothing more (a 429 paused what it
        names), False when the site's own handling applies (a Data Center instance, a burst 429, any other answer)."""
        pool = instance.pool
        if pool is None:
            return False
        keys = redis_keys.cloud_pool(pool.name)
        if objects > 0:
            await self._charge(keys=[keys["points"]], args=[str(instance.id), objects, int(pool.window_seconds * _US)])
        if (response_header(headers, "x-ratelimit-nearlimit") or "").strip().lower() == "true":
            await self._redis.set(keys["near"], "1", px=_NEAR_LIMIT_MS)
        if status != 429:
            return False
        reason = response_header(headers, "ratelimit-reason")
        metrics.CLOUD_RATE_LIMITED.labels(str(instance.id), reason or "none").inc()
        scope = pause_scope(reason, issue=write_to)
        if scope is PauseScope.SITE and reason != LimitReason.TENANT_QUOTA:
            return False  # burst (or no reason): the site's own pause and backoff, as on Data Center
        wait = pause_seconds(reason, retry_after=retry_after_seconds(response_header(headers, "retry-after")),
                             reset=response_header(headers, "x-ratelimit-reset"), now=now_utc())
        if scope is PauseScope.POOL:
            key = keys["pause"]
        elif scope is PauseScope.ISSUE and write_to:
            key = redis_keys.cloud_issue(pool.name, instance.id, write_to)[1]
        else:
            key = redis_keys.cloud_site_pause(pool.name, instance.id)
        await self._pause(keys=[key], args=[int(wait * _US)])
        return True

    async def pool_usage(self, pool: CloudPool) -> PointsUsage:
        """The points the pool's sites took in the current window (clock hour), in total and per site."""
        raw: dict[Any, Any] = await self._redis.hgetall(redis_keys.cloud_pool(pool.name)["points"])  # type: ignore[misc]
        fields = {as_text(k): as_text(v) for k, v in raw.items()}
        now = now_utc()
        start = datetime.fromtimestamp(now.timestamp() // pool.window_seconds * pool.window_seconds, UTC)
        current = fields.get("h") == f"{int(start.timestamp() * _US)}"
        by_site = {k[2:]: int(v) for k, v in fields.items() if k.startswith("s:")} if current else {}
        return PointsUsage(used=int(fields.get("total", 0)) if current else 0, budget=pool.points_per_window,
                           by_site=by_site, resets_at=start + timedelta(seconds=pool.window_seconds))
