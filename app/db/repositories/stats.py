"""Aggregate queries for `/api/v1/stats`, the dashboard and the scrape-time gauges of `/metrics`."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from app.db.models import AuditRow, EntryRow, JiraInstanceRow

# the JIRA calls that are pushes of an entry (their durations make the push latency)
PUSH_ACTIONS = ("jira.create_worklog", "jira.update_worklog", "jira.delete_worklog")


@dataclass(frozen=True)
class InstanceInfo:
    id: uuid.UUID
    name: str
    base_url: str
    rate_limit_per_second: int
    deployment: str = "datacenter"


@dataclass(frozen=True)
class PushWindow:
    calls: int
    ok: int
    failed: int
    p50_ms: float | None
    p95_ms: float | None


@dataclass(frozen=True)
class EntrySummary:
    id: str
    user: str
    ticket: str
    status: str
    instance_id: uuid.UUID | None
    last_error: str | None
    attempts: int
    sync_updated_at: datetime


def _routed_instance() -> ColumnElement[uuid.UUID | None]:
    # an entry not pushed yet has no instance_id; the one it asked for is still where it is headed
    return func.coalesce(EntryRow.instance_id, EntryRow.requested_instance_id)


async def tenant_instances(session: AsyncSession, tenant_id: uuid.UUID) -> list[InstanceInfo]:
    rows = await session.execute(
        select(JiraInstanceRow.id, JiraInstanceRow.name, JiraInstanceRow.base_url,
               JiraInstanceRow.rate_limit_per_second, JiraInstanceRow.deployment)
        .where(JiraInstanceRow.tenant_id == tenant_id)
        .order_by(JiraInstanceRow.name, JiraInstanceRow.id)
    )
    return [InstanceInfo(r[0], r[1], r[2], int(r[3]), r[4]) for r in rows]


async def status_counts(session: AsyncSession, tenant_id: uuid.UUID) -> dict[uuid.UUID | None, dict[str, int]]:
    """Entries by routed instance (None: not routed to any) and sync status."""
    inst = _routed_instance()
    rows = await session.execute(
        select(inst, EntryRow.sync_status, func.count())
        .where(EntryRow.tenant_id == tenant_id)
        .group_by(inst, EntryRow.sync_status)
    )
    out: dict[uuid.UUID | None, dict[str, int]] = {}
    for instance_id, status, n in rows:
        out.setdefault(instance_id, {})[status] = int(n)
    return out


async def queue_lengths(session: AsyncSession, tenant_id: uuid.UUID, *, now: datetime
                        ) -> dict[uuid.UUID | None, tuple[int, int]]:
    """Per routed instance: (entries in the outbox, of which due now)."""
    inst = _routed_instance()
    due_now = func.count().filter(EntryRow.due_at <= now)
    rows = await session.execute(
        select(inst, func.count(), due_now)
        .where(EntryRow.tenant_id == tenant_id, EntryRow.due_at.is_not(None))
        .group_by(inst)
    )
    return {r[0]: (int(r[1]), int(r[2])) for r in rows}


async def push_windows(session: AsyncSession, tenant_id: uuid.UUID, *, since: datetime
                       ) -> dict[uuid.UUID, PushWindow]:
    """Worklog writes per instance since `since`: how many, how many succeeded, latency percentiles."""
    ok = func.count().filter(AuditRow.outcome == "ok")
    p50 = func.percentile_cont(0.5).within_group(AuditRow.duration_ms)
    p95 = func.percentile_cont(0.95).within_group(AuditRow.duration_ms)
    rows = await session.execute(
        select(AuditRow.jira_instance_id, func.count(), ok, p50, p95)
        .where(AuditRow.tenant_id == tenant_id, AuditRow.at >= since, AuditRow.action.in_(PUSH_ACTIONS),
               AuditRow.jira_instance_id.is_not(None))
        .group_by(AuditRow.jira_instance_id)
    )
    out: dict[uuid.UUID, PushWindow] = {}
    for instance_id, calls, n_ok, q50, q95 in rows:
        out[instance_id] = PushWindow(
            calls=int(calls), ok=int(n_ok), failed=int(calls) - int(n_ok),
            p50_ms=None if q50 is None else float(q50), p95_ms=None if q95 is None else float(q95),
        )
    return out


async def newest_entries(session: AsyncSession, tenant_id: uuid.UUID, statuses: Sequence[str], *, limit: int
                         ) -> list[EntrySummary]:
    """The most recently changed entries in `statuses` (what needs a person's attention first)."""
    rows = await session.execute(
        select(EntryRow.id, EntryRow.user, EntryRow.ticket, EntryRow.sync_status, _routed_instance(),
               EntryRow.last_error, EntryRow.attempts, EntryRow.sync_updated_at)
        .where(EntryRow.tenant_id == tenant_id, EntryRow.sync_status.in_(list(statuses)))
        .order_by(EntryRow.sync_updated_at.desc(), EntryRow.id)
        .limit(limit)
    )
    return [EntrySummary(r[0], r[1], r[2], r[3], r[4], r[5], int(r[6]), r[7]) for r in rows]


async def fleet_queue_lengths(session: AsyncSession) -> dict[tuple[uuid.UUID | None, int], int]:
    """Outbox size of all tenants by (routed instance, priority)."""
    inst = _routed_instance()
    rows = await session.execute(
        select(inst, EntryRow.priority, func.count())
        .where(EntryRow.due_at.is_not(None))
        .group_by(inst, EntryRow.priority)
    )
    return {(r[0], int(r[1])): int(r[2]) for r in rows}
