"""The unit of work: one transaction of a use case, and what must happen around its commit, in the one right order.

1. the use case writes its rows; entry transitions (`app.domain.entry_sync.EntrySync`) record feed records
   and pushes that became due;
2. `commit` writes the changes-feed records last (their feed positions are assigned in commit order when they
   are first read), then commits;
3. only then are the pushers of the instances with entries due now woken (`app.services.dispatch`).
   PostgreSQL holds the outbox marker (`due_at`) either way, so a wake-up that is lost delays a push (the
   sweeper finds it) but never loses it.

TimeTracker's changes (PUT, webhook, batch) take the direct way: `load_entry` / `load_entries_locked` read
entries detached from the session, the use case decides as always, and `commit` writes each entry with its feed
records (and the webhook's delivery id) in one statement guarded by the version read. A single change runs
outside any transaction (two round trips: read, write); when its entry changed meanwhile, `run` runs the use case
again on what is there now. Everything else (workers, conflicts) uses the session's ORM rows, and a unit of work
that has both writes them in one transaction.

API routers get one per request (`app.api.deps.UnitOfWorkDep`); workers and the CLI open one per
transaction with `UnitOfWork.open`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, TypeVar

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.clock import now_utc
from app.db.models import EntryRow
from app.db.repositories import entries as repo
from app.domain.entry_sync import EntrySync, Event, FeedRecord
from app.domain.priority import Priority
from app.services.dispatch import PushWake
from app.services.views import entry_view

T = TypeVar("T")
EntryKey = tuple[uuid.UUID, str]
RUN_ATTEMPTS = 50  # a change loses its race only to another writer of the same entry that committed meanwhile


class EntryChangedMeanwhile(Exception):
    """An entry read for this unit of work was changed (or created) by someone else before it was written."""


class UnitOfWork:
    def __init__(self, session: AsyncSession, wake: PushWake | None) -> None:
        self.session = session
        self.wake = wake
        self._feed: list[FeedRecord] = []
        self._due: dict[uuid.UUID, Priority] = {}  # instance → the most urgent priority made due there
        # entries read detached (`load_entry`, `load_entries_locked`): the version each was read at (None: new)
        self._versions: dict[EntryKey, str | None] = {}
        self._to_write: dict[EntryKey, EntryRow] = {}
        self._delivery: tuple[uuid.UUID, str] | None = None
        self._locked = False

    @classmethod
    @asynccontextmanager
    async def open(
        cls, sessionmaker: async_sessionmaker[AsyncSession], wake: PushWake | None = None
    ) -> AsyncIterator[UnitOfWork]:
        """A unit of work on a session of its own; what is not committed is rolled back on leaving."""
        async with sessionmaker() as session:
            yield cls(session, wake)

    def entry(self, row: EntryRow, *, now: datetime | None = None) -> EntrySync:
        """The entry's sync state, its transitions recorded in this unit of work (and a detached entry written)."""
        key = (row.tenant_id, row.id)
        if key in self._versions:
            self._to_write[key] = row
        return EntrySync(row, now=now or now_utc(), record=self._record)

    # -- entries read detached, written in one statement each ------------------------------------------------

    async def _driver(self) -> asyncpg.Connection:
        """The session's connection, as asyncpg's own: statements on it join the session's transaction if one
        is open, and otherwise each runs (and commits) alone."""
        connection = await self.session.connection()
        raw = await connection.get_raw_connection()
        return raw.driver_connection

    async def load_entry(self, tenant_id: uuid.UUID, entry_id: str, *,
                         delivery_id: str | None = None) -> repo.LoadedEntry:
        """Read one entry (not locked) for a change, with the tenant's routes. With `delivery_id` (a webhook
        delivery), `delivered` says whether it was accepted before; if not, it is recorded with what `commit`
        writes."""
        loaded = await repo.load_for_change(await self._driver(), tenant_id, entry_id, delivery_id=delivery_id)
        self._versions[(tenant_id, entry_id)] = loaded.version
        if delivery_id is not None and not loaded.delivered:
            self._delivery = (tenant_id, delivery_id)
        return loaded

    async def load_entries_locked(self, tenant_id: uuid.UUID, entry_ids: Sequence[str]) -> dict[str, repo.LoadedEntry]:
        """Read many entries of one tenant for changes, locked until commit (a batch: one transaction)."""
        await self._begin()
        loaded = await repo.load_many_locked(await self._driver(), tenant_id, entry_ids)
        self._versions.update({(tenant_id, i): item.version for i, item in loaded.items()})
        self._locked = True
        return loaded

    def new_entry(self, tenant_id: uuid.UUID, entry_id: str, *, now: datetime) -> EntryRow:
        """A new entry (read before with `load_entry` and not found), inserted at commit."""
        row = repo.new_detached_entry(tenant_id, entry_id, now=now)
        self._to_write[(tenant_id, entry_id)] = row
        return row

    def save(self, row: EntryRow) -> None:
        """Write this detached entry at commit (an entry changed without a sync transition: a newer stamp)."""
        self._to_write[(row.tenant_id, row.id)] = row

    async def _begin(self) -> None:
        """Open the session's transaction now (SQLAlchemy's driver sends BEGIN with the first statement)."""
        if not (await self._driver()).is_in_transaction():
            await self.session.execute(repo.NOTHING)

    async def run(self, change: Callable[[], Awaitable[T]]) -> T:
        """Run a use case on entries read detached and commit it; if one of them changed meanwhile, roll back
        and run it again on what is there now."""
        for _ in range(RUN_ATTEMPTS - 1):
            result = await change()
            try:
                await self.commit()
            except EntryChangedMeanwhile:
                await self.rollback()
                continue
            return result
        result = await change()
        await self.commit()
        return result

    async def rollback(self) -> None:
        """Forget everything of this unit of work that is not committed. Rows read before stay as they were read
        (detached), so what the request looked up (its tenant) stays usable; the next attempt reads afresh."""
        self.session.expunge_all()
        await self.session.rollback()
        self._feed, self._due, self._versions, self._to_write = [], {}, {}, {}
        self._delivery, self._locked = None, False

    def _record(self, event: Event) -> None:
        if isinstance(event, FeedRecord):
            self._feed.append(event)
            return
        if event.instance_id is None:
            return  # nowhere to push yet: the sweeper settles entries without an instance
        # one wake-up per instance; a user action anywhere in the unit makes it urgent
        self._due[event.instance_id] = min(event.priority, self._due.get(event.instance_id, event.priority))

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
        """Feed records, commit, then wake the pushers of what became due: in this order, always.

        Raises EntryChangedMeanwhile (nothing committed) when a detached entry changed since it was read."""
        detached = [r for r in self._feed if (r.entry.tenant_id, r.entry.id) in self._to_write]
        self._feed = [r for r in self._feed if (r.entry.tenant_id, r.entry.id) not in self._to_write]
        if self._feed or self.session.new or self.session.dirty or self.session.deleted:
            await self.flush_feed()  # opens the session's transaction: the detached writes below join it
        await self._write_detached(detached)
        await self.session.commit()
        due, self._due = self._due, {}
        if due and self.wake is not None:
            await self.wake.wake(due)

    async def _write_detached(self, records: list[FeedRecord]) -> None:
        writes, self._to_write = self._to_write, {}
        delivery, self._delivery = self._delivery, None
        if not writes and delivery is None:
            return
        feed: dict[EntryKey, list[tuple[str, dict[str, Any]]]] = {}
        for r in records:
            feed.setdefault((r.entry.tenant_id, r.entry.id), []).append((r.kind.value, entry_view(r.entry)))
        conn = await self._driver()
        if self._locked:
            ok = await repo.write_entries_locked(
                conn, [(row, self._versions.get(key), feed.get(key, [])) for key, row in writes.items()])
        elif not writes:
            assert delivery is not None
            ok = await repo.remember_delivery_alone(conn, *delivery)
        elif len(writes) == 1:
            [(key, row)] = writes.items()
            ok = await repo.write_entry(conn, row, version=self._versions.get(key), feed=feed.get(key, []),
                                        delivery_id=delivery[1] if delivery else None)
        else:
            raise AssertionError("several entries read unlocked: read them with load_entries_locked")
        if not ok:
            raise EntryChangedMeanwhile()
