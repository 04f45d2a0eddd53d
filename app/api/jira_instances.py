"""JIRA instances API (CONTRACT section 3).

Secrets: the private key is never returned; `webhook_secret` appears in the creation response and in
the answer of `POST …/webhook-secret` (which replaces it), nowhere else — GET does not show it.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from app.api.deps import BoxDep, EgressDep, InstanceDep, SessionDep, TenantDep, UnitOfWorkDep
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
from app.jira.egress import EgressPolicy, EgressRefused
from app.services import instances as svc


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
    body: InstanceIn, uow: UnitOfWorkDep, tenant: TenantDep, box: BoxDep, egress: EgressDep,
) -> dict[str, Any]:
    """Generates an RSA key pair (or imports `private_key_pem`) and a webhook secret.

    Paste `public_key_pem` into JIRA's application link. `webhook_secret` is shown only in this response.
    Entries that were skipped for want of an instance are routed again. A `base_url` whose host is, or resolves
    to, a loopback, private or otherwise refused address is 422 unless `JIRA_ALLOWED_NETWORKS` lists it.
    """
    await _checked(body, egress)
    try:
        change = await svc.create_instance(uow, box, tenant, body.command())
    except svc.DuplicateInstanceName as exc:
        raise _conflict(exc) from None
    await uow.commit()  # with the rerouted entries' skipped → pending in the changes feed, then their pushes
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
    body: InstancePatch, instance: InstanceDep, uow: UnitOfWorkDep, tenant: TenantDep, egress: EgressDep,
    box: BoxDep,
) -> dict[str, Any]:
    """Change name, base_url, consumer_key, rate_limit_per_second, project_keys or the key pair (a new rate
    applies within a second). A change of project_keys routes skipped entries again. `base_url` is checked as on
    creation. A new base_url, consumer_key or key pair disconnects every user of the instance (their tokens belong
    to the old link): connections become auth_required, each user gets one notification."""
    await _checked(body, egress)
    try:
        change = await svc.update_instance(uow, box, tenant, instance, body.command())
    except svc.DuplicateInstanceName as exc:
        raise _conflict(exc) from None
    await uow.commit()
    return instance_view(change.row)


@router.delete("/{instance_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a JIRA instance",
               responses=error_responses(401, 404))
async def delete_instance(instance: InstanceDep, uow: UnitOfWorkDep, tenant: TenantDep) -> Response:
    """Forgets the instance, its key pair, its users' connections and pending OAuth requests.
    Entries and worklogs already in JIRA stay."""
    await svc.delete_instance(uow.session, tenant, instance)
    await uow.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{instance_id}/webhook-secret", response_model=WebhookSecretOut,
             summary="Replace the instance's webhook secret", responses=error_responses(401, 404))
async def rotate_webhook_secret(
    instance: InstanceDep, uow: UnitOfWorkDep, tenant: TenantDep, box: BoxDep,
) -> dict[str, Any]:
    """A new secret for JIRA's webhooks, shown only in this answer; the old one stops working at once."""
    change = await svc.rotate_webhook_secret(uow.session, box, tenant, instance)
    await uow.commit()
    return {"jira_instance": instance.id, "webhook_secret": change.webhook_secret}
