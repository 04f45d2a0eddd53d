"""The sweeper: every SWEEP_INTERVAL_SECONDS one worker (whoever takes the Redis lease) makes sure that everything
due in PostgreSQL has someone to push it (CONTRACT 10.1, 10.8, 11).

* Every JIRA instance with entries due now and no push lease is woken (one PUBLISH each): its wake-up was lost
  (Redis was down or restarted, no worker was running, the worker holding it was killed). Every instance is one
  index probe and at most one message, however many entries it has due, so one tenant's thousands of due entries
  on a failing JIRA cannot keep another tenant's from being found (the old sweeper's "5000 oldest" could).
* Due entries whose next push has no instance at all (theirs was deleted) are routed again or finished, a
  bounded number per tenant each time.
"""

from __future__ import annotations

import asyncio
import logging

from app import redis_keys
from app.clock import now_utc
from app.db.repositories import entries as repo
from app.domain.priority import Priority
from app.services.push import settle_unrouted
from workers.context import WorkerContext

log = logging.getLogger("workers.sweeper")

LEASE_CHECK_CHUNK = 500


async def sweep(wc: WorkerContext) -> int:
    """Wake every instance with due entries that nobody pushes, settle unrouted ones; returns how many were woken."""
    async with wc.deps.sessionmaker() as session:
        instances = await repo.instances_with_due(session, now=now_utc())
    orphans = []
    for start in range(0, len(instances), LEASE_CHECK_CHUNK):
        chunk = instances[start:start + LEASE_CHECK_CHUNK]
        holders = await wc.redis.mget([redis_keys.push_lease(i) for i in chunk])
        orphans += [i for i, holder in zip(chunk, holders, strict=True) if holder is None]
    if orphans and wc.wake is not None:
        await wc.wake.wake({instance_id: Priority.BATCH for instance_id in orphans})
        log.info("sweeper woke %d instance(s) with due entries that nobody was pushing", len(orphans))
    settled = await settle_unrouted(wc.deps)
    if settled:
        log.info("sweeper settled %d due entries without an instance", settled)
    return len(orphans)


async def sweeper_loop(wc: WorkerContext) -> None:
    """Every SWEEP_INTERVAL_SECONDS one worker (whoever takes the Redis lease) sweeps; the first time at start."""
    interval = wc.settings.sweep_interval_seconds
    while True:
        try:
            if await wc.redis.set(redis_keys.SWEEP_LEASE, wc.holder, nx=True, px=int(interval * 1000 * 0.9)):
                await sweep(wc)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("sweep failed; next try in %s s", interval)
        await asyncio.sleep(interval)
