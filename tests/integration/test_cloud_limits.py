"""Jira Cloud's limits in the shared request gate on a real Redis (CONTRACT 12): the app's points pool (80 % of the
quota per clock hour, equal shares while sites compete, a read's objects charged after its answer), the per-issue
write logs (10 per 2 s), and what a 429 pauses by its `RateLimit-Reason` — the pool, the site, or one issue only.
A budget spent for longer than a second raises `RateLimited` at once (nothing sent; the push is deferred)."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from app import redis_keys
from app.domain.cloud_limits import PER_ISSUE_WRITE_LIMITS
from app.jira.cloud_budgets import _CLOUD_WRITE
from app.jira.errors import RateLimited
from app.jira.gate import CloudPool, InstanceRef, Priority
from app.jira.ratelimit import _GRANT, RedisRateLimiter


@pytest.fixture
def limiter(redis) -> RedisRateLimiter:  # type: ignore[no-untyped-def]
    return RedisRateLimiter(redis)


def pool(budget: int = 1000) -> CloudPool:
    return CloudPool(f"app-{uuid.uuid4().hex[:8]}", budget)


def site(p: CloudPool, rate: int = 100) -> InstanceRef:
    return InstanceRef(uuid.uuid4(), rate, p)


def reset_in(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


async def refused(limiter: RedisRateLimiter, ref: InstanceRef, *, write_to: str | None = None) -> float | None:
    """The wait a refused acquire names (None: it was granted)."""
    try:
        await limiter.acquire(ref, Priority.BATCH, write_to=write_to)
    except RateLimited as exc:
        return exc.retry_after
    return None


def seconds_to_the_hour() -> float:
    now = datetime.now(UTC)
    return (now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1) - now).total_seconds()


async def test_the_pool_stops_at_its_budget_until_the_hour_ends(limiter: RedisRateLimiter) -> None:
    p = pool(budget=12)
    a = site(p)
    for _ in range(12):
        assert await refused(limiter, a) is None
    wait = await refused(limiter, a)
    assert wait is not None and abs(wait - seconds_to_the_hour()) < 5
    usage = await limiter.cloud.pool_usage(p)
    assert (usage.used, usage.budget, dict(usage.by_site)) == (12, 12, {str(a.id): 12})
    assert usage.resets_at == datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)


async def test_a_reads_objects_are_charged_after_its_answer(limiter: RedisRateLimiter) -> None:
    p = pool(budget=10)
    a = site(p)
    await limiter.acquire(a, Priority.USER)
    await limiter.observe(a, 200, {}, objects=6)  # a worklog list of six: 7 points
    assert (await limiter.cloud.pool_usage(p)).used == 7
    for _ in range(3):
        assert await refused(limiter, a) is None
    assert await refused(limiter, a) is not None


async def test_competing_sites_each_get_an_equal_share(limiter: RedisRateLimiter) -> None:
    p = pool(budget=20)
    a, b = site(p), site(p)
    for _ in range(8):
        assert await refused(limiter, a) is None
    # b comes along: from now on each may have half the hour's budget
    for _ in range(10):
        assert await refused(limiter, b) is None
    assert await refused(limiter, b) is not None  # b's share is spent
    for _ in range(2):
        assert await refused(limiter, a) is None
    assert await refused(limiter, a) is not None
    assert dict((await limiter.cloud.pool_usage(p)).by_site) == {str(a.id): 10, str(b.id): 10}


async def test_writes_to_one_issue_stay_within_ten_per_two_seconds(limiter: RedisRateLimiter) -> None:
    p = pool()
    a = site(p)
    (limit, window), _ = PER_ISSUE_WRITE_LIMITS
    written: list[str] = []  # the issue log's members of the writes admitted
    other = 0
    while len(written) < limit + 3:
        try:
            await limiter.acquire(a, Priority.BATCH, write_to="PROJ-1")
            admitted = _CLOUD_WRITE.get()
            assert admitted is not None
            written.append(admitted[2])
            limiter.left(a)  # moves the write in its issue's log in the background; here: wait for the move
            await limiter.cloud.left(a)
        except RateLimited as exc:
            # the issue is full: another issue and reads of the same site go on meanwhile
            await limiter.acquire(a, Priority.BATCH, write_to="PROJ-2")
            await limiter.acquire(a, Priority.BATCH)
            other += 1
            assert exc.retry_after <= window + 1
            await asyncio.sleep(exc.retry_after)
    assert other, "the eleventh write to the issue had to wait"
    # what the limiter decided: the issue's log on Redis' clock (µs), each write where it left, holds every write of
    # ours and never `limit` + 1 of them within the window
    log = await limiter._redis.zrange(redis_keys.cloud_issue(p.name, a.id, "PROJ-1")[0], 0, -1, withscores=True)
    assert sorted(member.decode() for member, _ in log) == sorted(written)
    left_at = [score for _, score in log]
    for i in range(len(left_at) - limit):
        assert left_at[i + limit] - left_at[i] >= window * 1_000_000


async def test_a_global_quota_429_pauses_every_site_until_the_reset(limiter: RedisRateLimiter) -> None:
    p = pool()
    a, b = site(p), site(p)
    await limiter.observe(a, 429, {"RateLimit-Reason": "jira-quota-global-based", "Retry-After": "1",
                                   "X-RateLimit-Reset": reset_in(120)})
    for ref in (a, b):
        wait = await refused(limiter, ref)
        assert wait is not None and 100 < wait <= 121
    assert await refused(limiter, site(pool())) is None  # another app's pool is not affected


async def test_a_tenant_quota_429_pauses_its_site_only(limiter: RedisRateLimiter) -> None:
    p = pool()
    a, b = site(p), site(p)
    await limiter.observe(a, 429, {"RateLimit-Reason": "jira-quota-tenant-based", "Retry-After": "60",
                                   "X-RateLimit-Reset": reset_in(60)})
    wait = await refused(limiter, a)
    assert wait is not None and 50 < wait <= 61
    assert await refused(limiter, b) is None


async def test_a_burst_429_pauses_its_site_for_retry_after(limiter: RedisRateLimiter) -> None:
    p = pool()
    a, b = site(p), site(p)
    observed = time.monotonic()
    await limiter.observe(a, 429, {"RateLimit-Reason": "jira-burst-based", "Retry-After": "10"})
    paused = (await limiter.instance_stats(a.id)).paused_for_seconds
    assert 10 - (time.monotonic() - observed) - 0.05 <= paused <= 10  # the site's own pause
    await limiter.acquire(b, Priority.USER)
    grant = _GRANT.get()
    pause_until = int(await limiter._redis.hget(limiter.keys(a.id)["state"], "pause"))  # µs on Redis' clock
    assert grant is not None and grant.slot_us < pause_until  # the other site goes on (it does not wait out a's)


async def test_a_per_issue_429_pauses_that_issue_only(limiter: RedisRateLimiter) -> None:
    a = site(pool())
    observed = time.monotonic()
    await limiter.observe(a, 429, {"RateLimit-Reason": "jira-per-issue-on-write", "Retry-After": "5"},
                          write_to="PROJ-1")
    wait = await refused(limiter, a, write_to="proj-1")
    assert wait is not None and 5 - (time.monotonic() - observed) - 0.05 <= wait <= 5
    assert await refused(limiter, a, write_to="PROJ-2") is None
    assert await refused(limiter, a) is None  # reads of the issue, and the site, go on
    assert (await limiter.instance_stats(a.id)).paused_for_seconds == 0


async def test_near_the_limit_the_pool_goes_at_half_speed(limiter: RedisRateLimiter) -> None:
    p = pool()
    a = site(p, rate=10)
    await limiter.acquire(a, Priority.USER)
    await limiter.observe(a, 200, {"X-RateLimit-NearLimit": "true"})
    started = time.monotonic()
    for _ in range(3):
        await limiter.acquire(a, Priority.USER)
    assert time.monotonic() - started >= 2 * 0.2 - 0.01  # two gaps of 2 / rate at least
