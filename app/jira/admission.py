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

from app import redis_keys
from app.domain.priority import Priority
from app.jira.scripts import register


def in_flight_cap(rate_limit_per_second: int) -> int:
    """Enough pushes in flight to keep the instance at its rate with JIRA answering in up to ~2 s."""
    return max(2, 2 * rate_limit_per_second)


class InstanceAdmission:
    def __init__(self, redis: Redis, *, lease_seconds: float) -> None:
        self._redis = redis
        self._lease_ms = max(1000, int(lease_seconds * 1000))
        self._enter = register(redis, "admission_enter")

    async def enter(self, instance_id: uuid.UUID, priority: Priority, cap: int) -> str | None:
        """A lease token, or None when the instance already has `cap` pushes in flight (batch work only)."""
        token = uuid.uuid4().hex
        admitted = await self._enter(
            keys=[redis_keys.admission(instance_id)],
            args=[token, cap, 1 if priority == Priority.USER else 0, self._lease_ms],
        )
        return token if int(admitted) else None

    async def leave(self, instance_id: uuid.UUID, token: str) -> None:
        await self._redis.zrem(redis_keys.admission(instance_id), token)
