"""Users' JIRA connections (CONTRACT section 4): list and forget."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, Response, status

from app.api.deps import SessionDep, TenantDep, not_found
from app.api.schemas.common import error_responses
from app.api.schemas.jira import ConnectionOut
from app.db.repositories import jira as jira_repo
from app.services import connect

router = APIRouter(prefix="/api/v1/users/{user}/connections", tags=["connections"])

UserPath = Annotated[str, Path(min_length=1, max_length=200, description="TimeTracker user name", examples=["jdoe"])]


@router.get("", response_model=list[ConnectionOut], summary="A user's JIRA connections",
            responses=error_responses(401))
async def list_connections(user: UserPath, session: SessionDep, tenant: TenantDep) -> list[dict[str, Any]]:
    """One item per instance the user connected to, was asked to reconnect to (`auth_required`) or denied."""
    names = {i.id: i.name for i in await jira_repo.list_instances(session, tenant.id)}
    rows = await jira_repo.list_connections(session, tenant.id, user)
    return [
        {"jira_instance": r.jira_instance_id, "jira_instance_name": names.get(r.jira_instance_id, ""),
         "status": r.status, "connected_at": r.connected_at, "jira_username": r.jira_username,
         "updated_at": r.updated_at}
        for r in sorted(rows, key=lambda r: names.get(r.jira_instance_id, ""))
    ]


@router.delete("/{instance_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Forget a user's JIRA token",
               responses=error_responses(401, 404))
async def delete_connection(
    user: UserPath, instance_id: Annotated[uuid.UUID, Path()], session: SessionDep, tenant: TenantDep,
) -> Response:
    """The token is deleted; the user's entries for this instance wait as `auth_required` until they connect again."""
    instance = await jira_repo.get_instance(session, tenant.id, instance_id)
    if instance is None:
        raise not_found(f"JIRA instance {instance_id}")
    if not await connect.forget(session, tenant.id, instance, user):
        raise not_found(f"connection of {user} to JIRA instance {instance_id}")
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
