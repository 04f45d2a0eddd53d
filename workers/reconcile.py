"""The reconciliation poller: every RECONCILE_INTERVAL_SECONDS, each JIRA instance is polled by exactly one worker.

Every worker runs `reconcile_loop`; per instance, a Redis lease (`SET NX PX interval`) picks the one worker that
polls it in this interval, and a running lock keeps a slow poll from overlapping the next one. A worker that
dies mid-poll loses nothing: the cursors only move after a poll was fully processed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from app import redis_keys
from app.db.repositories import activity as activity_repo
from app.jira.locks import LockTimeout, acquire_lock, release_lock
from app.services.reconcile import reconcile_instance
from workers.context import WorkerContext

log = logging.getLogger("workers.reconcile")

TICK_SECONDS = 5.0
RUNNING_TTL_SECONDS = 600.0  # a poll longer than this is stuck; its lock expires and another worker may poll


async def poll_due_instances(wc: WorkerContext, queue: Any) -> int:
    """Poll each instance whose lease this worker wins now; returns how many it polled."""
    interval_ms = int(wc.settings.reconcile_interval_seconds * 1000)
    async with wc.deps.sessionmaker() as session:
        ids = await activity_repo.all_instance_ids(session)
    deps = wc.runtime.reconcile_deps(queue)
    polled = 0
    for instance_id in ids:
        if not await wc.redis.set(redis_keys.reconcile_lease(instance_id), "1", nx=True, px=interval_ms):
            continue  # another worker polls it in this interval (or already did)
        try:
            running = await acquire_lock(wc.redis, redis_keys.reconcile_running(instance_id), RUNNING_TTL_SECONDS,
                                         max_wait=0)
        except LockTimeout:
            continue  # the previous poll is still going
        try:
            report = await reconcile_instance(deps, instance_id)
            polled += 1
            if report.ours or not report.polled:
                log.info("reconciled instance %s: polled=%s ours=%d outcomes=%s reason=%s", instance_id,
                         report.polled, report.ours, dict(report.outcomes), report.reason)
        except Exception:
            log.exception("reconciliation of instance %s failed; its cursors stay where they were", instance_id)
        finally:
            await release_lock(wc.redis, running)
    return polled


async def reconcile_loop(ctx: dict[str, Any]) -> None:
    """Background task of every worker; the leases make the fleet poll each instance once per interval."""
    wc: WorkerContext = ctx["wc"]
    tick = min(TICK_SECONDS, float(wc.settings.reconcile_interval_seconds))
    while True:
        try:
            await poll_due_instances(wc, ctx.get("redis"))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("reconciliation round failed; next try in %s s", tick)
        await asyncio.sleep(tick)
