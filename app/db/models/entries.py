"""Entries: TimeTracker's data plus the sync state the engine keeps for each."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    Time,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.db.models.base import Base, now_column


class EntryRow(Base):
    __tablename__ = "entries"
    __table_args__ = (
        Index("ix_entries_tenant_status", "tenant_id", "sync_status"),
        Index("ix_entries_tenant_user", "tenant_id", "user"),
        Index("ix_entries_tenant_ticket", "tenant_id", "ticket"),
        # the outbox: what the sweeper and sync-pending look for
        Index("ix_entries_due", "due_at", postgresql_where=text("due_at IS NOT NULL")),
        # one instance's backlog (queue gauges) without walking its whole history
        Index("ix_entries_instance_due", "instance_id", "due_at", postgresql_where=text("due_at IS NOT NULL")),
        # what an instance's pusher takes, in its order: by where the next push goes (EntrySync.push_instance)
        Index("ix_entries_push_due", text("coalesce(worklog_instance_id, instance_id)"), "priority", "due_at",
              postgresql_where=text("due_at IS NOT NULL")),
        # reverse lookup for JIRA webhooks and reconciliation
        Index("ix_entries_instance_worklog", "instance_id", "worklog_id"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # --- TimeTracker's entry -------------------------------------------------------------
    user: Mapped[str] = mapped_column(String(200))
    ticket: Mapped[str] = mapped_column(String(64))
    date: Mapped[date] = mapped_column(Date)
    start: Mapped[time] = mapped_column(Time)
    duration: Mapped[int] = mapped_column(Integer)  # minutes
    timezone: Mapped[str] = mapped_column(String(64))
    description: Mapped[str | None] = mapped_column(Text)
    activity: Mapped[str | None] = mapped_column(String(500))
    requested_instance_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("jira_instances.id", ondelete="SET NULL")
    )
    is_deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # orders changes (stale check)
    local_changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # conflict window
    version: Mapped[int] = mapped_column(Integer, default=1)  # bumped on every accepted content change
    created_at: Mapped[datetime] = now_column()
    # --- sync state --------------------------------------------------------------------------
    sync_status: Mapped[str] = mapped_column(String(20))
    instance_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("jira_instances.id", ondelete="SET NULL"))
    worklog_id: Mapped[str | None] = mapped_column(String(32))
    worklog_ticket: Mapped[str | None] = mapped_column(String(64))  # the issue holding worklog_id
    worklog_instance_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("jira_instances.id", ondelete="SET NULL")
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    synced_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sync_updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    synced_version: Mapped[int] = mapped_column(Integer, default=0)
    # outbox marker: not null means "push me at or after this instant"
    due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    priority: Mapped[int] = mapped_column(SmallInteger, default=0)  # 0 user action, 1 batch work
    # a create was sent and its outcome is unknown: look for the #<id>: anchor before creating again
    create_unconfirmed: Mapped[bool] = mapped_column(Boolean, default=False)
    # what we last wrote to JIRA (started instant, seconds, comment): the conflict policy's base
    base: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    remote_updated_ms: Mapped[int | None] = mapped_column(BigInteger)  # JIRA `updated` of the worklog we last saw
    # taken by a pusher whose answer is not recorded yet (no other pusher takes it), until its claim lapses
    claimed_by: Mapped[str | None] = mapped_column(String(80))
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WebhookDeliveryRow(Base):
    """Accepted TimeTracker webhook deliveries, for replay protection."""

    __tablename__ = "webhook_deliveries"

    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    delivery_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    received_at: Mapped[datetime] = now_column()
