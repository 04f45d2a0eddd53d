"""The audit log: one row per JIRA call, authentication event, adoption and conflict resolution (CONTRACT 8)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from app.api.deps import TENANT_ADMIN, SessionDep, TenantDep
from app.api.schemas.activity import AuditOut
from app.api.schemas.common import error_responses
from app.db.repositories import activity as activity_repo

router = APIRouter(prefix="/api/v1/audit", tags=["audit"], dependencies=[TENANT_ADMIN])


@router.get("", response_model=list[AuditOut], summary="Read the audit log", responses=error_responses(401, 422))
async def audit(
    session: SessionDep, tenant: TenantDep,
    entry_id: Annotated[str | None, Query(max_length=64, description="only rows about this entry")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Newest first. Secrets never appear here."""
    rows = await activity_repo.list_audit(session, tenant.id, entry_id=entry_id, limit=limit)
    return [
        {"at": r.at, "action": r.action, "entry_id": r.entry_id,
         "jira_instance": str(r.jira_instance_id) if r.jira_instance_id else None, "outcome": r.outcome,
         "http_status": r.http_status, "detail": r.detail, "duration_ms": r.duration_ms}
        for r in rows
    ]
