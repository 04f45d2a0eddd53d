"""Tenants and their API keys."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, LargeBinary, String
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
