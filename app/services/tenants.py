"""Use cases on tenants: create one with its first API key and webhook secret; add and revoke API keys."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app.clock import now_utc
from app.db.models import ApiKey, Tenant
from app.db.repositories import tenants as tenants_repo
from app.db.repositories.entries import add_audit
from app.security.api_keys import display_prefix, hash_api_key, new_api_key, new_webhook_secret
from app.security.secrets import SecretBox, binding


@dataclass(frozen=True)
class NewTenant:
    tenant_id: uuid.UUID
    api_key: str
    webhook_secret: str


async def create_tenant(session: AsyncSession, box: SecretBox, *, name: str, timezone: str = "UTC",
                        allowed_origins: list[str] | None = None) -> NewTenant:
    """A tenant with its first API key and webhook secret; `allowed_origins` already normalised."""
    tenant_id = uuid.uuid4()
    secret = new_webhook_secret()
    session.add(
        Tenant(id=tenant_id, name=name, timezone=timezone, allowed_origins=list(allowed_origins or []),
               webhook_secret_enc=box.seal(secret, binding("tenants", "webhook_secret", tenant_id)))
    )
    await session.flush()
    key = await create_api_key(session, tenant_id)
    return NewTenant(tenant_id, key, secret)


async def create_api_key(session: AsyncSession, tenant_id: uuid.UUID) -> str:
    key = new_api_key()
    session.add(ApiKey(tenant_id=tenant_id, key_hash=hash_api_key(key), prefix=display_prefix(key)))
    await session.flush()
    return key


async def revoke_api_key(session: AsyncSession, tenant_id: uuid.UUID, key: str) -> bool:
    """Revoke one of the tenant's keys (given whole); False when the tenant holds no such active key."""
    return await tenants_repo.revoke_api_key(session, tenant_id, hash_api_key(key), at=now_utc())


async def set_allowed_origins(session: AsyncSession, tenant_id: uuid.UUID, origins: list[str]) -> Tenant:
    """Replace the tenant's TimeTracker origins (already normalised); the caller commits."""
    tenant = await session.get(Tenant, tenant_id, with_for_update=True)
    assert tenant is not None  # the caller authenticated as this tenant
    if tenant.allowed_origins != origins:
        tenant.allowed_origins = origins
        add_audit(session, tenant_id=tenant_id, action="tenant.allowed_origins", outcome="ok",
                  detail=", ".join(origins) or "(none: any return_url)")
    return tenant
