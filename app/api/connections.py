"""Users' JIRA connections (CONTRACT sections 4, 12 and 13): list, store a personal access token, forget."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Response, status

from app.api.deps import USER_SCOPED, CallerDep, CredentialsDep, JiraDep, SessionDep, UnitOfWorkDep, not_found
from app.api.schemas.common import ErrorOut, error_responses
from app.api.schemas.jira import ConnectionOut, TokenConnectionIn
from app.db.models import ConnectionRow
from app.db.repositories import jira as jira_repo
from app.services import connect
from app.services.connect_pat import NotATokenInstance, TokenRejected, connect_with_token

router = APIRouter(prefix="/api/v1/users/{user}/connections", tags=["connections"],
                   dependencies=[USER_SCOPED])

UserPath = Annotated[str, Path(min_length=1, max_length=200, description="TimeTracker user name", examples=["jdoe"])]


def _view(row: ConnectionRow, name: str, auth: str) -> dict[str, Any]:
    return {"jira_instance": row.jira_instance_id, "jira_instance_name": name, "auth": auth, "status": row.status,
            "connected_at": row.connected_at, "jira_username": row.jira_username, "expires_at": row.expires_at,
            "updated_at": row.updated_at}


@router.get("", response_model=list[ConnectionOut], summary="A user's JIRA connections",
            responses=error_responses(401, 403))
async def list_connections(user: UserPath, session: SessionDep, caller: CallerDep) -> list[dict[str, Any]]:
    """One item per instance the user connected to, was asked to reconnect to (`auth_required`) or denied.
    A user token: its own user's only (another user → 403)."""
    caller.require(user, field="user")
    instances = {i.id: i for i in await jira_repo.list_instances(session, caller.tenant.id)}
    rows = [r for r in await jira_repo.list_connections(session, caller.tenant.id, user)
            if r.jira_instance_id in instances]
    return [_view(r, instances[r.jira_instance_id].name, instances[r.jira_instance_id].auth)
            for r in sorted(rows, key=lambda r: instances[r.jira_instance_id].name)]


@router.put(
    "/{instance_id}", response_model=ConnectionOut, summary="Connect with a personal access token",
    responses={**error_responses(401, 403, 404, 409, 422),
               502: {"description": "JIRA could not be reached to check the token", "model": ErrorOut}},
)
async def put_token_connection(
    user: UserPath, instance_id: Annotated[uuid.UUID, Path()], body: TokenConnectionIn, uow: UnitOfWorkDep,
    caller: CallerDep, credentials: CredentialsDep, jira: JiraDep,
) -> dict[str, Any]:
    """For an instance with `auth: pat`: checks the token with JIRA (`myself`), stores it encrypted and connects the
    user as the token's JIRA account (`jira_username`); their entries waiting as `auth_required` resume. A token JIRA
    rejects → 422 "JIRA rejected this token"; with `expected_jira_user`, a token of another account → 409. Nothing is
    stored in either case. A new token replaces the stored one. A user token stores its own user's only (another
    user → 403)."""
    caller.require(user, field="user")
    instance = await jira_repo.get_instance(uow.session, caller.tenant.id, instance_id)
    if instance is None:
        raise not_found(f"JIRA instance {instance_id}")
    try:
        await connect_with_token(uow, credentials, jira, instance=instance, user=user,
                                 token=body.personal_access_token, expected_jira_user=body.expected_jira_user)
    except NotATokenInstance as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, exc.message) from None
    except TokenRejected as exc:
        await uow.commit()  # the audit rows of the check
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, exc.message) from None
    except connect.WrongJiraUser as exc:
        await uow.commit()
        raise HTTPException(status.HTTP_409_CONFLICT, exc.message) from None
    except connect.ConnectError as exc:
        await uow.commit()
        code = status.HTTP_422_UNPROCESSABLE_CONTENT if exc.refused else status.HTTP_502_BAD_GATEWAY
        raise HTTPException(code, exc.message) from None
    await uow.commit()  # the resumed entries' pending in the feed, then their pushes
    row = await jira_repo.get_connection(uow.session, caller.tenant.id, instance.id, user)
    if row is None:  # deleted by a concurrent DELETE after the commit
        raise not_found(f"connection of {user} to JIRA instance {instance_id}")
    return _view(row, instance.name, instance.auth)


@router.delete("/{instance_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Forget a user's JIRA token",
               responses=error_responses(401, 403, 404))
async def delete_connection(
    user: UserPath, instance_id: Annotated[uuid.UUID, Path()], session: SessionDep, caller: CallerDep,
) -> Response:
    """The token is deleted; the user's entries for this instance wait as `auth_required` until they connect again."""
    caller.require(user, field="user")
    instance = await jira_repo.get_instance(session, caller.tenant.id, instance_id)
    if instance is None:
        raise not_found(f"JIRA instance {instance_id}")
    if not await connect.forget(session, caller.tenant.id, instance, user):
        raise not_found(f"connection of {user} to JIRA instance {instance_id}")
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
