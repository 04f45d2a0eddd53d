"""User tokens for the TimeTracker frontend (CONTRACT 14): minted and revoked with the tenant's API key only."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Response, status

from app.api.deps import TENANT_ADMIN, SessionDep, TenantDep, UserTokensDep
from app.api.schemas.common import UserName, error_responses
from app.api.schemas.user_tokens import UserTokenIn, UserTokenOut
from app.services.user_tokens import RevocationUnavailable

router = APIRouter(prefix="/api/v1/user-tokens", tags=["user-tokens"], dependencies=[TENANT_ADMIN])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=UserTokenOut,
             summary="Mint a short-lived token for one user", responses=error_responses(401, 403, 422))
async def mint_user_token(body: UserTokenIn, session: SessionDep, tenant: TenantDep,
                          tokens: UserTokensDep) -> dict[str, Any]:
    """For the TimeTracker backend, which knows who is logged in: the token acts for `user` alone (their entries,
    connections, notifications, conflicts and feed items) and is handed to the browser instead of the API key.
    It is not stored anywhere; `DELETE /api/v1/user-tokens?user=` revokes every token of the user at once."""
    minted = await tokens.mint(session, tenant.id, body.user, body.ttl_seconds)
    await session.commit()  # the tenant's first signing secret, if this mint made it
    return {"token": minted.token, "user": minted.user, "expires_at": minted.expires_at}


@router.delete("", status_code=status.HTTP_204_NO_CONTENT, summary="Revoke every token of one user",
               responses=error_responses(401, 403, 422, 503))
async def revoke_user_tokens(
    session: SessionDep, tenant: TenantDep, tokens: UserTokensDep,
    user: Annotated[UserName, Query(description="the TimeTracker user whose tokens stop working")],
) -> Response:
    """Every token of `user` minted so far is refused (401) by every API process from now on; new ones can be
    minted. 503 (nothing changed) when Redis, which every process checks, cannot be told."""
    try:
        await tokens.revoke(session, tenant.id, user)
    except RevocationUnavailable as exc:
        await session.rollback()
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                            f"the revocation could not be made effective: {exc}; nothing changed, try again") from None
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
