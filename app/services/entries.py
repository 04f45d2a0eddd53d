"""Use cases on entries: accept a change (PUT, batch, webhook), delete, retry.

Each accepted change is written with its sync state and outbox marker in the caller's transaction;
the caller commits, then hands the due entries to the queue (app.services.dispatch).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.api.schemas.entries import EntryIn
from app.db.models import EntryRow, Tenant
from app.db.repositories import entries as repo
from app.domain.entry import (
    ChangeOutcome,
    EntryContent,
    InstanceRoute,
    SyncStatus,
    classify_change,
    intent_after_change,
    route,
)
from app.jira.priority import Priority
from app.services.views import entry_view


class UnknownInstance(ValueError):
    """`jira_instance` names no JIRA instance of this tenant."""


@dataclass
class Accepted:
    row: EntryRow
    outcome: ChangeOutcome
    push: bool


def now_utc() -> datetime:
    return datetime.now(UTC)


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


def set_status(
    session: AsyncSession, row: EntryRow, status: SyncStatus, *, last_error: str | None = None,
    now: datetime | None = None, kind: str = "sync_status", content_changed: bool = False,
) -> None:
    """The one place an entry's sync status changes; every change lands in the changes feed.

    A TimeTracker content change that keeps the status is fed too (kind `local_change`), so a client
    reading the feed from the start can rebuild every entry's current state.
    """
    changed = row.sync_status != status or row.last_error != last_error
    row.sync_status = status
    row.last_error = last_error
    row.sync_updated_at = now or now_utc()
    if changed or kind != "sync_status":
        session.info.setdefault("feed", []).append((row, kind))
    elif content_changed:
        session.info.setdefault("feed", []).append((row, "local_change"))


async def flush_feed(session: AsyncSession) -> None:
    """Write the queued feed records last, under the tenant's feed lock (short hold, commit order)."""
    pending: list[tuple[EntryRow, str]] = session.info.pop("feed", [])
    if not pending:
        return
    await session.flush()
    for tenant_id in sorted({r.tenant_id for r, _ in pending}):
        await repo.lock_changes_feed(session, tenant_id)
    await repo.add_changes(session, [(row.tenant_id, row.id, kind, entry_view(row)) for row, kind in pending])


def _apply_intent(session: AsyncSession, row: EntryRow, *, routes: list[InstanceRoute], priority: Priority,
                  now: datetime, content_changed: bool = False) -> bool:
    r = route(row.ticket, row.requested_instance_id, routes)
    intent = intent_after_change(
        deleted=row.is_deleted, duration=row.duration, route=r, has_worklog=row.worklog_id is not None
    )
    row.instance_id = r.instance_id if not row.is_deleted else row.instance_id
    row.attempts = 0
    row.due_at = now if intent.push else None
    row.priority = int(priority)
    set_status(session, row, intent.status, last_error=intent.reason, now=now, content_changed=content_changed)
    return intent.push


async def accept_change(
    session: AsyncSession, tenant: Tenant, entry_id: str, data: EntryIn, *, priority: Priority,
    routes: list[InstanceRoute] | None = None, row: EntryRow | None = None, row_looked_up: bool = False,
    now: datetime | None = None,
) -> Accepted:
    """Upsert one entry. Stale changes and identical ones change nothing and push nothing.

    `row` is the entry as already read (locked) by the caller; with `row_looked_up` a None `row` means the
    caller found no such entry, so it is not looked up again (a batch reads all its rows in one query).
    """
    now = now or now_utc()
    if routes is None and data.jira_instance is not None and data.jira_instance.strip():
        routes = await repo.instance_routes(session, tenant.id)
    requested = resolve_instance(data.jira_instance, routes or [])
    incoming = EntryContent(
        data.user, data.ticket, data.date, data.start, data.duration, data.timezone or tenant.timezone or "UTC",
        data.description, data.activity, requested,
    )
    stamp = data.updated_at or now
    if row is None and not row_looked_up:
        row = await repo.get_entry(session, tenant.id, entry_id, lock=True)
    outcome = classify_change(
        stored_updated_at=row.updated_at if row else None,
        stored=content_of(row) if row else None,
        stored_deleted=row.is_deleted if row else False,
        incoming_updated_at=stamp, incoming=incoming, incoming_deleted=False,
    )
    if outcome is ChangeOutcome.STALE:
        assert row is not None
        return Accepted(row, outcome, False)
    if outcome is ChangeOutcome.UNCHANGED:
        assert row is not None
        row.updated_at = stamp
        return Accepted(row, outcome, False)
    if routes is None:  # only now: a stale or identical change never needs them
        routes = await repo.instance_routes(session, tenant.id)
    if row is None:
        row = EntryRow(
            tenant_id=tenant.id, id=entry_id, version=0, synced_version=0, sync_status=SyncStatus.PENDING,
            attempts=0, is_deleted=False, create_unconfirmed=False, created_at=now,
        )
        session.add(row)
    row.user, row.ticket, row.date, row.start = incoming.user, incoming.ticket, incoming.day, incoming.start
    row.duration, row.timezone = incoming.duration, incoming.timezone
    row.description, row.activity, row.requested_instance_id = incoming.description, incoming.activity, requested
    row.is_deleted = False
    row.updated_at = stamp
    row.local_changed_at = now
    row.version = (row.version or 0) + 1
    await _local_change_settles_conflict(session, row, now)
    push = _apply_intent(session, row, routes=routes, priority=priority, now=now, content_changed=True)
    return Accepted(row, outcome, push)


