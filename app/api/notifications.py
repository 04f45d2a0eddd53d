"""Notifications for people: connection rejected, conflict, sync failed (CONTRACT section 8)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from app.api.deps import USER_SCOPED, CallerDep, SessionDep, not_found
from app.api.schemas.activity import NotificationOut
from app.api.schemas.common import error_responses
from app.db.models import NotificationRow
from app.db.repositories import activity as activity_repo
from app.services.entries import now_utc

router = APIRouter(prefix="/api/v1/notifications", tags=["notifications"], dependencies=[USER_SCOPED])


def notification_view(row: NotificationRow) -> dict[str, Any]:
    return {
        "id": str(row.id), "user": row.user, "kind": row.kind, "message": row.message, "entry_id": row.entry_id,
        "jira_instance": str(row.jira_instance_id) if row.jira_instance_id else None,
        "created_at": row.created_at, "read_at": row.read_at,
    }


@router.get("", response_model=list[NotificationOut], summary="List notifications",
            responses=error_responses(401, 403, 422))
async def list_notifications(
    session: SessionDep, caller: CallerDep,
    user: Annotated[str | None, Query(max_length=200, description="only this TimeTracker user's")] = None,
    unread: Annotated[bool, Query(description="only those not marked read")] = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Newest first. A user token lists its own user's (naming another `user` → 403)."""
    rows = await activity_repo.list_notifications(session, caller.tenant.id, user=caller.user_or(user, field="user"),
                                                  unread=unread, limit=limit)
    return [notification_view(r) for r in rows]


@router.post("/{notification_id}/read", response_model=NotificationOut, summary="Mark a notification read",
             responses=error_responses(401, 404))
async def mark_read(
    notification_id: Annotated[str, Path()], session: SessionDep, caller: CallerDep,
) -> dict[str, Any]:
    """Idempotent: reading a read notification keeps its first `read_at`."""
    try:
        nid = uuid.UUID(notification_id)
    except ValueError:
        raise not_found(f"notification {notification_id}") from None
    row = await activity_repo.get_notification(session, caller.tenant.id, nid, lock=True, user=caller.only_user)
    if row is None:
        raise not_found(f"notification {notification_id}")
    if row.read_at is None:
        row.read_at = now_utc()
        await session.commit()
    return notification_view(row)
