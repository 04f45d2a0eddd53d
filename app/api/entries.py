"""Entries API (CONTRACT section 5)."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Path, Query, status
from pydantic import ValidationError

from app.api.deps import USER_SCOPED, Caller, CallerDep, SessionDep, UnitOfWorkDep, not_found
from app.api.schemas.common import error_responses
from app.api.schemas.entries import (
    ENTRY_EXAMPLE,
    BatchEntryIn,
    BatchIn,
    BatchItemResult,
    BatchOut,
    EntryId,
    EntryIn,
    EntryOut,
    EntryPage,
)
from app.clock import now_utc
from app.db.repositories import entries as repo
from app.db.repositories.entries import LoadedEntry
from app.domain.entry import SyncStatus
from app.domain.priority import Priority
from app.services import entries as svc
from app.services.unit_of_work import UnitOfWork
from app.services.views import entry_view

router = APIRouter(prefix="/api/v1/entries", tags=["entries"], dependencies=[USER_SCOPED])

IdPath = Annotated[EntryId, Path(description="TimeTracker's entry id (integers are accepted as strings)")]


async def _load_own(uow: UnitOfWork, caller: Caller, entry_id: str) -> LoadedEntry:
    """The entry read for a change, unless it belongs to another user than a user token's (404, as if absent)."""
    loaded = await uow.load_entry(caller.tenant.id, entry_id)
    if loaded.row is not None and not caller.acts_for(loaded.row.user):
        raise not_found(f"entry {entry_id}")
    return loaded


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "entry"
        parts.append(f"{field}: {err['msg']}")
    return "; ".join(parts)


@router.put(
    "/{entry_id}", status_code=status.HTTP_202_ACCEPTED, response_model=EntryOut,
    summary="Create or update an entry", responses=error_responses(401, 403, 404, 422),
)
async def put_entry(
    entry_id: IdPath, uow: UnitOfWorkDep, caller: CallerDep,
    entry: Annotated[EntryIn, Body(examples=[ENTRY_EXAMPLE])],
) -> dict[str, Any]:
    """Upsert an entry. It is pushed to JIRA asynchronously; an identical or stale PUT changes nothing.
    A user token may write its own user's entries only (another `user` → 403, another user's entry → 404)."""
    caller.require(entry.user, field="user")
    change = entry.command()

    async def accept() -> svc.Accepted:
        loaded = await _load_own(uow, caller, entry_id)
        return await svc.accept_change(uow, caller.tenant, entry_id, change, priority=Priority.USER, loaded=loaded)

    try:
        result = await uow.run(accept)
    except svc.UnknownInstance as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    assert result.row is not None
    return entry_view(result.row)


@router.get("/{entry_id}", response_model=EntryOut, summary="Get an entry and its sync state",
            responses=error_responses(401, 403, 404))
async def get_entry(entry_id: IdPath, session: SessionDep, caller: CallerDep) -> dict[str, Any]:
    row = await repo.get_entry(session, caller.tenant.id, entry_id)
    if row is None or not caller.acts_for(row.user):
        raise not_found(f"entry {entry_id}")
    return entry_view(row)


@router.delete(
    "/{entry_id}", status_code=status.HTTP_202_ACCEPTED, response_model=EntryOut,
    summary="Delete an entry (and its JIRA worklog)", responses=error_responses(401, 403, 404),
)
async def delete_entry(
    entry_id: IdPath, uow: UnitOfWorkDep, caller: CallerDep,
    updated_at: Annotated[datetime | None, Query(description="orders the deletion among changes")] = None,
) -> dict[str, Any]:
    """The entry stays readable with status `deleted` once its worklog is gone from JIRA."""

    async def accept() -> svc.Accepted | None:
        loaded = await _load_own(uow, caller, entry_id)
        return await svc.accept_delete(uow, caller.tenant, entry_id, updated_at=updated_at, priority=Priority.USER,
                                       loaded=loaded)

    result = await uow.run(accept)
    if result is None or result.row is None:
        raise not_found(f"entry {entry_id}")
    return entry_view(result.row)


def _decode_cursor(cursor: str | None) -> str | None:
    if not cursor:
        return None
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "cursor: not a cursor this API returned") from None


