"""Use cases on entries: accept a change (PUT, batch, webhook), delete, retry, route again.

Each accepted change is written with its sync state and outbox marker through the entry aggregate
(`app.domain.entry_sync`) in the caller's unit of work; its commit writes the changes feed, commits, and
hands the entries that became due to the queue.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from app.clock import now_utc
from app.db.models import EntryRow, Tenant
from app.db.repositories import activity as activity_repo
from app.db.repositories import entries as repo
from app.db.repositories.entries import LoadedEntry
from app.domain.commands import ChangeEntry
from app.domain.conflict import Winner, close_conflict
from app.domain.entry import (
    ChangeOutcome,
    EntryContent,
    InstanceRoute,
    SyncStatus,
    classify_change,
    intent_after_change,
    route,
)
from app.domain.entry_sync import EntrySync
from app.domain.priority import Priority
from app.services.unit_of_work import UnitOfWork


class UnknownInstance(ValueError):
    """`jira_instance` names no JIRA instance of this tenant."""


@dataclass
class Accepted:
    row: EntryRow | None  # None only for a duplicate delivery of an entry that does not exist
    outcome: ChangeOutcome
    duplicate: bool = False  # this webhook delivery was accepted before: nothing was done


def resolve_instance(ref: str | None, routes: list[InstanceRoute]) -> uuid.UUID | None:
    if ref is None or not ref.strip():
        return None
    for r in routes:
        if str(r.id) == ref.strip() or r.name == ref.strip():
            return r.id
    raise UnknownInstance(f"jira_instance: no JIRA instance {ref!r} in this tenant")


def content_of(row: EntryRow) -> EntryContent:
    return EntryContent(
        row.user, row.ticket, row.date, row.start, row.duration, row.timezone, row.description, row.activity,
        row.requested_instance_id,
    )


def _apply_intent(entry: EntrySync, *, routes: list[InstanceRoute], priority: Priority,
                  content_changed: bool = False) -> bool:
    row = entry.entry
    r = route(row.ticket, row.requested_instance_id, routes)
    intent = intent_after_change(
        deleted=row.is_deleted, duration=row.duration, route=r, has_worklog=row.worklog_id is not None
    )
    return entry.apply_intent(intent, r, priority=priority, content_changed=content_changed)


async def accept_change(
    uow: UnitOfWork, tenant: Tenant, entry_id: str, change: ChangeEntry, *, priority: Priority,
    loaded: LoadedEntry | None = None, delivery_id: str | None = None, now: datetime | None = None,
) -> Accepted:
    """Upsert one entry. Stale changes and identical ones change nothing and push nothing.

    `loaded` is the entry as already read by the caller (a batch reads all its entries at once); otherwise it
    is read here, and with `delivery_id` an accepted delivery before is answered `duplicate`. Commit with
    `uow.run`, which runs the change again if the entry changed meanwhile.
    """
    now = now or now_utc()
    loaded = loaded or await uow.load_entry(tenant.id, entry_id, delivery_id=delivery_id)
    row = loaded.row
    if loaded.delivered:
        return Accepted(row, ChangeOutcome.UNCHANGED, duplicate=True)
    requested = resolve_instance(change.jira_instance, loaded.routes)
    incoming = EntryContent(
        change.user, change.ticket, change.day, change.start, change.duration,
        change.timezone or tenant.timezone or "UTC", change.description, change.activity, requested,
    )
    stamp = change.updated_at or now
    outcome = classify_change(
        stored_updated_at=row.updated_at if row else None,
        stored=content_of(row) if row else None,
        stored_deleted=row.is_deleted if row else False,
        incoming_updated_at=stamp, incoming=incoming, incoming_deleted=False,
    )
    if row is not None and outcome is ChangeOutcome.STALE:
        return Accepted(row, outcome)
    if row is not None and outcome is ChangeOutcome.UNCHANGED:
        if row.updated_at != stamp:
            row.updated_at = stamp
            uow.save(row)
        return Accepted(row, outcome)
    if row is None:
        row = uow.new_entry(tenant.id, entry_id, now=now)
    row.user, row.ticket, row.date, row.start = incoming.user, incoming.ticket, incoming.day, incoming.start
    row.duration, row.timezone = incoming.duration, incoming.timezone
    row.description, row.activity, row.requested_instance_id = incoming.description, incoming.activity, requested
    row.is_deleted = False
    row.updated_at = stamp
    row.local_changed_at = now
    row.version = (row.version or 0) + 1
    entry = uow.entry(row, now=now)
    await _local_change_settles_conflict(uow, entry)
    _apply_intent(entry, routes=loaded.routes, priority=priority, content_changed=True)
    return Accepted(row, outcome)


async def _local_change_settles_conflict(uow: UnitOfWork, entry: EntrySync) -> None:
    """Editing an entry that is in conflict is a decision for TimeTracker: its new state is pushed over JIRA's."""
    if entry.status is not SyncStatus.CONFLICT:
        return
    await settle_conflict_for_timetracker(uow, entry, why="by a newer change in TimeTracker")
    entry.overwrite_remote()  # JIRA holds someone else's edit: overwrite it even if our state equals the old base


