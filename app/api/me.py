"""Who the caller is (`GET /api/v1/me`): what a page needs to know about the credential it holds."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.api.deps import USER_SCOPED, CallerDep, SessionDep
from app.api.schemas.common import error_responses
from app.api.schemas.user_tokens import MeOut
from app.db.repositories import jira as jira_repo

router = APIRouter(prefix="/api/v1/me", tags=["user-tokens"], dependencies=[USER_SCOPED])


@router.get("", response_model=MeOut, summary="Who this credential acts for", responses=error_responses(401))
async def me(caller: CallerDep, session: SessionDep) -> dict[str, Any]:
    """The API key acts for every user of the tenant; a user token for its `user` until `expires_at`. Lists the
    tenant's JIRA instances by name, so a person's page can offer to connect to each."""
    instances = await jira_repo.list_instances(session, caller.tenant.id)
    return {
        "kind": "api_key" if caller.user is None else "user_token",
        "user": caller.user, "expires_at": caller.expires_at,
        "tenant": {"id": caller.tenant.id, "name": caller.tenant.name, "timezone": caller.tenant.timezone},
        "jira_instances": [{"id": i.id, "name": i.name} for i in instances],
    }
