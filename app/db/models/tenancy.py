"""Tenants and their API keys."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from app.db.models.base import Base, now_column, uuid_pk


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[uuid.UUID] = uuid_pk()
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    # HMAC secret of the TimeTracker webhook (CONTRACT 6), AES-256-GCM encrypted
    webhook_secret_enc: Mapped[bytes] = mapped_column(LargeBinary)
    # TimeTracker's web origins (`https://tt.example.com`): where an OAuth return_url may point (CONTRACT 11)
    allowed_origins: Mapped[list[str]] = mapped_column(ARRAY(String(300)), default=list, server_default="{}")
    created_at: Mapped[datetime] = now_column()


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = uuid_pk()
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    # SHA-256 of the whole key: keys are 256-bit random, so a slow hash adds nothing
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = now_column()
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class UserTokenKey(Base):
    """A tenant's secret that signs its user tokens (CONTRACT 14), AES-256-GCM sealed like every other secret.

    The newest version signs; every version still stored verifies (a rotation keeps the previous one until the
    tokens it signed have expired)."""

    __tablename__ = "user_token_keys"
    __table_args__ = (UniqueConstraint("tenant_id", "version"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    secret_enc: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = now_column()


class UserTokenGeneration(Base):
    """Per user of a tenant, which generation of user tokens is valid: revoking the user's tokens bumps it, and a
    token carries the generation it was minted in. No row: generation 0."""

    __tablename__ = "user_token_generations"

    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    user: Mapped[str] = mapped_column(String(200), primary_key=True)
    generation: Mapped[int] = mapped_column(Integer)
    revoked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
