"""The unit of work: one transaction of a use case, and what must happen around its commit, in the one right order.

1. the use case writes its rows; entry transitions (`app.domain.entry_sync.EntrySync`) record feed records
   and pushes that became due;
2. `commit` writes the changes-feed records last (their feed positions are assigned in commit order when they
   are first read), then commits;
3. only then are the due pushes handed to the queue. PostgreSQL holds the outbox marker (`due_at`) either
   way, so a queue that is down delays a push (the sweeper finds it) but never loses it.

API routers get one per request (`app.api.deps.UnitOfWorkDep`); workers and the CLI open one per
transaction with `UnitOfWork.open`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.clock import now_utc
from app.db.models import EntryRow
from app.db.repositories import entries as repo
from app.domain.entry_sync import EntrySync, Event, FeedRecord
from app.domain.priority import Priority
from app.services.dispatch import enqueue_pushes
from app.services.views import entry_view


class UnitOfWork:
    def __init__(self, session: AsyncSession, queue: ArqRedis | None) -> None:
        self.session = session
        self.queue = queue
        self._feed: list[FeedRecord] = []
        self._pushes: dict[tuple[uuid.UUID, str], Priority] = {}

    @classmethod
    @asynccontextmanager
    async def open(
        cls, sessionmaker: async_sessionmaker[AsyncSession], queue: ArqRedis | None = None
    ) -> AsyncIterator[UnitOfWork]:
        """A unit of work on a session of its own; what is not committed is rolled back on leaving."""
        async with sessionmaker() as session:
            yield cls(session, queue)

    def entry(self, row: EntryRow, *, now: datetime | None = None) -> EntrySync:
        """The entry's sync state, its transitions recorded in this unit of work."""
        return EntrySync(row, now=now or now_utc(), record=self._record)

    def _record(self, event: Event) -> None:
        if isinstance(event, FeedRecord):
            self._feed.append(event)
            return
        key = (event.tenant_id, event.entry_id)
        # one job per entry; a user action anywhere in the unit puts it ahead of batch work
        self._pushes[key] = min(event.priority, self._pushes.get(key, event.priority))

    async def flush_feed(self) -> None:
        """Write the feed records collected so far (`commit` does it first thing). They take their place in the
        feed when a reader first sees them committed (`repo.list_changes`): nothing is locked here."""
        pending, self._feed = self._feed, []
        if not pending:
            return
        await self.session.flush()
        await repo.add_changes(self.session, [
            (r.entry.tenant_id, r.entry.id, r.kind.value, entry_view(r.entry)) for r in pending
        ])

    async def commit(self) -> None:
        """Feed records, commit, then enqueue the pushes that became due: in this order, always."""
        await self.flush_feed()
        await self.session.commit()
        pushes, self._pushes = self._pushes, {}
        for priority in (Priority.USER, Priority.BATCH):
            items = [key for key, p in pushes.items() if p == priority]
            if items:
                await enqueue_pushes(self.queue, items, priority)
