"""Queries on tenants and API keys."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import ApiKey, Tenant


async def tenant_for_key_hash(session: AsyncSession, key_hash: str) -> tuple[Tenant, str] | None:
    """The tenant owning an active key with this hash, and the stored hash (for a constant-time check)."""
    stmt = (
        select(Tenant, ApiKey.key_hash)
        .join(ApiKey, ApiKey.tenant_id == Tenant.id)
        .where(ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None))
    )
    row = (await session.execute(stmt)).first()
    return (row[0], row[1]) if row else None


async def get_tenant(session: AsyncSession, tenant_id: uuid.UUID) -> Tenant | None:
    return await session.get(Tenant, tenant_id)


async def revoke_api_key(session: AsyncSession, tenant_id: uuid.UUID, key_hash: str, *, at: datetime) -> bool:
    """Revoke the tenant's active key with this hash; False when it holds none."""
    result = await session.execute(
        update(ApiKey)
        .where(ApiKey.tenant_id == tenant_id, ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None))
        .values(revoked_at=at)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
