"""Hand-off from a committed change to the queue: best effort, because PostgreSQL is the truth.

The entry row already carries `due_at` (the outbox marker) when this runs; if Redis is down or the
enqueue fails, the sweeper finds the entry and enqueues it later. One job id per entry makes queued
changes coalesce; user actions are scored ahead of batch work in the queue.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from arq.connections import ArqRedis

from app.jira.priority import Priority

log = logging.getLogger(__name__)

PUSH_JOB = "push_entry"
# arq orders its queue by score (enqueue or defer time, ms); user actions are placed as if enqueued a
# day earlier, so every worker picks them before batch work queued now.
USER_HEADSTART = timedelta(days=1)
# how long a queued job's data lives in Redis; arq would otherwise derive it from the (back-dated) score
JOB_EXPIRES = timedelta(days=7)


def push_job_id(tenant_id: uuid.UUID, entry_id: str) -> str:
    return f"push:{tenant_id}:{entry_id}"


async def enqueue_pushes(
    pool: ArqRedis | None, items: Iterable[tuple[uuid.UUID, str]], priority: Priority,
    *, defer_until: datetime | None = None,
) -> int:
    """Enqueue push jobs; returns how many were newly queued (existing ones coalesce)."""
    if pool is None:
        return 0
    now = datetime.now(UTC)
    when = defer_until or (now - USER_HEADSTART if priority == Priority.USER else now)
    queued = 0
    try:
        for tenant_id, entry_id in items:
            job = await pool.enqueue_job(
                PUSH_JOB, str(tenant_id), entry_id, _job_id=push_job_id(tenant_id, entry_id), _defer_until=when,
                _expires=JOB_EXPIRES,
            )
            queued += job is not None
    except Exception as exc:
        log.warning("enqueue failed (the sweeper will pick the entries up): %s", exc.__class__.__name__)
    return queued
