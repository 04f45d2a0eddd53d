"""Queries behind the JIRA → service direction: worklog look-ups, conflicts, notifications, audit."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import ColumnElement, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import AuditRow, ConflictRow, ConnectionRow, EntryRow, JiraInstanceRow, NotificationRow


async def instance_by_id(
    session: AsyncSession, instance_id: uuid.UUID, *, lock: bool = False
) -> JiraInstanceRow | None:
    """An instance by id alone (webhooks and the poller know no tenant until they have it)."""
    stmt = select(JiraInstanceRow).where(JiraInstanceRow.id == instance_id)
    if lock:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def all_instance_ids(session: AsyncSession) -> list[uuid.UUID]:
    """Every JIRA instance of every tenant, oldest first (the poller's round, the fleet's circuit gauges)."""
    return list((await session.execute(select(JiraInstanceRow.id).order_by(JiraInstanceRow.created_at))).scalars())


async def instances_by_last_poll(session: AsyncSession) -> list[uuid.UUID]:
    """Every JIRA instance, the one polled longest ago (or never) first: the poller serves them in turn."""
    stmt = select(JiraInstanceRow.id).order_by(JiraInstanceRow.reconciled_at.asc().nulls_first(),
                                               JiraInstanceRow.created_at)
    return list((await session.execute(stmt)).scalars())


async def entry_by_worklog(
    session: AsyncSession, tenant_id: uuid.UUID, instance_id: uuid.UUID, worklog_id: str, *, lock: bool = False
) -> EntryRow | None:
    """The entry whose worklog on this instance has this id (worklog ids are unique per instance only)."""
    # instance_id (the routed instance) makes the query use ix_entries_instance_worklog; an entry routed away
    # from the instance holding its worklog is about to delete that worklog anyway
    stmt = select(EntryRow).where(
        EntryRow.instance_id == instance_id, EntryRow.worklog_id == worklog_id, EntryRow.tenant_id == tenant_id,
        EntryRow.worklog_instance_id == instance_id,
    ).order_by(EntryRow.id).limit(1)
    if lock:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def worklogs_of_ours(
    session: AsyncSession, tenant_id: uuid.UUID, instance_id: uuid.UUID, worklog_ids: Iterable[str]
) -> set[str]:
    """Which of these worklog ids belong to entries of the tenant on this instance."""
    ids = list(dict.fromkeys(worklog_ids))
    found: set[str] = set()
    for offset in range(0, len(ids), 5000):
        chunk = ids[offset: offset + 5000]
        stmt = select(EntryRow.worklog_id).where(
            EntryRow.instance_id == instance_id, EntryRow.worklog_id.in_(chunk), EntryRow.tenant_id == tenant_id,
            EntryRow.worklog_instance_id == instance_id,
        )
        found.update(w for w in (await session.execute(stmt)).scalars() if w is not None)
    return found


async def connected_connections(
    session: AsyncSession, tenant_id: uuid.UUID, instance_id: uuid.UUID
) -> list[ConnectionRow]:
    stmt = (
        select(ConnectionRow)
        .where(ConnectionRow.tenant_id == tenant_id, ConnectionRow.jira_instance_id == instance_id,
               ConnectionRow.status == "connected", ConnectionRow.access_token_enc.is_not(None))
        .order_by(ConnectionRow.connected_at, ConnectionRow.user)
    )
    return list((await session.execute(stmt)).scalars())


# -- conflicts ---------------------------------------------------------------------------------------------

async def open_conflict_of(
    session: AsyncSession, tenant_id: uuid.UUID, entry_id: str, *, lock: bool = False
) -> ConflictRow | None:
    stmt = (
        select(ConflictRow)
        .where(ConflictRow.tenant_id == tenant_id, ConflictRow.entry_id == entry_id, ConflictRow.status == "open")
        .order_by(ConflictRow.detected_at.desc())
        .limit(1)
    )
    if lock:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


def _of_users_entry(user: str) -> ColumnElement[bool]:
    """The conflict is about an entry of `user` (a user token sees its own entries' conflicts only)."""
    return exists().where(EntryRow.tenant_id == ConflictRow.tenant_id, EntryRow.id == ConflictRow.entry_id,
                          EntryRow.user == user)


async def get_conflict(
    session: AsyncSession, tenant_id: uuid.UUID, conflict_id: uuid.UUID, *, lock: bool = False,
    user: str | None = None,
) -> ConflictRow | None:
    """The tenant's conflict (with `user`: only if it is about an entry of theirs)."""
    stmt = select(ConflictRow).where(ConflictRow.tenant_id == tenant_id, ConflictRow.id == conflict_id)
    if user is not None:
        stmt = stmt.where(_of_users_entry(user))
    if lock:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def list_conflicts(
    session: AsyncSession, tenant_id: uuid.UUID, *, status: str | None, entry_id: str | None, limit: int,
    user: str | None = None,
) -> list[ConflictRow]:
    """Newest first; with `user`, only conflicts about that user's entries."""
    stmt = select(ConflictRow).where(ConflictRow.tenant_id == tenant_id)
    if user is not None:
        stmt = stmt.where(_of_users_entry(user))
    if status:
        stmt = stmt.where(ConflictRow.status == status)
    if entry_id:
        stmt = stmt.where(ConflictRow.entry_id == entry_id)
    stmt = stmt.order_by(ConflictRow.detected_at.desc(), ConflictRow.id).limit(limit)
    return list((await session.execute(stmt)).scalars())


# -- notifications -----------------------------------------------------------------------------------------

async def list_notifications(
    session: AsyncSession, tenant_id: uuid.UUID, *, user: str | None, unread: bool, limit: int
) -> list[NotificationRow]:
    stmt = select(NotificationRow).where(NotificationRow.tenant_id == tenant_id)
    if user:
        stmt = stmt.where(NotificationRow.user == user)
    if unread:
        stmt = stmt.where(NotificationRow.read_at.is_(None))
    stmt = stmt.order_by(NotificationRow.created_at.desc(), NotificationRow.id).limit(limit)
    return list((await session.execute(stmt)).scalars())


async def get_notification(
    session: AsyncSession, tenant_id: uuid.UUID, notification_id: uuid.UUID, *, lock: bool = False,
    user: str | None = None,
) -> NotificationRow | None:
    """The tenant's notification (with `user`: only if it is theirs)."""
    stmt = select(NotificationRow).where(NotificationRow.tenant_id == tenant_id, NotificationRow.id == notification_id)
    if user is not None:
        stmt = stmt.where(NotificationRow.user == user)
    if lock:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


# -- audit -------------------------------------------------------------------------------------------------

async def list_audit(
    session: AsyncSession, tenant_id: uuid.UUID, *, entry_id: str | None, limit: int
) -> list[AuditRow]:
    """Newest first."""
    stmt = select(AuditRow).where(AuditRow.tenant_id == tenant_id)
    if entry_id:
        stmt = stmt.where(AuditRow.entry_id == entry_id)
    stmt = stmt.order_by(AuditRow.id.desc()).limit(limit)
    return list((await session.execute(stmt)).scalars())
