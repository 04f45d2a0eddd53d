"""TimeTracker's webhook for entry changes (CONTRACT section 6)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, HTTPException, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError

from app.api.deps import BoxDep, TenantByIdCacheDep, UnitOfWorkDep, enforce_tenant_rate
from app.api.schemas.common import error_responses
from app.api.schemas.entries import EntryId, EntryIn, IntegerEntryId
from app.db.repositories.tenants import get_tenant
from app.domain.entry import ChangeOutcome
from app.domain.priority import Priority
from app.security.secrets import binding
from app.security.signatures import SignatureProblem, verify_timetracker
from app.services import entries as svc
from app.services.views import entry_view

router = APIRouter(tags=["webhooks"])

class WebhookEntry(EntryIn):
    id: IntegerEntryId | EntryId


class DeletedEntry(BaseModel):
    id: IntegerEntryId | EntryId
    updated_at: datetime | None = None


class WebhookIn(BaseModel):
    event: Literal["entry.created", "entry.updated", "entry.deleted"]
    entry: dict[str, Any] = Field(description="the entry with its id; `entry.deleted` needs only `id`")


def _problem(exc: ValidationError, prefix: str) -> str:
    return "; ".join(
        f"{prefix}{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" if e["loc"] else f"{prefix.rstrip('.')}: {e['msg']}"
        for e in exc.errors()
    )


@router.post(
    "/webhooks/timetracker/{tenant_id}",
    status_code=status.HTTP_202_ACCEPTED,
    summary="TimeTracker entry events (signed)",
    responses={200: {"description": "duplicate delivery or stale change: no effect"},
               **error_responses(400, 401, 404, 413, 422, 429)},
)
async def timetracker_webhook(
    tenant_id: str, request: Request, uow: UnitOfWorkDep, box: BoxDep, tenants: TenantByIdCacheDep,
    x_timetracker_signature: Annotated[str | None, Header()] = None,
    x_timetracker_delivery: Annotated[str | None, Header(max_length=200)] = None,
) -> Any:
    """`X-TimeTracker-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`; 300 s tolerance."""
    body = await request.body()  # bounded by API_MAX_BODY_BYTES before anything else runs (app.api.body_limit)
    try:
        tid = uuid.UUID(tenant_id)
    except ValueError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "tenant not found") from None
    tenant = tenants.get(tid)
    if tenant is None:
        tenant = await get_tenant(uow.session, tid)
        if tenant is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "tenant not found")
        tenants.put(tid, tenant)
    secret = box.open(tenant.webhook_secret_enc, binding("tenants", "webhook_secret", tenant.id))
    try:
        verify_timetracker(secret, x_timetracker_signature, body)
    except SignatureProblem as exc:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, exc.reason) from None
    await enforce_tenant_rate(request, tenant.id)
    if not x_timetracker_delivery or not x_timetracker_delivery.strip():
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "X-TimeTracker-Delivery header is required")
    delivery = x_timetracker_delivery.strip()
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "body is not valid JSON") from None
    try:
        event = WebhookIn.model_validate(payload)
        if event.event == "entry.deleted":
            deleted = DeletedEntry.model_validate(event.entry)
            entry_id, data = str(deleted.id), None
        else:
            item = WebhookEntry.model_validate(event.entry)
            entry_id, data = str(item.id), item
    except ValidationError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, _problem(exc, "entry.")) from None

    async def accept() -> svc.Accepted | None:
        # the delivery id is recorded with what the change writes (or alone, when it writes nothing): a copy
        # accepted before, or committing meanwhile, makes this one a duplicate; a rejected one is not remembered
        if data is None:
            return await svc.accept_delete(uow, tenant, entry_id, updated_at=deleted.updated_at,
                                           priority=Priority.USER, delivery_id=delivery)
        return await svc.accept_change(uow, tenant, entry_id, data.command(), priority=Priority.USER,
                                       delivery_id=delivery)

    try:
        result = await uow.run(accept)
    except svc.UnknownInstance as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"entry.{exc}") from None
    if result is not None and result.duplicate:
        return JSONResponse({"duplicate": True}, status_code=200)
    if result is None:
        return JSONResponse({"accepted": True, "entry": None, "note": "unknown entry: nothing to delete"},
                            status_code=202)
    if result.outcome is ChangeOutcome.STALE:
        return JSONResponse({"stale": True}, status_code=200)
    assert result.row is not None
    return JSONResponse({"accepted": True, "entry": entry_view(result.row)}, status_code=202)
