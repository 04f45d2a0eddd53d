"""`sync-pending`: queue every pending entry (batch priority) and follow the backlog as it drains."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from arq.connections import ArqRedis
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.models import EntryRow
from app.jira.priority import Priority
from app.services.dispatch import enqueue_pushes


@dataclass
class Summary:
    total: int
    queued: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    timed_out: bool = False


async def pending_ids(session: AsyncSession, tenant_id: uuid.UUID | None) -> list[tuple[uuid.UUID, str]]:
    stmt = select(EntryRow.tenant_id, EntryRow.id).where(EntryRow.sync_status == "pending")
    if tenant_id is not None:
        stmt = stmt.where(EntryRow.tenant_id == tenant_id)
    return [(r[0], r[1]) for r in (await session.execute(stmt.order_by(EntryRow.due_at))).all()]


async def status_counts(session: AsyncSession, items: list[tuple[uuid.UUID, str]]) -> Counter[str]:
    counts: Counter[str] = Counter()
    by_tenant: dict[uuid.UUID, list[str]] = {}
    for tenant_id, entry_id in items:
        by_tenant.setdefault(tenant_id, []).append(entry_id)
    for tenant_id, ids in by_tenant.items():
        for chunk in (ids[i : i + 5000] for i in range(0, len(ids), 5000)):
            rows = await session.execute(
                select(EntryRow.sync_status, func.count())
                .where(EntryRow.tenant_id == tenant_id, EntryRow.id.in_(chunk))
                .group_by(EntryRow.sync_status)
            )
            for status, n in rows.all():
                counts[status] += n
    return counts


async def sync_pending(
    sessionmaker: async_sessionmaker[AsyncSession], queue: ArqRedis | None, *, tenant_id: uuid.UUID | None,
    dry_run: bool, wait_seconds: float, progress: Callable[[int, int], None] | None = None,
) -> Summary:
    """Queue pending entries (due now, batch priority); wait until none of them is pending or time runs out."""
    async with sessionmaker() as session:
        items = await pending_ids(session, tenant_id)
        summary = Summary(total=len(items))
        if dry_run or not items:
            summary.by_status = await status_counts(session, items)
            return summary
        now = datetime.now(timezone.utc)
        # entries waiting for a backoff keep their time; the rest become due now
        for tenant in {t for t, _ in items}:
            await session.execute(
                update(EntryRow)
                .where(EntryRow.tenant_id == tenant, EntryRow.sync_status == "pending", EntryRow.due_at.is_(None))
                .values(due_at=now, priority=int(Priority.BATCH))
            )
        await session.commit()
    summary.queued = await enqueue_pushes(queue, items, Priority.BATCH)
    deadline = asyncio.get_running_loop().time() + wait_seconds
    while True:
        async with sessionmaker() as session:
            counts = await status_counts(session, items)
        done = summary.total - counts.get("pending", 0)
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
