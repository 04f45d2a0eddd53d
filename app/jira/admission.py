"""Admission of pushes per JIRA instance: a cap on batch pushes in flight, shared by all workers via Redis.

A push waits for its rate-limit slot inside the job, holding a worker slot. Without a cap, one instance's
batch backlog fills every worker slot while it drains at that instance's rate, and every other instance —
other tenants' too — waits behind it. With the cap, a batch push that finds its instance full is deferred
(it spends no attempt), so worker slots go to other instances. User actions are always admitted.

Entries are leases in a sorted set scored by their expiry on Redis' clock, so a killed worker's lease
lapses by itself.
"""

from __future__ import annotations

import uuid

from redis.asyncio import Redis

from app.jira.priority import Priority

_ENTER = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if tonumber(ARGV[3]) == 1 or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[4]), ARGV[1])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]) + 1000)
  return 1
end
return 0
"""


def in_flight_cap(rate_limit_per_second: int) -> int:
    """Enough pushes in flight to keep the instance at its rate with JIRA answering in up to ~2 s."""
    return max(2, 2 * rate_limit_per_second)


class InstanceAdmission:
    def __init__(self, redis: Redis, *, lease_seconds: float, prefix: str = "ttsync:admit") -> None:
        self._redis = redis
        self._lease_ms = max(1000, int(lease_seconds * 1000))
        self._prefix = prefix
        self._enter = redis.register_script(_ENTER)

    def key(self, instance_id: uuid.UUID) -> str:
        return f"{self._prefix}:{{{instance_id}}}"

    async def enter(self, instance_id: uuid.UUID, priority: Priority, cap: int) -> str | None:
        """A lease token, or None when the instance already has `cap` pushes in flight (batch work only)."""
        token = uuid.uuid4().hex
        admitted = await self._enter(
            keys=[self.key(instance_id)], args=[token, cap, 1 if priority == Priority.USER else 0, self._lease_ms]
        )
        return token if int(admitted) else None

    async def leave(self, instance_id: uuid.UUID, token: str) -> None:
        await self._redis.zrem(self.key(instance_id), token)

    async def in_flight(self, instance_id: uuid.UUID) -> int:
        return int(await self._redis.zcard(self.key(instance_id)))
