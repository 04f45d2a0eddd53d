"""JIRA instances API (CONTRACT section 3).

Secrets: the private key is never returned; `webhook_secret` appears in the creation response and in
the answer of `POST …/webhook-secret` (which replaces it), nowhere else — GET does not show it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from redis.asyncio import Redis

from app.api.deps import EgressDep, QueueDep, SessionDep, SettingsDep, TenantDep, not_found
from app.api.schemas.common import error_responses
from app.api.schemas.jira import (
    INSTANCE_EXAMPLE,
    FieldProblem,
    InstanceCreatedOut,
    InstanceIn,
    InstanceOut,
    InstancePatch,
    WebhookSecretOut,
    check_sensitive_fields,
)
from app.db.models import JiraInstanceRow
from app.db.repositories import jira as jira_repo
from app.jira.client import JiraClient
from app.jira.egress import EgressPolicy, EgressRefused
from app.jira.priority import Priority
from app.security.secrets import SecretBox
from app.services import instances as svc
from app.services.dispatch import enqueue_pushes
from app.services.entries import flush_feed


class NoEchoRoute(APIRoute):
    """Validation errors without FastAPI's `input` echo: a body here may hold a private key, and a missing
    or misspelt field would otherwise send the whole body, key included, back in the 422."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def without_echo(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                errors = [{k: v for k, v in e.items() if k != "input"} for e in exc.errors()]
                raise RequestValidationError(errors) from None

        return without_echo


router = APIRouter(prefix="/api/v1/jira-instances", tags=["jira-instances"], route_class=NoEchoRoute)


def get_secret_box(request: Request) -> SecretBox:
    box: SecretBox = request.app.state.secret_box
    return box


def get_redis(request: Request) -> Redis:
    redis: Redis = request.app.state.redis
    return redis


def get_jira(request: Request, settings: SettingsDep) -> JiraClient:
    """The process's JIRA client: the shared HTTP pool behind the Redis rate limiter all processes share.

    Built once by the app's lifespan (app.main).
    """
    jira: JiraClient = request.app.state.jira
    return jira


BoxDep = Annotated[SecretBox, Depends(get_secret_box)]
RedisDep = Annotated[Redis, Depends(get_redis)]
JiraDep = Annotated[JiraClient, Depends(get_jira)]
InstanceId = Annotated[uuid.UUID, Path(description="the JIRA instance's id")]


async def load_instance(session: SessionDep, tenant: TenantDep, instance_id: InstanceId) -> JiraInstanceRow:
    """The tenant's instance `instance_id`; another tenant's is answered 404 like a missing one."""
    row = await jira_repo.get_instance(session, tenant.id, instance_id)
    if row is None:
        raise not_found(f"JIRA instance {instance_id}")
    return row


InstanceDep = Annotated[JiraInstanceRow, Depends(load_instance)]


def instance_view(row: JiraInstanceRow) -> dict[str, Any]:
    return {
        "id": row.id, "name": row.name, "base_url": row.base_url, "consumer_key": row.consumer_key,
        "rate_limit_per_second": row.rate_limit_per_second, "project_keys": list(row.project_keys or []),
        "public_key_pem": row.public_key_pem, "created_at": row.created_at, "updated_at": row.updated_at,
    }


def _conflict(exc: Exception) -> HTTPException:
    return HTTPException(status.HTTP_409_CONFLICT, str(exc))


async def _checked(body: InstanceIn | InstancePatch, egress: EgressPolicy) -> None:
    try:
        check_sensitive_fields(body)
    except FieldProblem as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, exc.detail()) from None
    if body.base_url is not None:
        try:
            await egress.check_base_url(body.base_url)
        except EgressRefused as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, exc.message) from None


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=InstanceCreatedOut,
    summary="Add a JIRA instance", responses=error_responses(401, 409, 422),
    openapi_extra={"requestBody": {"content": {"application/json": {"example": INSTANCE_EXAMPLE}}}},
)
async def create_instance(
    body: InstanceIn, session: SessionDep, tenant: TenantDep, box: BoxDep, queue: QueueDep, egress: EgressDep,
) -> dict[str, Any]:
    """Generates an RSA key pair (or imports `private_key_pem`) and a webhook secret.

    Paste `public_key_pem` into JIRA's application link. `webhook_secret` is shown only in this response.
    Entries that were skipped for want of an instance are routed again. A `base_url` whose host is, or resolves
    to, a loopback, private or otherwise refused address is 422 unless `JIRA_ALLOWED_NETWORKS` lists it.
    """
    await _checked(body, egress)
    try:
        change = await svc.create_instance(session, box, tenant, body)
    except svc.DuplicateInstanceName as exc:
        raise _conflict(exc) from None
    await flush_feed(session)  # the rerouted entries' skipped → pending
    await session.commit()
    await enqueue_pushes(queue, [(tenant.id, e) for e in change.due_entries], Priority.BATCH)
    return {**instance_view(change.row), "webhook_secret": change.webhook_secret}


@router.get("", response_model=list[InstanceOut], summary="List the JIRA instances", responses=error_responses(401))
async def list_instances(session: SessionDep, tenant: TenantDep) -> list[dict[str, Any]]:
    return [instance_view(r) for r in await jira_repo.list_instances(session, tenant.id)]


@router.get("/{instance_id}", response_model=InstanceOut, summary="Get a JIRA instance",
            responses=error_responses(401, 404))
async def get_instance(instance: InstanceDep) -> dict[str, Any]:
    """The instance without its secrets (the webhook secret was shown once, at creation)."""
    return instance_view(instance)


@router.patch("/{instance_id}", response_model=InstanceOut, summary="Change a JIRA instance",
              responses=error_responses(401, 404, 409, 422))
async def patch_instance(
    body: InstancePatch, instance: InstanceDep, session: SessionDep, tenant: TenantDep, queue: QueueDep,
    egress: EgressDep, box: BoxDep,
) -> dict[str, Any]:
    """Change name, base_url, consumer_key, rate_limit_per_second, project_keys or the key pair (a new rate
    applies within a second). A change of project_keys routes skipped entries again. `base_url` is checked as on
    creation. A new base_url, consumer_key or key pair disconnects every user of the instance (their tokens belong
    to the old link): connections become auth_required, each user gets one notification."""
    await _checked(body, egress)
    try:
        change = await svc.update_instance(session, box, tenant, instance, body)
    except svc.DuplicateInstanceName as exc:
        raise _conflict(exc) from None
    await flush_feed(session)
    await session.commit()
    await enqueue_pushes(queue, [(tenant.id, e) for e in change.due_entries], Priority.BATCH)
    return instance_view(change.row)


@router.delete("/{instance_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a JIRA instance",
               responses=error_responses(401, 404))
async def delete_instance(instance: InstanceDep, session: SessionDep, tenant: TenantDep) -> Response:
    """Forgets the instance, its key pair, its users' connections and pending OAuth requests.
    Entries and worklogs already in JIRA stay."""
    await svc.delete_instance(session, tenant, instance)
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{instance_id}/webhook-secret", response_model=WebhookSecretOut,
             summary="Replace the instance's webhook secret", responses=error_responses(401, 404))
async def rotate_webhook_secret(
    instance: InstanceDep, session: SessionDep, tenant: TenantDep, box: BoxDep,
) -> dict[str, Any]:
    """A new secret for JIRA's webhooks, shown only in this answer; the old one stops working at once."""
    change = await svc.rotate_webhook_secret(session, box, tenant, instance)
    await session.commit()
    return {"jira_instance": instance.id, "webhook_secret": change.webhook_secret}