def _encode_cursor(entry_id: str) -> str:
    return base64.urlsafe_b64encode(entry_id.encode()).decode().rstrip("=")


@router.get("", response_model=EntryPage, summary="List entries", responses=error_responses(401, 403, 422))
async def list_entries(
    session: SessionDep, caller: CallerDep,
    status_: Annotated[SyncStatus | None, Query(alias="status")] = None,
    user: Annotated[str | None, Query(max_length=200)] = None,
    ticket: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    """Entries ordered by id, filtered by sync status, user or ticket; follow `next_cursor`. A user token lists its
    own user's entries (naming another `user` → 403)."""
    rows = await repo.list_entries(
        session, caller.tenant.id, status=status_.value if status_ else None, user=caller.user_or(user, field="user"),
        ticket=ticket.strip().upper() if ticket else None, after_id=_decode_cursor(cursor), limit=limit + 1,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": [entry_view(r) for r in rows], "next_cursor": _encode_cursor(rows[-1].id) if more else None}


@router.post(
    "/batch", status_code=status.HTTP_202_ACCEPTED, response_model=BatchOut,
    summary="Accept up to 1000 entries at once", responses=error_responses(401, 403, 422),
)
async def batch(body: BatchIn, uow: UnitOfWorkDep, caller: CallerDep) -> dict[str, Any]:
    """One transaction; each item is accepted or rejected on its own. Pushed behind single-entry changes.
    A user token: an item naming another `user` → 403 for the whole batch (nothing stored); an item whose id is
    another user's entry is rejected as not found."""
    tenant = caller.tenant
    results: list[BatchItemResult] = []
    valid: list[BatchEntryIn] = []
    for index, raw in enumerate(body.entries):
        raw_id = raw.get("id") if isinstance(raw, dict) else None
        try:
            item = BatchEntryIn.model_validate(raw)
        except ValidationError as exc:
            results.append(BatchItemResult(id=None if raw_id is None else str(raw_id), status="rejected",
                                           error=f"entries[{index}]: {_validation_message(exc)}"))
            continue
        caller.require(item.user, field=f"entries[{index}].user")
        valid.append(item)
        results.append(BatchItemResult(id=str(item.id), status="accepted"))
    # the last occurrence of an id in one batch wins, as if sent one after another
    latest: dict[str, BatchEntryIn] = {str(item.id): item for item in valid}

    async def change() -> dict[str, str]:
        loaded = await uow.load_entries_locked(tenant.id, sorted(latest))
        now = now_utc()
        refused: dict[str, str] = {}
        for entry_id, item in latest.items():
            found = loaded[entry_id].row
            if found is not None and not caller.acts_for(found.user):
                refused[entry_id] = f"entry {entry_id} not found"
                continue
            try:
                await svc.accept_change(uow, tenant, entry_id, item.command(), priority=Priority.BATCH,
                                        loaded=loaded[entry_id], now=now)
            except svc.UnknownInstance as exc:
                refused[entry_id] = str(exc)
        return refused

    for entry_id, error in (await uow.run(change)).items():
        _reject(results, entry_id, error)
    return {"accepted": sum(r.status == "accepted" for r in results), "results": results}


def _reject(results: list[BatchItemResult], entry_id: str, error: str) -> None:
    for r in results:
        if r.id == entry_id and r.status == "accepted":
            r.status, r.error = "rejected", error


@router.post(
    "/{entry_id}/retry", status_code=status.HTTP_202_ACCEPTED, response_model=EntryOut,
    summary="Retry a failed entry", responses=error_responses(401, 403, 404, 409),
)
async def retry_entry(entry_id: IdPath, uow: UnitOfWorkDep, caller: CallerDep) -> dict[str, Any]:
    """Puts a `failed` (or `skipped`, `auth_required`) entry back to `pending`; 409 for other states."""
    row = await repo.get_entry(uow.session, caller.tenant.id, entry_id, lock=True)
    if row is None or not caller.acts_for(row.user):
        raise not_found(f"entry {entry_id}")
    if not await svc.retry(uow, caller.tenant, row):
        raise HTTPException(status.HTTP_409_CONFLICT, f"entry {entry_id} is {row.sync_status}: nothing to retry")
    await uow.commit()
    return entry_view(row)
