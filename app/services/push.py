"""Pushing one entry to JIRA: the sync engine's use case (CONTRACT section 10).

`push_entry` reads the entry's latest state, asks the domain for the next step, runs it as one JIRA
request (gated by the rate limiter, guarded by the instance's circuit and the issue's write lock),
records the answer, and repeats until the entry's state is final. It returns None when done, or the
seconds after which it must run again (backoff, rate limit, open circuit); the queue does the waiting.
Every run is idempotent: it works from what PostgreSQL says now, never from the job's arguments.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import metrics
from app.config import Settings
from app.db.models import ConnectionRow, EntryRow, JiraInstanceRow, NotificationRow
from app.db.repositories import entries as repo
from app.db.repositories import jira as jira_repo
from app.domain.entry import SyncStatus, route
from app.domain.sync import PushState, Step, StepKind, backoff_seconds, next_step, snapshot
from app.domain.worklog import build_worklog, parse_started
from app.jira.admission import InstanceAdmission, in_flight_cap
from app.jira.calls import JiraCall
from app.jira.circuit import CircuitBreaker
from app.jira.client import JiraClient, JiraTarget
from app.jira.egress import EgressRefused
from app.jira.errors import AuthRejected, JiraError, NotFound, PermanentError, RateLimited, TransientError
from app.jira.locks import LockTimeout, default_lock_ttl, issue_lock
from app.jira.priority import Priority
from app.jira.resources import RemoteWorklog
from app.security.secrets import SecretBox
from app.services.audit import audit_calls
from app.services.connect import reject_connection
from app.services.credentials import user_target
from app.services.entries import flush_feed, set_status, settle_conflict_for_timetracker

log = logging.getLogger(__name__)

MAX_ROUNDS = 12  # steps in one run: a move is delete + create; a change landing meanwhile adds a few
# a push refused by the admission cap comes back within the backlog's expected drain time, at most this far off
MAX_REFUSAL_SPREAD_SECONDS = 600


@dataclass
class PushDeps:
    sessionmaker: async_sessionmaker[AsyncSession]
    box: SecretBox
    jira: JiraClient
    circuit: CircuitBreaker
    redis: Redis
    settings: Settings
    admission: InstanceAdmission
    rng: Callable[[], float] = field(default=random.random)


@dataclass
class _Plan:
    step: Step
    version: int
    user: str
    priority: Priority
    target: JiraTarget | None
    instance: JiraInstanceRow | None
    connection: ConnectionRow | None


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def push_state(row: EntryRow, routed: uuid.UUID | None, reason: str | None) -> PushState:
    wants = not row.is_deleted and row.duration > 0 and routed is not None
    body = build_worklog(
        entry_id=row.id, day=row.date, start=row.start, zone=row.timezone, duration_minutes=row.duration,
        activity=row.activity, description=row.description,
    ) if wants else None
    return PushState(
        entry_id=row.id, deleted=row.is_deleted, duration=row.duration, ticket=row.ticket, routed_instance=routed,
        route_reason=reason, worklog_id=row.worklog_id, worklog_instance=row.worklog_instance_id,
        worklog_ticket=row.worklog_ticket, create_unconfirmed=row.create_unconfirmed, body=body, base=row.base,
    )


async def _state_of(session: AsyncSession, row: EntryRow) -> PushState:
    routes = await repo.instance_routes(session, row.tenant_id)
    r = route(row.ticket, row.requested_instance_id, routes)
    if row.instance_id != r.instance_id and not row.is_deleted:
        row.instance_id = r.instance_id
    return push_state(row, r.instance_id, r.reason)


def _finish(session: AsyncSession, row: EntryRow, step: Step, now: datetime) -> None:
    assert step.final_status is not None
    row.due_at = None
    row.synced_version = row.version
    if step.final_status is SyncStatus.SYNCED:
        row.synced_at = now
    set_status(session, row, step.final_status, last_error=step.reason, now=now)
    if row.instance_id is not None:
        metrics.SYNC_OUTCOMES.labels(str(row.instance_id), step.final_status.value).inc()


async def _notify_once(
    session: AsyncSession, *, tenant_id: uuid.UUID, user: str, kind: str, message: str, entry_id: str | None,
    instance_id: uuid.UUID | None, per_entry: bool,
) -> None:
    """One unread notification per (user, instance, kind) — or per entry — instead of one per push."""
    await repo.lock_notification_key(session, tenant_id=tenant_id, user=user, kind=kind,
                                     jira_instance_id=instance_id, entry_id=entry_id if per_entry else None)
    stmt = select(NotificationRow.id).where(
        NotificationRow.tenant_id == tenant_id, NotificationRow.user == user, NotificationRow.kind == kind,
        NotificationRow.jira_instance_id == instance_id, NotificationRow.read_at.is_(None),
    )
    if per_entry:
        stmt = stmt.where(NotificationRow.entry_id == entry_id)
    if (await session.execute(stmt.limit(1))).first() is None:
        repo.add_notification(session, tenant_id=tenant_id, user=user, kind=kind, message=message,
                              entry_id=entry_id, jira_instance_id=instance_id)


class PushEngine:
    def __init__(self, deps: PushDeps) -> None:
        self.d = deps

    async def push(self, tenant_id: uuid.UUID, entry_id: str) -> float | None:
        """Bring the entry's worklog in line with its latest state. None: done; a number: run again then."""
        for _ in range(MAX_ROUNDS):
            plan_or_delay = await self._plan(tenant_id, entry_id)
            if plan_or_delay is None or isinstance(plan_or_delay, float):
                return plan_or_delay
            plan = plan_or_delay
            if plan.step.kind is StepKind.DONE:
                continue  # _plan recorded the final state; look again in case a change landed meanwhile
            delay = await self._run(tenant_id, entry_id, plan)
            if delay is not None:
                return delay
        return 0.5  # still changing under our feet: let the queue call again shortly

    async def _plan(self, tenant_id: uuid.UUID, entry_id: str) -> _Plan | float | None:
        now = now_utc()
        async with self.d.sessionmaker() as session:
            row = await repo.get_entry(session, tenant_id, entry_id, lock=True)
            if row is None or row.due_at is None:
                return None
            if row.due_at > now + timedelta(milliseconds=50):
                return (row.due_at - now).total_seconds()
            step = next_step(await _state_of(session, row))
            if step.kind is StepKind.DONE:
                _finish(session, row, step, now)
                await flush_feed(session)
                await session.commit()
                return _Plan(step, row.version, row.user, Priority(row.priority), None, None, None)
            assert step.instance_id is not None
            instance = await jira_repo.get_instance(session, tenant_id, step.instance_id)
            connection = (
                await jira_repo.get_connection(session, tenant_id, step.instance_id, row.user) if instance else None
            )
            target = user_target(self.d.box, instance, connection, priority=Priority(row.priority)) \
                if instance and connection else None
            if instance is None or target is None:
                await self._auth_required(session, row, instance, connection, now)
                return None
            return _Plan(step, row.version, row.user, Priority(row.priority), target, instance, connection)

    async def _mark_create_unconfirmed(self, tenant_id: uuid.UUID, entry_id: str, step: Step) -> None:
        """From here until JIRA's answer is recorded, a create may happen without our knowing: say so first."""
        async with self.d.sessionmaker() as session:
            row = await repo.get_entry(session, tenant_id, entry_id, lock=True)
            if row is not None:
                row.create_unconfirmed = True
                row.worklog_instance_id, row.worklog_ticket = step.instance_id, step.issue
                await session.commit()

    async def _auth_required(
        self, session: AsyncSession, row: EntryRow, instance: JiraInstanceRow | None,
        connection: ConnectionRow | None, now: datetime,
    ) -> None:
        name = instance.name if instance else "its JIRA instance"
        if connection is None:
            message = f"{row.user} has not connected a JIRA account for {name}: connect it to sync this entry"
        else:
            message = f"JIRA connection of {row.user} to {name} was rejected — reconnect"
        row.due_at = None
        set_status(session, row, SyncStatus.AUTH_REQUIRED, last_error=message, now=now)
        await _notify_once(session, tenant_id=row.tenant_id, user=row.user, kind="auth_required", message=message,
                           entry_id=row.id, instance_id=instance.id if instance else None, per_entry=False)
        await flush_feed(session)
        await session.commit()

    async def _run(self, tenant_id: uuid.UUID, entry_id: str, plan: _Plan) -> float | None:
        step, instance = plan.step, plan.instance
        assert step.instance_id is not None and instance is not None
        lease = await self.d.admission.enter(step.instance_id, plan.priority,
                                             in_flight_cap(instance.rate_limit_per_second))
        if lease is None:
            # this instance already has enough pushes in flight: free the worker slot for other instances and
            # come back some time within the backlog's expected drain time, so a large backlog is refused a
            # few times per entry rather than re-tried every second (no attempt spent)
            rate = max(1, instance.rate_limit_per_second)
            async with self.d.sessionmaker() as session:
                backlog = await repo.due_count_for_instance(session, step.instance_id,
                                                            at_most=rate * MAX_REFUSAL_SPREAD_SECONDS)
            return 1.0 + self.d.rng() * max(1.0, backlog / rate)
        try:
            return await self._run_admitted(tenant_id, entry_id, plan)
        finally:
            await self.d.admission.leave(step.instance_id, lease)

    async def _run_admitted(self, tenant_id: uuid.UUID, entry_id: str, plan: _Plan) -> float | None:
        step, target = plan.step, plan.target
        assert target is not None and step.instance_id is not None and step.issue is not None
        decision = await self.d.circuit.allow(step.instance_id)
        if not decision.allowed:
            return max(decision.retry_in, 0.5)  # waits pending; no attempt spent
        if step.kind is StepKind.CREATE:
            # only now, with the request about to go out (admitted, circuit closed), is the outcome at risk
            await self._mark_create_unconfirmed(tenant_id, entry_id, step)
        calls: list[JiraCall] = []

        async def collect(call: JiraCall) -> None:
            calls.append(call)

        try:
            async with issue_lock(self.d.redis, step.instance_id, step.issue, ttl=default_lock_ttl(self.d.settings)):
                result = await self._execute(step, target, entry_id, collect,
                                             plan.connection.jira_username if plan.connection else None)
        except LockTimeout:
            await self.d.circuit.release_trial(step.instance_id, decision)
            return 1.0  # another writer holds the issue for long: come back, no attempt spent
        except RateLimited as exc:
            await self.d.circuit.release_trial(step.instance_id, decision)
            await self._record_calls(tenant_id, entry_id, calls)
            return max(exc.retry_after, 1.0)
        except AuthRejected as exc:
            await self.d.circuit.record_success(step.instance_id)  # JIRA is up; only this token is bad
            await self._record_auth_rejected(tenant_id, entry_id, plan, calls, exc)
            return None
        except EgressRefused as exc:
            # nothing was sent (CONTRACT 11): JIRA's health is unknown, and retrying cannot help
            await self.d.circuit.release_trial(step.instance_id, decision)
            return await self._record_failure(tenant_id, entry_id, plan, calls, exc, permanent=True)
        except NotFound as exc:
            await self.d.circuit.record_success(step.instance_id)
            if step.kind is StepKind.UPDATE:
                # the worklog was deleted in JIRA while we hold a newer local change: TimeTracker wins,
                # write it again (a missing issue then fails the create with JIRA's message)
                return await self._record(tenant_id, entry_id, plan, calls, lost_worklog=True)
            return await self._record_failure(tenant_id, entry_id, plan, calls, exc, permanent=True)
        except PermanentError as exc:
            await self.d.circuit.record_success(step.instance_id)
            return await self._record_failure(tenant_id, entry_id, plan, calls, exc, permanent=True)
        except TransientError as exc:
            await self.d.circuit.record_failure(step.instance_id)
            return await self._record_failure(tenant_id, entry_id, plan, calls, exc, permanent=False)
        await self.d.circuit.record_success(step.instance_id)
        return await self._record(tenant_id, entry_id, plan, calls, result=result)

    async def _execute(
        self, step: Step, target: JiraTarget, entry_id: str, on_call: Callable[[JiraCall], Awaitable[None]],
        jira_username: str | None = None,
    ) -> RemoteWorklog | bool | None:
        jira, issue = self.d.jira, step.issue
        assert issue is not None
        if step.kind is StepKind.CREATE:
            assert step.body is not None
            return await jira.create_worklog(target, issue, step.body, on_call=on_call)
        if step.kind is StepKind.UPDATE:
            assert step.body is not None and step.worklog_id is not None
            return await jira.update_worklog(target, issue, step.worklog_id, step.body, on_call=on_call)
        if step.kind is StepKind.DELETE:
            assert step.worklog_id is not None
            return await jira.delete_worklog(target, issue, step.worklog_id, on_call=on_call)
        # only the connection's own JIRA user's worklog may be adopted; a connection that never learnt who it
        # is (JIRA's myself failed at connect time) asks now
        author = jira_username or (await jira.myself(target, on_call=on_call)).name
        return await jira.find_worklog_by_anchor(target, issue, entry_id, author=author, on_call=on_call)

    async def _locked_row(self, session: AsyncSession, tenant_id: uuid.UUID, entry_id: str) -> EntryRow | None:
        return await repo.get_entry(session, tenant_id, entry_id, lock=True)

    async def _record_calls(self, tenant_id: uuid.UUID, entry_id: str, calls: list[JiraCall]) -> None:
        if calls:
            async with self.d.sessionmaker() as session:
                audit_calls(session, tenant_id, calls, entry_id=entry_id)
                await session.commit()

    async def _record(
        self, tenant_id: uuid.UUID, entry_id: str, plan: _Plan, calls: list[JiraCall], *,
        result: RemoteWorklog | bool | None = None, lost_worklog: bool = False,
    ) -> float | None:
        """Store what JIRA now holds (always: it is a fact), then finish if nothing changed meanwhile."""
        step, now = plan.step, now_utc()
        async with self.d.sessionmaker() as session:
            row = await self._locked_row(session, tenant_id, entry_id)
            if row is None:
                return None
            audit_calls(session, row.tenant_id, calls, entry_id=row.id)
            if step.kind in (StepKind.CREATE, StepKind.UPDATE) and isinstance(result, RemoteWorklog):
                assert step.body is not None
                row.worklog_id, row.worklog_instance_id, row.worklog_ticket = result.id, step.instance_id, step.issue
                row.create_unconfirmed = False
                row.base = snapshot(step.body)
                row.remote_updated_ms = _updated_ms(result)
            elif step.kind is StepKind.DELETE or lost_worklog:
                row.worklog_id = row.worklog_instance_id = row.worklog_ticket = None
                row.base = None
                row.remote_updated_ms = None
            elif step.kind is StepKind.FIND:
                row.create_unconfirmed = False
                if isinstance(result, RemoteWorklog):
                    row.worklog_id, row.worklog_instance_id, row.worklog_ticket = (
                        result.id, step.instance_id, step.issue)
                    row.base = {"started_ms": _started_ms(result.started), "comment": result.comment,
                                "time_spent_seconds": result.time_spent_seconds}
                    row.remote_updated_ms = _updated_ms(result)
                else:
                    row.worklog_instance_id = row.worklog_ticket = None
            if row.sync_status == SyncStatus.CONFLICT and step.kind in (StepKind.CREATE, StepKind.UPDATE):
                # JIRA's edit was seen (and a conflict declared) while this write was on its way: the write
                # replaced that edit, so JIRA holds exactly this entry again. Say so rather than leave a
                # conflict whose "JIRA's state" no longer exists.
                await settle_conflict_for_timetracker(
                    session, row, now, why="by a push that was in flight when JIRA's edit was seen "
                                           "(it replaced that edit; JIRA and the entry agree)")
                row.due_at = row.due_at or now
            if row.version == plan.version and step.kind is not StepKind.FIND:
                row.attempts += 1
            follow = next_step(await _state_of(session, row))
            if follow.kind is StepKind.DONE and row.due_at is not None:
                _finish(session, row, follow, now)
            await flush_feed(session)
            await session.commit()
        return None  # the caller's loop plans the next step (if any) from the stored state

    async def _record_failure(
        self, tenant_id: uuid.UUID, entry_id: str, plan: _Plan, calls: list[JiraCall], exc: JiraError, *,
        permanent: bool,
    ) -> float | None:
        now = now_utc()
        async with self.d.sessionmaker() as session:
            row = await self._locked_row(session, tenant_id, entry_id)
            if row is None:
                return None
            audit_calls(session, row.tenant_id, calls, entry_id=row.id)
            step = plan.step
            if step.kind is StepKind.CREATE and not (isinstance(exc, TransientError) and exc.maybe_applied):
                row.create_unconfirmed = False  # JIRA certainly did not create it
            if row.version != plan.version:
                # a newer change landed while we were talking to JIRA: it gets fresh attempts at once
                await session.commit()
                return None
            row.attempts += 1
            instance_id = str(step.instance_id)
            gave_up = permanent or row.attempts >= self.d.settings.sync_max_attempts
            if gave_up:
                message = exc.message if permanent else (
                    f"JIRA did not accept the change after {row.attempts} attempts: {exc.message}")
                row.due_at = None
                set_status(session, row, SyncStatus.FAILED, last_error=message, now=now)
                metrics.SYNC_OUTCOMES.labels(instance_id, "failed").inc()
                await _notify_once(session, tenant_id=tenant_id, user=row.user, kind="sync_failed",
                                   message=f"entry {row.id} ({row.ticket}) could not be synced: {message}",
                                   entry_id=row.id, instance_id=step.instance_id, per_entry=True)
                delay = None
            else:
                delay = backoff_seconds(row.attempts, self.d.settings.sync_backoff_base_seconds, self.d.rng(),
                                        self.d.settings.sync_backoff_max_seconds)
                row.due_at = now + timedelta(seconds=delay)
                # still pending; say why, so a person watching sees the retry coming
                set_status(session, row, SyncStatus.PENDING,
                           last_error=f"attempt {row.attempts} failed, retrying in {delay:.1f} s: {exc.message}",
                           now=now)
                metrics.SYNC_OUTCOMES.labels(instance_id, "retry").inc()
            await flush_feed(session)
            await session.commit()
        return delay

    async def _record_auth_rejected(
        self, tenant_id: uuid.UUID, entry_id: str, plan: _Plan, calls: list[JiraCall], exc: AuthRejected
    ) -> None:
        now = now_utc()
        async with self.d.sessionmaker() as session:
            row = await self._locked_row(session, tenant_id, entry_id)
            if row is None:
                return
            audit_calls(session, row.tenant_id, calls, entry_id=row.id)
            assert plan.instance is not None
            connection = await reject_connection(session, tenant_id=tenant_id, instance_id=plan.instance.id,
                                                 user=row.user, oauth_problem=exc.oauth_problem, entry_id=row.id)
            await self._auth_required(session, row, plan.instance, connection, now)
            metrics.SYNC_OUTCOMES.labels(str(plan.instance.id), "auth_required").inc()


def _started_ms(value: str) -> int | None:
    try:
        return int(parse_started(value).timestamp() * 1000)
    except ValueError:
        return None


def _updated_ms(worklog: RemoteWorklog) -> int | None:
    return _started_ms(worklog.updated) if worklog.updated else None
