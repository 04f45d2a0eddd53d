"""The unit of work: rows, then the changes feed, then commit, then the pushers' wake-up — and nothing of it
without commit."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from app import redis_keys
from app.db.models import ChangeRow, EntryRow
from app.domain.priority import Priority
from app.services.dispatch import RedisWake, parse_wake
from app.services.unit_of_work import UnitOfWork
from tests.integration.ops_data import add_instance

ENTRY = {"user": "jdoe", "ticket": "NOPE-1", "date": "2026-11-25", "start": "09:00", "duration": 30}


async def _skipped_entry(api: Any, tenant: Any, entry_id: str) -> None:
    auth = {"Authorization": f"Bearer {tenant.api_key}"}
    r = await api.put(f"/api/v1/entries/{entry_id}", json=ENTRY, headers=auth)
    assert r.status_code == 202 and r.json()["sync"]["status"] == "skipped"  # no instance: nothing to push


async def _seen_from_outside(app: Any, tenant: Any, entry_id: str) -> tuple[str, int]:
    """The entry's status and its number of feed records, as another transaction sees them."""
    async with app.state.sessionmaker() as session:
        row = (await session.execute(select(EntryRow).where(
            EntryRow.tenant_id == tenant.tenant_id, EntryRow.id == entry_id))).scalar_one()
        feed = (await session.execute(select(ChangeRow).where(
            ChangeRow.tenant_id == tenant.tenant_id, ChangeRow.entry_id == entry_id))).scalars().all()
        return row.sync_status, len(feed)


async def _locked(uow: UnitOfWork, tenant: Any, entry_id: str) -> EntryRow:
    return (await uow.session.execute(select(EntryRow).where(
        EntryRow.tenant_id == tenant.tenant_id, EntryRow.id == entry_id).with_for_update())).scalar_one()


class Recording:
    """A `PushWake` that remembers what it was told, and what another transaction saw at that moment."""

    def __init__(self, app: Any, tenant: Any, entry_id: str) -> None:
        self.app, self.tenant, self.entry_id = app, tenant, entry_id
        self.calls: list[tuple[dict[uuid.UUID, Priority], tuple[str, int]]] = []

    async def wake(self, due: Mapping[uuid.UUID, Priority]) -> None:
        self.calls.append((dict(due), await _seen_from_outside(self.app, self.tenant, self.entry_id)))


async def test_commit_feeds_then_commits_then_wakes_the_instances_pusher(app, api, tenant) -> None:  # type: ignore[no-untyped-def]
    instance = await add_instance(api, tenant, project_keys=("WAKE",))
    auth = {"Authorization": f"Bearer {tenant.api_key}"}
    r = await api.put("/api/v1/entries/u1", json={**ENTRY, "ticket": "WAKE-1"}, headers=auth)
    assert r.status_code == 202 and r.json()["sync"]["status"] == "pending"
    wake = Recording(app, tenant, "u1")
    async with UnitOfWork.open(app.state.sessionmaker, wake) as uow:
        uow.entry(await _locked(uow, tenant, "u1")).mark_due(reason="retried by a test")
        assert wake.calls == []
        await uow.commit()
    # when the pushers were woken, the status change and its feed record were committed already
    assert wake.calls == [({instance: Priority.USER}, ("pending", 2))]


async def test_nothing_is_fed_or_woken_without_commit(app, api, tenant) -> None:  # type: ignore[no-untyped-def]
    await _skipped_entry(api, tenant, "u2")
    wake = Recording(app, tenant, "u2")
    async with UnitOfWork.open(app.state.sessionmaker, wake) as uow:
        uow.entry(await _locked(uow, tenant, "u2")).mark_due()
    assert wake.calls == []
    assert await _seen_from_outside(app, tenant, "u2") == ("skipped", 1)


async def test_a_due_entry_wakes_its_instance_on_the_real_channel(app, api, tenant, redis) -> None:  # type: ignore[no-untyped-def]
    instance_id = await add_instance(api, tenant, name="Woken", project_keys=("WAKE",))
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(redis_keys.PUSH_WAKE_CHANNEL)
    try:
        auth = {"Authorization": f"Bearer {tenant.api_key}"}
        r = await api.put("/api/v1/entries/u3", json={**ENTRY, "ticket": "WAKE-1"}, headers=auth)
        assert r.status_code == 202 and r.json()["sync"]["status"] == "pending"
        message = None
        async with asyncio.timeout(10):
            while message is None:
                message = await pubsub.get_message(timeout=1.0)
        assert parse_wake(message["data"]) == (instance_id, Priority.USER)
    finally:
        await pubsub.aclose()
    assert isinstance(app.state.wake, RedisWake)


async def test_a_change_that_lost_the_race_runs_again_on_what_is_there_now(app, api, tenant) -> None:  # type: ignore[no-untyped-def]
    """A PUT reads its entry without a lock; when a push records a worklog between that read and the write, the
    write finds the entry changed, writes nothing, and the change runs again: the worklog stays known."""
    from datetime import date, time

    from app.db.repositories.tenants import get_tenant
    from app.domain.commands import ChangeEntry
    from app.services import entries as svc

    await _skipped_entry(api, tenant, "u4")
    reads = 0
    change = ChangeEntry(user="jdoe", ticket="NOPE-1", day=date(2026, 11, 25), start=time(9), duration=45,
                         timezone=None, description="longer", activity=None, jira_instance=None, updated_at=None)
    async with UnitOfWork.open(app.state.sessionmaker, app.state.wake) as uow:
        # looked up in the unit of work's own session, as the webhook does: it stays usable after the rollback
        tenant_row = await get_tenant(uow.session, tenant.tenant_id)
        assert tenant_row is not None

        async def put() -> svc.Accepted:
            nonlocal reads
            reads += 1
            result = await svc.accept_change(uow, tenant_row, "u4", change, priority=Priority.USER)
            if reads == 1:  # meanwhile a worker records the worklog it wrote
                async with UnitOfWork.open(app.state.sessionmaker) as worker:
                    worker.entry(await _locked(worker, tenant, "u4")).record_written(
                        worklog_id="10042", instance_id=None, issue="NOPE-1", written=None,  # type: ignore[arg-type]
                        remote_updated_ms=None)
                    await worker.commit()
            return result

        result = await uow.run(put)
    assert reads == 2 and tenant_row.id == tenant.tenant_id
    assert result.row is not None and result.row.duration == 45 and result.row.worklog_id == "10042"
    async with app.state.sessionmaker() as session:
        row = (await session.execute(select(EntryRow).where(
            EntryRow.tenant_id == tenant.tenant_id, EntryRow.id == "u4"))).scalar_one()
    assert (row.duration, row.description, row.worklog_id) == (45, "longer", "10042")
