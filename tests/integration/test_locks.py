"""Locks and push leases on a real Redis: one holder at a time, expiry instead of trust."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from app.jira.locks import Leases, LockTimeout, acquire_lock, release_lock
from tests.waiting import wait_until


async def test_a_lock_has_one_holder_and_a_killed_holders_lock_expires(redis):
    key = f"test:lock:{uuid.uuid4()}"
    asked = time.monotonic()
    await acquire_lock(redis, key, ttl=1.5)  # long enough that a stalled test process cannot outlive it here
    with pytest.raises(LockTimeout):
        await acquire_lock(redis, key, ttl=5, max_wait=0)
    # its holder "dies" (never releases): the next holder gets it once the TTL ran out, not before
    second = await acquire_lock(redis, key, ttl=5, max_wait=30)
    assert time.monotonic() - asked >= 1.5 - 0.05, "the lock was taken before its TTL ran out"
    assert await release_lock(redis, second)


async def test_release_is_token_safe(redis):
    key = f"test:lock:{uuid.uuid4()}"
    first = await acquire_lock(redis, key, ttl=0.2)

    async def expired() -> bool:
        return not await redis.exists(key)

    await wait_until(expired, timeout=5, interval=0.02)
    second = await acquire_lock(redis, key, ttl=5)
    assert not await release_lock(redis, first)  # a holder whose lock expired cannot free the next holder's
    assert await redis.get(key) == second.token.encode()
    assert await release_lock(redis, second)


async def test_waiting_gives_up_after_max_wait(redis):
    key = f"test:lock:{uuid.uuid4()}"
    await acquire_lock(redis, key, ttl=5)
    t0 = time.monotonic()
    with pytest.raises(LockTimeout):
        await acquire_lock(redis, key, ttl=5, max_wait=0.3)
    assert 0.3 <= time.monotonic() - t0 < 10.0  # it gave up (the bound only catches "waits forever")


async def test_a_lease_has_one_holder_and_is_renewed_while_held(redis):
    key = f"test:lease:{uuid.uuid4()}"
    mine, theirs = Leases(redis, holder="a", ttl=3.0), Leases(redis, holder="b", ttl=3.0)
    assert await mine.take(key)
    assert not await theirs.take(key)
    assert 0 < mine.valid_for(key) <= 3.0
    for _ in range(4):  # held past its TTL (4 x 0.8 s > 3 s) by renewals
        await asyncio.sleep(0.8)
        assert await mine.renew() == []
        assert not await theirs.take(key)
    assert 0 < mine.valid_for(key) <= 3.0
    await mine.release(key)
    assert mine.valid_for(key) <= 0 and await theirs.take(key)


async def test_a_lapsed_lease_is_known_lost_and_another_holder_takes_it(redis):
    key = f"test:lease:{uuid.uuid4()}"
    mine, theirs = Leases(redis, holder="a", ttl=0.3), Leases(redis, holder="b", ttl=5)
    assert await mine.take(key)

    async def lapsed() -> bool:
        return mine.valid_for(key) <= 0 and not await redis.exists(key)

    await wait_until(lapsed, timeout=5, interval=0.02)  # its holder stalled past the TTL without renewing
    assert await theirs.take(key)
    assert await mine.renew() == [key]  # it finds out at its next renewal, and does nothing under it
    await mine.release(key)  # and giving it "back" frees nothing of the new holder's
    assert await redis.get(key) == b"b"
