"""Redis locks that keep writes to one JIRA issue (CONTRACT 10.5), or renewals of one connection's OAuth 2.0
token (`app.jira.token_refresh`), from running at once.

SET key token NX PX ttl takes the lock; a compare-and-delete script releases it only for the holder, so a
holder whose lock expired cannot free someone else's. Waiters poll with short jittered sleeps up to
`max_wait`. While held, a renewal task extends the TTL every ttl/3 (compare-and-PEXPIRE), so slow rate
limiter waits inside the lock do not lose it; a killed worker stops renewing and its lock expires after `ttl`,
which therefore must cover one JIRA request timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from redis.asyncio import Redis

from app.config import Settings
from app.jira.scripts import register
from app.redis_keys import issue_lock_key

__all__ = [
    "HeldLock", "LockTimeout", "acquire_lock", "default_lock_ttl", "held_lock", "issue_lock", "issue_lock_key",
    "release_lock",
]


class LockTimeout(Exception):
    """Someone else held the lock for longer than we were willing to wait."""

    def __init__(self, key: str, waited: float) -> None:
        super().__init__(f"lock {key} still held by another worker after {waited:.1f} s")
        self.key = key
        self.waited = waited


@dataclass
class HeldLock:
    """A lock we hold: `lost` turns True if renewal found it expired or taken (the guarantee is then void)."""

    key: str
    token: str
    ttl: float
    waited: float = 0.0
    lost: bool = False


def default_lock_ttl(settings: Settings) -> float:
    """An issue lock outlives the requests of one push step made under it (a find, a write, a retry of the
    connection) even if renewal stalls, so a killed worker's lock lapses within a few JIRA timeouts."""
    return settings.jira_timeout_seconds * 4 + 30


async def acquire_lock(
    redis: Redis, key: str, ttl: float, *, max_wait: float = 30.0, poll: float = 0.02, max_poll: float = 0.25,
) -> HeldLock:
    """Take `key`, waiting up to `max_wait` seconds (jittered, growing sleeps); raise LockTimeout otherwise."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    token = uuid.uuid4().hex
    ttl_ms = max(1, int(ttl * 1000))
    delay = poll
    while True:
        if await redis.set(key, token, nx=True, px=ttl_ms):
            return HeldLock(key, token, ttl, waited=loop.time() - began)
        waited = loop.time() - began
        if waited >= max_wait:
            raise LockTimeout(key, waited)
        await asyncio.sleep(min(random.uniform(0.5, 1.0) * delay, max(0.0, max_wait - waited)))
        delay = min(delay * 2, max_poll)


async def release_lock(redis: Redis, lock: HeldLock) -> bool:
    """Delete the lock only if it is still ours; False when it had expired (and maybe been taken)."""
    return bool(await register(redis, "release_if_owner")(keys=[lock.key], args=[lock.token]))


async def _renew(redis: Redis, lock: HeldLock) -> None:
    extend = register(redis, "extend_if_owner")
    ttl_ms = max(1, int(lock.ttl * 1000))
    while True:
        await asyncio.sleep(lock.ttl / 3)
        try:
            if not await extend(keys=[lock.key], args=[lock.token, ttl_ms]):
                lock.lost = True
                return
        except Exception:  # noqa: S112 - Redis hiccup: the next round may succeed; the TTL is the backstop
            continue


@contextlib.asynccontextmanager
async def held_lock(redis: Redis, key: str, ttl: float, *, max_wait: float, renew: bool = True
                    ) -> AsyncIterator[HeldLock]:
    """`async with held_lock(...)`: `key` is ours (renewed while held, `LockTimeout` after `max_wait`)."""
    lock = await acquire_lock(redis, key, ttl, max_wait=max_wait)
    renewal = asyncio.create_task(_renew(redis, lock)) if renew else None
    try:
        yield lock
    finally:
        if renewal is not None:
            renewal.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewal
        with contextlib.suppress(Exception):  # unreachable Redis: the TTL frees it
            await asyncio.shield(release_lock(redis, lock))


def issue_lock(
    redis: Redis, instance_id: uuid.UUID, issue_key: str, ttl: float, *, max_wait: float = 60.0, renew: bool = True,
) -> contextlib.AbstractAsyncContextManager[HeldLock]:
    """`async with issue_lock(...)`: no other process writes to this JIRA issue meanwhile."""
    return held_lock(redis, issue_lock_key(instance_id, issue_key), ttl, max_wait=max_wait, renew=renew)

