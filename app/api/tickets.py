"""Ticket look-ups (CONTRACT section 9), made with the asking user's JIRA connection, cached briefly.

A user without a working connection gets 409 (the request is fine; the user must connect first —
403 is avoided because the API answers tenancy questions with 404, never 403). JIRA unreachable: 502;
JIRA rate limiting: 503 with `Retry-After`.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, HTTPException, Path, Query, status

from app.api.deps import USER_SCOPED, Caller, CallerDep, CredentialsDep, InstanceDep, JiraDep, RedisDep, SessionDep
from app.api.schemas.common import ErrorOut, SingleLine, error_responses
from app.api.schemas.jira import SubticketsOut, TicketOut
from app.db.models import JiraInstanceRow
from app.domain.entry import normalise_ticket
from app.services.tickets import LookupFailed, NotConnected, TicketLookup, TicketNotFound

router = APIRouter(prefix="/api/v1/jira-instances/{instance_id}/tickets", tags=["tickets"],
                   dependencies=[USER_SCOPED])

KeyPath = Annotated[str, Path(min_length=3, max_length=64, description="issue key", examples=["PROJ-123"])]
UserQuery = Annotated[SingleLine | None, Query(
    min_length=1, max_length=200,
    description="whose JIRA connection to use: required with the API key; a user token uses its own (another → 403)")]
T = TypeVar("T")
_ERRORS: dict[int | str, dict[str, Any]] = {
    **error_responses(401, 403, 404, 409, 422, 503), 502: {"description": "JIRA could not answer", "model": ErrorOut}}


def _key(raw: str) -> str:
    try:
        return normalise_ticket(raw)
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"key: {exc}") from None


async def _run(lookup: TicketLookup, session: SessionDep, work: Awaitable[T]) -> T:
    try:
        return await work
    except TicketNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"ticket {exc} not found in JIRA") from None
    except NotConnected as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, exc.message) from None
    except LookupFailed as exc:
        if exc.refused:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, exc.message) from None
        if exc.retry_after is not None:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, exc.message,
                                headers={"Retry-After": str(math.ceil(exc.retry_after))}) from None
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, exc.message) from None
    finally:
        lookup.write_audit()
        await session.commit()


def _lookup(session: SessionDep, credentials: CredentialsDep, jira: JiraDep, redis: RedisDep,
            instance: JiraInstanceRow, caller: Caller, user: str | None) -> TicketLookup:
    asking = caller.user_or(user, field="user")
    if asking is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "user: required with the tenant's API key")
    return TicketLookup(session, credentials, jira, redis, instance=instance, user=asking)


@router.get("/{key}", response_model=TicketOut, summary="Look a ticket up", responses=_ERRORS)
async def get_ticket(
    key: KeyPath, instance: InstanceDep, session: SessionDep, credentials: CredentialsDep, jira: JiraDep,
    redis: RedisDep, caller: CallerDep, user: UserQuery = None,
) -> dict[str, Any]:
    """`key`, `summary` and whether it is a sub-task, as `user` sees it in JIRA (cached for 60 s)."""
    lookup = _lookup(session, credentials, jira, redis, instance, caller, user)
    ticket = await _run(lookup, session, lookup.ticket(_key(key)))
    return {"key": ticket.key, "summary": ticket.summary, "subtask": ticket.subtask, "parent": ticket.parent}


@router.get("/{key}/subtickets", response_model=SubticketsOut, summary="A ticket's sub-tasks", responses=_ERRORS)
async def get_subtickets(
    key: KeyPath, instance: InstanceDep, session: SessionDep, credentials: CredentialsDep, jira: JiraDep,
    redis: RedisDep, caller: CallerDep, user: UserQuery = None,
) -> dict[str, Any]:
    """The sub-tasks of `key` as `user` sees them (cached for 60 s); 404 when `key` does not exist."""
    lookup = _lookup(session, credentials, jira, redis, instance, caller, user)
    tickets = await _run(lookup, session, lookup.subtickets(_key(key)))
    return {"items": [{"key": t.key, "summary": t.summary} for t in tickets]}
