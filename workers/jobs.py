"""arq jobs. Each is idempotent: arq may run a job again after a worker dies."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from arq import Retry

from app import redis_keys
from app.clock import now_utc
from app.db.repositories import entries as repo
from app.domain.priority import Priority
from app.services.dispatch import enqueue_pushes
from workers.context import WorkerContext

log = logging.getLogger("workers")

SWEEP_BATCH = 5000


async def push_entry(ctx: dict[str, Any], tenant_id: str, entry_id: str) -> None:
    """Push one entry's latest state to JIRA; re-queued by arq (same job id) when it must wait."""
    wc: WorkerContext = ctx["wc"]
    delay = await wc.push.push(uuid.UUID(tenant_id), entry_id)
    if delay is not None:
        raise Retry(defer=max(0.05, delay))


async def sweep(wc: WorkerContext, queue: Any) -> int:
    """Enqueue every due entry (arq's job ids make this a no-op for entries already queued)."""
    async with wc.deps.sessionmaker() as session:
        due = await repo.due_entries(session, now=now_utc(), limit=SWEEP_BATCH)
    by_priority: dict[Priority, list[tuple[uuid.UUID, str]]] = {Priority.USER: [], Priority.BATCH: []}
    for tenant_id, entry_id, priority in due:
        by_priority[Priority(priority)].append((tenant_id, entry_id))
    queued = 0
    for priority, items in by_priority.items():
        queued += await enqueue_pushes(queue, items, priority)
    if queued:
        log.info("sweeper queued %d due entries that had no job", queued)
    return queued


async def sweeper_loop(ctx: dict[str, Any]) -> None:
    """Every SWEEP_INTERVAL_SECONDS one worker (whoever takes the Redis lease) sweeps."""
    wc: WorkerContext = ctx["wc"]
    interval = wc.settings.sweep_interval_seconds
    while True:
        try:
            if await wc.redis.set(redis_keys.SWEEP_LEASE, "1", nx=True, px=int(interval * 1000 * 0.9)):
                await sweep(wc, ctx["redis"])
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("sweep failed; next try in %s s", interval)
        await asyncio.sleep(interval)
