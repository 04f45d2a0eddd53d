"""Queries on JIRA instances and users' connections."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import ConnectionRow, EntryRow, JiraInstanceRow, NotificationRow, OAuthRequestRow
from app.domain.entry import NotificationKind, SyncStatus


async def get_instance(session: AsyncSession, tenant_id: uuid.UUID, instance_id: uuid.UUID) -> JiraInstanceRow | None:
    stmt = select(JiraInstanceRow).where(JiraInstanceRow.tenant_id == tenant_id, JiraInstanceRow.id == instance_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def list_instances(session: AsyncSession, tenant_id: uuid.UUID) -> list[JiraInstanceRow]:
    stmt = select(JiraInstanceRow).where(JiraInstanceRow.tenant_id == tenant_id).order_by(JiraInstanceRow.created_at)
    return list((await session.execute(stmt)).scalars())


async def get_connection(
    session: AsyncSession, tenant_id: uuid.UUID, instance_id: uuid.UUID, user: str, *, lock: bool = False
) -> ConnectionRow | None:
    stmt = select(ConnectionRow).where(
        ConnectionRow.tenant_id == tenant_id, ConnectionRow.jira_instance_id == instance_id, ConnectionRow.user == user
    )
    if lock:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def get_connection_by_id(
    session: AsyncSession, tenant_id: uuid.UUID, connection_id: uuid.UUID, *, lock: bool = False
) -> ConnectionRow | None:
    stmt = select(ConnectionRow).where(ConnectionRow.tenant_id == tenant_id, ConnectionRow.id == connection_id)
    if lock:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def instance_connections(session: AsyncSession, tenant_id: uuid.UUID, instance_id: uuid.UUID,
                               ) -> list[ConnectionRow]:
    """Every user's connection to one instance, locked, by user."""
    stmt = (select(ConnectionRow)
            .where(ConnectionRow.tenant_id == tenant_id, ConnectionRow.jira_instance_id == instance_id)
            .order_by(ConnectionRow.user).with_for_update())
    return list((await session.execute(stmt)).scalars())


async def list_connections(session: AsyncSession, tenant_id: uuid.UUID, user: str) -> list[ConnectionRow]:
    stmt = select(ConnectionRow).where(ConnectionRow.tenant_id == tenant_id, ConnectionRow.user == user)
    return list((await session.execute(stmt)).scalars())


async def entries_waiting_for_auth(
    session: AsyncSession, tenant_id: uuid.UUID, instance_id: uuid.UUID, user: str
) -> Sequence[EntryRow]:
    stmt = (
        select(EntryRow)
        .where(EntryRow.tenant_id == tenant_id, EntryRow.instance_id == instance_id, EntryRow.user == user,
               EntryRow.sync_status == SyncStatus.AUTH_REQUIRED)
        .with_for_update()
    )
    return list((await session.execute(stmt)).scalars())


async def get_oauth_request(session: AsyncSession, token_hash: str, *, lock: bool = False) -> OAuthRequestRow | None:
    stmt = select(OAuthRequestRow).where(OAuthRequestRow.request_token_hash == token_hash)
    if lock:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def purge_oauth_requests(session: AsyncSession, *, older_than: datetime) -> None:
    """Drop request tokens that expired (or were used) before `older_than`: they can never be exchanged."""
    await session.execute(delete(OAuthRequestRow).where(OAuthRequestRow.expires_at < older_than))


async def mark_auth_notifications_read(
    session: AsyncSession, tenant_id: uuid.UUID, instance_id: uuid.UUID, user: str, *, at: datetime
) -> int:
    """Mark the user's unread `auth_required` notifications of this instance read; returns how many."""
    result = await session.execute(
        update(NotificationRow)
        .where(NotificationRow.tenant_id == tenant_id, NotificationRow.user == user,
               NotificationRow.kind == NotificationKind.AUTH_REQUIRED, NotificationRow.jira_instance_id == instance_id,
               NotificationRow.read_at.is_(None))
        .values(read_at=at)
    )
    return int(getattr(result, "rowcount", 0) or 0)
