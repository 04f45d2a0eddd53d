"""`sync-pending`: make every pending entry due (batch priority), wake the pushers, follow the backlog as it drains."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.clock import now_utc
from app.db.repositories import entries as repo
from app.domain.entry import SyncStatus
from app.domain.priority import Priority
from app.services.dispatch import PushWake


@dataclass
class Summary:
    total: int
    queued: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    timed_out: bool = False


async def sync_pending(
    sessionmaker: async_sessionmaker[AsyncSession], wake: PushWake | None, *, tenant_id: uuid.UUID | None,
    dry_run: bool, wait_seconds: float, progress: Callable[[int, int], None] | None = None,
) -> Summary:
    """Make pending entries due (batch priority) and wake their pushers; wait until none of them is pending or time
    runs out. `queued` counts the entries that had no outbox marker (nothing would have pushed them)."""
    now = now_utc()
    async with sessionmaker() as session:
        items = await repo.pending_ids(session, tenant_id)
        summary = Summary(total=len(items))
        if dry_run or not items:
            summary.by_status = await repo.statuses_of(session, items)
            return summary
        # entries waiting for a backoff keep their time; the rest become due now
        for tenant in {t for t, _ in items}:
            summary.queued += await repo.make_pending_due(session, tenant, now=now, priority=Priority.BATCH)
        await session.commit()
        instances = await repo.instances_with_due(session, now=now)
    if wake is not None:
        await wake.wake({instance_id: Priority.BATCH for instance_id in instances})
    deadline = asyncio.get_running_loop().time() + wait_seconds
    while True:
        async with sessionmaker() as session:
            counts = await repo.statuses_of(session, items)
        done = summary.total - counts.get(SyncStatus.PENDING, 0)
        if progress:
            progress(done, summary.total)
        if done >= summary.total:
            break
        if asyncio.get_running_loop().time() >= deadline:
            summary.timed_out = True
            break
        await asyncio.sleep(0.5)
    summary.by_status = counts
    return summary
