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
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import metrics
from app.clock import now_utc
from app.config import Settings
from app.db.models import ConnectionRow, JiraInstanceRow
from app.db.repositories import entries as repo
from app.db.repositories import jira as jira_repo
from app.domain.entry import NotificationKind, Route, SyncStatus, route
from app.domain.entry_sync import EntrySync, SyncedEntry
from app.domain.priority import Priority
from app.domain.snapshot import WorklogSnapshot
from app.domain.sync import Create, Delete, Done, Find, JiraStep, Update, backoff_seconds, next_step
from app.domain.worklog import WorklogMarker, jira_time_ms_or_none
from app.jira.admission import InstanceAdmission, in_flight_cap
from app.jira.calls import JiraCall
from app.jira.circuit import CircuitBreaker
from app.jira.client import JiraClient, JiraTarget
from app.jira.egress import EgressRefused
from app.jira.errors import AuthRejected, JiraError, NotFound, PermanentError, RateLimited, TransientError
from app.jira.locks import LockTimeout, default_lock_ttl, issue_lock
from app.jira.resources import RemoteWorklog
from app.services.audit import audit_calls
from app.services.connect import reject_connection
from app.services.credentials import Credentials
from app.services.entries import settle_conflict_for_timetracker
from app.services.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

MAX_ROUNDS = 12  # steps in one run: a move is delete + create; a change landing meanwhile adds a few
# a push refused by the admission cap comes back within the backlog's expected drain time, at most this far off
MAX_REFUSAL_SPREAD_SECONDS = 600


@dataclass
class PushDeps:
    sessionmaker: async_sessionmaker[AsyncSession]
    credentials: Credentials
    jira: JiraClient
    circuit: CircuitBreaker
    redis: Redis
    settings: Settings
    admission: InstanceAdmission
    rng: Callable[[], float] = field(default=random.random)


@dataclass(frozen=True)
class _Plan:
    """One JIRA request to make for an entry, as whom, and for which version of it."""

    step: JiraStep
    version: int
    user: str
    priority: Priority
    target: JiraTarget
    instance: JiraInstanceRow
    jira_username: str | None  # the connection's own JIRA user: only its anchored worklog may be adopted


class _Finished:
    """The plan found nothing to write and recorded the final state (look again: a change may have landed)."""


async def _route(session: AsyncSession, row: SyncedEntry) -> Route:
    return route(row.ticket, row.requested_instance_id, await repo.instance_routes(session, row.tenant_id))


def _finish(entry: EntrySync, step: Done) -> None:
    entry.finish(step.status, step.reason)
    if entry.entry.instance_id is not None:
        metrics.SYNC_OUTCOMES.labels(str(entry.entry.instance_id), step.status.value).inc()


async def _notify_once(
    session: AsyncSession, *, tenant_id: uuid.UUID, user: str, kind: NotificationKind, message: str,
    entry_id: str | None, instance_id: uuid.UUID | None, per_entry: bool,
) -> None:
    """One unread notification per (user, instance, kind) — or per entry — instead of one per push."""
    await repo.lock_notification_key(session, tenant_id=tenant_id, user=user, kind=kind,
                                     jira_instance_id=instance_id, entry_id=entry_id if per_entry else None)
    if not await repo.has_unread_notification(session, tenant_id=tenant_id, user=user, kind=kind,
                                              jira_instance_id=instance_id, entry_id=entry_id, per_entry=per_entry):
        repo.add_notification(session, tenant_id=tenant_id, user=user, kind=kind, message=message,
                              entry_id=entry_id, jira_instance_id=instance_id)


