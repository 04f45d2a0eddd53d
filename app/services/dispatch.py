"""Hand-off from a committed change to the queue: best effort, because PostgreSQL is the truth.

The entry row already carries `due_at` (the outbox marker) when this runs; if Redis is down or the
enqueue fails, the sweeper finds the entry and enqueues it later. One job id per entry makes queued
changes coalesce; user actions are scored ahead of batch work in the queue.

Jobs are written exactly as arq's `enqueue_job` writes them (arq's own serializer, key names and queue), but
many in one Lua script call: arq's way costs three round trips and a WATCH transaction per job, which made
enqueueing the largest part of a PUT's Redis time and of a 1000-entry batch's answer.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta

from arq.connections import ArqRedis
from arq.constants import job_key_prefix, result_key_prefix
from arq.jobs import serialize_job

from app.clock import now_utc
from app.domain.priority import Priority
from app.domain.worklog import utc_ms
from app.jira.scripts import register

log = logging.getLogger(__name__)

PUSH_JOB = "push_entry"
# arq orders its queue by score (enqueue or defer time, ms); user actions are placed as if enqueued a
# day earlier, so every worker picks them before batch work queued now.
USER_HEADSTART = timedelta(days=1)
# how long a queued job's data lives in Redis; arq would otherwise derive it from the (back-dated) score
JOB_EXPIRES = timedelta(days=7)
# jobs per script call: Redis runs a script alone, so a huge batch is cut into short turns
ENQUEUE_CHUNK = 250

def push_job_id(tenant_id: uuid.UUID, entry_id: str) -> str:
    return f"push:{tenant_id}:{entry_id}"


async def enqueue_pushes(
    pool: ArqRedis | None, items: Iterable[tuple[uuid.UUID, str]], priority: Priority,
    *, defer_until: datetime | None = None,
) -> int:
    """Enqueue push jobs; returns how many were newly queued (existing ones coalesce)."""
    if pool is None:
        return 0
    now = now_utc()
    when = defer_until or (now - USER_HEADSTART if priority == Priority.USER else now)
    score, enqueued_at = utc_ms(when), utc_ms(now)
    expires_ms = int(JOB_EXPIRES.total_seconds() * 1000)
    args: list[str | int | bytes] = []
    for tenant_id, entry_id in items:
        data = serialize_job(PUSH_JOB, (str(tenant_id), entry_id), {}, None, enqueued_at,
                             serializer=pool.job_serializer)
        args += [push_job_id(tenant_id, entry_id), score, data]
    script = register(pool, "enqueue_jobs")  # app/jira/lua/enqueue_jobs.lua
    queued = 0
    try:
        for start in range(0, len(args), 3 * ENQUEUE_CHUNK):
            queued += int(await script(
                keys=[pool.default_queue_name],
                args=[job_key_prefix, result_key_prefix, expires_ms, *args[start:start + 3 * ENQUEUE_CHUNK]],
            ))
    except Exception as exc:
        log.warning("enqueue failed (the sweeper will pick the entries up): %s", exc.__class__.__name__)
    return queued
