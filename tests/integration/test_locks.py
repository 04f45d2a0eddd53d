"""Per-issue and per-entry write locks on a real Redis (CONTRACT 10.5)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter

import pytest
from redis.asyncio import Redis

from app.jira.locks import (
    LockTimeout,
    acquire_lock,
    default_lock_ttl,
    issue_lock,
    issue_lock_key,
    release_lock,
)
from tests.waiting import wait_until


async def test_writes_to_one_issue_never_overlap_and_other_issues_run_in_parallel(stack, redis):
    instance = uuid.uuid4()
    # separate connections, as separate worker processes would have
    clients = [Redis.from_url(stack.env["REDIS_URL"]) for _ in range(3)]
    active: Counter[str] = Counter()
    peak: Counter[str] = Counter()
    overall = {"now": 0, "peak": 0}
    done: list[str] = []

    async def write(client: Redis, issue: str) -> None:
        same = issue.upper()  # JIRA keys are case-insensitive: proj-1 is PROJ-1
        async with issue_lock(client, instance, issue, ttl=5, max_wait=10):
            active[same] += 1
            overall["now"] += 1
            peak[same] = max(peak[same], active[same])
            overall["peak"] = max(overall["peak"], overall["now"])
            await asyncio.sleep(0.02)
            active[same] -= 1
            overall["now"] -= 1
            done.append(issue)

    issues = ["PROJ-1", "proj-1", "PROJ-2", "OPS-7"]
    await asyncio.gather(*(write(clients[i % 3], issues[i % 4]) for i in range(32)))
    for c in clients:
        await c.aclose()
    assert len(done) == 32
    assert peak == {"PROJ-1": 1, "PROJ-2": 1, "OPS-7": 1}
    assert overall["peak"] >= 2  # different issues did run at the same time


async def test_same_issue_key_in_any_case_is_one_lock():
    instance = uuid.uuid4()
    assert issue_lock_key(instance, "proj-1") == issue_lock_key(instance, " PROJ-1 ")
    assert issue_lock_key(instance, "PROJ-1") != issue_lock_key(uuid.uuid4(), "PROJ-1")


async def test_lock_of_a_killed_worker_expires_after_its_ttl(redis):
    key = issue_lock_key(uuid.uuid4(), "PROJ-9")
    t0 = time.monotonic()
    crashed = await acquire_lock(redis, key, ttl=0.5)  # taken and never released, never renewed
    assert crashed.token
    with pytest.raises(LockTimeout):
        await acquire_lock(redis, key, ttl=1, max_wait=0.1)
    successor = await acquire_lock(redis, key, ttl=1, max_wait=30)
    assert successor.waited > 0 and time.monotonic() - t0 >= 0.5  # it got the lock once the TTL ran out
    assert await release_lock(redis, successor)


async def test_release_is_token_safe(redis):
    key = issue_lock_key(uuid.uuid4(), "PROJ-3")
    old = await acquire_lock(redis, key, ttl=0.1)

    async def expired() -> bool:
        return await redis.get(key) is None

    await wait_until(expired, timeout=10, interval=0.02)  # it expired while its holder was slow...
    new = await acquire_lock(redis, key, ttl=5)  # ...and someone else took it
    assert not await release_lock(redis, old)
    assert (await redis.get(key)).decode() == new.token
    assert await release_lock(redis, new)
    assert await redis.get(key) is None


async def test_waiting_gives_up_after_max_wait(redis):
    instance = uuid.uuid4()
    async with issue_lock(redis, instance, "PROJ-5", ttl=5):
        t0 = time.monotonic()
        with pytest.raises(LockTimeout) as exc:
            async with issue_lock(redis, instance, "PROJ-5", ttl=5, max_wait=0.3):
                pass
        assert time.monotonic() - t0 >= 0.3  # it did wait before giving up (the holder never let go)
        assert "PROJ-5" in str(exc.value)


async def test_a_held_lock_is_renewed_past_its_ttl(redis):
    instance = uuid.uuid4()
    # a TTL of 3 s is renewed every second: a busy machine would have to stall this process for 2 s to lose it
    async with issue_lock(redis, instance, "PROJ-6", ttl=3.0) as lock:
        await asyncio.sleep(4.0)  # more than a TTL goes by: only the renewals keep it
        assert (await redis.get(lock.key)).decode() == lock.token
        assert not lock.lost
        with pytest.raises(LockTimeout):
            await acquire_lock(redis, lock.key, ttl=1, max_wait=0.05)
    assert await redis.get(lock.key) is None


async def test_lock_is_released_when_the_body_raises(redis):
    instance = uuid.uuid4()
    with pytest.raises(RuntimeError):
        async with issue_lock(redis, instance, "PROJ-8", ttl=5) as lock:
            raise RuntimeError("JIRA said no")
    assert await redis.get(lock.key) is None


async def test_issue_lock_excludes_concurrent_writers_of_one_issue(redis):
    instance = uuid.uuid4()
    inside = {"now": 0, "peak": 0}

    async def push() -> None:
        async with issue_lock(redis, instance, "PROJ-4711", ttl=5):
            inside["now"] += 1
            inside["peak"] = max(inside["peak"], inside["now"])
            await asyncio.sleep(0.01)
            inside["now"] -= 1

    await asyncio.gather(*(push() for _ in range(10)))
    assert inside["peak"] == 1


def test_default_ttl_covers_a_jira_request_timeout(settings):
    assert default_lock_ttl(settings) > settings.jira_timeout_seconds
