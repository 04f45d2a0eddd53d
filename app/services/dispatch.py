"""Hand-off from a committed change to the pushers: best effort, because PostgreSQL is the truth.

The entry row already carries `due_at` (the outbox marker) when this runs. Each JIRA instance's due entries
are pushed by one worker process at a time (the one holding the instance's push lease, `workers/pushers.py`),
which takes them from PostgreSQL itself. All it needs from here is to hear, at once, that there is something to
take: one `PUBLISH <instance id> <priority>` per instance per commit on one Redis channel, however many entries
the commit made due. Every worker listens; the lease holder takes the entries, and if nobody holds the lease,
a worker takes it. A lost wake-up (Redis down, nobody listening yet) only delays the push: the sweeper wakes
every instance with due entries every SWEEP_INTERVAL_SECONDS.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Protocol

from redis.asyncio import Redis

from app import redis_keys
from app.domain.priority import Priority

log = logging.getLogger(__name__)


def wake_message(instance_id: uuid.UUID, priority: Priority) -> str:
    return f"{instance_id} {int(priority)}"


def parse_wake(message: bytes | str) -> tuple[uuid.UUID, Priority] | None:
    """The (instance, priority) of a wake-up message; None for anything else."""
    text = message.decode() if isinstance(message, bytes) else message
    instance, _, priority = text.partition(" ")
    try:
        return uuid.UUID(instance), Priority(int(priority or 1))
    except ValueError:
        return None


class PushWake(Protocol):
    async def wake(self, due: Mapping[uuid.UUID, Priority]) -> None:
        """These instances have entries due now (at this priority at best): their pushers should take them."""
        ...


class RedisWake:
    """Wakes pushers wherever they run: one PUBLISH per instance, all in one round trip."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def wake(self, due: Mapping[uuid.UUID, Priority]) -> None:
        if not due:
            return
        try:
            pipe = self._redis.pipeline(transaction=False)
            for instance_id, priority in due.items():
                pipe.publish(redis_keys.PUSH_WAKE_CHANNEL, wake_message(instance_id, priority))
            await pipe.execute()
        except Exception as exc:
            log.warning("waking the pushers failed (the sweeper will find the entries): %s", exc.__class__.__name__)
