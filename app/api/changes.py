"""The changes feed: every remote adoption and every sync status change, in commit order (CONTRACT 8)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from app.api.deps import USER_SCOPED, CallerDep, SessionDep
from app.api.schemas.activity import ChangesPage
from app.api.schemas.common import error_responses
from app.db.repositories import entries as repo

MAX_SEQ = 2**63 - 1  # seq is a PostgreSQL bigint: anything larger is a 422, not a database error

router = APIRouter(prefix="/api/v1/changes", tags=["changes"], dependencies=[USER_SCOPED])


@router.get("", response_model=ChangesPage, summary="Read the changes feed", responses=error_responses(401, 422))
async def changes(
    session: SessionDep, caller: CallerDep,
    after: Annotated[int, Query(ge=0, le=MAX_SEQ, description="the last `seq` already read (0: from the start)")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Items with `seq` greater than `after`, oldest first. Each carries the whole entry as it was right after the
    change, so applying them in order rebuilds every entry's current state; continue with `after=next`. A user token
    reads the records about its own user's entries (`seq` then has gaps)."""
    rows = await repo.list_changes(session, caller.tenant.id, after, limit, user=caller.only_user)
    return {
        "items": [{"seq": r.seq, "entry_id": r.entry_id, "kind": r.kind, "entry": r.entry} for r in rows],
        "next": rows[-1].seq if rows else after,
    }
