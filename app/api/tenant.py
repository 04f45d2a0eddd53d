"""The calling tenant's own settings (CONTRACT 11): `GET|PATCH /api/v1/tenant`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.api.deps import TENANT_ADMIN, AllowedOriginsDep, ApiKeyCacheDep, TenantByIdCacheDep, TenantDep, UnitOfWorkDep
from app.api.schemas.common import error_responses
from app.api.schemas.tenant import TenantOut, TenantPatch
from app.db.models import Tenant
from app.services.tenants import set_allowed_origins

router = APIRouter(prefix="/api/v1/tenant", tags=["tenant"], dependencies=[TENANT_ADMIN])


def _view(tenant: Tenant) -> dict[str, Any]:
    return {"id": tenant.id, "name": tenant.name, "timezone": tenant.timezone,
            "allowed_origins": list(tenant.allowed_origins or []), "created_at": tenant.created_at}


@router.get("", response_model=TenantOut, summary="The calling tenant's settings", responses=error_responses(401))
async def get_tenant(tenant: TenantDep) -> dict[str, Any]:
    return _view(tenant)


@router.patch("", response_model=TenantOut, summary="Change the calling tenant's settings",
              responses=error_responses(401, 422))
async def patch_tenant(
    body: TenantPatch, uow: UnitOfWorkDep, tenant: TenantDep, keys: ApiKeyCacheDep, tenants: TenantByIdCacheDep,
    cors_origins: AllowedOriginsDep,
) -> dict[str, Any]:
    """`allowed_origins` replaces the list of TimeTracker origins: where an OAuth `return_url` may point (an empty
    list allows any) and which browser origins may call the API with a user token (CORS; an empty list: none).
    Other API processes see a change within a few seconds (their tenant cache)."""
    if body.allowed_origins is None:
        return _view(tenant)
    row = await set_allowed_origins(uow.session, tenant.id, body.allowed_origins)
    await uow.commit()
    # this process' cached copies of the tenant are stale now
    keys.clear()
    tenants.clear()
    cors_origins.clear()
    return _view(row)
