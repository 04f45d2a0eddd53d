"""Reconciliation: poll each JIRA instance for worklog changes, independently of webhooks (CONTRACT 7).

Per instance: `worklog/updated?since=` and `worklog/deleted?since=` from the stored cursors, `worklog/list`
(in chunks of at most 1000 ids) for the updated worklogs that are ours, then each observation goes through
the same use case as a webhook (`app.services.conflicts.observe_remote`). Requests go through the shared
rate limiter at BATCH priority. Cursors move only after everything was processed, and every window overlaps
the previous one by `OVERLAP_MS`: JIRA leaves out the last minute, and processing is idempotent anyway.

JIRA answers these feeds with what the polling user may see. The service polls as one connected user of the
instance's tenant; worklogs on issues that user cannot see are only learned of through webhooks. Jira Cloud's feeds
are the same behind Atlassian's gateway (authors are accountIds); a Cloud poll also tells users whose consent ends
within 30 days (`connect_atlassian.notify_expiring`).
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.clock import now_utc
from app.config import Settings
from app.db.repositories import activity as activity_repo
from app.domain.priority import Priority
from app.domain.worklog import jira_time_ms_or_none, utc_ms
from app.jira.calls import JiraCall, OnCall
from app.jira.client import JiraClient, JiraTarget
from app.jira.errors import AuthRejected, JiraError
from app.jira.resources import RemoteWorklog, WorklogChanges
from app.services.audit import audit_calls
from app.services.conflicts import RemoteObservation, observe_remote
from app.services.connect import reject_connection
from app.services.connect_atlassian import notify_expiring
from app.services.credentials import Credentials, is_cloud
from app.services.dispatch import PushWake
from app.services.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

JIRA_FEED_DELAY_MS = 60_000  # JIRA never returns changes of the last minute
OVERLAP_MS = 120_000  # each window starts this long before the previous one ended (at least 60 s)
FIRST_POLL_LOOKBACK = timedelta(minutes=10)  # before the instance existed nothing of ours was there


@dataclass
class ReconcileDeps:
    sessionmaker: async_sessionmaker[AsyncSession]
    credentials: Credentials
    jira: JiraClient
    settings: Settings
    wake: PushWake | None = None


@dataclass
class ReconcileReport:
    instance_id: uuid.UUID
    polled: bool = False
    reason: str | None = None
    updated: int = 0
    deleted: int = 0
    ours: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)


def next_cursor(since: int, until: int, now_ms: int) -> int:
    """Where the next window starts: `OVERLAP_MS` before what this one covered, never backwards."""
    covered = min(until, now_ms - JIRA_FEED_DELAY_MS)
    return max(since, covered - OVERLAP_MS)


def _first_since(created_at: datetime | None, now: datetime) -> int:
    start = (created_at or now) - FIRST_POLL_LOOKBACK
    return utc_ms(start)


async def _record_calls(
    session: AsyncSession, tenant_id: uuid.UUID, calls: list[JiraCall], user: str
) -> None:
    audit_calls(session, tenant_id, calls, context=f"reconciliation as {user}")


@dataclass
class _Fetched:
    updated: WorklogChanges
    deleted: WorklogChanges
    worklogs: list[RemoteWorklog]
    deleted_ours: set[str]


async def reconcile_instance(deps: ReconcileDeps, instance_id: uuid.UUID, *, now: datetime | None = None
                             ) -> ReconcileReport:
    """Poll one instance once and apply what changed; safe to repeat (every step is idempotent)."""
    now = now or now_utc()
    report = ReconcileReport(instance_id)
    async with deps.sessionmaker() as session:
        instance = await activity_repo.instance_by_id(session, instance_id)
        if instance is None:
            report.reason = "instance no longer exists"
            return report
        if is_cloud(instance) and await notify_expiring(session, instance, now=now):
            await session.commit()
        tenant_id = instance.tenant_id
        targets: list[tuple[str, JiraTarget]] = []
        for connection in await activity_repo.connected_connections(session, tenant_id, instance_id):
            target = deps.credentials.user_target(instance, connection, priority=Priority.BATCH)
            if target is not None:
                targets.append((connection.user, target))
        since_updated = instance.reconcile_updated_since or _first_since(instance.created_at, now)
        since_deleted = instance.reconcile_deleted_since or _first_since(instance.created_at, now)
    if not targets:
        report.reason = "no connected JIRA user in this tenant to poll with"
        return report

    fetched: _Fetched | None = None
    for user, target in targets:
        calls: list[JiraCall] = []

        async def collect(call: JiraCall, sink: list[JiraCall] = calls) -> None:
            sink.append(call)

        try:
            fetched = await _fetch(deps, session_tenant=tenant_id, instance_id=instance_id, target=target,
                                   since_updated=since_updated, since_deleted=since_deleted, on_call=collect)
        except AuthRejected as exc:
            async with deps.sessionmaker() as session:
                await _record_calls(session, tenant_id, calls, user)
                await reject_connection(session, tenant_id=tenant_id, instance_id=instance_id, user=user,
                                        oauth_problem=exc.oauth_problem, context=" (reconciliation poll)")
                await session.commit()
            continue  # this user's token is refused: try another connected user
        except JiraError as exc:
            # (the request gate already counted the answer, or its absence, for the instance's circuit; an open
            # circuit stops the poll before anything is sent)
            await _audit_only(deps, tenant_id, calls, user)
            report.reason = f"polling failed: {exc.message}"
            return report
        await _audit_only(deps, tenant_id, calls, user)
        break
    if fetched is None:
        report.reason = "JIRA refused the tokens of every connected user"
        return report

    report.polled = True
    report.updated, report.deleted = len(fetched.updated.values), len(fetched.deleted.values)
    window = timedelta(seconds=deps.settings.conflict_window_seconds)
    observations = [
        RemoteObservation(w.id, w, jira_time_ms_or_none(w.updated), "poll") for w in fetched.worklogs
    ] + [
        RemoteObservation(c.worklog_id, None, c.updated_time, "poll")
        for c in fetched.deleted.values if c.worklog_id in fetched.deleted_ours
    ]
    report.ours = len(observations)
    for obs in observations:
        # one short unit of work per worklog: entry locks are held briefly, a failure stops before the cursors
        # move, and the pusher of an entry TimeTracker wins for is woken as soon as its marker is committed
        async with UnitOfWork.open(deps.sessionmaker, deps.wake) as uow:
            instance = await activity_repo.instance_by_id(uow.session, instance_id)
            if instance is None:
                report.reason = "instance deleted while polling"
                return report
            outcome = await observe_remote(uow, instance, obs, window=window, now=now)
            await uow.commit()
        report.outcomes[outcome.verdict.value] += 1

    now_ms = utc_ms(now)
    async with deps.sessionmaker() as session:
        instance = await activity_repo.instance_by_id(session, instance_id, lock=True)
        if instance is not None:
            instance.reconcile_updated_since = next_cursor(since_updated, fetched.updated.until, now_ms)
            instance.reconcile_deleted_since = next_cursor(since_deleted, fetched.deleted.until, now_ms)
            instance.reconciled_at = now
            await session.commit()
    return report


async def _fetch(
    deps: ReconcileDeps, *, session_tenant: uuid.UUID, instance_id: uuid.UUID, target: JiraTarget,
    since_updated: int, since_deleted: int, on_call: OnCall,
) -> _Fetched:
    jira = deps.jira
    updated = await jira.worklogs_updated_since(target, since_updated, on_call=on_call)
    deleted = await jira.worklogs_deleted_since(target, since_deleted, on_call=on_call)
    async with deps.sessionmaker() as session:
        ours = await activity_repo.worklogs_of_ours(
            session, session_tenant, instance_id, [c.worklog_id for c in updated.values])
        deleted_ours = await activity_repo.worklogs_of_ours(
            session, session_tenant, instance_id, [c.worklog_id for c in deleted.values])
    ours -= deleted_ours  # deleted since: the deletion is the newer fact
    worklogs = await jira.worklog_list(target, sorted(ours, key=int), on_call=on_call) if ours else []
    return _Fetched(updated, deleted, worklogs, deleted_ours)


async def _audit_only(deps: ReconcileDeps, tenant_id: uuid.UUID, calls: list[JiraCall], user: str) -> None:
    if not calls:
        return
    async with deps.sessionmaker() as session:
        await _record_calls(session, tenant_id, calls, user)
        await session.commit()
