"""JIRA's worklog webhooks (CONTRACT section 7): signed, retried, duplicated, out of order, and echoing our writes.

The receiver only authenticates and parses; what a change means is decided by the conflict policy in
`app.services.conflicts.observe_remote`, the same use case the reconciliation poll uses.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, Field

from app.api.deps import BoxDep, SettingsDep, UnitOfWorkDep, enforce_tenant_rate
from app.api.schemas.common import error_responses
from app.db.repositories import activity as activity_repo
from app.domain.worklog import jira_time_ms_or_none
from app.jira.resources import RemoteWorklog
from app.security.signatures import SignatureProblem, verify_hub
from app.services.conflicts import RemoteObservation, observe_remote
from app.services.credentials import instance_webhook_secret

router = APIRouter(tags=["webhooks"])

WORKLOG_EVENTS = {"worklog_created", "worklog_updated", "worklog_deleted"}


class JiraWebhookOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"outcome": "ignore", "reason": "echo: JIRA holds what the service last wrote", "entry_id": "4711"},
        {"outcome": "jira_wins", "reason": "worklog changed in JIRA: a person must decide which to keep",
         "entry_id": "4711"},
    ]})

    outcome: str = Field(description="ignore | timetracker_wins | jira_wins")
    reason: str
    entry_id: str | None = None


def _worklog_of(payload: Any) -> tuple[str, dict[str, Any], int | None]:
    if not isinstance(payload, dict):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "body must be a JSON object")
    event = payload.get("webhookEvent")
    worklog = payload.get("worklog")
    if not isinstance(event, str):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "webhookEvent is missing")
    if event in WORKLOG_EVENTS and (not isinstance(worklog, dict) or not str(worklog.get("id") or "").strip()):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "worklog.id is missing")
    timestamp = payload.get("timestamp")
    return event, worklog if isinstance(worklog, dict) else {}, timestamp if isinstance(timestamp, int) else None


@router.post(
    "/webhooks/jira/{instance_id}",
    response_model=JiraWebhookOut,
    summary="JIRA worklog events (signed with the instance's webhook secret)",
    responses=error_responses(400, 401, 404, 413, 429),
)
async def jira_webhook(
    instance_id: str, request: Request, uow: UnitOfWorkDep, box: BoxDep, settings: SettingsDep,
    x_hub_signature: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    """`X-Hub-Signature: sha256=<hex HMAC-SHA256(webhook_secret, raw body)>`. Duplicates, retries, stale
    deliveries, echoes of the service's own writes and worklogs that are not the service's change nothing."""
    body = await request.body()  # bounded by API_MAX_BODY_BYTES (app.api.body_limit)
    try:
        iid = uuid.UUID(instance_id)
    except ValueError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "JIRA instance not found") from None
    instance = await activity_repo.instance_by_id(uow.session, iid)
    if instance is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "JIRA instance not found")
    try:
        verify_hub(instance_webhook_secret(box, instance), x_hub_signature, body)
    except SignatureProblem as exc:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, exc.reason) from None
    await enforce_tenant_rate(request, instance.tenant_id)
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "body is not valid JSON") from None
    event, worklog, timestamp = _worklog_of(payload)
    if event not in WORKLOG_EVENTS:
        return {"outcome": "ignore", "reason": f"{event} is not a worklog event"}
    remote = RemoteWorklog.from_json(worklog)
    if event == "worklog_deleted":
        # the deletion's moment orders it against the worklog's updates
        obs = RemoteObservation(remote.id, None, timestamp or jira_time_ms_or_none(remote.updated), "webhook")
    else:
        obs = RemoteObservation(remote.id, remote, jira_time_ms_or_none(remote.updated) or timestamp, "webhook")
    outcome = await observe_remote(uow, instance, obs, window=timedelta(seconds=settings.conflict_window_seconds))
    await uow.commit()
    return {"outcome": outcome.verdict.value, "reason": outcome.reason, "entry_id": outcome.entry_id}
