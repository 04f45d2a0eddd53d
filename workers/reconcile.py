"""The reconciliation poller: every RECONCILE_INTERVAL_SECONDS, each JIRA instance is polled by exactly one worker.

Every worker runs `reconcile_loop`; per instance, a Redis lease (`SET NX PX interval`) picks the one worker that
polls it in this interval, and a running lock keeps a slow poll from overlapping the next one. Fair share
(CONTRACT 11): instances are served in turn — the one whose poll started longest ago (or never) first, whatever
its outcome, so instances whose polls keep failing cannot stay ahead of the others — a worker runs a few polls at
once, starts the next as soon as one ends, never waits for one to start the others, and abandons each poll after
RECONCILE_POLL_DEADLINE_SECONDS, so a hanging JIRA holds only its own poll. A worker that dies mid-poll, or a poll
that is abandoned, loses nothing: the cursors only move after a poll was fully processed.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

from app import redis_keys
from app.db.repositories import activity as activity_repo
from app.jira.locks import LockTimeout, acquire_lock, release_lock
from app.services.reconcile import ReconcileDeps, reconcile_instance
from workers.context import WorkerContext

log = logging.getLogger("workers.reconcile")

TICK_SECONDS = 5.0
POLLS_AT_ONCE = 4  # per worker; the other instances are left to the other workers, or the next tick


class Poller:
    """One worker's share of the polling: its polls in flight, at most `POLLS_AT_ONCE`."""

    def __init__(self, wc: WorkerContext) -> None:
        self.wc = wc
        self.deps: ReconcileDeps = wc.runtime.reconcile_deps(wc.wake or wc.runtime.wake)
        self.running: dict[uuid.UUID, asyncio.Task[None]] = {}

    async def tick(self) -> int:
        """Start a poll of each instance (longest unpolled first) whose lease this worker wins now, as long as it
        has room; returns how many it started."""
        interval_ms = int(self.wc.settings.reconcile_interval_seconds * 1000)
        async with self.wc.deps.sessionmaker() as session:
            ids = await activity_repo.instances_by_last_poll(session)
        ids = await self._in_turn(ids)
        started = 0
        for instance_id in ids:
            if len(self.running) >= POLLS_AT_ONCE:
                break
            if instance_id in self.running:
                continue
            if not await self.wc.redis.set(redis_keys.reconcile_lease(instance_id), self.wc.holder, nx=True,
                                           px=interval_ms):
                continue  # another worker polls it in this interval (or already did)
            await self.wc.redis.hset(redis_keys.reconcile_started(), str(instance_id),  # type: ignore[misc]
                                     str(self._now_ms()))
            self.running[instance_id] = asyncio.create_task(self._poll(instance_id))
            started += 1
        return started

    @staticmethod
    def _now_ms() -> int:
        return int(time.time() * 1000)

    async def _in_turn(self, ids: list[uuid.UUID]) -> list[uuid.UUID]:
        """`ids` (the database's order: longest since a successful poll first) ordered by when their last poll
        started, never first; deleted instances are dropped from the record."""
        key = redis_keys.reconcile_started()
        raw: dict[bytes, bytes] = await self.wc.redis.hgetall(key)  # type: ignore[misc]
        started = {k.decode(): int(v) for k, v in raw.items()}
        gone = started.keys() - {str(i) for i in ids}
        if gone:
            await self.wc.redis.hdel(key, *gone)  # type: ignore[misc]
        return sorted(ids, key=lambda i: started.get(str(i), 0))  # stable: the database's order breaks ties

    async def _poll(self, instance_id: uuid.UUID) -> None:
        deadline = self.wc.settings.reconcile_poll_deadline_seconds
        try:
            running = await acquire_lock(self.wc.redis, redis_keys.reconcile_running(instance_id), deadline + 30,
                                         max_wait=0)
        except LockTimeout:
            self.running.pop(instance_id, None)
            return  # the previous poll is still going
        try:
            async with asyncio.timeout(deadline):
                report = await reconcile_instance(self.deps, instance_id)
            if report.ours or not report.polled:
                log.info("reconciled instance %s: polled=%s ours=%d outcomes=%s reason=%s", instance_id,
                         report.polled, report.ours, dict(report.outcomes), report.reason)
        except TimeoutError:
            log.warning("poll of instance %s abandoned after %.0f s; its cursors stay where they were", instance_id,
                        deadline)
        except Exception:
            log.exception("reconciliation of instance %s failed; its cursors stay where they were", instance_id)
        finally:
            self.running.pop(instance_id, None)
            await release_lock(self.wc.redis, running)

    async def stop(self) -> None:
        for task in list(self.running.values()):
            task.cancel()
        await asyncio.gather(*self.running.values(), return_exceptions=True)


async def poll_due_instances(wc: WorkerContext) -> int:
    """Poll every instance whose lease this worker wins now, `POLLS_AT_ONCE` at a time, and wait for them (tests
    and tools; the worker's loop never waits). Returns how many it polled."""
    poller = Poller(wc)
    total = 0
    while True:
        total += await poller.tick()
        if not poller.running:
            return total
        await asyncio.wait(list(poller.running.values()), return_when=asyncio.FIRST_COMPLETED)


async def reconcile_loop(wc: WorkerContext) -> None:
    """Background task of every worker; the leases make the fleet poll each instance once per interval."""
    poller = Poller(wc)
    tick = min(TICK_SECONDS, float(wc.settings.reconcile_interval_seconds))
    try:
        while True:
            try:
                await poller.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reconciliation round failed; next try in %s s", tick)
            if poller.running:
                # a poll that ends frees its place for the next instance at once: with hundreds of instances, most
                # polls are short, and four per tick would leave some unpolled for many intervals
                await asyncio.wait(list(poller.running.values()), timeout=tick, return_when=asyncio.FIRST_COMPLETED)
            else:
                await asyncio.sleep(tick)
    finally:
        await poller.stop()