async def accept_delete(
    uow: UnitOfWork, tenant: Tenant, entry_id: str, *, updated_at: datetime | None, priority: Priority,
    loaded: LoadedEntry | None = None, delivery_id: str | None = None, now: datetime | None = None,
) -> Accepted | None:
    """Mark an entry deleted; its worklog is removed by the push. None when the entry is unknown. `loaded` and
    `delivery_id` as for `accept_change`; commit with `uow.run`, as `accept_change`."""
    now = now or now_utc()
    loaded = loaded or await uow.load_entry(tenant.id, entry_id, delivery_id=delivery_id)
    row = loaded.row
    if loaded.delivered:
        return Accepted(row, ChangeOutcome.UNCHANGED, duplicate=True)
    if row is None:
        return None
    stamp = updated_at or now
    if stamp < row.updated_at:
        return Accepted(row, ChangeOutcome.STALE)
    if row.is_deleted:
        if row.updated_at != stamp:
            row.updated_at = stamp
            uow.save(row)
        return Accepted(row, ChangeOutcome.UNCHANGED)
    row.is_deleted = True
    row.updated_at = stamp
    row.local_changed_at = now
    row.version += 1
    entry = uow.entry(row, now=now)
    await _local_change_settles_conflict(uow, entry)
    _apply_intent(entry, routes=loaded.routes, priority=priority, content_changed=True)
    return Accepted(row, ChangeOutcome.UPDATED)


async def settle_conflict_for_timetracker(uow: UnitOfWork, entry: EntrySync, *, why: str) -> None:
    """Close the entry's open conflict with TimeTracker as the winner, and say why in the audit trail."""
    row = entry.entry
    conflict = await activity_repo.open_conflict_of(uow.session, row.tenant_id, row.id, lock=True)
    if conflict is not None:
        close_conflict(conflict, winner=Winner.TIMETRACKER, now=entry.now)
        repo.add_audit(uow.session, tenant_id=row.tenant_id, action="conflict.resolve", entry_id=row.id,
                       jira_instance_id=conflict.jira_instance_id, outcome=Winner.TIMETRACKER,
                       detail=f"conflict {conflict.id} resolved {why}")


RETRYABLE = {SyncStatus.FAILED, SyncStatus.SKIPPED, SyncStatus.AUTH_REQUIRED}


async def retry(uow: UnitOfWork, tenant: Tenant, row: EntryRow, *, now: datetime | None = None) -> bool:
    """Put a failed (or skipped / auth_required) entry back to pending; False if not retryable."""
    if row.sync_status not in RETRYABLE:
        return False
    routes = await repo.instance_routes(uow.session, tenant.id)
    _apply_intent(uow.entry(row, now=now), routes=routes, priority=Priority.USER)
    return True


async def reroute_skipped(uow: UnitOfWork, tenant: Tenant, *, now: datetime | None = None) -> list[str]:
    """After the tenant's JIRA instances changed: route again the entries skipped for want of an instance.

    Returns the ids now due (pending, batch priority); the unit of work wakes their pushers after commit.
    """
    now = now or now_utc()
    routes = await repo.instance_routes(uow.session, tenant.id)
    return [row.id for row in await repo.entries_skipped_for_routing(uow.session, tenant.id)
            if _apply_intent(uow.entry(row, now=now), routes=routes, priority=Priority.BATCH)]


async def resume_after_connect(
    uow: UnitOfWork, tenant: Tenant, rows: list[EntryRow], *, now: datetime | None = None
) -> list[str]:
    """Put `auth_required` entries back to pending, due now at USER priority (the user just reconnected).

    Routes are evaluated again, as for any change. Returns the ids now due; the unit of work wakes their pushers.
    """
    now = now or now_utc()
    routes = await repo.instance_routes(uow.session, tenant.id)
    return [row.id for row in rows
            if _apply_intent(uow.entry(row, now=now), routes=routes, priority=Priority.USER)]
