"""JIRA instances API (CONTRACT sections 3, 11, 12 and 13).

Secrets: the private key and the OAuth 2.0 client secret are never returned; `webhook_secret` appears in the
creation response and in the answer of `POST …/webhook-secret` (which replaces it), nowhere else — GET does not
show it.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from app.api.deps import (
    TENANT_ADMIN,
    BoxDep,
    EgressDep,
    InstanceDep,
    SessionDep,
    SettingsDep,
    TenantDep,
    UnitOfWorkDep,
)
from app.api.schemas.common import error_responses
from app.api.schemas.jira import (
    CLOUD_INSTANCE_EXAMPLE,
    INSTANCE_EXAMPLE,
    FieldProblem,
    InstanceCreatedOut,
    InstanceIn,
    InstanceOut,
    InstancePatch,
    WebhookSecretOut,
    check_sensitive_fields,
)
from app.config import Settings
from app.db.models import JiraInstanceRow
from app.db.repositories import jira as jira_repo
from app.domain.auth import AuthKind
from app.jira.egress import EgressPolicy, EgressRefused
from app.services import instances as svc
from app.services.credentials import atlassian_redirect_uri, is_cloud, oauth2_redirect_uri


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


router = APIRouter(prefix="/api/v1/jira-instances", tags=["jira-instances"], route_class=NoEchoRoute,
                   dependencies=[TENANT_ADMIN])


def instance_view(row: JiraInstanceRow, settings: Settings) -> dict[str, Any]:
    oauth2, cloud = row.auth == AuthKind.OAUTH2, is_cloud(row)
    redirect_uri = (oauth2_redirect_uri(settings.public_base_url) if oauth2 else
                    atlassian_redirect_uri(settings.public_base_url) if cloud else None)
    return {
        "id": row.id, "name": row.name, "deployment": row.deployment, "base_url": row.base_url,
        "site_url": row.site_url, "cloud_id": row.cloud_id, "auth": row.auth,
        "consumer_key": None if cloud else row.consumer_key,
        "rate_limit_per_second": row.rate_limit_per_second, "project_keys": list(row.project_keys or []),
        "public_key_pem": row.public_key_pem if row.auth == AuthKind.OAUTH1 else None,
        "client_id": row.oauth2_client_id if oauth2 else None, "redirect_uri": redirect_uri,
        "created_at": row.created_at, "updated_at": row.updated_at,
    }


def _conflict(exc: Exception) -> HTTPException:
    return HTTPException(status.HTTP_409_CONFLICT, str(exc))


def _invalid(exc: svc.InvalidInstance) -> HTTPException:
    detail = [{"type": "value_error", "loc": ["body", name], "msg": reason} for name, reason in exc.problems]
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail)


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
    openapi_extra={"requestBody": {"content": {"application/json": {"examples": {
        "datacenter": {"value": INSTANCE_EXAMPLE}, "cloud": {"value": CLOUD_INSTANCE_EXAMPLE}}}}}},
)
async def create_instance(
    body: InstanceIn, uow: UnitOfWorkDep, tenant: TenantDep, box: BoxDep, egress: EgressDep, settings: SettingsDep,
) -> dict[str, Any]:
    """With `auth` oauth1 (the default), generates an RSA key pair (or imports `private_key_pem`): paste
    `public_key_pem` into JIRA's application link. With oauth2, give the `client_id` and `client_secret` of JIRA's
    incoming External application link whose redirect URL is the answer's `redirect_uri`. With pat, users store
    personal access tokens (`PUT /api/v1/users/{user}/connections/{instance_id}`).

    A Jira Cloud site: `deployment: cloud` and its `site_url` (no base_url, consumer key or key pair); its users
    connect through the service's 3LO app (needs ATLASSIAN_CLIENT_ID and ATLASSIAN_CLIENT_SECRET, else 422), and its
    `cloud_id` is learnt from the first connection.

    A webhook secret is generated; `webhook_secret` is shown only in this response.
    Entries that were skipped for want of an instance are routed again. A `base_url` whose host is, or resolves
    to, a loopback, private or otherwise refused address is 422 unless `JIRA_ALLOWED_NETWORKS` lists it.
    """
    await _checked(body, egress)
    try:
        change = await svc.create_instance(uow, box, tenant, body.command(),
                                           atlassian_app_configured=settings.atlassian_app_configured)
    except svc.InvalidInstance as exc:
        raise _invalid(exc) from None
    except svc.DuplicateInstanceName as exc:
        raise _conflict(exc) from None
    await uow.commit()  # with the rerouted entries' skipped → pending in the changes feed, then their pushes
    return {**instance_view(change.row, settings), "webhook_secret": change.webhook_secret}


@router.get("", response_model=list[InstanceOut], summary="List the JIRA instances", responses=error_responses(401))
async def list_instances(session: SessionDep, tenant: TenantDep, settings: SettingsDep) -> list[dict[str, Any]]:
    return [instance_view(r, settings) for r in await jira_repo.list_instances(session, tenant.id)]


@router.get("/{instance_id}", response_model=InstanceOut, summary="Get a JIRA instance",
            responses=error_responses(401, 404))
async def get_instance(instance: InstanceDep, settings: SettingsDep) -> dict[str, Any]:
    """The instance without its secrets (the webhook secret was shown once, at creation)."""
    return instance_view(instance, settings)


@router.patch("/{instance_id}", response_model=InstanceOut, summary="Change a JIRA instance",
              responses=error_responses(401, 404, 409, 422))
async def patch_instance(
    body: InstancePatch, instance: InstanceDep, uow: UnitOfWorkDep, tenant: TenantDep, egress: EgressDep,
    box: BoxDep, settings: SettingsDep,
) -> dict[str, Any]:
    """Change name, base_url, auth, consumer_key, the key pair, client_id, client_secret, rate_limit_per_second or
    project_keys (a new rate applies within a second). A change of project_keys routes skipped entries again.
    `base_url` is checked as on creation. A new auth, or a new base_url, consumer_key or key pair (oauth1) or
    client_id (oauth2), disconnects every user of the instance (their tokens belong to the old link): connections
    become auth_required, each user gets one notification. Switching to oauth1 generates a key pair if the instance
    has none (unless `private_key_pem` is given); switching to oauth2 needs client_id and client_secret."""
    await _checked(body, egress)
    try:
        change = await svc.update_instance(uow, box, tenant, instance, body.command())
    except svc.InvalidInstance as exc:
        raise _invalid(exc) from None
    except svc.DuplicateInstanceName as exc:
        raise _conflict(exc) from None
    await uow.commit()
    return instance_view(change.row, settings)


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
