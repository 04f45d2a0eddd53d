"""Queries on tenants, their API keys and their user tokens' signing secrets and revocation generations."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import ApiKey, Tenant, UserTokenGeneration, UserTokenKey


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


# -- user tokens (CONTRACT 14) ------------------------------------------------------------------------------------

async def signing_key(session: AsyncSession, tenant_id: uuid.UUID, version: int) -> UserTokenKey | None:
    """One version of the tenant's user-token signing secret (sealed)."""
    stmt = select(UserTokenKey).where(UserTokenKey.tenant_id == tenant_id, UserTokenKey.version == version)
    return (await session.execute(stmt)).scalar_one_or_none()


async def newest_signing_key(session: AsyncSession, tenant_id: uuid.UUID) -> UserTokenKey | None:
    """The version that signs new tokens: the newest."""
    stmt = (select(UserTokenKey).where(UserTokenKey.tenant_id == tenant_id)
            .order_by(UserTokenKey.version.desc()).limit(1))
    return (await session.execute(stmt)).scalar_one_or_none()


async def add_signing_key(
    session: AsyncSession, *, key_id: uuid.UUID, tenant_id: uuid.UUID, version: int, secret_enc: bytes
) -> bool:
    """Store a new version; False when that version exists already (another process made it first)."""
    result = await session.execute(
        pg_insert(UserTokenKey).values(id=key_id, tenant_id=tenant_id, version=version, secret_enc=secret_enc)
        .on_conflict_do_nothing(index_elements=["tenant_id", "version"])
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def drop_signing_keys(
    session: AsyncSession, tenant_id: uuid.UUID, *, below_version: int, created_before: datetime | None = None
) -> int:
    """Delete the tenant's versions older than `below_version` (only those created before `created_before`,
    when given); returns how many."""
    stmt = delete(UserTokenKey).where(UserTokenKey.tenant_id == tenant_id, UserTokenKey.version < below_version)
    if created_before is not None:
        stmt = stmt.where(UserTokenKey.created_at < created_before)
    return int((await session.execute(stmt)).rowcount)  # type: ignore[attr-defined]


async def token_generation(session: AsyncSession, tenant_id: uuid.UUID, user: str) -> int:
    """The user's current user-token generation (0 until their tokens are first revoked)."""
    stmt = select(UserTokenGeneration.generation).where(
        UserTokenGeneration.tenant_id == tenant_id, UserTokenGeneration.user == user)
    return int((await session.execute(stmt)).scalar_one_or_none() or 0)


async def bump_token_generation(session: AsyncSession, tenant_id: uuid.UUID, user: str, *, at: datetime) -> int:
    """Invalidate every token of the user minted so far; returns the new generation (row locked until commit)."""
    insert = pg_insert(UserTokenGeneration).values(tenant_id=tenant_id, user=user, generation=1, revoked_at=at)
    stmt = insert.on_conflict_do_update(
        index_elements=["tenant_id", "user"],
        set_={"generation": UserTokenGeneration.generation + 1, "revoked_at": at},
    ).returning(UserTokenGeneration.generation)
    return int((await session.execute(stmt)).scalar_one())


async def all_allowed_origins(session: AsyncSession) -> set[str]:
    """Every origin some tenant allows (what CORS preflights are answered for)."""
    stmt = select(func.unnest(Tenant.allowed_origins)).distinct()
    return {str(o) for o in (await session.execute(stmt)).scalars()}
