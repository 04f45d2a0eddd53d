"""Redis locks and leases shared by every process: who runs what, with expiry instead of trust.

* `acquire_lock` / `release_lock`: `SET key token NX PX ttl` takes a lock, a compare-and-delete script releases it
  only for its holder (a holder whose lock expired cannot free someone else's). Waiters poll with short jittered
  sleeps up to `max_wait`. (The reconciliation poller's "a poll of this instance is running".)
* `held_lock`: a lock renewed while held (every ttl/3), e.g. one connection's OAuth 2.0 token renewal
  (`app.jira.token_refresh`); a killed holder stops renewing and the lock expires after `ttl`.
* `Leases`: the push leases of one process, one per JIRA instance it pushes, renewed together in one call; a
  killed process stops renewing and its leases lapse after their TTL (`workers/pushers.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from redis.asyncio import Redis

from app.jira.scripts import register

__all__ = ["HeldLock", "Leases", "LockTimeout", "acquire_lock", "held_lock", "release_lock"]


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
    extend = register(redis, "renew_leases")
    ttl_ms = max(1, int(lock.ttl * 1000))
    while True:
        await asyncio.sleep(lock.ttl / 3)
        try:
            if not int((await extend(keys=[lock.key], args=[lock.token, ttl_ms]))[0]):
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


class Leases:
    """Leases one process holds (one per JIRA instance it pushes), renewed together in one Redis call.

    A lease is `SET key <holder> NX PX ttl`. The holder knows, on its own monotonic clock, until when each lease is
    surely still its own (`valid_for`: the TTL counted from *before* the call that set or extended it), and does
    nothing under a lease that may have lapsed; a killed process' leases lapse by themselves after `ttl`.
    """

    def __init__(self, redis: Redis, *, holder: str, ttl: float) -> None:
        self.holder = holder
        self.ttl = ttl
        self._redis = redis
        self._ttl_ms = max(1, int(ttl * 1000))
        self._valid_until: dict[str, float] = {}
        self._renew = register(redis, "renew_leases")

    @property
    def held(self) -> list[str]:
        return list(self._valid_until)

    def valid_for(self, key: str) -> float:
        """Seconds the lease `key` is surely still ours (0 or less: it may be someone else's)."""
        return self._valid_until.get(key, 0.0) - time.monotonic()

    async def take(self, key: str) -> bool:
        """Take the lease if nobody holds it."""
        asked = time.monotonic()
        if await self._redis.set(key, self.holder, nx=True, px=self._ttl_ms):
            self._valid_until[key] = asked + self.ttl
            return True
        return False

    async def renew(self) -> list[str]:
        """Extend every lease still ours; returns the keys found lost (expired, or taken by someone else)."""
        keys = self.held
        if not keys:
            return []
        asked = time.monotonic()
        kept = await self._renew(keys=keys, args=[self.holder, self._ttl_ms])
        lost = []
        for key, ok in zip(keys, kept, strict=True):
            if int(ok):
                if key in self._valid_until:
                    self._valid_until[key] = asked + self.ttl
            else:
                self._valid_until.pop(key, None)
                lost.append(key)
        return lost

    async def release(self, key: str) -> None:
        """Give the lease up (only if it is still ours), so another process may take it at once."""
        self._valid_until.pop(key, None)
        with contextlib.suppress(Exception):  # unreachable Redis: the TTL frees it
            await register(self._redis, "release_if_owner")(keys=[key], args=[self.holder])
