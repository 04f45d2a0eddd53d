"""Jira Cloud's three rate limits (March 2026), as Atlassian documents them for OAuth 2.0 (3LO) apps.

1. An hourly **points quota**: a write costs 1 point, a read 1 plus 1 per object returned. The app's global
   pool is shared by every site it talks to (``jira-quota-global-based``); a site may also have its own
   pool per app (``jira-quota-tenant-based``). An exhausted pool refuses everything until it resets at the
   end of its window (clock hours); there is no gradual throttling.
2. A per-second **burst limit** per site, endpoint and method (``jira-burst-based``).
3. **Per-issue write limits**: 20 writes per 2 s and 100 per 30 s on one issue (``jira-per-issue-on-write``).

A 429 carries ``Retry-After``, ``X-RateLimit-Limit``, ``X-RateLimit-Remaining: 0``, ``X-RateLimit-Reset``
(ISO 8601) and ``RateLimit-Reason``; ``X-RateLimit-NearLimit: true`` warns while less than 20 % of a pool is
left; ``Beta-RateLimit-Policy`` / ``Beta-RateLimit`` describe the pool. Everything the limits see is kept
as observations tests can assert on (points per window, writes per issue, refusals by reason).
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .config import CloudLimitsConfig, RateLimitConfig
from .observe import MAX_ARRIVALS, max_in_window
from .ratelimit import TokenBucket

GLOBAL_QUOTA = "jira-quota-global-based"
TENANT_QUOTA = "jira-quota-tenant-based"
BURST = "jira-burst-based"
PER_ISSUE = "jira-per-issue-on-write"
REASONS = (GLOBAL_QUOTA, TENANT_QUOTA, BURST, PER_ISSUE)  # RateLimit-Reason values
NEAR_LIMIT_FRACTION = 0.2


def reset_header(at: float) -> str:
    """ISO 8601 in UTC: Atlassian's ``yyyy-MM-ddTHH:mmZ`` on a whole minute (always for the hourly quota),
    with seconds otherwise (a burst or per-issue reset a few seconds ahead)."""
    moment = datetime.fromtimestamp(math.ceil(at), tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%MZ" if moment.second == 0 else "%Y-%m-%dT%H:%M:%SZ")


def window_label(index: int, window: float) -> str:
    return datetime.fromtimestamp(index * window, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class PointsPool:
    """Points used per window of ``window`` seconds (aligned to the epoch, so clock hours for 3600 s)."""

    def __init__(self, name: str, limit: int, window: float) -> None:
        self.name = name  # "global-app-quota" | "tenant-app-quota" (Beta-RateLimit-Policy)
        self.limit = limit
        self.window = window
        self.used: Counter[int] = Counter()

    def index(self, now: float) -> int:
        return int(now // self.window)

    def remaining(self, now: float) -> int:
        return max(0, self.limit - self.used[self.index(now)])

    def reset_at(self, now: float) -> float:
        return (self.index(now) + 1) * self.window

    def charge(self, now: float, points: int) -> None:
        self.used[self.index(now)] += points

    def near_limit(self, now: float) -> bool:
        return self.remaining(now) < NEAR_LIMIT_FRACTION * self.limit

    def policy_headers(self, now: float) -> dict[str, str]:
        seconds_left = max(0, math.ceil(self.reset_at(now) - now))
        return {
            "Beta-RateLimit-Policy": f'"{self.name}";q={self.limit};w={self.window:g}',
            "Beta-RateLimit": f'"{self.name}";r={self.remaining(now)};t={seconds_left}',
        }

    def describe(self, now: float) -> dict[str, Any]:
        return {
            "limit": self.limit,
            "window_seconds": self.window,
            "used": self.used[self.index(now)],
            "remaining": self.remaining(now),
            "reset": reset_header(self.reset_at(now)),
            "points_by_window": {window_label(i, self.window): p for i, p in sorted(self.used.items())},
        }


@dataclass(frozen=True)
class Refusal:
    reason: str
    limit: int
    retry_after: int  # whole seconds, at least 1
    reset_at: float  # epoch seconds

    def headers(self) -> dict[str, str]:
        return {
            "Retry-After": str(self.retry_after),
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": reset_header(self.reset_at),
            "RateLimit-Reason": self.reason,
        }


@dataclass
class Verdict:
    """What the limits decided for one request, and the headers its answer carries."""

    refusal: Refusal | None
    headers: dict[str, str] = field(default_factory=dict)


def _seconds(delay: float) -> int:
    return max(1, math.ceil(delay - 1e-9))


class CloudLimits:
    """The burst and per-issue limits of one site, its tenant pools, and what it observed (thread-safe reads)."""

    def __init__(
        self,
        config: CloudLimitsConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._clock = clock  # burst and per-issue windows
        self._wall = wall  # points windows (clock hours) and reset times
        self._lock = threading.Lock()
        self.config = config
        self.buckets: dict[tuple[str, str], TokenBucket] = {}
        self.recent_writes: dict[str, deque[float]] = {}  # issue key -> monotonic times within the longest window
        self.tenant_pools: dict[str, PointsPool] = {}  # by app client id
        self.clear_observations()

    def configure(self, config: CloudLimitsConfig) -> None:
        with self._lock:
            self.config = config
            self.buckets.clear()
            self.recent_writes.clear()
            self.tenant_pools.clear()

    def clear_observations(self) -> None:
        with self._lock:
            self.write_times: dict[str, deque[float]] = {}  # issue key -> monotonic times of admitted writes
            self.points_by_window: Counter[int] = Counter()
            self.points_window = 3600.0
            self.refused: Counter[str] = Counter()
            self.near_limit_responses = 0
            for pool in self.tenant_pools.values():
                pool.used.clear()

    def _tenant_pool(self, client_id: str, window: float) -> PointsPool | None:
        limit = self.config.tenant_points_per_hour
        if limit is None:
            return None
        pool = self.tenant_pools.get(client_id)
        if pool is None or pool.limit != limit or pool.window != window:
            pool = self.tenant_pools[client_id] = PointsPool("tenant-app-quota", limit, window)
        return pool

    def admit(
        self,
        *,
        app_pool: PointsPool | None,
        client_id: str,
        route: tuple[str, str],
        issue_key: str | None,
        write: bool,
        window: float,
    ) -> Verdict:
        """Check the pools, then the burst bucket of ``route`` (method, template), then the issue's writes."""
        wall, mono = self._wall(), self._clock()
        with self._lock:
            tenant = self._tenant_pool(client_id, window)
            pools = [p for p in (app_pool, tenant) if p is not None]
            headers: dict[str, str] = {}
            if pools:
                headers.update((tenant or pools[0]).policy_headers(wall))
            if any(p.near_limit(wall) for p in pools):
                headers["X-RateLimit-NearLimit"] = "true"
                self.near_limit_responses += 1
            if not self.config.enabled:
                return Verdict(None, headers)
            refusal = self._quota_refusal(app_pool, tenant, wall) or self._burst(route, wall, headers)
            if refusal is None and write and issue_key:
                refusal = self._per_issue(issue_key, mono, wall)
            if refusal is not None:
                self.refused[refusal.reason] += 1
                headers.update(refusal.headers())
            return Verdict(refusal, headers)

    @staticmethod
    def _quota_refusal(app_pool: PointsPool | None, tenant: PointsPool | None, now: float) -> Refusal | None:
        for pool, reason in ((app_pool, GLOBAL_QUOTA), (tenant, TENANT_QUOTA)):
            if pool is not None and pool.remaining(now) <= 0:
                reset_at = pool.reset_at(now)
                return Refusal(reason, pool.limit, _seconds(reset_at - now), reset_at)
        return None

    def _burst(self, route: tuple[str, str], wall: float, headers: dict[str, str]) -> Refusal | None:
        bucket = self.buckets.get(route)
        if bucket is None:
            rate = RateLimitConfig(rate=self.config.burst_rate, burst=self.config.burst_capacity)
            bucket = self.buckets[route] = TokenBucket(rate, clock=self._clock)
        decision = bucket.take()
        headers["X-RateLimit-Limit"] = str(decision.limit)
        headers["X-RateLimit-Remaining"] = str(decision.remaining)
        if decision.allowed:
            return None
        return Refusal(BURST, decision.limit, decision.retry_after, wall + decision.retry_after)

    def _per_issue(self, issue_key: str, mono: float, wall: float) -> Refusal | None:
        recent = self.recent_writes.setdefault(issue_key, deque())
        longest = max(w for _, w in self.config.per_issue_writes)
        while recent and recent[0] <= mono - longest:
            recent.popleft()
        for limit, window in self.config.per_issue_writes:
            inside = [t for t in recent if t > mono - window]
            if len(inside) >= limit:
                frees_at = inside[len(inside) - limit] + window
                return Refusal(PER_ISSUE, limit, _seconds(frees_at - mono), wall + (frees_at - mono))
        recent.append(mono)
        self.write_times.setdefault(issue_key, deque(maxlen=MAX_ARRIVALS)).append(mono)
        return None

    def charge(self, *, app_pool: PointsPool | None, client_id: str, points: int, window: float) -> None:
        now = self._wall()
        with self._lock:
            if app_pool is not None:
                app_pool.charge(now, points)
            tenant = self._tenant_pool(client_id, window)
            if tenant is not None:
                tenant.charge(now, points)
            if window != self.points_window:
                self.points_by_window.clear()
                self.points_window = window
            self.points_by_window[int(now // window)] += points

    def max_writes(self, window: float, issue_key: str | None = None) -> int:
        """Most writes admitted to one issue (or to ``issue_key``) inside any ``window`` seconds."""
        with self._lock:
            stamps = {k: list(v) for k, v in self.write_times.items() if issue_key in (None, k)}
        return max((max_in_window(v, window) for v in stamps.values()), default=0)

    def observations(self) -> dict[str, Any]:
        now = self._wall()
        with self._lock:
            window = self.points_window
            stamps = {k: list(v) for k, v in self.write_times.items()}
            data: dict[str, Any] = {
                "window_seconds": window,
                "points_this_window": self.points_by_window[int(now // window)],
                "points_by_window": {window_label(i, window): p for i, p in sorted(self.points_by_window.items())},
                "tenant_pools": {c: p.describe(now) for c, p in self.tenant_pools.items()},
                "rate_limited": dict(self.refused),
                "near_limit_responses": self.near_limit_responses,
            }
        windows = [w for _, w in self.config.per_issue_writes]
        data["writes_per_issue"] = {k: len(v) for k, v in sorted(stamps.items())}
        data["max_writes_per_issue"] = {
            k: {f"{w:g}s": max_in_window(v, w) for w in windows} for k, v in sorted(stamps.items())
        }
        return data
