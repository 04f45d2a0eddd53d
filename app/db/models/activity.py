"""What happened: audit trail, conflicts, notifications and the changes feed."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, ForeignKey, Identity, Index, Integer, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.db.models.base import Base, now_column, uuid_pk


class AuditRow(Base):
    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_tenant_id_id", "tenant_id", "id"),
        Index("ix_audit_log_tenant_entry", "tenant_id", "entry_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    at: Mapped[datetime] = now_column()
    action: Mapped[str] = mapped_column(String(64))
    entry_id: Mapped[str | None] = mapped_column(String(64))
    jira_instance_id: Mapped[uuid.UUID | None] = mapped_column()
    outcome: Mapped[str] = mapped_column(String(32))
    http_status: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int | None] = mapped_column(Integer)


class ConflictRow(Base):
    __tablename__ = "conflicts"
    __table_args__ = (Index("ix_conflicts_tenant_status", "tenant_id", "status", "detected_at"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    entry_id: Mapped[str] = mapped_column(String(64))
    jira_instance_id: Mapped[uuid.UUID | None] = mapped_column()
    local: Mapped[dict[str, Any]] = mapped_column(JSONB)
    remote: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    detected_at: Mapped[datetime] = now_column()
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | resolved
    winner: Mapped[str | None] = mapped_column(String(16))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class NotificationRow(Base):
    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_tenant_user", "tenant_id", "user", "created_at"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    user: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))  # auth_required | conflict | sync_failed
    message: Mapped[str] = mapped_column(Text)
    entry_id: Mapped[str | None] = mapped_column(String(64))
    jira_instance_id: Mapped[uuid.UUID | None] = mapped_column()
    created_at: Mapped[datetime] = now_column()
    read_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ChangeRow(Base):
    """The changes feed: every remote adoption and every sync status change, in commit order per tenant.

    Writers only insert (`id` is the insertion order); a record's feed position `seq` is assigned when a reader
    first finds it committed (`app.db.repositories.entries.list_changes`), so positions follow commit order
    without any lock held by the writers.
    """

    __tablename__ = "changes"
    __table_args__ = (
        Index("ix_changes_tenant_seq", "tenant_id", "seq", unique=True),
        # the records no reader has placed yet, in insertion order
        Index("ix_changes_tenant_unplaced", "tenant_id", "id", postgresql_where=text("seq IS NULL")),
        # a user token reads the feed of its own entries only (CONTRACT 14)
        Index("ix_changes_tenant_user_seq", "tenant_id", "user", "seq"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    seq: Mapped[int | None] = mapped_column(BigInteger)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    entry_id: Mapped[str] = mapped_column(String(64))
    # the entry's user at the time of the change (= entry["user"])
    user: Mapped[str | None] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    entry: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = now_column()