async def _local_change_settles_conflict(session: AsyncSession, row: EntryRow, now: datetime) -> None:
    """Editing an entry that is in conflict is a decision for TimeTracker: its new state is pushed over JIRA's."""
    if row.sync_status != SyncStatus.CONFLICT:
        return
    await settle_conflict_for_timetracker(session, row, now, why="by a newer change in TimeTracker")
    row.base = None  # JIRA holds someone else's edit: overwrite it even if our new state equals the old base


async def accept_delete(
    session: AsyncSession, tenant: Tenant, entry_id: str, *, updated_at: datetime | None, priority: Priority,
    now: datetime | None = None,
) -> Accepted | None:
    """Mark an entry deleted; its worklog is removed by the push. None when the entry is unknown."""
    now = now or now_utc()
    row = await repo.get_entry(session, tenant.id, entry_id, lock=True)
    if row is None:
        return None
    stamp = updated_at or now
    if stamp < row.updated_at:
        return Accepted(row, ChangeOutcome.STALE, False)
    if row.is_deleted:
        row.updated_at = stamp
        return Accepted(row, ChangeOutcome.UNCHANGED, False)
    row.is_deleted = True
    row.updated_at = stamp
    row.local_changed_at = now
    row.version += 1
    await _local_change_settles_conflict(session, row, now)
    routes = await repo.instance_routes(session, tenant.id)
    push = _apply_intent(session, row, routes=routes, priority=priority, now=now, content_changed=True)
    return Accepted(row, ChangeOutcome.UPDATED, push)


async def settle_conflict_for_timetracker(session: AsyncSession, row: EntryRow, now: datetime, *, why: str) -> None:
    """Close the entry's open conflict with TimeTracker as the winner, and say why in the audit trail."""
    from app.db.repositories.activity import open_conflict_of

    conflict = await open_conflict_of(session, row.tenant_id, row.id, lock=True)
    if conflict is not None:
        conflict.status, conflict.winner, conflict.resolved_at = "resolved", "timetracker", now
        repo.add_audit(session, tenant_id=row.tenant_id, action="conflict.resolve", entry_id=row.id,
                       jira_instance_id=conflict.jira_instance_id, outcome="timetracker",
                       detail=f"conflict {conflict.id} resolved {why}")


RETRYABLE = {SyncStatus.FAILED, SyncStatus.SKIPPED, SyncStatus.AUTH_REQUIRED}


async def retry(session: AsyncSession, tenant: Tenant, row: EntryRow, *, now: datetime | None = None) -> bool:
    """Put a failed (or skipped / auth_required) entry back to pending; False if not retryable."""
    if row.sync_status not in RETRYABLE:
        return False
    now = now or now_utc()
    routes = await repo.instance_routes(session, tenant.id)
    _apply_intent(session, row, routes=routes, priority=Priority.USER, now=now)
    return True


async def reroute_skipped(session: AsyncSession, tenant: Tenant, *, now: datetime | None = None) -> list[str]:
    """After the tenant's JIRA instances changed: route again the entries skipped for want of an instance.

    Returns the ids now due (pending, batch priority); the caller commits, then enqueues them.
    """
    now = now or now_utc()
    routes = await repo.instance_routes(session, tenant.id)
    due: list[str] = []
    for row in await repo.entries_skipped_for_routing(session, tenant.id):
        if _apply_intent(session, row, routes=routes, priority=Priority.BATCH, now=now):
            due.append(row.id)
    return due


async def resume_after_connect(
    session: AsyncSession, tenant: Tenant, rows: list[EntryRow], *, now: datetime | None = None
) -> list[str]:
    """Put `auth_required` entries back to pending, due now at USER priority (the user just reconnected).

    Routes are evaluated again, as for any change. Returns the ids now due; the caller commits, then enqueues.
    """
    now = now or now_utc()
    routes = await repo.instance_routes(session, tenant.id)
    return [row.id for row in rows
            if _apply_intent(session, row, routes=routes, priority=Priority.USER, now=now)]