class PushEngine:
    def __init__(self, deps: PushDeps) -> None:
        self.d = deps

    def _unit(self) -> AbstractAsyncContextManager[UnitOfWork]:
        return UnitOfWork.open(self.d.sessionmaker)

    @asynccontextmanager
    async def _recording(
        self, tenant_id: uuid.UUID, entry_id: str, calls: list[JiraCall]
    ) -> AsyncIterator[tuple[UnitOfWork, EntrySync | None]]:
        """A unit of work with the entry (locked; None when it no longer exists) and the audit rows of the JIRA
        calls just made."""
        async with self._unit() as uow:
            row = await repo.get_entry(uow.session, tenant_id, entry_id, lock=True)
            if row is not None:
                audit_calls(uow.session, row.tenant_id, calls, entry_id=row.id)
            yield uow, None if row is None else uow.entry(row)

    async def push(self, tenant_id: uuid.UUID, entry_id: str) -> float | None:
        """Bring the entry's worklog in line with its latest state. None: done; a number: run again then."""
        for _ in range(MAX_ROUNDS):
            plan = await self._plan(tenant_id, entry_id)
            if plan is None or isinstance(plan, float):
                return plan
            if isinstance(plan, _Finished):
                continue  # the final state is recorded; look again in case a change landed meanwhile
            delay = await self._run(tenant_id, entry_id, plan)
            if delay is not None:
                return delay
        return 0.5  # still changing under our feet: let the queue call again shortly

    async def _plan(self, tenant_id: uuid.UUID, entry_id: str) -> _Plan | _Finished | float | None:
        now = now_utc()
        async with self._unit() as uow:
            row = await repo.get_entry(uow.session, tenant_id, entry_id, lock=True)
            if row is None or row.due_at is None:
                return None
            if row.due_at > now + timedelta(milliseconds=50):
                return (row.due_at - now).total_seconds()
            entry = uow.entry(row, now=now)
            step = next_step(entry.push_state(await _route(uow.session, row)))
            if isinstance(step, Done):
                _finish(entry, step)
                await uow.commit()
                return _Finished()
            instance = await jira_repo.get_instance(uow.session, tenant_id, step.instance_id)
            connection = (
                await jira_repo.get_connection(uow.session, tenant_id, step.instance_id, row.user) if instance else None
            )
            target = self.d.credentials.user_target(instance, connection, priority=Priority(row.priority)) \
                if instance and connection else None
            if instance is None or target is None:
                await self._auth_required(uow, entry, instance, connection)
                return None
            return _Plan(step, row.version, row.user, Priority(row.priority), target, instance,
                         connection.jira_username if connection else None)

    async def _mark_create_unconfirmed(self, tenant_id: uuid.UUID, entry_id: str, step: Create) -> None:
        """From here until JIRA's answer is recorded, a create may happen without our knowing: say so first."""
        async with self._unit() as uow:
            row = await repo.get_entry(uow.session, tenant_id, entry_id, lock=True)
            if row is not None:
                uow.entry(row).mark_create_unconfirmed(step.instance_id, step.issue)
                await uow.commit()

    async def _auth_required(
        self, uow: UnitOfWork, entry: EntrySync, instance: JiraInstanceRow | None, connection: ConnectionRow | None,
    ) -> None:
        row = entry.entry
        name = instance.name if instance else "its JIRA instance"
        if connection is None:
            message = f"{row.user} has not connected a JIRA account for {name}: connect it to sync this entry"
        else:
            message = f"JIRA connection of {row.user} to {name} was rejected — reconnect"
        entry.require_auth(message)
        await _notify_once(uow.session, tenant_id=row.tenant_id, user=row.user, kind=NotificationKind.AUTH_REQUIRED,
                           message=message, entry_id=row.id, instance_id=instance.id if instance else None,
                           per_entry=False)
        await uow.commit()

    async def _run(self, tenant_id: uuid.UUID, entry_id: str, plan: _Plan) -> float | None:
        step, instance = plan.step, plan.instance
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
        decision = await self.d.circuit.allow(step.instance_id)
        if not decision.allowed:
            return max(decision.retry_in, 0.5)  # waits pending; no attempt spent
        if isinstance(step, Create):
            # only now, with the request about to go out (admitted, circuit closed), is the outcome at risk
            await self._mark_create_unconfirmed(tenant_id, entry_id, step)
        calls: list[JiraCall] = []

        async def collect(call: JiraCall) -> None:
            calls.append(call)

        try:
            async with issue_lock(self.d.redis, step.instance_id, step.issue, ttl=default_lock_ttl(self.d.settings)):
                result = await self._execute(step, target, WorklogMarker(str(tenant_id), entry_id), collect,
                                             plan.jira_username)
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
            if isinstance(step, Update):
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
        self, step: JiraStep, target: JiraTarget, marker: WorklogMarker,
        on_call: Callable[[JiraCall], Awaitable[None]], jira_username: str | None = None,
    ) -> RemoteWorklog | bool | None:
        jira = self.d.jira
        match step:
            case Create():
                return await jira.create_worklog(target, step.issue, step.body, marker=marker, on_call=on_call)
            case Update():
                return await jira.update_worklog(target, step.issue, step.worklog_id, step.body, marker=marker,
                                                 on_call=on_call)
            case Delete():
                return await jira.delete_worklog(target, step.issue, step.worklog_id, on_call=on_call)
            case Find():
                # only the connection's own JIRA user's worklog may be adopted; a connection that never learnt
                # who it is (JIRA's myself failed at connect time) asks now
                author = jira_username or (await jira.myself(target, on_call=on_call)).name
                return await jira.find_our_worklog(target, step.issue, marker, author=author, on_call=on_call)

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
        step = plan.step
        async with self._recording(tenant_id, entry_id, calls) as (uow, entry):
            if entry is None:
                return None
            row = entry.entry
            if isinstance(step, Create | Update) and isinstance(result, RemoteWorklog):
                entry.record_written(worklog_id=result.id, instance_id=step.instance_id, issue=step.issue,
                                     written=WorklogSnapshot.of_body(step.body),
                                     remote_updated_ms=jira_time_ms_or_none(result.updated))
            elif isinstance(step, Delete) or lost_worklog:
                entry.forget_worklog()
            elif isinstance(step, Find):
                if isinstance(result, RemoteWorklog):
                    entry.record_written(worklog_id=result.id, instance_id=step.instance_id, issue=step.issue,
                                         written=_found(result), remote_updated_ms=jira_time_ms_or_none(result.updated))
                else:
                    entry.record_not_found()
            if entry.status is SyncStatus.CONFLICT and isinstance(step, Create | Update):
                # JIRA's edit was seen (and a conflict declared) while this write was on its way: the write
                # replaced that edit, so JIRA holds exactly this entry again. Say so rather than leave a
                # conflict whose "JIRA's state" no longer exists.
                await settle_conflict_for_timetracker(
                    uow, entry, why="by a push that was in flight when JIRA's edit was seen "
                                    "(it replaced that edit; JIRA and the entry agree)")
                entry.keep_due()
            if row.version == plan.version and not isinstance(step, Find):
                entry.count_attempt()
            follow = next_step(entry.push_state(await _route(uow.session, row)))
            if isinstance(follow, Done) and row.due_at is not None:
                _finish(entry, follow)
            await uow.commit()
        return None  # the caller's loop plans the next step (if any) from the stored state

    async def _record_failure(
        self, tenant_id: uuid.UUID, entry_id: str, plan: _Plan, calls: list[JiraCall], exc: JiraError, *,
        permanent: bool,
    ) -> float | None:
        step, delay = plan.step, None
        async with self._recording(tenant_id, entry_id, calls) as (uow, entry):
            if entry is None:
                return None
            if isinstance(step, Create) and not (isinstance(exc, TransientError) and exc.maybe_applied):
                entry.create_refused()  # JIRA certainly did not create it
            if entry.entry.version != plan.version:
                # a newer change landed while we were talking to JIRA: it gets fresh attempts at once
                await uow.commit()
                return None
            attempts, row = entry.count_attempt(), entry.entry
            instance_id = str(step.instance_id)
            if permanent or attempts >= self.d.settings.sync_max_attempts:
                message = exc.message if permanent else (
                    f"JIRA did not accept the change after {attempts} attempts: {exc.message}")
                entry.fail(message)
                metrics.SYNC_OUTCOMES.labels(instance_id, SyncStatus.FAILED.value).inc()
                await _notify_once(uow.session, tenant_id=tenant_id, user=row.user, kind=NotificationKind.SYNC_FAILED,
                                   message=f"entry {row.id} ({row.ticket}) could not be synced: {message}",
                                   entry_id=row.id, instance_id=step.instance_id, per_entry=True)
            else:
                delay = backoff_seconds(attempts, self.d.settings.sync_backoff_base_seconds, self.d.rng(),
                                        self.d.settings.sync_backoff_max_seconds)
                # still pending; say why, so a person watching sees the retry coming
                entry.retry_later(delay, f"attempt {attempts} failed, retrying in {delay:.1f} s: {exc.message}")
                metrics.SYNC_OUTCOMES.labels(instance_id, "retry").inc()
            await uow.commit()
        return delay

    async def _record_auth_rejected(
        self, tenant_id: uuid.UUID, entry_id: str, plan: _Plan, calls: list[JiraCall], exc: AuthRejected
    ) -> None:
        async with self._recording(tenant_id, entry_id, calls) as (uow, entry):
            if entry is None:
                return
            connection = await reject_connection(uow.session, tenant_id=tenant_id, instance_id=plan.instance.id,
                                                 user=entry.entry.user, oauth_problem=exc.oauth_problem,
                                                 entry_id=entry_id)
            await self._auth_required(uow, entry, plan.instance, connection)
            metrics.SYNC_OUTCOMES.labels(str(plan.instance.id), SyncStatus.AUTH_REQUIRED.value).inc()


def _found(worklog: RemoteWorklog) -> WorklogSnapshot | None:
    """What the anchored worklog JIRA holds is (None when its `started` is unreadable: the next step rewrites it)."""
    try:
        return WorklogSnapshot.of_remote(worklog.started, worklog.time_spent_seconds, worklog.comment)
    except ValueError:
        return None
