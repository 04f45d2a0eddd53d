"""Conflicts between JIRA and TimeTracker, and how a person resolves them (CONTRACT section 8)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, HTTPException, Path, Query, status

from app.api.deps import USER_SCOPED, CallerDep, SessionDep, UnitOfWorkDep, not_found
from app.api.schemas.activity import ConflictOut, ResolveIn, ResolveOut
from app.api.schemas.common import error_responses
from app.db.models import ConflictRow
from app.db.repositories import activity as activity_repo
from app.domain.conflict import Winner
from app.services.conflicts import ConflictAlreadyResolved, ConflictNotFound, resolve_conflict
from app.services.views import entry_view

router = APIRouter(prefix="/api/v1/conflicts", tags=["conflicts"], dependencies=[USER_SCOPED])


def conflict_view(row: ConflictRow) -> dict[str, Any]:
    return {
        "id": str(row.id), "entry_id": row.entry_id, "local": row.local, "remote": row.remote,
        "detected_at": row.detected_at, "status": row.status, "winner": row.winner, "resolved_at": row.resolved_at,
        "jira_instance": str(row.jira_instance_id) if row.jira_instance_id else None,
    }


def _conflict_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise not_found(f"conflict {raw}") from None


@router.get("", response_model=list[ConflictOut], summary="List conflicts", responses=error_responses(401, 422))
async def list_conflicts(
    session: SessionDep, caller: CallerDep,
    status_: Annotated[Literal["open", "resolved"] | None, Query(alias="status")] = None,
    entry_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Newest first; `status=open` lists what still waits for a decision. A user token lists the conflicts of its
    own user's entries."""
    rows = await activity_repo.list_conflicts(session, caller.tenant.id, status=status_, entry_id=entry_id,
                                              limit=limit, user=caller.only_user)
    return [conflict_view(r) for r in rows]


@router.get("/{conflict_id}", response_model=ConflictOut, summary="Get a conflict", responses=error_responses(401, 404))
async def get_conflict(
    conflict_id: Annotated[str, Path()], session: SessionDep, caller: CallerDep,
) -> dict[str, Any]:
    row = await activity_repo.get_conflict(session, caller.tenant.id, _conflict_id(conflict_id),
                                           user=caller.only_user)
    if row is None:
        raise not_found(f"conflict {conflict_id}")
    return conflict_view(row)


@router.post(
    "/{conflict_id}/resolve", response_model=ResolveOut, summary="Resolve a conflict",
    responses=error_responses(401, 404, 409, 422),
)
async def resolve(
    conflict_id: Annotated[str, Path()], uow: UnitOfWorkDep, caller: CallerDep,
    body: Annotated[ResolveIn, Body(examples=[{"winner": "timetracker"}, {"winner": "jira"}])],
) -> dict[str, Any]:
    """`timetracker` writes the entry to JIRA again; `jira` adopts JIRA's values into the entry (a JIRA deletion
    deletes the entry). Either way JIRA and the entry end equal. 409 when the conflict was already resolved."""
    try:
        conflict, row = await resolve_conflict(uow, caller.tenant.id, _conflict_id(conflict_id), Winner(body.winner),
                                               user=caller.only_user)
    except ConflictNotFound:
        raise not_found(f"conflict {conflict_id}") from None
    except ConflictAlreadyResolved as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    await uow.commit()
    return {**conflict_view(conflict), "entry": entry_view(row) if row is not None else None}
